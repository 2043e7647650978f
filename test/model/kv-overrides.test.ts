import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { kvKeyName, nameFromKvKey, parseKvOverrides, parseWeights, routeKvKeys, serviceKvWeightsKey } from '../../src/model/kv-overrides.js';
import { routeHead } from '../../src/model/views.js';
import { kvKeyProblem } from '../support/consul/routes.js';
import { discovery, endpointWeights, instance, routeNamed, template } from './fixtures.js';

const asObject = (m: ReadonlyMap<string, ReadonlyMap<string, number>>): Record<string, Record<string, number>> =>
  Object.fromEntries([...m].map(([k, v]) => [k, Object.fromEntries(v)]));

describe('parseWeights', () => {
  const good: [string, Record<string, number>][] = [
    ['{}', {}],
    ['{"users:v1": 90, "users:v2": 10}', { 'users:v1': 90, 'users:v2': 10 }],
    ['{"a": 0, "b": 0.5}', { a: 0, b: 0.5 }],
    [' {"a": 1} ', { a: 1 }],
  ];
  for (const [raw, expected] of good) it(`accepts ${raw}`, () => {
    const parsed = parseWeights(raw);
    assert.ok(typeof parsed !== 'string', String(parsed));
    assert.deepEqual(Object.fromEntries(parsed), expected);
  });
  const bad: [string, RegExp][] = [
    ['', /not valid JSON/],
    ['{"a": 1', /not valid JSON/],
    ["{'a': 1}", /not valid JSON/],
    ['[1, 2]', /must be a JSON object/],
    ['null', /must be a JSON object/],
    ['5', /must be a JSON object/],
    ['"x"', /must be a JSON object/],
    ['{"a": -1}', /weight of "a" is -1/],
    ['{"a": 1, "b": "2"}', /weight of "b" is "2"/],
    ['{"a": null}', /weight of "a" is null/],
    ['{"a": 1e400}', /weight of "a" is null/], // Infinity, which JSON.stringify shows as null
    ['{"a": {"b": 1}}', /weight of "a"/],
  ];
  for (const [raw, reason] of bad) it(`rejects ${JSON.stringify(raw)}`, () => assert.match(String(parseWeights(raw)), reason));
});

describe('parseKvOverrides', () => {
  it('reads route and instance weights, ignores unknown keys silently', () => {
    const o = parseKvOverrides({
      'routes/api-users/weights': '{"users:v1": 50, "users:v2": 50}',
      'routes/tag:users:/api/weights': '{"users:urlprefix-/api": 2}',
      'services/users/weights': '{"users-1": 0}',
      'routes/api-users/policy': '{"retries": {"count": 2}}',
      'routes/api-users/weights/extra': 'not json',
      'routes//weights': '{}',
      'other/key': 'not json',
      'services/users': 'not json',
      'weights': 'not json',
    });
    assert.deepEqual(asObject(o.routeWeights), {
      'api-users': { 'users:v1': 50, 'users:v2': 50 },
      'tag:users:/api': { 'users:urlprefix-/api': 2 },
    });
    assert.deepEqual(asObject(o.instanceWeights), { users: { 'users-1': 0 } });
    assert.deepEqual(Object.fromEntries(o.routePolicies), { 'api-users': { retries: { count: 2 } } });
    assert.deepEqual(o.problems, []);
  });

  it('skips a bad value whole, reports it by key, applies the rest', () => {
    const o = parseKvOverrides({
      'services/b/weights': '{"b-1": 1, "b-2": -5}',
      'routes/r/weights': '{"a": 1',
      'services/a/weights': '{"a-1": 3}',
      'routes/s/weights': '[1]',
    });
    assert.deepEqual(o.problems.map((p) => [p.kind, p.source]), [
      ['kv', 'routes/r/weights'],
      ['kv', 'routes/s/weights'],
      ['kv', 'services/b/weights'],
    ]);
    assert.match(o.problems[0]?.message ?? '', /not valid JSON; key ignored/);
    assert.deepEqual(asObject(o.routeWeights), {});
    assert.deepEqual(asObject(o.instanceWeights), { a: { 'a-1': 3 } });
  });
});

describe('KV key form (Consul 1.21.5+ validateKVKey refuses ":" and more)', () => {
  const names = [
    'api-users', 'tag:users:/api', 'tag:users:api.example.com/v1/x', 'tag:web:[::1]/', 'api users', 'naïve:ünïcode/€',
    'a,b', 'a,2cb', '../up', 'x/../y', 'a...//b', 'ends.json', 'q?x=1&y#z', '50%', 'back\\slash', 'tab\tand"quote\'',
  ];
  for (const name of names) {
    it(`${JSON.stringify(name)}: every key Consul accepts, and read back to the name`, () => {
      const { weights, policy } = routeKvKeys(name);
      for (const key of [`switchyard/${weights}`, `switchyard/${policy}`, `switchyard/${serviceKvWeightsKey(name)}`]) {
        assert.equal(kvKeyProblem(key), undefined, key);
      }
      assert.equal(nameFromKvKey(kvKeyName(name)), name);
      const o = parseKvOverrides({ [weights]: '{"x": 2}', [policy]: '{"retries": {"count": 1}}', [serviceKvWeightsKey(name)]: '{"i-1": 0}' });
      assert.deepEqual(o.problems, []);
      assert.deepEqual(asObject(o.routeWeights), { [name]: { x: 2 } });
      assert.deepEqual(asObject(o.instanceWeights), { [name]: { 'i-1': 0 } });
      assert.deepEqual([...o.routePolicies.keys()], [name]);
    });
  }

  it('names of allowed characters are their own key form; a tag route\'s key is readable', () => {
    assert.equal(kvKeyName('api-users'), 'api-users');
    assert.equal(routeKvKeys('tag:users:/api').weights, 'routes/tag,3ausers,3a/api/weights');
    assert.equal(kvKeyProblem('switchyard/routes/tag:users:/api/weights')?.startsWith("key contains invalid character ':'"), true, 'the old form is what Consul refuses');
  });

  it('the old form (written before Consul 1.21.5) is still read; with both forms, the new one applies and the old is reported', () => {
    const old = parseKvOverrides({ 'routes/tag:users:/api/weights': '{"users:urlprefix-/api": 2}' });
    assert.deepEqual(asObject(old.routeWeights), { 'tag:users:/api': { 'users:urlprefix-/api': 2 } });
    for (const kv of [
      { 'routes/tag:users:/api/weights': '{"a": 1}', 'routes/tag,3ausers,3a/api/weights': '{"a": 5}' },
      { 'routes/tag,3ausers,3a/api/weights': '{"a": 5}', 'routes/tag:users:/api/weights': '{"a": 1}' },
    ]) {
      const both = parseKvOverrides(kv);
      assert.deepEqual(asObject(both.routeWeights), { 'tag:users:/api': { a: 5 } });
      assert.deepEqual(both.problems.map((p) => p.source), ['routes/tag:users:/api/weights']);
      assert.match(both.problems[0]?.message ?? '', /same name as routes\/tag,3ausers,3a\/api\/weights, the Consul 1\.21\.5\+ key form, which applies; key ignored/);
    }
  });
});

describe('KV overrides applied to the table', () => {
  const snap = discovery([
    instance('users', 'users-1', { port: 9001, tags: ['v1'] }),
    instance('users', 'users-2', { port: 9002, tags: ['v2'], status: 'warning', passing: 10, warning: 1 }),
    instance('users', 'users-3', { port: 9003, tags: ['v2'], status: 'critical' }),
    instance('users', 'users-4', { port: 9004, tags: ['v3'] }),
  ]);
  const templates = [template('api-users', '/users', [
    { service: 'users', tag: 'v1', weight: 90 },
    { service: 'users', tag: 'v2', weight: 10 },
    { service: 'users', tag: 'v3', weight: 7 },
  ], { host: 'api.example.com', strip: '/users' })];
  const weightsOf = (kv: Record<string, string>): [string, number][] =>
    routeNamed(buildTable(snap, kv, templates), 'api-users').destinations.map((d) => [d.key, d.weight]);

  it('without KV the configured weights apply', () => {
    assert.deepEqual(weightsOf({}), [['users:v1', 90], ['users:v2', 10], ['users:v3', 7]]);
  });

  it('a route override replaces the weights it names; unnamed destinations keep theirs', () => {
    assert.deepEqual(weightsOf({ 'routes/api-users/weights': '{"users:v1": 50, "users:v2": 50}' }), [['users:v1', 50], ['users:v2', 50], ['users:v3', 7]]);
    const route = routeNamed(buildTable(snap, { 'routes/api-users/weights': '{"users:v1": 0}' }, templates), 'api-users');
    assert.deepEqual(route.destinations.map((d) => [d.configuredWeight, d.weight]), [[90, 0], [10, 10], [7, 7]]);
    assert.deepEqual(route.active.map((d) => d.key), ['users:v2', 'users:v3']);
  });

  it('an entry naming a destination the route lacks is reported; the rest applies', () => {
    const t = buildTable(snap, { 'routes/api-users/weights': '{"users:v9": 5, "users:v2": 40}' }, templates);
    assert.deepEqual(routeNamed(t, 'api-users').destinations.map((d) => d.weight), [90, 40, 7]);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/api-users/weights']]);
    assert.match(t.problems[0]?.message ?? '', /no destination "users:v9"/);
  });

  it('a problem with the weights of a route whose name has a colon names the key Consul 1.21.5+ accepts', () => {
    const colon = [template('tag:users:/api', '/api', [{ service: 'users', tag: 'v1', weight: 1 }])];
    const t = buildTable(snap, { 'routes/tag,3ausers,3a/api/weights': '{"users:v9": 5}' }, colon);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/tag,3ausers,3a/api/weights']]);
    assert.equal(kvKeyProblem(t.problems[0]!.source), undefined);
  });

  it('the admin view of a route names its KV keys in the accepted form', () => {
    const colon = [template('tag:users:/api', '/api', [{ service: 'users', tag: 'v1', weight: 1 }])];
    const head = routeHead(routeNamed(buildTable(snap, {}, colon), 'tag:users:/api'));
    assert.deepEqual(head.kvKeys, { weights: 'routes/tag,3ausers,3a/api/weights', policy: 'routes/tag,3ausers,3a/api/policy', route: 'routes/tag,3ausers,3a/api/route' });
  });

  it('an override for a route that does not exist is silent', () => {
    assert.deepEqual(buildTable(snap, { 'routes/gone/weights': '{"x": 1}' }, templates).problems, []);
  });

  it('instance weights override health weights; 0 drains; unhealthy stays out; unknown ids are silent', () => {
    const t = buildTable(snap, { 'services/users/weights': '{"users-1": 0, "users-2": 6, "users-3": 9, "users-99": 4}' }, templates);
    const route = routeNamed(t, 'api-users');
    assert.deepEqual(endpointWeights(route, 'users:v1'), { 'users-1': 0 });
    assert.deepEqual(endpointWeights(route, 'users:v2'), { 'users-2': 6, 'users-3': 0 });
    const states = route.destinations.flatMap((d) => d.endpoints.map((e) => [e.instanceId, e.state]));
    assert.deepEqual(states, [['users-1', 'draining'], ['users-2', 'active'], ['users-3', 'unhealthy'], ['users-4', 'active']]);
    // users:v1 lost its only endpoint, so the destination weighs 0 even though it is configured 90.
    assert.deepEqual(route.destinations.map((d) => d.weight), [0, 10, 7]);
    assert.deepEqual(t.problems, []);
  });

  it('a route override cannot give weight to a destination without endpoints', () => {
    const t = buildTable(snap, { 'services/users/weights': '{"users-4": 0}', 'routes/api-users/weights': '{"users:v3": 100}' }, templates);
    assert.deepEqual(routeNamed(t, 'api-users').destinations.map((d) => d.weight), [90, 10, 0]);
  });

  it('bad JSON in one key is reported and the other keys still apply', () => {
    const t = buildTable(snap, {
      'routes/api-users/weights': '{"users:v1": 1,,}',
      'services/users/weights': '{"users-2": 3}',
    }, templates);
    assert.deepEqual(routeNamed(t, 'api-users').destinations.map((d) => d.weight), [90, 10, 7]);
    assert.deepEqual(endpointWeights(routeNamed(t, 'api-users'), 'users:v2'), { 'users-2': 3, 'users-3': 0 });
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/api-users/weights']]);
  });

  for (const [title, value] of [['negative', '{"users-1": -1}'], ['string', '{"users-1": "0"}'], ['array', '["users-1"]']]) {
    it(`a ${title} instance weight skips the whole key`, () => {
      const t = buildTable(snap, { 'services/users/weights': value ?? '' }, templates);
      assert.deepEqual(endpointWeights(routeNamed(t, 'api-users'), 'users:v1'), { 'users-1': 1 });
      assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['kv', 'services/users/weights']]);
    });
  }
});
