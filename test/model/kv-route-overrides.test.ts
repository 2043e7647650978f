/**
 * KV `switchyard/routes/<route>/route` (kv-overrides.ts applyRouteOverride, table-builder.ts): the
 * route's gateway options merged field by field, `null` removing, an invalid value ignored whole
 * with a kv problem naming the key, a tie made by an override refused, tag routes overridden too,
 * mirror services followed, and the incremental builder merging only what changed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { routeKvKeys } from '../../src/model/kv-overrides.js';
import { parseRouteOptions } from '../../src/model/route-options.js';
import { TableBuilder } from '../../src/model/table-builder.js';
import type { KvSnapshot, RouteOptions, RouteTemplate, RoutingTable } from '../../src/model/types.js';
import { discovery, instance, routeNamed, template } from './fixtures.js';

function withOptions(base: RouteTemplate, input: Record<string, unknown>): RouteTemplate {
  const options = parseRouteOptions(input, 'template');
  assert.ok(typeof options !== 'string', String(options));
  return { ...base, options: options as RouteOptions, ...(options.redirect === undefined ? {} : { to: [] }) };
}

const snap = discovery([
  instance('api', 'api-1', { port: 9001, tags: ['v1', 'urlprefix-/tagged'] }),
  instance('api', 'api-2', { port: 9002, tags: ['v2'] }),
  instance('shadow', 'shadow-1', { port: 9101 }),
  instance('other', 'other-1', { port: 9201 }),
]);

const templates: RouteTemplate[] = [
  withOptions(template('api', '/api', [{ service: 'api', tag: 'v1', weight: 1 }], { host: 'api.example.com' }), {
    match: { methods: ['GET'], headers: { 'x-canary': '1' } },
    rewrite: { path: '/v2' },
    headers: { request: { set: { 'x-a': '1' } }, response: { remove: ['server'] } },
    mirror: { service: 'shadow', percent: 10 },
  }),
  template('plain', '/plain', [{ service: 'api', weight: 1 }], { strip: '/plain' }),
  template('other', '/other', [{ service: 'other', weight: 1 }], { host: 'api.example.com' }),
  withOptions(template('old-home', '/home.php', []), { redirect: { to: 'https://www.example.com/home', status: 301 } }),
];

const kvRoute = (route: string, value: unknown): KvSnapshot => ({ [`${routeKvKeys(route).route}`]: typeof value === 'string' ? value : JSON.stringify(value) });

describe('KV routes/<route>/route: merged field by field', () => {
  const base = buildTable(snap, {}, templates);

  it('no key: the template\'s options', () => {
    const api = routeNamed(base, 'api');
    assert.deepEqual(api.conditions, { methods: ['GET'], headers: [['x-canary', '1']], query: [] });
    assert.equal(api.mirror?.target.percent, 10);
  });

  it('a present field replaces the template\'s, match fields one by one, the others stay', () => {
    const t = buildTable(snap, kvRoute('api', { match: { query: { beta: 'true' } }, mirror: { percent: 50 }, headers: { response: { set: { 'x-kv': '1' } } } }), templates);
    assert.deepEqual(t.problems, []);
    const api = routeNamed(t, 'api');
    assert.deepEqual(api.conditions, { methods: ['GET'], headers: [['x-canary', '1']], query: [['beta', 'true']] });
    assert.deepEqual(api.rewrite, { path: '/v2' });
    assert.deepEqual(api.headers, { request: { set: [['x-a', '1']], remove: [] }, response: { set: [['x-kv', '1']], remove: [] } });
    assert.equal(api.mirror?.target.percent, 50);
    assert.equal(api.mirror?.target.service, 'shadow');
    assert.deepEqual(api.hosts, ['api.example.com']);
    assert.equal(t.lookup('api.example.com', '/api/x?beta=true', { method: 'GET', rawHeaders: ['x-canary', '1'] })?.name, 'api');
    assert.equal(t.lookup('api.example.com', '/api/x', { method: 'GET', rawHeaders: ['x-canary', '1'] })?.name, undefined, 'the new query condition holds');
  });

  it('null removes a field; match.host: null is any host, match.path moves the route', () => {
    const t = buildTable(snap, kvRoute('api', { match: { methods: null, headers: null, host: null, path: '/v1/' }, mirror: null, rewrite: null }), templates);
    assert.deepEqual(t.problems, []);
    const api = routeNamed(t, 'api');
    assert.equal(api.conditions, undefined);
    assert.equal(api.mirror, undefined);
    assert.equal(api.rewrite, undefined);
    assert.deepEqual([api.hosts, api.path], [[], '/v1']);
    assert.equal(t.lookup('anything.example', '/v1/x')?.name, 'api');
    assert.equal(t.lookup('api.example.com', '/api/x', { method: 'GET', rawHeaders: ['x-canary', '1'] })?.name, undefined, 'nothing left at the old match');
  });

  it('a KV rewrite of the path replaces the template\'s strip; a host rewrite keeps it', () => {
    const rewritten = routeNamed(buildTable(snap, kvRoute('plain', { rewrite: { path: '/v3' } }), templates), 'plain');
    assert.deepEqual([rewritten.strip, rewritten.rewrite], [undefined, { path: '/v3' }]);
    const host = routeNamed(buildTable(snap, kvRoute('plain', { rewrite: { host: 'internal' } }), templates), 'plain');
    assert.deepEqual([host.strip, host.rewrite], ['/plain', { host: 'internal' }]);
  });

  it('a KV redirect makes the route answer by itself: its destinations (and strip) are left out until "redirect": null', () => {
    const t = buildTable(snap, kvRoute('plain', { redirect: { to: 'https://new.example.com{path}', keepQuery: true } }), templates);
    assert.deepEqual(t.problems, []);
    const plain = routeNamed(t, 'plain');
    assert.deepEqual(plain.redirect, { to: 'https://new.example.com{path}', status: 302, keepQuery: true });
    assert.deepEqual([plain.destinations.length, plain.strip], [0, undefined]);
    // A redirect route's redirect can be changed field by field; removing it leaves nowhere to go.
    assert.equal(routeNamed(buildTable(snap, kvRoute('old-home', { redirect: { status: 308 } }), templates), 'old-home').redirect?.status, 308);
    const removed = buildTable(snap, kvRoute('old-home', { redirect: null }), templates);
    assert.deepEqual(removed.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/old-home/route']]);
    assert.match(removed.problems[0]!.message, /route "old-home": route has no destinations; key ignored, the route's own options apply/);
    assert.equal(routeNamed(removed, 'old-home').redirect?.status, 301, 'the template\'s redirect stays');
  });

  const invalid: [string, unknown, RegExp][] = [
    ['not JSON', '{"rewrite": ', /value is not valid JSON; key ignored/],
    ['not an object', '[1]', /expected an object/],
    ['an unknown field', { retries: 1 }, /retries: unknown field/],
    ['a reserved header', { headers: { request: { set: { 'x-forwarded-for': '1.1.1.1' } } } }, /headers\.request\.set\.x-forwarded-for: header "x-forwarded-for" cannot be edited/],
    ['a bad regex', { rewrite: { regex: '(a)\\1', to: '/x' } }, /rewrite\.regex: not a valid RE2 pattern/],
    ['a required field missing (no sticky in the template)', { sticky: { ttlMs: '1h' } }, /route "api": sticky\.cookie: required; key ignored/],
    ['a redirect with the template\'s rewrite', { redirect: { to: '/x' } }, /route "api": rewrite: a redirect route sends nothing upstream/],
    ['a bad host', { match: { host: 'a b' } }, /route "api": host "a b" is not a valid host name; key ignored/],
  ];
  for (const [title, value, message] of invalid) {
    it(`invalid (${title}): ignored whole with a kv problem naming the key; the template's options apply`, () => {
      const raw = typeof value === 'string' ? value : JSON.stringify({ ...value as object, mirror: { percent: 99 } });
      const t = buildTable(snap, kvRoute('api', raw), templates);
      assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/api/route']]);
      assert.match(t.problems[0]!.message, message);
      assert.deepEqual(routeNamed(t, 'api'), routeNamed(base, 'api'), 'nothing of the value applied (its valid mirror part included)');
    });
  }

  it('an override that makes the route tie with another is refused, naming both routes; the template\'s route stays', () => {
    // "other" is api.example.com/other without conditions; api moved there without its conditions ties.
    const t = buildTable(snap, kvRoute('api', { match: { path: '/other', methods: null, headers: null } }), templates);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/api/route']]);
    assert.match(t.problems[0]!.message, /route "api": matches api\.example\.com\/other like route "other" \(templates\/test\.yaml\); key ignored/);
    assert.equal(routeNamed(t, 'api').path, '/api');
    // With its conditions it does not tie (more conditions: precedence decides).
    const fine = buildTable(snap, kvRoute('api', { match: { path: '/other' } }), templates);
    assert.deepEqual(fine.problems, []);
    assert.equal(fine.lookup('api.example.com', '/other', { method: 'GET', rawHeaders: ['x-canary', '1'] })?.name, 'api');
    assert.equal(fine.lookup('api.example.com', '/other', { method: 'GET', rawHeaders: [] })?.name, 'other');
  });

  it('the Consul 1.21.5+ key form and the raw form are both read; both present: the encoded one applies', () => {
    const colon: RouteTemplate[] = [template('a:b', '/ab', [{ service: 'api', weight: 1 }])];
    const raw = buildTable(snap, { 'routes/a:b/route': '{"rewrite": {"path": "/raw"}}' }, colon);
    assert.deepEqual(routeNamed(raw, 'a:b').rewrite, { path: '/raw' });
    const both = buildTable(snap, { 'routes/a:b/route': '{"rewrite": {"path": "/raw"}}', 'routes/a,3ab/route': '{"rewrite": {"path": "/enc"}}' }, colon);
    assert.deepEqual(routeNamed(both, 'a:b').rewrite, { path: '/enc' });
    assert.deepEqual(both.problems.map((p) => p.source), ['routes/a:b/route']);
  });

  it('a tag route takes an override too', () => {
    const t = buildTable(snap, kvRoute('tag:api:/tagged', { match: { host: 'tags.example.com' }, headers: { response: { set: { 'x-tag': '1' } } } }), []);
    assert.deepEqual(t.problems, []);
    const tagged = routeNamed(t, 'tag:api:/tagged');
    assert.deepEqual([tagged.origin, tagged.hosts, tagged.headers?.response?.set], ['tag', ['tags.example.com'], [['x-tag', '1']]]);
    assert.equal(t.lookup('tags.example.com', '/tagged')?.name, 'tag:api:/tagged');
  });

  it('an override for a route that does not exist is silent', () => {
    assert.deepEqual(buildTable(snap, kvRoute('gone', { rewrite: { path: '/' } }), templates).problems, []);
  });
});

describe('KV route overrides: mirror services', () => {
  it('a mirror set in KV is in table.services (so discovery watches it) and gets its pool', () => {
    const t = buildTable(snap, kvRoute('plain', { mirror: { service: 'other' } }), templates);
    assert.deepEqual(t.services, ['api', 'other', 'shadow']);
    assert.deepEqual(buildTable(snap, kvRoute('other', { mirror: null }), [templates[1]!, templates[2]!]).services, ['api', 'other']);
    assert.deepEqual(routeNamed(t, 'plain').mirror?.destination.endpoints.map((e) => e.id), ['other/other-1']);
    const onlyKv = buildTable(snap, kvRoute('plain', { mirror: { service: 'shadow' } }), [templates[1]!]);
    assert.deepEqual(onlyKv.services, ['api', 'shadow']);
  });

  it('a mirror service unknown to discovery is a problem, like a destination\'s', () => {
    const t = buildTable(snap, kvRoute('plain', { mirror: { service: 'nowhere' } }), templates);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.message]), [['service', 'route "plain": mirror service "nowhere" is unknown to discovery; no copies are sent']]);
    assert.equal(routeNamed(t, 'plain').mirror?.destination.endpoints.length, 0);
  });
});

describe('KV route overrides: incremental builder', () => {
  const names = (t: RoutingTable): Map<string, unknown> => new Map(t.routes.map((r) => [r.name, r]));

  it('an unchanged KV snapshot merges nothing and reuses every route; a changed override rebuilds its route only', () => {
    const builder = new TableBuilder();
    const kv = { ...kvRoute('api', { mirror: { percent: 50 } }), ...kvRoute('plain', { rewrite: { host: 'internal' } }) };
    const first = builder.build(snap, kv, templates);
    assert.equal(builder.stats.overridesMerged, 2);
    const again = builder.build(snap, { ...kv }, templates);
    assert.deepEqual([builder.stats.overridesMerged, builder.stats.routesBuilt, builder.stats.kvParsed], [0, 0, false]);
    assert.equal(again.routes[0], first.routes[0]);

    // Another key changes (weights): the layers are parsed again but equal, so no merge is redone.
    const weights = builder.build(snap, { ...kv, 'routes/other/weights': '{"other": 2}' }, templates);
    assert.deepEqual([builder.stats.kvParsed, builder.stats.overridesMerged, builder.stats.routesBuilt], [true, 0, 1]);
    assert.equal(names(weights).get('api'), names(first).get('api'));

    const changed = builder.build(snap, { ...kv, ...kvRoute('api', { mirror: { percent: 60 } }) }, templates);
    assert.deepEqual([builder.stats.overridesMerged, builder.stats.routesBuilt], [1, 2], 'api merged and rebuilt; other rebuilt (its weights key went)');
    assert.notEqual(names(changed).get('api'), names(first).get('api'));
    assert.equal(names(changed).get('plain'), names(first).get('plain'), 'the other override\'s route is the same object');
    assert.equal(routeNamed(changed, 'api').mirror?.target.percent, 60);

    // Removing the key brings the template's options back.
    const removed = builder.build(snap, kvRoute('plain', { rewrite: { host: 'internal' } }), templates);
    assert.equal(routeNamed(removed, 'api').mirror?.target.percent, 10);
  });

  it('the builder\'s table equals buildTable\'s for the same inputs across override changes', () => {
    const builder = new TableBuilder();
    const steps: KvSnapshot[] = [
      {},
      kvRoute('api', { match: { path: '/other', methods: null, headers: null } }),
      kvRoute('api', { match: { path: '/x' } }),
      { ...kvRoute('api', { match: { path: '/x' } }), ...kvRoute('plain', { mirror: { service: 'nowhere' } }) },
      {},
    ];
    for (const kv of steps) {
      const incremental = builder.build(snap, kv, templates);
      const fresh = buildTable(snap, kv, templates);
      assert.deepEqual(incremental.routes, fresh.routes, JSON.stringify(kv));
      assert.deepEqual(incremental.problems, fresh.problems);
      assert.deepEqual(incremental.services, fresh.services);
    }
  });
});
