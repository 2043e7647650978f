import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable, neededServices } from '../../src/model/build-table.js';
import { routeKvKeys } from '../../src/model/kv-overrides.js';
import { parseUrlprefixTag } from '../../src/model/tag-routes.js';
import { kvKeyProblem } from '../support/consul/routes.js';
import { discovery, endpointWeights, instance, routeNamed, template } from './fixtures.js';

describe('parseUrlprefixTag: supported forms', () => {
  const cases: [string, { host: string | undefined; path: string; strip: string | undefined; ignored: string[] }][] = [
    ['urlprefix-/', { host: undefined, path: '/', strip: undefined, ignored: [] }],
    ['urlprefix-/api', { host: undefined, path: '/api', strip: undefined, ignored: [] }],
    ['urlprefix-/api/', { host: undefined, path: '/api', strip: undefined, ignored: [] }],
    ['urlprefix-/api/v1', { host: undefined, path: '/api/v1', strip: undefined, ignored: [] }],
    ['urlprefix-example.com/', { host: 'example.com', path: '/', strip: undefined, ignored: [] }],
    ['urlprefix-Example.COM/api', { host: 'example.com', path: '/api', strip: undefined, ignored: [] }],
    ['urlprefix-[::1]/v6', { host: '[::1]', path: '/v6', strip: undefined, ignored: [] }],
    ['urlprefix-/api strip=/api', { host: undefined, path: '/api', strip: '/api', ignored: [] }],
    ['urlprefix-a.com/api/v1  strip=/api/', { host: 'a.com', path: '/api/v1', strip: '/api', ignored: [] }],
    ['urlprefix-/api proto=https', { host: undefined, path: '/api', strip: undefined, ignored: ['proto=https'] }],
    ['urlprefix-/api strip=/a opts x=1', { host: undefined, path: '/api', strip: '/a', ignored: ['opts', 'x=1'] }],
    ['urlprefix-/api strip=/a strip=/api', { host: undefined, path: '/api', strip: '/api', ignored: [] }],
    ['urlprefix-*.Example.com/api', { host: '*.example.com', path: '/api', strip: undefined, ignored: [] }],
  ];
  for (const [tag, expected] of cases) {
    it(tag, () => assert.deepEqual(parseUrlprefixTag(tag), expected));
  }
});

describe('parseUrlprefixTag: rejected forms', () => {
  const cases: [string, RegExp][] = [
    ['urlprefix-example.com', /has no path/],
    ['urlprefix-:3000', /has no path/],
    ['urlprefix-', /has no path/],
    ['urlprefix-a.com:8080/api', /must not carry a port/],
    ['urlprefix-a.*.com/api', /wildcard/],
    ['urlprefix-/a//b', /empty segment/],
    ['urlprefix-/a/../b', /"\.\." segment/],
    ['urlprefix-/api strip=api', /must start with "\/"/],
    ['urlprefix-/api strip=/a?b', /strip: .*"\?"/],
    ['other-tag', /not a urlprefix- tag/],
  ];
  for (const [tag, reason] of cases) {
    it(tag, () => {
      const parsed = parseUrlprefixTag(tag);
      assert.ok('error' in parsed, 'rejected');
      assert.match(parsed.error, reason);
    });
  }
});

describe('tag routes in the table', () => {
  const snap = discovery([
    instance('users', 'users-1', { port: 9001, tags: ['urlprefix-/users strip=/users', 'v1'] }),
    instance('users', 'users-2', { port: 9002, tags: ['v1'] }),
    instance('web', 'web-1', { port: 9101, tags: ['urlprefix-WWW.example.com/', 'public'] }),
    instance('bad', 'bad-1', { tags: ['urlprefix-nopath', 'urlprefix-/ok proto=https', 'plain'] }),
  ]);
  const table = buildTable(snap, {}, []);

  it('creates one route per valid tag, named tag:<service>:<host><path>', () => {
    assert.deepEqual(table.routes.map((r) => r.name), ['tag:bad:/ok', 'tag:users:/users', 'tag:web:www.example.com/']);
    for (const r of table.routes) assert.equal(r.origin, 'tag');
  });

  it('every tag route has weights and policy keys Consul 1.21.5+ accepts, and they apply', () => {
    for (const r of table.routes) {
      const keys = routeKvKeys(r.name);
      assert.equal(kvKeyProblem(`switchyard/${keys.weights}`), undefined, keys.weights);
      assert.equal(kvKeyProblem(`switchyard/${keys.policy}`), undefined, keys.policy);
    }
    assert.equal(routeKvKeys('tag:users:/users').weights, 'routes/tag,3ausers,3a/users/weights');
    const weighted = buildTable(snap, { 'routes/tag,3ausers,3a/users/weights': '{"users:urlprefix-/users strip=/users": 0}' }, []);
    assert.equal(routeNamed(weighted, 'tag:users:/users').destinations[0]?.weight, 0);
  });

  it('routes to the instances carrying that exact tag, with the strip option', () => {
    const route = routeNamed(table, 'tag:users:/users');
    assert.equal(route.source, 'urlprefix-/users strip=/users');
    assert.equal(route.strip, '/users');
    assert.deepEqual(route.hosts, []);
    assert.equal(route.path, '/users');
    assert.deepEqual(route.destinations.map((d) => [d.service, d.tag, d.configuredWeight, d.weight]), [['users', 'urlprefix-/users strip=/users', 1, 1]]);
    assert.deepEqual(endpointWeights(route, 'users:urlprefix-/users strip=/users'), { 'users-1': 1 });
    assert.equal(table.lookup('any.host', '/users/1')?.name, 'tag:users:/users');
  });

  it('host tags match case-insensitively and beat host-less tags', () => {
    assert.equal(table.lookup('www.EXAMPLE.com:8080', '/ok')?.name, 'tag:web:www.example.com/');
    assert.equal(table.lookup('other', '/ok')?.name, 'tag:bad:/ok');
    assert.equal(table.lookup('other', '/'), undefined);
  });

  it('reports bad tags and unsupported options as problems of kind tag, ignores other tags', () => {
    assert.deepEqual(table.problems.map((p) => [p.kind, p.source]), [
      ['tag', 'urlprefix-/ok proto=https'],
      ['tag', 'urlprefix-nopath'],
    ]);
    assert.match(table.problems[0]?.message ?? '', /service "bad": unsupported option "proto=https" ignored/);
    assert.match(table.problems[1]?.message ?? '', /service "bad": .*has no path.*tag ignored/);
  });

  it('needs exactly the services of the tag routes', () => {
    assert.deepEqual(table.services, ['bad', 'users', 'web']);
    assert.deepEqual(neededServices(snap.catalog, []), table.services);
  });
});

describe('tag route conflicts are problems, never fatal', () => {
  const snap = discovery([
    instance('b-svc', 'b-1', { tags: ['urlprefix-/shared'] }),
    instance('a-svc', 'a-1', { tags: ['urlprefix-/shared/', 'urlprefix-/api'] }),
    instance('c-svc', 'c-1', { tags: ['urlprefix-/taken', 'urlprefix-/x', 'urlprefix-/x strip=/x'] }),
  ]);
  const table = buildTable(snap, {}, [template('taken', '/taken', [{ service: 'other', weight: 1 }])]);

  it('a template route wins over a tag; the first service by name wins among tags', () => {
    assert.equal(table.lookup(undefined, '/shared')?.name, 'tag:a-svc:/shared');
    assert.equal(table.lookup(undefined, '/taken')?.name, 'taken');
    assert.equal(table.lookup(undefined, '/x')?.name, 'tag:c-svc:/x');
    assert.deepEqual(table.routes.map((r) => r.name), ['taken', 'tag:a-svc:/api', 'tag:a-svc:/shared', 'tag:c-svc:/x']);
  });

  it('reports each skipped tag', () => {
    const tagProblems = table.problems.filter((p) => p.kind === 'tag');
    assert.deepEqual(tagProblems.map((p) => p.source), ['urlprefix-/shared', 'urlprefix-/taken', 'urlprefix-/x strip=/x']);
    assert.match(tagProblems[0]?.message ?? '', /already routed by "tag:a-svc:\/shared"/);
    assert.match(tagProblems[1]?.message ?? '', /already routed by "taken" \(templates\/test\.yaml\)/);
  });

  it('skipped tags do not count as needed services', () => {
    assert.deepEqual(table.services, ['a-svc', 'c-svc', 'other']);
    assert.deepEqual(neededServices(snap.catalog, [template('taken', '/taken', [{ service: 'other', weight: 1 }])]), table.services);
  });
});

describe('Fabio redirect= tag option (fabio route/target.go BuildRedirectURL)', () => {
  // [tag, to, status, keepQuery]: $path → {path} (a / just before it dropped), $host → {host},
  // the query kept with $path unless the URL has its own, dropped without $path.
  const cases: [string, string, number, boolean][] = [
    ['urlprefix-/foo redirect=301,https://www.example.com$path', 'https://www.example.com{path}', 301, true],
    ['urlprefix-/foo redirect=302,https://www.example.com/$path', 'https://www.example.com{path}', 302, true],
    ['urlprefix-/foo redirect=303,https://www.example.com/bbb/$path', 'https://www.example.com/bbb{path}', 303, true],
    ['urlprefix-/ redirect=308,https://$host$path', 'https://{host}{path}', 308, true],
    ['urlprefix-/foo redirect=307,https://www.google.com/', 'https://www.google.com/', 307, false],
    ['urlprefix-/foo redirect=301,https://x.example/a?src=old$path', 'https://x.example/a?src=old{path}', 301, false],
    ['urlprefix-/foo redirect=301,/bar$path', '/bar{path}', 301, true],
    ['urlprefix-/foo redirect=301,https://x.example/a,b', 'https://x.example/a,b', 301, false],
  ];
  for (const [tag, to, status, keepQuery] of cases) {
    it(tag, () => {
      const parsed = parseUrlprefixTag(tag);
      assert.ok(!('error' in parsed), JSON.stringify(parsed));
      assert.deepEqual(parsed.redirect, { to, status, keepQuery });
    });
  }

  const refused: [string, RegExp][] = [
    ['urlprefix-/foo redirect=300,https://x.example/', /redirect=300,https:\/\/x\.example\/: redirect\.status: expected one of 301, 302, 303, 307, 308/],
    ['urlprefix-/foo redirect=399,https://x.example/', /redirect\.status/],
    ['urlprefix-/foo redirect=abc,https://x.example/', /status code "abc" is not a number/],
    ['urlprefix-/foo redirect=301', /expected redirect=<code>,<url>/],
    ['urlprefix-/foo redirect=301,ftp://x.example/', /redirect\.to: expected an absolute http/],
    ['urlprefix-/foo redirect=301,x.example$path', /redirect\.to: expected an absolute http/],
    ['urlprefix-/foo redirect=301,https://x.example$path strip=/foo', /strip= does not apply to a redirect=/],
  ];
  for (const [tag, reason] of refused) {
    it(`refuses ${tag}`, () => {
      const parsed = parseUrlprefixTag(tag);
      assert.ok('error' in parsed, 'refused');
      assert.match(parsed.error, reason);
    });
  }

  it('a redirect tag is a route that answers by itself: no destination, not a needed service; a bad one is a tag problem', () => {
    const snap = discovery([
      instance('legacy', 'legacy-1', { tags: ['urlprefix-old.example.com/ redirect=301,https://new.example.com$path', 'urlprefix-/bad redirect=300,https://x.example/'] }),
    ]);
    const table = buildTable(snap, {}, []);
    const route = routeNamed(table, 'tag:legacy:old.example.com/');
    assert.deepEqual([route.origin, route.destinations.length, route.redirect], ['tag', 0, { to: 'https://new.example.com{path}', status: 301, keepQuery: true }]);
    assert.equal(table.lookup('old.example.com', '/any/path')?.name, 'tag:legacy:old.example.com/');
    assert.deepEqual(table.services, []);
    assert.deepEqual(table.problems.map((p) => [p.kind, p.source]), [['tag', 'urlprefix-/bad redirect=300,https://x.example/']]);
    assert.match(table.problems[0]!.message, /service "legacy": redirect=300,.*; tag ignored/);
  });
});
