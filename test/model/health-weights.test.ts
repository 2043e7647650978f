import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { effectiveWeight, originFor } from '../../src/model/service-endpoints.js';
import type { EndpointState, HealthStatus, ServiceInstance } from '../../src/model/types.js';
import { discovery, endpointWeights, instance, routeNamed, template } from './fixtures.js';

describe('effectiveWeight: health → weight, as Consul does', () => {
  const cases: [string, HealthStatus, { passing: number; warning: number }, number | undefined, number, EndpointState][] = [
    ['passing uses weights.passing', 'passing', { passing: 10, warning: 1 }, undefined, 10, 'active'],
    ['warning uses weights.warning', 'warning', { passing: 10, warning: 3 }, undefined, 3, 'active'],
    ['warning with warning weight 0 drains', 'warning', { passing: 10, warning: 0 }, undefined, 0, 'draining'],
    ['critical is out', 'critical', { passing: 10, warning: 3 }, undefined, 0, 'unhealthy'],
    ['maintenance is out', 'maintenance', { passing: 10, warning: 3 }, undefined, 0, 'unhealthy'],
    ['KV override replaces a passing weight', 'passing', { passing: 10, warning: 1 }, 4, 4, 'active'],
    ['KV override replaces a warning weight', 'warning', { passing: 10, warning: 1 }, 5, 5, 'active'],
    ['KV 0 drains a passing instance', 'passing', { passing: 10, warning: 1 }, 0, 0, 'draining'],
    ['KV cannot revive a critical instance', 'critical', { passing: 10, warning: 1 }, 7, 0, 'unhealthy'],
    ['KV cannot revive an instance in maintenance', 'maintenance', { passing: 1, warning: 1 }, 7, 0, 'unhealthy'],
  ];
  for (const [title, status, weights, override, weight, state] of cases) {
    it(title, () => {
      const i = { ...instance('s', 's-1', { status }), weights };
      assert.deepEqual(effectiveWeight(i, override), { weight, state });
    });
  }

  it('defaults missing weights to 1 (passing and warning)', () => {
    const bare = { ...instance('s', 's-1'), weights: undefined } as unknown as ServiceInstance;
    assert.deepEqual(effectiveWeight(bare, undefined), { weight: 1, state: 'active' });
    assert.deepEqual(effectiveWeight({ ...bare, status: 'warning' }, undefined), { weight: 1, state: 'active' });
    const partial = { ...instance('s', 's-1', { status: 'warning' }), weights: { passing: 5 } } as unknown as ServiceInstance;
    assert.deepEqual(effectiveWeight(partial, undefined), { weight: 1, state: 'active' });
  });

  it('an unknown status fails closed', () => {
    const odd = { ...instance('s', 's-1'), status: 'unknown' } as unknown as ServiceInstance;
    assert.deepEqual(effectiveWeight(odd, undefined), { weight: 0, state: 'unhealthy' });
  });

  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`an invalid instance weight (${bad}) falls back to 1 and is reported`, () => {
      const messages: string[] = [];
      const i = { ...instance('s', 's-1'), weights: { passing: bad, warning: 1 } };
      assert.deepEqual(effectiveWeight(i, undefined, (m) => messages.push(m)), { weight: 1, state: 'active' });
      assert.equal(messages.length, 1);
      assert.match(messages[0] ?? '', /weights\.passing/);
    });
  }
});

describe('originFor', () => {
  const cases: [string, number, string][] = [
    ['127.0.0.1', 9001, 'http://127.0.0.1:9001'],
    ['users.internal', 80, 'http://users.internal:80'],
    ['::1', 9001, 'http://[::1]:9001'],
    ['2001:db8::5', 8080, 'http://[2001:db8::5]:8080'],
    ['[::1]', 1, 'http://[::1]:1'],
  ];
  for (const [address, port, origin] of cases) it(`${address} ${port} → ${origin}`, () => assert.equal(originFor(address, port), origin));
});

describe('health → weights in the table', () => {
  const snap = discovery([
    instance('users', 'u-warn', { port: 9002, status: 'warning', passing: 10, warning: 2, tags: ['v1'] }),
    instance('users', 'u-pass', { port: 9001, status: 'passing', passing: 10, warning: 2, tags: ['v1'] }),
    instance('users', 'u-crit', { port: 9003, status: 'critical', tags: ['v1'] }),
    instance('users', 'u-maint', { port: 9004, status: 'maintenance', tags: ['v2'] }),
    instance('users', 'u-v6', { port: 9005, address: '::1', tags: ['v2'] }),
    instance('down', 'd-1', { status: 'critical' }),
  ]);
  const table = buildTable(snap, {}, [
    template('all', '/all', [{ service: 'users', weight: 1 }]),
    template('split', '/split', [{ service: 'users', tag: 'v1', weight: 90 }, { service: 'users', tag: 'v2', weight: 10 }, { service: 'down', weight: 5 }]),
  ]);

  it('gives every instance its health weight; endpoints sorted by instance id', () => {
    assert.deepEqual(endpointWeights(routeNamed(table, 'all'), 'users'), { 'u-crit': 0, 'u-maint': 0, 'u-pass': 10, 'u-v6': 1, 'u-warn': 2 });
  });

  it('sets state, id and origin of each endpoint', () => {
    const d = routeNamed(table, 'all').destinations[0];
    assert.ok(d);
    assert.deepEqual(d.endpoints.map((e) => [e.id, e.state, e.status, e.origin]), [
      ['users/u-crit', 'unhealthy', 'critical', 'http://127.0.0.1:9003'],
      ['users/u-maint', 'unhealthy', 'maintenance', 'http://127.0.0.1:9004'],
      ['users/u-pass', 'active', 'passing', 'http://127.0.0.1:9001'],
      ['users/u-v6', 'active', 'passing', 'http://[::1]:9005'],
      ['users/u-warn', 'active', 'warning', 'http://127.0.0.1:9002'],
    ]);
    assert.deepEqual(d.active.map((e) => e.instanceId), ['u-pass', 'u-v6', 'u-warn']);
  });

  it('a tag narrows a destination to the instances carrying it', () => {
    const route = routeNamed(table, 'split');
    assert.deepEqual(endpointWeights(route, 'users:v1'), { 'u-crit': 0, 'u-pass': 10, 'u-warn': 2 });
    assert.deepEqual(endpointWeights(route, 'users:v2'), { 'u-maint': 0, 'u-v6': 1 });
  });

  it('a destination with no endpoint of weight > 0 weighs 0 and is not active', () => {
    const route = routeNamed(table, 'split');
    assert.deepEqual(route.destinations.map((d) => [d.key, d.configuredWeight, d.weight]), [['users:v1', 90, 90], ['users:v2', 10, 10], ['down', 5, 0]]);
    assert.deepEqual(route.active.map((d) => d.key), ['users:v1', 'users:v2']);
  });

  it('shares one endpoint object between destinations of the same service', () => {
    const all = routeNamed(table, 'all').destinations[0]?.endpoints.find((e) => e.instanceId === 'u-pass');
    const v1 = routeNamed(table, 'split').destinations[0]?.endpoints.find((e) => e.instanceId === 'u-pass');
    assert.ok(all);
    assert.equal(all, v1);
  });

  it('a route whose pools are all empty still matches (503, not 404)', () => {
    const t = buildTable(snap, {}, [template('dead', '/dead', [{ service: 'down', weight: 1 }])]);
    const route = t.lookup(undefined, '/dead');
    assert.equal(route?.name, 'dead');
    assert.deepEqual(route?.active, []);
  });
});

describe('discovery gaps and bad instance data', () => {
  it('a service unknown to discovery is a problem; one in the catalog without health data is not', () => {
    const snap = { catalog: { pending: [] }, instances: {} };
    const t = buildTable(snap, {}, [
      template('p', '/p', [{ service: 'pending', weight: 1 }]),
      template('q', '/q', [{ service: 'typo', weight: 1 }]),
    ]);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['service', 'templates/test.yaml']]);
    assert.match(t.problems[0]?.message ?? '', /route "q": service "typo" is unknown/);
    assert.deepEqual(t.routes.map((r) => r.destinations[0]?.endpoints.length), [0, 0]);
  });

  it('a service present with no instances has an empty pool and no problem', () => {
    const t = buildTable({ catalog: {}, instances: { empty: [] } }, {}, [template('e', '/', [{ service: 'empty', weight: 1 }])]);
    assert.deepEqual(t.problems, []);
    assert.equal(t.routes[0]?.destinations[0]?.weight, 0);
  });

  it('leaves out unusable instances and repeated ids, reporting each', () => {
    const snap = discovery([
      instance('s', 's-1', { port: 9001 }),
      instance('s', 's-1', { port: 9009 }),
      instance('s', 's-2', { port: 0 }),
      instance('s', 's-3', { address: '' }),
      { ...instance('s', 's-4'), weights: { passing: -3, warning: 1 } },
    ]);
    const t = buildTable(snap, {}, [template('r', '/', [{ service: 's', weight: 1 }])]);
    assert.deepEqual(endpointWeights(routeNamed(t, 'r'), 's'), { 's-1': 1, 's-4': 1 });
    assert.equal(routeNamed(t, 'r').destinations[0]?.endpoints[0]?.port, 9001);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['service', 's/s-1'], ['endpoint', 's/s-2'], ['endpoint', 's/s-3'], ['service', 's/s-4']]);
  });
});
