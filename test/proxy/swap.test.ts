import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, metricValue, send, simpleTable, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

describe('proxy: hot swap, make before break', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  const proxies: TestProxy[] = [];

  before(async () => {
    a = await startUpstream({ name: 'a' });
    b = await startUpstream({ name: 'b' });
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await Promise.all([a.close(), b.close()]);
  });

  async function proxyFor(ports: number[], drainTimeoutMs = 5_000): Promise<TestProxy> {
    const p = await startProxy(simpleTable(ports), { upstream: { drainTimeoutMs } });
    proxies.push(p);
    return p;
  }

  it('an in-flight request on a removed endpoint completes after the swap; its pool closes afterwards', async () => {
    const p = await proxyFor([a.port]);
    const aConnectionsBefore = a.openConnections;
    const inflight = send(p.port, { path: '/slow', headers: { 'x-test-delay-ms': '400' } });
    await waitFor('the slow request to reach a', () => a.inflight === 1);

    p.store.swap(simpleTable([b.port]));
    // Make before break: b's pool exists; a's pool drains and still counts.
    assert.deepEqual(p.upstreams.origins(), [b.origin]);
    assert.equal(p.upstreams.size, 2);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_pools'), 2);
    // New requests go to b at once.
    assert.equal((await send(p.port)).json<EchoReply>().upstream, 'b');

    const reply = await deadline(inflight, 5_000, 'the in-flight request');
    assert.equal(reply.status, 200);
    assert.equal(reply.json<EchoReply>().upstream, 'a', 'finished on the endpoint it started on');

    await waitFor("a's pool to close after draining", () => p.upstreams.size === 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_pools'), 1);
    await waitFor("a's pooled connection to be closed", () => a.openConnections <= aConnectionsBefore);
  });

  it('a removed pool that does not drain in time is destroyed at the drain timeout', async () => {
    const p = await proxyFor([a.port], 200);
    const started = Date.now();
    // The upstream would answer after 30 s (its timer ends when the proxy closes the connection);
    // the client waits 60 s, so only the proxy can end this exchange within the bound below.
    const stuck = send(p.port, { path: '/stuck', headers: { 'x-test-delay-ms': '30000' }, timeoutMs: 60_000 });
    await waitFor('the stuck request to reach a', () => a.inflight === 1);
    p.store.swap(simpleTable([b.port]));
    await waitFor('the pool to be destroyed', () => p.upstreams.size === 1, 10_000);
    const reply = await deadline(stuck, 10_000, 'the stuck request to end');
    assert.equal(reply.status, 502, 'the destroyed pool fails the request before any response');
    // Typically ~200 ms (the drain timeout). 10 s rules out a pool that waited for its request to
    // finish (30 s) instead of being destroyed at the drain timeout; room for a loaded CI machine.
    assert.ok(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms`);
  });

  it('an origin that comes back while its old pool drains gets a fresh pool', async () => {
    const p = await proxyFor([a.port]);
    const slow = send(p.port, { headers: { 'x-test-delay-ms': '300' } });
    await waitFor('the slow request to reach a', () => a.inflight === 1);
    p.store.swap(simpleTable([b.port]));
    p.store.swap(simpleTable([a.port]));
    assert.deepEqual(p.upstreams.origins(), [a.origin]);
    assert.equal((await send(p.port)).json<EchoReply>().upstream, 'a');
    assert.equal((await slow).status, 200);
    await waitFor('the retired pools to close', () => p.upstreams.size === 1);
  });

  it('reuses upstream keep-alive connections', async () => {
    const p = await proxyFor([a.port]);
    const before = a.connections;
    for (let i = 0; i < 50; i++) assert.equal((await send(p.port)).status, 200);
    assert.equal(a.connections - before, 1, '50 sequential requests over one upstream connection');

    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    try {
      const concurrentBefore = a.connections;
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 10 }, () => send(p.port, { agent })));
      }
      const opened = a.connections - concurrentBefore;
      assert.ok(opened <= 10, `50 requests, 10 at a time, opened ${opened} upstream connections`);
    } finally {
      agent.destroy();
    }
  });

  it('serves every request while tables swap under concurrent load', async () => {
    const p = await proxyFor([a.port]);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let failures = 0;
    let served = 0;
    let stop = false;
    const clients = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const reply = await send(p.port, { agent });
        if (reply.status === 200) served += 1;
        else failures += 1;
      }
    });
    const sets = [[a.port], [b.port], [a.port, b.port], [b.port], [a.port]];
    for (let i = 0; i < 40; i++) {
      p.store.swap(simpleTable(sets[i % sets.length]!));
      await new Promise((resolve) => setImmediate(resolve));
      await waitFor('traffic between swaps', () => served > i * 5);
    }
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    assert.equal(failures, 0);
    assert.ok(served >= 200);
    await waitFor('retired pools to close', () => p.upstreams.size === 1);
  });
});

describe('proxy: graceful close', () => {
  it('lets an in-flight request finish, refuses new connections, then closes', async () => {
    const up = await startUpstream({ name: 'g' });
    const p = await startProxy(simpleTable([up.port]));
    try {
      const inflight = send(p.port, { headers: { 'x-test-delay-ms': '300' } });
      await waitFor('the request to reach the upstream', () => up.inflight === 1);
      const closing = p.close(5_000);
      await waitFor('the server to stop listening', () => !p.proxy.server.listening);
      await assert.rejects(send(p.port), /ECONNREFUSED/);
      const reply = await inflight;
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.connection, 'close', 'asked the client to close while draining');
      await deadline(closing, 3_000, 'close to resolve after the drain');
      assert.equal(p.upstreams.size, 0);
    } finally {
      await p.close();
      await up.close();
    }
  });

  it('destroys what is left at the drain deadline', async () => {
    const up = await startUpstream({ name: 'h' });
    const p = await startProxy(simpleTable([up.port]));
    try {
      // The upstream would answer after 30 s (its timer ends when the proxy closes the connection);
      // the client waits 60 s, so only the proxy can end this exchange within the bound below.
      const stuck = send(p.port, { headers: { 'x-test-delay-ms': '30000' }, timeoutMs: 60_000 }).then((r) => r.status, (e: Error) => e.message);
      await waitFor('the request to reach the upstream', () => up.inflight === 1);
      const started = Date.now();
      await deadline(p.close(200), 10_000, 'close bounded by the drain time');
      // Typically ~200 ms (the drain time). 10 s rules out a close() that waited for the request
      // to finish (30 s) instead of destroying it at the drain deadline; room for a loaded CI machine.
      assert.ok(Date.now() - started < 10_000, `closed after ${Date.now() - started} ms`);
      assert.notEqual(await stuck, 200);
    } finally {
      await up.close();
    }
  });
});
