/**
 * Route precedence (route-index.ts): host tier (exact > longest wildcard > no host), then longest
 * prefix, then most conditions; fall-through when a candidate's conditions fail; ties refused at
 * build time (validate-routes.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { buildTable } from '../../src/model/build-table.js';
import type { RequestFacts, RouteTemplate } from '../../src/model/types.js';
import { route, request, snap, type Conditions } from './precedence-support.js';

const GET = request('GET');
const build = (templates: readonly RouteTemplate[]) => buildTable(snap, {}, templates);

describe('precedence: readable cases', () => {
  const table = build([
    route('exact', ['api.example.com'], '/api'),
    route('exact-canary', ['api.example.com'], '/api', { headers: { 'x-canary': '1' } }),
    route('partner-long', ['*.eu.partners.example.com'], '/api'),
    route('partner', ['*.partners.example.com'], '/api'),
    route('partner-post', ['*.partners.example.com'], '/api', { methods: ['POST'] }),
    route('partner-beta', ['*.partners.example.com'], '/api', { methods: ['GET'], query: { beta: 'true' } }),
    route('any-api', [], '/api'),
    route('any-api-users', [], '/api/users'),
    route('any-api-users-tenant', [], '/api/users', { headers: { 'x-tenant': '*' } }),
    route('any-root-delete', [], '/', { methods: ['DELETE'] }),
    route('list', ['a.example.com', '*.b.example.com'], '/list'),
    route('head-only', ['api.example.com'], '/head-only', { methods: ['HEAD'] }),
  ]);
  const cases: [string, string | undefined, string, RequestFacts | undefined, string | undefined][] = [
    ['exact host, no condition', 'api.example.com', '/api/x', GET, 'exact'],
    ['exact host, header condition holds', 'api.example.com', '/api/x', request('GET', [['X-Canary', '1']]), 'exact-canary'],
    ['header value differs: plain route', 'api.example.com', '/api/x', request('GET', [['x-canary', '2']]), 'exact'],
    ['one of several fields of the name holds', 'api.example.com', '/api', request('GET', [['x-canary', '0'], ['X-CANARY', '1']]), 'exact-canary'],
    ['without request facts a header condition fails', 'api.example.com', '/api', undefined, 'exact'],
    ['exact host beats a longer any-host prefix', 'api.example.com', '/api/users/1', GET, 'exact'],
    ['longest wildcard', 'x.eu.partners.example.com', '/api', GET, 'partner-long'],
    ['wildcard spans several labels', 'a.b.eu.partners.example.com', '/api', GET, 'partner-long'],
    ['shorter wildcard', 'x.us.partners.example.com', '/api', GET, 'partner'],
    ['wildcard, method condition', 'x.partners.example.com', '/api', request('POST'), 'partner-post'],
    ['wildcard, two conditions beat none', 'x.partners.example.com', '/api?beta=true', GET, 'partner-beta'],
    ['query value decoded (+ is a space, %74 is t)', 'x.partners.example.com', '/api?beta=%74rue&x=a+b', GET, 'partner-beta'],
    ['query condition fails: plain wildcard route', 'x.partners.example.com', '/api?beta=false', GET, 'partner'],
    ['HEAD matches a GET route (as HAProxy\'s METH_GET and nginx\'s limit_except GET)', 'x.partners.example.com', '/api?beta=true', request('HEAD'), 'partner-beta'],
    ['HEAD does not match a POST route', 'x.partners.example.com', '/api', request('HEAD'), 'partner'],
    ['GET does not match a HEAD-only route', 'api.example.com', '/head-only', GET, undefined],
    ['HEAD matches a HEAD-only route', 'api.example.com', '/head-only', request('HEAD'), 'head-only'],
    ['methods are case-sensitive', 'x.partners.example.com', '/api', request('post'), 'partner'],
    ['the wildcard suffix itself is not covered', 'partners.example.com', '/api/users', GET, 'any-api-users'],
    ['wildcard tier falls through to any host on another path', 'x.partners.example.com', '/api2', GET, undefined],
    ['any host, longest prefix', 'other.com', '/api/users/7', GET, 'any-api-users'],
    ['any host, header present', 'other.com', '/api/users/7', request('GET', [['x-tenant', '']]), 'any-api-users-tenant'],
    ['root with a method condition', 'other.com', '/elsewhere', request('DELETE'), 'any-root-delete'],
    ['root condition fails: 404', 'other.com', '/elsewhere', GET, undefined],
    ['a host list: exact entry', 'a.example.com', '/list', GET, 'list'],
    ['a host list: wildcard entry', 'x.b.example.com', '/list', GET, 'list'],
    ['a host list: neither', 'b.example.com', '/list', GET, undefined],
    ['host case and port ignored', 'X.Partners.Example.COM:8443', '/api', GET, 'partner'],
  ];
  for (const [what, host, path, facts, expected] of cases) {
    it(`${what}: ${host ?? '(no host)'} ${path} → ${expected ?? '404'}`, () => {
      assert.equal(table.lookup(host, path, facts)?.name, expected);
    });
  }
});

/**
 * Every pair of route features: host tier (exact, longer wildcard, shorter wildcard, none) x prefix
 * (longer, shorter) x conditions (any subset of method, header, query). Precedence is the
 * lexicographic order of (tier, prefix, condition count); equal on all three is a tie (the
 * conditions chosen here can always hold together), which the build refuses.
 */
describe('precedence: every pair of features', () => {
  const tiers = [['a.b.example.com'], ['*.b.example.com'], ['*.example.com'], []] as const;
  const prefixes = ['/api/x', '/api'] as const;
  const kinds = ['method', 'header', 'query'] as const;
  type Kind = (typeof kinds)[number];
  interface Feature { readonly tier: number; readonly prefix: number; readonly kinds: readonly Kind[] }
  const features: Feature[] = [];
  for (let tier = 0; tier < tiers.length; tier++) {
    for (let prefix = 0; prefix < prefixes.length; prefix++) {
      for (let mask = 0; mask < 8; mask++) features.push({ tier, prefix, kinds: kinds.filter((_, i) => (mask & (1 << i)) !== 0) });
    }
  }
  const when = (f: Feature): Conditions | undefined => f.kinds.length === 0 ? undefined : {
    ...(f.kinds.includes('method') ? { methods: ['GET'] } : {}),
    ...(f.kinds.includes('header') ? { headers: { 'x-a': '1' } } : {}),
    ...(f.kinds.includes('query') ? { query: { q: '1' } } : {}),
  };
  const label = (f: Feature): string => `${tiers[f.tier]![0] ?? 'any'}${prefixes[f.prefix]}[${f.kinds.join('+')}]`;
  const templateOf = (name: string, f: Feature): RouteTemplate => route(name, tiers[f.tier]!, prefixes[f.prefix]!, when(f), `templates/${name}.yaml`);
  /** Negative when a wins. */
  const order = (a: Feature, b: Feature): number => a.tier - b.tier || a.prefix - b.prefix || b.kinds.length - a.kinds.length;
  const all = request('GET', [['x-a', '1']]);
  const host = 'a.b.example.com';
  const path = '/api/x/1?q=1';
  /** A request that fails the first of `f`'s conditions and satisfies every other one. */
  const failing = (f: Feature): [RequestFacts, string] => {
    const kind = f.kinds[0]!;
    if (kind === 'method') return [request('POST', [['x-a', '1']]), path];
    if (kind === 'header') return [request('GET', [['x-a', '2']]), path];
    return [all, '/api/x/1?q=2'];
  };

  it(`covers ${features.length} features, ${(features.length * (features.length - 1)) / 2} pairs`, () => {
    let ties = 0;
    let fallThroughs = 0;
    for (let i = 0; i < features.length; i++) {
      for (let j = i + 1; j < features.length; j++) {
        const a = features[i]!;
        const b = features[j]!;
        const what = `${label(a)} vs ${label(b)}`;
        const templates = [templateOf('a', a), templateOf('b', b)];
        const cmp = order(a, b);
        if (cmp === 0) {
          assert.throws(() => build(templates), (err: unknown) => err instanceof ConfigError && /route "b": matches .* like route "a" \(templates\/a\.yaml\)/.test(err.message) && err.source === 'templates/b.yaml', what);
          ties++;
          continue;
        }
        const table = build(templates);
        const [winner, loser, winnerName, loserName] = cmp < 0 ? [a, b, 'a', 'b'] : [b, a, 'b', 'a'];
        assert.equal(table.lookup(host, path, all)?.name, winnerName, what);
        if (winner.kinds.length > 0) {
          // The winner's condition fails: the loser takes the request when its own conditions still hold.
          const [facts, failingPath] = failing(winner);
          const loserHolds = !loser.kinds.includes(winner.kinds[0]!);
          assert.equal(table.lookup(host, failingPath, facts)?.name, loserHolds ? loserName : undefined, `${what}, ${winner.kinds[0]} fails`);
          fallThroughs++;
        }
      }
    }
    assert.equal(ties, 4 * 2 * (3 + 3)); // per tier and prefix: 3 pairs of one-condition routes, 3 of two-condition routes
    assert.ok(fallThroughs > 1000);
  });
});

describe('fall-through when conditions fail', () => {
  const table = build([
    route('exact-canary', ['api.example.com'], '/api/users', { headers: { 'x-canary': '1' } }),
    route('exact-short', ['api.example.com'], '/api', { methods: ['POST'] }),
    route('wild', ['*.example.com'], '/api/users', { query: { v: '2' } }),
    route('any', [], '/api'),
  ]);
  const cases: [RequestFacts, string, string][] = [
    [request('GET', [['x-canary', '1']]), '/api/users', 'exact-canary'],
    [request('POST'), '/api/users', 'exact-short'], // shorter prefix, same tier
    [request('GET'), '/api/users?v=2', 'wild'], // next tier
    [request('GET'), '/api/users?v=3', 'any'], // last tier
  ];
  for (const [facts, path, expected] of cases) {
    it(`${facts.method} ${path} ${JSON.stringify(facts.rawHeaders)} → ${expected}`, () => assert.equal(table.lookup('api.example.com', path, facts)?.name, expected));
  }
});

describe('ties are build errors; exclusive conditions are not ties', () => {
  const A = 'templates/a.yaml';
  const B = 'templates/b.yaml';
  const refused: [string, RouteTemplate, RouteTemplate, RegExp][] = [
    ['two plain routes, any host', route('r1', [], '/a', undefined, A), route('r2', [], '/a', undefined, B), /: route "r2": matches \/a like route "r1" \(templates\/a\.yaml\)$/],
    ['a shared entry of two host lists', route('r1', ['x.com', '*.y.com'], '/a', undefined, A), route('r2', ['*.y.com'], '/a', undefined, B), /route "r2": matches \*\.y\.com\/a like route "r1"/],
    ['methods vs header', route('r1', [], '/a', { methods: ['GET'] }, A), route('r2', [], '/a', { headers: { 'x-a': '1' } }, B), /route "r2": matches \/a like route "r1" \(templates\/a\.yaml\) with as many conditions \(1\)/],
    ['overlapping method lists', route('r1', [], '/a', { methods: ['GET', 'POST'] }, A), route('r2', [], '/a', { methods: ['POST', 'PUT'] }, B), /like route "r1"/],
    ['GET vs HEAD (GET takes HEAD: a HEAD request satisfies both)', route('r1', [], '/a', { methods: ['GET'] }, A), route('r2', [], '/a', { methods: ['HEAD'] }, B), /like route "r1"/],
    ['HEAD, POST vs GET', route('r1', [], '/a', { methods: ['HEAD', 'POST'] }, A), route('r2', [], '/a', { methods: ['GET'] }, B), /like route "r1"/],
    ['header value vs present', route('r1', [], '/a', { headers: { 'x-a': '1' } }, A), route('r2', [], '/a', { headers: { 'x-a': '*' } }, B), /like route "r1"/],
    ['different header names', route('r1', [], '/a', { headers: { 'x-a': '1' } }, A), route('r2', [], '/a', { headers: { 'x-b': '1' } }, B), /like route "r1"/],
    ['query vs query, other names', route('r1', [], '/a', { query: { a: '1' } }, A), route('r2', [], '/a', { query: { b: '1' } }, B), /like route "r1"/],
    ['same conditions, two conditions each', route('r1', [], '/a', { methods: ['GET'], query: { a: '1' } }, A), route('r2', [], '/a', { headers: { 'x-a': '1' }, query: { a: '1' } }, B), /with as many conditions \(2\)/],
  ];
  for (const [what, r1, r2, message] of refused) {
    it(`refused: ${what}`, () => {
      assert.throws(() => build([r1, r2]), (err: unknown) => err instanceof ConfigError && err.source === r2.source && message.test(err.message));
    });
  }
  const accepted: [string, RouteTemplate[]][] = [
    ['disjoint methods', [route('get', [], '/a', { methods: ['GET'] }), route('post', [], '/a', { methods: ['POST'] })]],
    ['one header, two values', [route('one', [], '/a', { headers: { 'x-a': '1' } }), route('two', [], '/a', { headers: { 'x-a': '2' } })]],
    ['one query parameter, two values', [route('one', [], '/a', { query: { v: '1' } }), route('two', [], '/a', { query: { v: '2' } })]],
    ['different counts', [route('one', [], '/a', { query: { v: '1' } }), route('plain', [], '/a')]],
    ['same path, different hosts', [route('x', ['x.com'], '/a'), route('wx', ['*.x.com'], '/a'), route('any', [], '/a')]],
    ['HEAD vs POST', [route('head', [], '/a', { methods: ['HEAD'] }), route('post', [], '/a', { methods: ['POST'] })]],
  ];
  for (const [what, templates] of accepted) {
    it(`accepted: ${what}`, () => {
      const table = build(templates);
      assert.equal(table.routes.length, templates.length);
    });
  }
  it('disjoint methods route by method', () => {
    const table = build(accepted[0]![1]);
    assert.equal(table.lookup('h', '/a', request('GET'))?.name, 'get');
    assert.equal(table.lookup('h', '/a', request('POST'))?.name, 'post');
    assert.equal(table.lookup('h', '/a', request('HEAD'))?.name, 'get');
    assert.equal(table.lookup('h', '/a', request('PUT'))?.name, undefined);
  });
  it('a request carrying both exclusive header values gets the earlier route (table order)', () => {
    const table = build(accepted[1]![1]);
    assert.equal(table.lookup('h', '/a', request('GET', [['x-a', '2'], ['x-a', '1']]))?.name, 'one');
  });
  it('a bad wildcard is refused with the route named', () => {
    assert.throws(() => build([route('w', ['a.*.com'], '/')]), /route "w": host "a\.\*\.com": a wildcard is "\*\." followed by a host name/);
  });
});
