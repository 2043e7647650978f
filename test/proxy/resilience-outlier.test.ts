/**
 * Outlier ejection: N consecutive failures take an endpoint out of rotation for base × ejections
 * (capped), at most a share of a destination at once; it comes back after the time; a success
 * resets the count; the state survives table swaps.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { refusedPort, startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, type RouteSpec, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

describe('proxy: outlier ejection', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let c: TestUpstream;
  let p: TestProxy | undefined;

  before(async () => {
    [a, b, c] = await Promise.all([startUpstream({ name: 'a' }), startUpstream({ name: 'b' }), startUpstream({ name: 'c' })]);
  });

  afterEach(async () => {
    await p?.close();
    p = undefined;
  });

  after(async () => {
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  function route(policy: Record<string, unknown>, ups: TestUpstream[] = [a, b, c]): RouteSpec {
    return { name: 'pool', to: [{ service: 'svc', endpoints: ups.map((u) => ({ id: u.name, port: u.port })) }], policy };
  }

  const ejected = (proxy: TestProxy): string[] => proxy.proxy.runtimes.ejectedEndpoints().map((e) => e.endpoint).sort();
  const get = async (proxy: TestProxy, headers: Record<string, string> = {}): Promise<string> => {
    const reply = await send(proxy.port, { path: '/x', headers });
    return reply.status === 200 ? reply.json<EchoReply>().upstream : String(reply.status);
  };

  /**
   * The route's RouteState clock, fixed at `at.value` so the multiplier's decay (one step per base
   * ejection time back in service) depends on what the test sets, not on how fast a loaded machine
   * runs the requests in between. The ejection timers themselves stay real.
   */
  function fixClock(proxy: TestProxy, routeName: string): { value: number } {
    const state = proxy.proxy.runtimes.current?.byName.get(routeName)?.state;
    assert.ok(state !== undefined, `route ${routeName} has a state`);
    const at = { value: 1_000_000 };
    state.now = () => at.value;
    return at;
  }

  it('ejects after N consecutive failures, sends nothing there while ejected, takes it back after the time, ejects for longer the next time', async () => {
    // base 2 s: the six requests that must all avoid the ejected endpoint fit in it on a loaded machine.
    p = await startProxy(makeTable([route({ retries: { count: 0 }, outlier: { consecutiveFailures: 3, baseEjectionMs: 2_000, maxEjectionMs: 10_000 } })]));
    fixClock(p, 'pool');
    const fail = { 'x-test-only': 'a', 'x-test-status': '503' };
    // Round-robin a, b, c: a fails every third request; the third failure ejects it.
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push(await get(p, fail));
    assert.deepEqual(seen.filter((s) => s === '503').length, 3);
    assert.deepEqual(ejected(p), ['svc/a']);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejections_total', { route: 'pool' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejected_endpoints', { route: 'pool' }), 1);
    const first = p.proxy.runtimes.ejectedEndpoints()[0]!;
    assert.equal(Date.parse(first.until) - Date.parse(first.ejectedAt), 2_000);
    assert.equal(first.ejections, 1);

    const aBefore = a.requests;
    for (let i = 0; i < 6; i++) assert.notEqual(await get(p), 'a');
    assert.equal(a.requests, aBefore, 'an ejected endpoint takes no request');

    // After 2 s it is back: traffic reaches it again.
    await waitFor('a to take traffic again', async () => (await get(p!)) === 'a', 10_000);
    assert.deepEqual(ejected(p), []);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejected_endpoints', { route: 'pool' }), 0);

    // Failing again with no time back in service (the fixed clock): ejected again, for base × 2.
    for (let i = 0; i < 9 && ejected(p).length === 0; i++) await get(p, fail);
    assert.deepEqual(ejected(p), ['svc/a']);
    const second = p.proxy.runtimes.ejectedEndpoints()[0]!;
    assert.equal(second.ejections, 2);
    assert.equal(Date.parse(second.until) - Date.parse(second.ejectedAt), 4_000, 'the ejection time grows with each ejection');
    assert.equal(await metricValue(p.metrics, 'switchyard_ejections_total', { route: 'pool' }), 2);
  });

  it('the multiplier drops by one per base ejection time spent back in service', async () => {
    p = await startProxy(makeTable([route({ retries: { count: 0 }, outlier: { consecutiveFailures: 1, baseEjectionMs: 300, maxEjectionMs: 10_000 } }, [a, b])]));
    const clock = fixClock(p, 'pool');
    const fail = { 'x-test-only': 'a', 'x-test-status': '503' };
    const ejectA = async (): Promise<number> => {
      for (let i = 0; i < 4 && ejected(p!).length === 0; i++) await get(p!, fail);
      assert.deepEqual(ejected(p!), ['svc/a']);
      return p!.proxy.runtimes.ejectedEndpoints()[0]!.ejections;
    };
    const backInService = () => waitFor('a to take traffic again', async () => (await get(p!)) === 'a', 10_000);
    assert.equal(await ejectA(), 1);
    await backInService();
    assert.equal(await ejectA(), 2, 'no time back in service: no decay');
    await backInService();
    clock.value += 299;
    assert.equal(await ejectA(), 3, 'less than one base time back: no decay');
    await backInService();
    clock.value += 2 * 300;
    assert.equal(await ejectA(), 2, 'two base times back in service: 3 - 2 + 1');
    const last = p.proxy.runtimes.ejectedEndpoints()[0]!;
    assert.equal(Date.parse(last.until) - Date.parse(last.ejectedAt), 600);
  });

  it('a success resets the consecutive count', async () => {
    p = await startProxy(makeTable([route({ retries: { count: 0 }, outlier: { consecutiveFailures: 3 } }, [a])]));
    for (let round = 0; round < 3; round++) {
      assert.equal(await get(p, { 'x-test-status': '500' }), '500');
      assert.equal(await get(p, { 'x-test-status': '500' }), '500');
      assert.equal(await get(p), 'a');
    }
    assert.deepEqual(ejected(p), []);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejections_total', { route: 'pool' }), 0);
  });

  it('at most maxEjectionPercent of a destination is ejected at once (50% of 3 = 1), however many fail', async () => {
    p = await startProxy(makeTable([route({ retries: { count: 0 }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionPercent: 50 } })]));
    for (let i = 0; i < 30; i++) await get(p, { 'x-test-status': '503' });
    assert.equal(ejected(p).length, 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejected_endpoints', { route: 'pool' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejections_total', { route: 'pool' }), 1);
  });

  it('with 100% every endpoint may go; then the route answers 503 SY_NO_ENDPOINT; a single endpoint stays at 50%', async () => {
    p = await startProxy(makeTable([
      route({ retries: { count: 0 }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionPercent: 100 } }),
      { ...route({ retries: { count: 0 }, outlier: { consecutiveFailures: 2 } }, [a]), name: 'single', path: '/single' },
    ]));
    for (let i = 0; i < 6; i++) await get(p, { 'x-test-status': '503' });
    assert.deepEqual(ejected(p), ['svc/a', 'svc/b', 'svc/c']);
    const reply = await send(p.port, { path: '/x' });
    assert.equal(reply.status, 503);
    assert.equal(reply.json<{ error: string }>().error, 'SY_NO_ENDPOINT');
    for (let i = 0; i < 5; i++) assert.equal((await send(p.port, { path: '/single', headers: { 'x-test-status': '503' } })).status, 503);
    assert.equal((await send(p.port, { path: '/single' })).status, 200, 'the last endpoint of a pool is not ejected below 100%');
  });

  it('connect failures count; with retries the clients never notice the dead endpoint', async () => {
    const deadPort = await refusedPort();
    p = await startProxy(makeTable([{
      name: 'pool',
      to: [{ service: 'svc', endpoints: [{ id: 'dead', port: deadPort }, { id: 'a', port: a.port }, { id: 'b', port: b.port }] }],
      policy: { outlier: { consecutiveFailures: 3, baseEjectionMs: 60_000 } },
    }]));
    for (let i = 0; i < 30; i++) assert.notEqual(await get(p), '502', `request ${i}`);
    assert.deepEqual(ejected(p), ['svc/dead']);
    assert.equal(await metricValue(p.metrics, 'switchyard_retries_total', { route: 'pool', reason: 'connect-failure' }), 3);
  });

  it('ejection state survives a table swap (keyed by endpoint id), and ends when the endpoint leaves the table', async () => {
    const policy: Record<string, unknown> = { retries: { count: 0 }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 } };
    p = await startProxy(makeTable([route(policy)]));
    for (let i = 0; i < 6 && ejected(p).length === 0; i++) await get(p, { 'x-test-only': 'b', 'x-test-status': '503' });
    assert.deepEqual(ejected(p), ['svc/b']);
    p.store.swap(makeTable([route(policy)]));
    assert.deepEqual(ejected(p), ['svc/b'], 'still ejected after an equivalent swap');
    const bBefore = b.requests;
    for (let i = 0; i < 6; i++) await get(p);
    assert.equal(b.requests, bBefore);
    p.store.swap(makeTable([route(policy, [a, c])]));
    assert.deepEqual(ejected(p), []);
    assert.equal(await metricValue(p.metrics, 'switchyard_ejected_endpoints', { route: 'pool' }), 0);
    p.store.swap(makeTable([route(policy)]));
    await waitFor('b, back in the table, to take traffic at once', async () => (await get(p!)) === 'b');
  });
});
