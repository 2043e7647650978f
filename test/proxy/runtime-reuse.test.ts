import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TableBuilder } from '../../src/model/table-builder.js';
import type { DiscoverySnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { instance, template } from '../model/fixtures.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { send, startProxy, type TestProxy } from './harness.js';

/**
 * A swap costs what changed (issue 8): a Route object the new table shares with the live one (the
 * model's TableBuilder reuses unchanged routes) keeps its RuntimeRoute whole, balancers and pools
 * included; only the changed route is rebuilt, and what belonged to endpoints that left (their
 * outlier state, their pools) is gone after the swap.
 */
const TEMPLATES: RouteTemplate[] = [
  template('a', '/a', [{ service: 'a', weight: 1 }]),
  template('b', '/b', [{ service: 'b', weight: 1 }]),
];

describe('runtime: unchanged routes keep their runtime across a swap', () => {
  let up1: TestUpstream;
  let up2: TestUpstream;
  let up3: TestUpstream;
  let p: TestProxy;

  before(async () => {
    [up1, up2, up3] = await Promise.all([startUpstream({ name: 'one' }), startUpstream({ name: 'two' }), startUpstream({ name: 'three' })]);
  });

  after(async () => {
    await p?.close();
    await Promise.all([up1.close(), up2.close(), up3.close()]);
  });

  const snapshot = (a: ServiceInstance[], b: ServiceInstance[]): DiscoverySnapshot => ({ catalog: { a: [], b: [] }, instances: { a, b } });

  it('keeps the RuntimeRoute and pools of the route that did not change; drops per-id state of endpoints that left', async () => {
    const builder = new TableBuilder();
    const aInstances = [instance('a', 'a-1', { port: up1.port })];
    const first = builder.build(snapshot(aInstances, [instance('b', 'b-1', { port: up2.port })]), {}, TEMPLATES);
    p = await startProxy(first);
    assert.equal((await send(p.port, { path: '/a' })).json<EchoReply>().upstream, 'one');
    assert.equal((await send(p.port, { path: '/b' })).json<EchoReply>().upstream, 'two');
    const runtime = p.proxy.runtimes.current!;
    const routeA = runtime.byName.get('a')!;
    const routeB = runtime.byName.get('b')!;
    const poolA = routeA.pick()!.pool;
    // b-1 has outlier state (one failure) that must not outlive its endpoint.
    routeB.state.healthOf('b/b-1').consecutive = 1;

    // b is redeployed: b-1 leaves, b-2 (another upstream) arrives; a is untouched (same array).
    const second = builder.build(snapshot(aInstances, [instance('b', 'b-2', { port: up3.port })]), {}, TEMPLATES);
    assert.equal(second.routes[0], first.routes[0], 'the model reused route a');
    p.store.swap(second);
    const next = p.proxy.runtimes.current!;
    assert.notEqual(next, runtime);
    assert.equal(next.byName.get('a'), routeA, 'route a keeps its RuntimeRoute object');
    assert.equal(next.byName.get('a')!.pick()!.pool, poolA, 'and its pool');
    assert.notEqual(next.byName.get('b'), routeB, 'route b is rebuilt');
    assert.equal(next.byName.get('b')!.state, routeB.state, 'its state (by route name) carries over');
    assert.equal(routeB.state.peekHealth('b/b-1'), undefined, 'no outlier state kept for the endpoint that left');
    assert.deepEqual(p.upstreams.origins().sort(), [`http://127.0.0.1:${up1.port}`, `http://127.0.0.1:${up3.port}`].sort(), "b-1's pool is retired");
    await waitFor("b-1's pool to close", () => p.upstreams.size === 2);

    assert.equal((await send(p.port, { path: '/a' })).json<EchoReply>().upstream, 'one');
    assert.equal((await send(p.port, { path: '/b' })).json<EchoReply>().upstream, 'three');
  });

  it('a swap that changes one route touches the pools of that route only', async () => {
    const builder = new TableBuilder();
    const aInstances = [instance('a', 'a-1', { port: up1.port }), instance('a', 'a-2', { port: up2.port })];
    const first = builder.build(snapshot(aInstances, [instance('b', 'b-1', { port: up3.port })]), {}, TEMPLATES);
    const q = await startProxy(first);
    try {
      const pools = q.upstreams.origins().map((o) => q.upstreams.get(o));
      // A health flip on b, ten times: a's pools are the same objects throughout, none is made or retired.
      for (let i = 0; i < 10; i++) {
        const status = i % 2 === 0 ? 'critical' : 'passing';
        q.store.swap(builder.build(snapshot(aInstances, [instance('b', 'b-1', { port: up3.port, status })]), {}, TEMPLATES));
      }
      assert.equal(q.upstreams.get(`http://127.0.0.1:${up1.port}`), pools[0]);
      assert.equal(q.upstreams.get(`http://127.0.0.1:${up2.port}`), pools[1]);
      await waitFor('only the three live pools: the retired ones of b-1 closed', () => q.upstreams.size === 3);
      assert.equal((await send(q.port, { path: '/b' })).json<EchoReply>().upstream, 'three');
    } finally {
      await q.close();
    }
  });
});
