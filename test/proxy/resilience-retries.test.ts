/**
 * Retries: conditions from the route policy, each retry on another endpoint, idempotency and
 * body rules (bodies within retries.bufferBytes are replayed), the attempt count and the retry budget. Upstream faults are chosen per upstream
 * with `x-test-only`, so "the other endpoint" answers normally.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { refusedPort, startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

describe('proxy: retries', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let c: TestUpstream;
  let deadPort: number;
  let p: TestProxy;
  // Outlier ejection off, so these tests see retries alone.
  const noEjection = { consecutiveFailures: 0 };

  before(async () => {
    [a, b, c] = await Promise.all([startUpstream({ name: 'a' }), startUpstream({ name: 'b' }), startUpstream({ name: 'c' })]);
    deadPort = await refusedPort();
    const pool = (service: string, ups: TestUpstream[]): { service: string; endpoints: { id: string; port: number }[] } =>
      ({ service, endpoints: ups.map((u) => ({ id: u.name, port: u.port })) });
    p = await startProxy(makeTable([
      { name: 'status', path: '/status', to: [pool('ab', [a, b])], policy: { retries: { count: 1, on: ['502', '503', '504'] }, outlier: noEjection } },
      { name: 'reset', path: '/reset', to: [pool('ab', [a, b])], policy: { retries: { count: 1, on: ['reset'] }, outlier: noEjection } },
      { name: 'small-buffer', path: '/small-buffer', to: [pool('ab', [a, b])], policy: { retries: { count: 1, on: ['503'], bufferBytes: 16 }, outlier: noEjection } },
      { name: 'no-buffer', path: '/no-buffer', to: [pool('ab', [a, b])], policy: { retries: { count: 1, on: ['503'], bufferBytes: '0kb' }, outlier: noEjection } },
      { name: 'defaults', path: '/defaults', to: [pool('ab', [a, b])], policy: { outlier: noEjection } },
      { name: 'three', path: '/three', to: [pool('abc', [a, b, c])], policy: { retries: { count: 2, on: ['503'] }, outlier: noEjection } },
      { name: 'once', path: '/once', to: [pool('abc', [a, b, c])], policy: { retries: { count: 1, on: ['503'] }, outlier: noEjection } },
      {
        name: 'budget',
        path: '/budget',
        to: [{ service: 'half', endpoints: [{ id: 'dead', port: deadPort }, { id: 'a', port: a.port }] }],
        policy: { retries: { count: 1, budgetPercent: 0, minPerSecond: 0.3 }, outlier: noEjection },
      },
    ]));
  });

  after(async () => {
    await p.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  const retries = (route: string, reason?: string): Promise<number> =>
    metricValue(p.metrics, 'switchyard_retries_total', reason === undefined ? { route } : { route, reason });

  it('a 503 from one endpoint is retried on the other: every GET succeeds', async () => {
    const aBefore = a.requests;
    for (let i = 0; i < 6; i++) {
      const reply = await send(p.port, { path: `/status/${i}`, headers: { 'x-test-only': 'a', 'x-test-status': '503' } });
      assert.equal(reply.status, 200, `request ${i}`);
      assert.equal(reply.json<EchoReply>().upstream, 'b');
    }
    assert.ok(a.requests - aBefore >= 3, 'a was tried (and failed) along the way');
    assert.equal(await retries('status', '503'), a.requests - aBefore);
    await waitFor('retried requests logged with attempts=2', () => p.accessLines().filter((l) => l.route === 'status' && l.attempts === 2 && l.endpoint === 'ab/b').length === a.requests - aBefore);
  });

  it('502 and 504 too; a 500 is not among the conditions and is relayed as is', async () => {
    for (const status of ['502', '504']) {
      for (let i = 0; i < 2; i++) {
        assert.equal((await send(p.port, { path: '/status/x', headers: { 'x-test-only': 'a', 'x-test-status': status } })).status, 200);
      }
    }
    assert.ok(await retries('status', '502') >= 1);
    assert.ok(await retries('status', '504') >= 1);
    const statuses = new Set<number>();
    for (let i = 0; i < 2; i++) statuses.add((await send(p.port, { path: '/status/y', headers: { 'x-test-only': 'a', 'x-test-status': '500' } })).status);
    assert.deepEqual([...statuses].sort(), [200, 500]);
  });

  it('a POST is not retried on a 503 (not idempotent)', async () => {
    const before = await retries('status');
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      statuses.push((await send(p.port, { method: 'POST', path: '/status/p', body: 'x', headers: { 'x-test-only': 'a', 'x-test-status': '503' } })).status);
    }
    assert.deepEqual(statuses.sort(), [200, 503]);
    assert.equal(await retries('status'), before);
  });

  it('a reset before the response is retried for a GET, never for a POST whose body was sent', async () => {
    for (let i = 0; i < 2; i++) {
      const reply = await send(p.port, { path: '/reset/g', headers: { 'x-test-only': 'a', 'x-test-action': 'reset-after-body' } });
      assert.equal(reply.status, 200);
      assert.equal(reply.json<EchoReply>().upstream, 'b');
    }
    assert.ok(await retries('reset', 'reset') >= 1);
    const before = await retries('reset');
    const bBefore = b.requests;
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      statuses.push((await send(p.port, { method: 'POST', path: '/reset/p', body: 'side effect', headers: { 'x-test-only': 'a', 'x-test-action': 'reset-after-body' } })).status);
    }
    assert.deepEqual(statuses.sort(), [200, 502], 'the POST that reached a failed; the one that reached b passed');
    assert.equal(b.requests - bBefore, 1, 'b saw only its own POST: the failed one was not sent again');
    assert.equal(await retries('reset'), before);
  });

  it('a PUT whose body fits retries.bufferBytes is replayed after a reset: the other endpoint gets the same bytes', async () => {
    const before = await retries('reset');
    const aBefore = a.requests;
    const body = Buffer.alloc(40 * 1024, 'x');
    for (let i = 0; i < body.length; i += 997) body[i] = 48 + (i % 10); // not one repeated byte
    for (let i = 0; i < 2; i++) {
      const reply = await send(p.port, { method: 'PUT', path: '/reset/put', body, headers: { 'x-test-only': 'a', 'x-test-action': 'reset-after-body' } });
      assert.equal(reply.status, 200, `PUT ${i}`);
      const echo = reply.json<EchoReply>();
      assert.equal(echo.upstream, 'b');
      assert.equal(echo.bodyLength, body.length);
      assert.equal(echo.body, body.toString('utf8'), 'the replayed body is the one the client sent');
    }
    assert.ok(a.requests - aBefore >= 1, 'a was tried along the way');
    assert.equal(await retries('reset') - before, a.requests - aBefore, 'every PUT that reached a was sent again');
  });

  it('a chunked PUT is replayed after a 503 as well; a DELETE with a body too', async () => {
    const before = await retries('status', '503');
    const aBefore = a.requests;
    for (const method of ['PUT', 'DELETE']) {
      for (let i = 0; i < 2; i++) {
        const reply = await send(p.port, { method, path: '/status/c', body: `${method} body ${i}`, headers: { 'transfer-encoding': 'chunked', 'x-test-only': 'a', 'x-test-status': '503' } });
        assert.equal(reply.status, 200, `${method} ${i}`);
        assert.equal(reply.json<EchoReply>().body, `${method} body ${i}`);
      }
    }
    assert.ok(a.requests - aBefore >= 2);
    assert.equal(await retries('status', '503') - before, a.requests - aBefore);
  });

  it('a body larger than retries.bufferBytes (or with bufferBytes 0) is not replayed: the failure is relayed', async () => {
    for (const path of ['/small-buffer/x', '/no-buffer/x']) {
      const statuses: number[] = [];
      for (let i = 0; i < 2; i++) {
        statuses.push((await send(p.port, { method: 'PUT', path, body: 'y'.repeat(100), headers: { 'x-test-only': 'a', 'x-test-status': '503' } })).status);
      }
      assert.deepEqual(statuses.sort(), [200, 503], path);
    }
    assert.equal(await retries('small-buffer'), 0);
    assert.equal(await retries('no-buffer'), 0);
    // Within the buffer on the same route: replayed.
    const aBefore = a.requests;
    assert.equal((await send(p.port, { method: 'PUT', path: '/small-buffer/y', body: 'tiny', headers: { 'x-test-only': 'a', 'x-test-status': '503' } })).status, 200);
    assert.equal((await send(p.port, { method: 'PUT', path: '/small-buffer/y', body: 'tiny', headers: { 'x-test-only': 'a', 'x-test-status': '503' } })).status, 200);
    assert.ok(a.requests - aBefore >= 1);
    assert.equal(await retries('small-buffer'), a.requests - aBefore);
  });

  it('the default policy retries connect failures only: a 503 and a reset are relayed', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) statuses.push((await send(p.port, { path: '/defaults/s', headers: { 'x-test-only': 'a', 'x-test-status': '503' } })).status);
    for (let i = 0; i < 2; i++) statuses.push((await send(p.port, { path: '/defaults/r', headers: { 'x-test-only': 'a', 'x-test-action': 'reset' } })).status);
    assert.deepEqual(statuses.sort(), [200, 200, 502, 503]);
    assert.equal(await retries('defaults'), 0);
  });

  it('each retry goes to an endpoint not tried yet: with two failing of three, the third answers', async () => {
    const counts = { a: a.requests, b: b.requests, c: c.requests };
    for (let i = 0; i < 6; i++) {
      const reply = await send(p.port, { path: '/three/x', headers: { 'x-test-only': 'a,b', 'x-test-status': '503' } });
      assert.equal(reply.status, 200);
      assert.equal(reply.json<EchoReply>().upstream, 'c');
    }
    assert.equal(c.requests - counts.c, 6, 'c answered each request exactly once');
    assert.ok(a.requests - counts.a <= 6 && b.requests - counts.b <= 6, 'no endpoint was tried twice for one request');
    await waitFor('access lines', () => p.accessLines().filter((l) => l.route === 'three' && l.status === 200).length === 6);
    assert.ok(p.accessLines().filter((l) => l.route === 'three').every((l) => (l.attempts ?? 1) as number <= 3));
  });

  it('the attempt count is respected: one retry, two failing endpoints → some 503s get through', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await send(p.port, { path: '/once/x', headers: { 'x-test-only': 'a,b', 'x-test-status': '503' } })).status);
    assert.ok(statuses.includes(503), `statuses ${statuses.join(',')}`);
    assert.ok(statuses.includes(200));
    assert.ok(p.accessLines().filter((l) => l.route === 'once').every((l) => (l.attempts ?? 1) as number <= 2));
  });

  it('the retry budget caps retries (0% + 0.3/s over 10 s = 3): then failures are returned and counted', async () => {
    // Round-robin over [dead, a]: each request tries dead first; the retry's pick takes a's turn.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await send(p.port, { path: '/budget/x' })).status);
    assert.deepEqual(statuses, [200, 200, 200, 502, 502, 502]);
    assert.equal(await retries('budget', 'connect-failure'), 3);
    assert.equal(await metricValue(p.metrics, 'switchyard_retry_budget_exhausted_total', { route: 'budget' }), 3);
    const budget = p.proxy.runtimes.current?.byName.get('budget')?.state.budget.counts(performance.now());
    assert.deepEqual(budget, { requests: 6, retries: 3 });
  });
});
