/**
 * Request mirroring under a slow, a dead and a failing mirror, and across table swaps
 * (src/proxy/http/mirror.ts, src/proxy/runtime/mirror-route.ts): the client's requests all
 * complete with their normal status and the main upstream sees every one of them, whatever the
 * mirror does; copies over maxInFlight are shed; every decision is counted by result. Counts only,
 * no wall-clock assertions.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeTable, metricValue, send, type DestinationSpec, type RouteSpec } from './harness.js';
import { mirrorCount, mirrorCounts, mirrorTo, startMirrorServer, startRig, traffic, withRig } from './mirror-support.js';
import { refusedPort, startUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

describe('mirror: a slow mirror (never answers)', () => {
  const rig = withRig((to, port) => [
    // timeoutMs far beyond the test: nothing times out, the bound alone sheds.
    { name: 'slow', path: '/slow', to, mirror: mirrorTo([port], { maxInFlight: 4, timeoutMs: 600_000 }) },
    { name: 'expiring', path: '/expiring', to, mirror: mirrorTo([port], { maxInFlight: 2, timeoutMs: 150 }) },
    { name: 'one-slot', path: '/one-slot', to, mirror: mirrorTo([port], { maxInFlight: 1, maxBodyBytes: 100, timeoutMs: 600_000 }) },
  ], 'hang');

  it('every client request completes with its normal status; copies past maxInFlight are shed', async () => {
    const mainBefore = rig.main.requests;
    const statuses = await traffic(rig, '/slow', 40, 10);
    assert.deepEqual(statuses, Array.from({ length: 40 }, () => 200), 'every client request answered normally');
    assert.equal(rig.main.requests - mainBefore, 40, 'the main upstream saw them all');
    await waitFor('4 copies at the mirror', () => rig.mirror.requests.filter((r) => r.url === '/slow').length === 4);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'slow'), { shed: 36 }, 'the 4 in flight have no result yet');
    // More traffic: still answered, still shed (the 4 slots stay taken while the mirror hangs).
    const more = await traffic(rig, '/slow', 10, 10);
    assert.deepEqual(more, Array.from({ length: 10 }, () => 200));
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'slow'), { shed: 46 });
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/slow').length, 4);
  });

  it('a Content-Length over maxBodyBytes is decided before anything else: body_too_large, no slot taken', async () => {
    assert.deepEqual(await traffic(rig, '/one-slot/hanging', 1), [200]);
    await waitFor('the copy hanging at the mirror', () => rig.mirror.requests.some((r) => r.url === '/one-slot/hanging'));
    const big = await send(rig.proxy.port, { method: 'POST', path: '/one-slot/big', body: Buffer.alloc(2000, 0x61), agent: rig.agent });
    assert.equal(big.status, 200);
    assert.equal(await mirrorCount(rig.proxy.metrics, 'one-slot', 'body_too_large'), 1, 'counted when decided, before the main request went');
    assert.deepEqual(await traffic(rig, '/one-slot/small', 1), [200]);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'one-slot'), { body_too_large: 1, shed: 1 });
  });

  it('copies that time out (timeoutMs) are counted and free their slots for later copies', async () => {
    const statuses = await traffic(rig, '/expiring', 2, 2);
    assert.deepEqual(statuses, [200, 200]);
    await waitFor('2 timeouts', async () => (await mirrorCount(rig.proxy.metrics, 'expiring', 'timeout')) === 2, 10_000);
    // The slots are free again: the next two requests are copied, not shed.
    await traffic(rig, '/expiring', 2, 2);
    await waitFor('4 copies at the mirror', () => rig.mirror.requests.filter((r) => r.url === '/expiring').length === 4);
    await waitFor('4 timeouts', async () => (await mirrorCount(rig.proxy.metrics, 'expiring', 'timeout')) === 4, 10_000);
    assert.equal(await mirrorCount(rig.proxy.metrics, 'expiring', 'shed'), 0);
  });
});

describe('mirror: a dead, a failing and an empty mirror', () => {
  const rig = withRig(async (to, port) => [
    { name: 'dead', path: '/dead', to, mirror: mirrorTo([await refusedPort()]) },
    { name: 'failing', path: '/failing', to, mirror: mirrorTo([port]) },
    { name: 'empty', path: '/empty', to, mirror: mirrorTo([]) },
  ], 'answer', 503);

  it('a mirror whose port is closed: the client is unaffected, each copy counted as error', async () => {
    const mainBefore = rig.main.requests;
    const statuses = await traffic(rig, '/dead', 20, 5);
    assert.deepEqual(statuses, Array.from({ length: 20 }, () => 200));
    assert.equal(rig.main.requests - mainBefore, 20);
    await waitFor('20 errors', async () => (await mirrorCount(rig.proxy.metrics, 'dead', 'error')) === 20);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'dead'), { error: 20 });
    // The mirror's failures are not the route's: no upstream error, no retry, no ejection counted.
    assert.equal(await metricValue(rig.proxy.metrics, 'switchyard_upstream_errors_total', { route: 'dead' }), 0);
    assert.equal(await metricValue(rig.proxy.metrics, 'switchyard_requests_total', { route: 'dead' }), 20);
  });

  it('a mirror answering 5xx: counted as server_error, the client gets the main answer; answers are drained', async () => {
    // One at a time, each after the last copy's answer was counted: the answers are read to their
    // end, so every copy goes on the one keep-alive connection.
    for (let i = 1; i <= 5; i++) {
      assert.equal((await send(rig.proxy.port, { path: '/failing/one', agent: rig.agent })).status, 200);
      await waitFor(`copy ${i} counted`, async () => (await mirrorCount(rig.proxy.metrics, 'failing', 'server_error')) === i);
    }
    assert.equal(rig.mirror.connections, 1, 'the copies reused one connection');
    const statuses = await traffic(rig, '/failing', 10, 5);
    assert.deepEqual(statuses, Array.from({ length: 10 }, () => 200));
    await waitFor('15 server_error', async () => (await mirrorCount(rig.proxy.metrics, 'failing', 'server_error')) === 15);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'failing'), { server_error: 15 });
  });

  it('a mirror service without endpoints: counted as no_endpoint', async () => {
    const statuses = await traffic(rig, '/empty', 5, 5);
    assert.deepEqual(statuses, Array.from({ length: 5 }, () => 200));
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'empty'), { no_endpoint: 5 });
  });
});

describe('mirror: table swaps', () => {
  it('the mirror pool follows the table: new copies go to the new mirror, the old pool is retired, a pool only the mirror uses is kept', async () => {
    let to: DestinationSpec[] = [];
    const rig = await startRig((main) => {
      to = main;
      return [];
    });
    const { proxy } = rig;
    const first = await startMirrorServer();
    const second = await startMirrorServer();
    const app = (mirrorPort: number): RouteSpec => ({ name: 'app', path: '/', to, mirror: mirrorTo([mirrorPort]) });
    try {
      proxy.store.swap(makeTable([app(first.port)]));
      assert.ok(proxy.upstreams.origins().includes(first.origin), 'a pool for the mirror endpoint');
      assert.equal((await send(proxy.port, { path: '/one' })).status, 200);
      await waitFor('copy at the first mirror', () => first.requests.some((r) => r.url === '/one' && r.complete));

      // An unrelated swap (another route added): the mirror's pool, used by no route's
      // destinations, stays, and copies keep going to it.
      proxy.store.swap(makeTable([app(first.port), { name: 'other', path: '/other', to }]));
      assert.ok(proxy.upstreams.origins().includes(first.origin), 'kept across a swap');
      assert.equal((await send(proxy.port, { path: '/two' })).status, 200);
      await waitFor('second copy at the first mirror', () => first.requests.some((r) => r.url === '/two' && r.complete));

      // The mirror moves to another instance.
      proxy.store.swap(makeTable([app(second.port)]));
      assert.ok(!proxy.upstreams.origins().includes(first.origin), 'the old mirror pool is retired');
      assert.ok(proxy.upstreams.origins().includes(second.origin));
      assert.equal((await send(proxy.port, { path: '/three' })).status, 200);
      await waitFor('copy at the second mirror', () => second.requests.some((r) => r.url === '/three' && r.complete));
      assert.equal(first.requests.some((r) => r.url === '/three'), false);
      await waitFor('3 ok', async () => (await mirrorCount(proxy.metrics, 'app', 'ok')) === 3);

      // The mirror is removed: no more copies, its pool goes.
      proxy.store.swap(makeTable([{ name: 'app', path: '/', to }]));
      assert.ok(!proxy.upstreams.origins().includes(second.origin));
      assert.equal((await send(proxy.port, { path: '/four' })).status, 200);
      // A copy would have been dispatched before the main answer came back; a copy of a later
      // request on another mirrored route arrives after it would have.
      proxy.store.swap(makeTable([{ name: 'app', path: '/', to }, { name: 'probe', path: '/probe', to, mirror: mirrorTo([second.port]) }]));
      assert.equal((await send(proxy.port, { path: '/probe' })).status, 200);
      await waitFor('the probe copy', () => second.requests.some((r) => r.url === '/probe'));
      assert.equal(second.requests.some((r) => r.url === '/four'), false);
    } finally {
      await rig.close();
      await first.close();
      await second.close();
    }
  });

  it('copies in flight survive a swap by route name: the bound still holds after the route changes', async () => {
    const other = await startUpstream({ name: 'other' });
    const rig = await startRig((to, port) => [{ name: 'app', path: '/', to, mirror: mirrorTo([port], { maxInFlight: 2, timeoutMs: 600_000 }) }], 'hang');
    const { proxy, mirror } = rig;
    try {
      assert.deepEqual(await traffic(rig, '/x', 2, 2), [200, 200]);
      await waitFor('2 copies hanging at the mirror', () => mirror.requests.length === 2);
      // A changed route of the same name (another main endpoint, an equal mirror): a new Route
      // object and runtime route, whose mirror takes over the in-flight count.
      const to = [{ service: 'api', endpoints: [{ id: 'a2', port: other.port }] }];
      proxy.store.swap(makeTable([{ name: 'app', path: '/', to, mirror: mirrorTo([mirror.port], { maxInFlight: 2, timeoutMs: 600_000 }) }]));
      assert.deepEqual(await traffic(rig, '/y', 3, 3), [200, 200, 200]);
      assert.equal(other.requests, 3);
      assert.deepEqual(await mirrorCounts(proxy.metrics, 'app'), { shed: 3 });
      assert.equal(mirror.requests.length, 2);
    } finally {
      await rig.close();
      await other.close();
    }
  });
});
