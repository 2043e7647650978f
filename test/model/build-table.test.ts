import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable, neededServices } from '../../src/model/build-table.js';
import type { RouteTemplate } from '../../src/model/types.js';
import { discovery, endpointWeights, instance, routeNamed, template } from './fixtures.js';

/** The example of the core issue, section 3 and 4. */
const snap = discovery([
  instance('users', 'users-1', { address: '127.0.0.1', port: 9001, tags: ['v1'], status: 'passing' }),
  instance('users', 'users-2', { address: '127.0.0.1', port: 9002, tags: ['v2'], status: 'warning', passing: 10, warning: 1 }),
  instance('web', 'web-1', { port: 9101, tags: ['public'] }),
  instance('docs', 'docs-1', { port: 9201, tags: ['public'] }),
  instance('db', 'db-1', { port: 5432, tags: [] }),
]);
const templates: RouteTemplate[] = [
  template('api-users', '/users', [{ service: 'users', tag: 'v1', weight: 90 }, { service: 'users', tag: 'v2', weight: 10 }], { host: 'api.example.com', strip: '/users' }),
  template('{{service}}', '/', [{ service: '{{service}}', weight: 1 }], { host: '{{service}}.localhost', each: { tag: 'public' } }),
];
const kv = {
  'routes/api-users/weights': '{"users:v1": 50, "users:v2": 50}',
  'services/users/weights': '{"users-1": 0}',
};

describe('buildTable: the core issue example', () => {
  const table = buildTable(snap, kv, templates);

  it('has the template route and one route per public service, in order', () => {
    assert.deepEqual(table.routes.map((r) => [r.name, r.hosts[0], r.path, r.strip, r.origin]), [
      ['api-users', 'api.example.com', '/users', '/users', 'template'],
      ['docs', 'docs.localhost', '/', undefined, 'template'],
      ['web', 'web.localhost', '/', undefined, 'template'],
    ]);
  });

  it('applies KV: users-1 drained so users:v1 weighs 0; users:v2 takes all', () => {
    const route = routeNamed(table, 'api-users');
    assert.deepEqual(route.destinations.map((d) => [d.key, d.configuredWeight, d.weight]), [['users:v1', 90, 0], ['users:v2', 10, 50]]);
    assert.deepEqual(route.active.map((d) => d.key), ['users:v2']);
    assert.deepEqual(endpointWeights(route, 'users:v1'), { 'users-1': 0 });
    assert.deepEqual(endpointWeights(route, 'users:v2'), { 'users-2': 1 });
    assert.deepEqual(table.problems, []);
  });

  it('routes requests and strips the prefix', () => {
    const route = table.lookup('API.example.com:8080', '/users/42?x=1');
    assert.equal(route?.name, 'api-users');
    assert.equal(route?.strip, '/users');
    assert.equal(table.lookup('web.localhost', '/anything')?.name, 'web');
    assert.equal(table.lookup('db.localhost', '/'), undefined);
  });

  it('lists the needed services, sorted, agreeing with neededServices', () => {
    assert.deepEqual(table.services, ['docs', 'users', 'web']);
    assert.deepEqual(neededServices(snap.catalog, templates), table.services);
  });

  it('is deterministic: catalog and KV key order do not matter', () => {
    const reordered = {
      catalog: Object.fromEntries(Object.entries(snap.catalog).reverse()),
      instances: Object.fromEntries(Object.entries(snap.instances).map(([k, v]) => [k, [...v].reverse()]).reverse()),
    };
    const other = buildTable(reordered, Object.fromEntries(Object.entries(kv).reverse()), templates);
    assert.equal(JSON.stringify(other), JSON.stringify(table));
  });
});

describe('buildTable: frozen output', () => {
  const table = buildTable(snap, { 'routes/x/weights': 'bad' }, templates);
  const route = routeNamed(table, 'api-users');
  const destination = route.destinations[0];
  const endpoint = destination?.endpoints[0];
  assert.ok(destination && endpoint);
  const objects: [string, object][] = [
    ['table', table], ['routes', table.routes], ['route', route], ['route.destinations', route.destinations],
    ['route.active', route.active], ['destination', destination], ['destination.endpoints', destination.endpoints],
    ['destination.active', destination.active], ['endpoint', endpoint], ['endpoint.tags', endpoint.tags],
    ['problems', table.problems], ['problem', table.problems[0] ?? {}], ['services', table.services],
  ];
  for (const [name, value] of objects) it(`${name} is frozen`, () => assert.ok(Object.isFrozen(value)));

  it('writes throw instead of changing what other requests see', () => {
    assert.throws(() => { (route as { name: string }).name = 'x'; }, TypeError);
    assert.throws(() => { (endpoint as { weight: number }).weight = 99; }, TypeError);
    assert.throws(() => { (table.routes as unknown as unknown[]).push(route); }, TypeError);
    assert.throws(() => { (table as { lookup: unknown }).lookup = () => undefined; }, TypeError);
    assert.equal(route.name, 'api-users');
    assert.equal(table.lookup('api.example.com', '/users')?.name, 'api-users');
  });

  it('does not freeze or alter the inputs', () => {
    assert.equal(Object.isFrozen(snap.instances['users']?.[0]?.tags), false);
    assert.equal(Object.isFrozen(templates[0]), false);
    assert.deepEqual(templates[0]?.to, [{ service: 'users', tag: 'v1', weight: 90 }, { service: 'users', tag: 'v2', weight: 10 }]);
  });
});

describe('buildTable: empty inputs', () => {
  it('no templates, no tags: an empty table that 404s', () => {
    const table = buildTable({ catalog: {}, instances: {} }, {}, []);
    assert.deepEqual([table.routes, table.problems, table.services], [[], [], []]);
    assert.equal(table.lookup('a', '/'), undefined);
    assert.deepEqual(neededServices({}, []), []);
  });
});
