import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { WebSocket } from 'ws';
import { startRawUpstream } from '../support/faulty-upstream.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

describe('proxy: access log and metrics', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'obs' });
    p = await startProxy(makeTable([
      { name: 'shop', path: '/shop', to: [{ service: 'shop', endpoints: [{ id: 's1', port: up.port }] }] },
      { name: 'empty', path: '/empty', to: [{ service: 'none', endpoints: [] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('writes one access log line per request with route, upstream, status, duration and request id', async () => {
    const started = performance.now();
    const reply = await send(p.port, { method: 'POST', path: '/shop/cart?id=3', headers: { 'x-request-id': 'log-me', 'x-test-status': '201', 'x-test-delay-ms': '50' }, body: 'x' });
    assert.equal(reply.status, 201);
    await waitFor('the access log line', () => p.accessLines().some((l) => l.reqId === 'log-me'));
    // The proxy's clock runs from the request's arrival to the response's close, both inside the
    // client's span from sending to seeing the line logged.
    const clientMs = performance.now() - started;
    const lines = p.accessLines().filter((l) => l.reqId === 'log-me');
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.route, 'shop');
    assert.equal(line.upstream, up.origin);
    assert.equal(line.endpoint, 'shop/s1');
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/shop/cart?id=3');
    assert.equal(line.status, 201);
    assert.equal(typeof line.ms, 'number');
    const ms = line.ms as number;
    assert.ok(ms <= clientMs, `logged ${ms} ms, within the ${clientMs} ms the client measured (milliseconds, not another unit)`);
    // The upstream waited 50 ms before answering (40: a timer may fire a little early against a
    // clock read elsewhere), so the duration covers the upstream's time, not just the proxy's.
    assert.ok(ms >= 40, `logged ${ms} ms for an upstream that took 50 ms`);
    assert.equal(line.level, 30);
  });

  it('logs requests without a route or endpoint too, with the generated request id', async () => {
    const miss = await send(p.port, { path: '/missing' });
    const empty = await send(p.port, { path: '/empty' });
    await waitFor('both lines', () => p.accessLines().some((l) => l.reqId === miss.headers['x-request-id']) && p.accessLines().some((l) => l.reqId === empty.headers['x-request-id']));
    const missLine = p.accessLines().find((l) => l.reqId === miss.headers['x-request-id'])!;
    assert.equal(missLine.route, '(none)');
    assert.equal(missLine.status, 404);
    assert.equal(missLine.error, undefined);
    const emptyLine = p.accessLines().find((l) => l.reqId === empty.headers['x-request-id'])!;
    assert.equal(emptyLine.route, 'empty');
    assert.equal(emptyLine.status, 503);
    assert.equal(emptyLine.upstream, undefined);
  });

  it('counts requests by route and status code and observes their duration', async () => {
    // A request is counted when its response closes, which may be just after the client has the
    // whole answer: wait for each count to reach its new value (the earlier test's 404 already
    // made `>= 1` true for the no-route counter, so waiting on that proved nothing).
    const before200 = await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '200' });
    const before404 = await metricValue(p.metrics, 'switchyard_requests_total', { route: '(none)', code: '404' });
    const beforeHist = await metricValue(p.metrics, 'switchyard_request_duration_seconds', { route: 'shop' }, 'switchyard_request_duration_seconds_count');
    for (let i = 0; i < 3; i++) await send(p.port, { path: '/shop' });
    await send(p.port, { path: '/shop', headers: { 'x-test-status': '418' } });
    await send(p.port, { path: '/nope' });
    await waitFor('the new 404 to be counted', async () => await metricValue(p.metrics, 'switchyard_requests_total', { route: '(none)', code: '404' }) === before404 + 1);
    await waitFor('the four shop requests to be observed', async () => await metricValue(p.metrics, 'switchyard_request_duration_seconds', { route: 'shop' }, 'switchyard_request_duration_seconds_count') - beforeHist === 4);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '200' }) - before200, 3);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '418' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_request_duration_seconds', { route: 'shop' }, 'switchyard_request_duration_seconds_count') - beforeHist, 4);
    const text = await p.metrics.registry.metrics();
    assert.match(text, /switchyard_requests_total\{route="shop",code="418"\} 1/);
    assert.match(text, /switchyard_upstream_pools 1/);
  });
});

describe('proxy: the access log says how an exchange ended', () => {
  let up: TestUpstream;

  before(async () => {
    up = await startUpstream({ name: 'ends', websocket: true });
  });

  after(async () => {
    await up.close();
  });

  it("a slow upload cut by the listener's request timeout is logged 408 request_timeout (what the client got), not 499", async () => {
    const p = await startProxy(makeTable([{ name: 'uploads', to: [{ service: 'ends', endpoints: [{ id: 'e1', port: up.port }] }] }]), {
      options: { requestTimeoutMs: 400, headersTimeoutMs: 300 },
    });
    try {
      const socket = connect(p.port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
      socket.on('error', () => { /* closed by the proxy */ });
      socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789');
      await waitFor('the access line of the cut upload', () => p.accessLines().some((l) => l.path === '/slow'), 10_000);
      const line = p.accessLines().find((l) => l.path === '/slow')!;
      assert.equal(line.status, 408);
      assert.equal(line.end, 'request_timeout');
      assert.equal(line.error, 'SY_REQUEST_TIMEOUT');
      await waitFor('the 408 the client received', () => answer.includes('408'));
      assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'uploads', code: '499' }), 0);
      socket.destroy();
    } finally {
      await p.close();
    }
  });

  it('a request timeout after a slow head is logged 408 too: the listener says what it answered, no guess from elapsed time', async () => {
    // node counts the request timeout from the request's first byte, the exchange from its
    // complete head. A head that takes 1.2 s of a 2 s request timeout leaves the exchange 0.8 s
    // old when the listener answers 408: an inference from the exchange's age (">= 90% of the
    // request timeout") would log that 408 as a 400 framing error.
    const p = await startProxy(makeTable([{ name: 'uploads', to: [{ service: 'ends', endpoints: [{ id: 'e1', port: up.port }] }] }]), {
      options: { requestTimeoutMs: 2_000, headersTimeoutMs: 1_900, connectionsCheckingIntervalMs: 50 },
    });
    try {
      const socket = connect(p.port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
      socket.on('error', () => { /* closed by the proxy */ });
      socket.write('POST /slow-head HTTP/1.1\r\n');
      // The client's pace, not a wait for a condition: the rest of the head 1.2 s later.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      socket.write('Host: x\r\nContent-Length: 1000\r\n\r\n0123456789');
      await waitFor('the access line of the cut upload', () => p.accessLines().find((l) => l.path === '/slow-head'), 10_000);
      const line = p.accessLines().find((l) => l.path === '/slow-head')!;
      assert.equal(line.status, 408, `logged ${String(line.status)} ${String(line.error)} after ${String(line.ms)} ms`);
      assert.equal(line.end, 'request_timeout');
      assert.equal(line.error, 'SY_REQUEST_TIMEOUT');
      await waitFor('the 408 the client received', () => answer.includes('HTTP/1.1 408'));
      socket.destroy();
    } finally {
      await p.close();
    }
  });

  it('a response still streaming when the drain timeout ends: logged with its status and drain_cut; an open tunnel too', async () => {
    const p = await startProxy(makeTable([{ name: 'stream', to: [{ service: 'ends', endpoints: [{ id: 'e1', port: up.port }] }] }]));
    const closed = new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/long', headers: { 'x-test-action': 'slow-body', 'x-test-chunks': '100', 'x-test-chunk-delay-ms': '100' }, agent: false }, (res) => {
        res.resume();
        res.on('close', () => resolve());
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`);
    ws.on('error', () => { /* cut */ });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('unexpected-response', () => reject(new Error('no 101'))); });
    await waitFor('the stream and the tunnel to be open', () => up.inflight >= 1 && p.proxy.upgrades.size === 1);
    await p.close(300);
    await closed;
    await waitFor('both access lines', () => p.accessLines().filter((l) => l.end === 'drain_cut').length === 2);
    const stream = p.accessLines().find((l) => l.path === '/long')!;
    assert.equal(stream.status, 200, 'the status the client received');
    assert.equal(stream.end, 'drain_cut');
    const tunnel = p.accessLines().find((l) => l.path === '/ws')!;
    assert.equal(tunnel.status, 101);
    assert.equal(tunnel.upgrade, true);
    assert.equal(tunnel.end, 'drain_cut');
  });

  it('a tunnel whose upstream resets after the 101: logged 101 (what the client got), end upstream_reset, like a plain exchange', async () => {
    const resetter = await startRawUpstream('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', { resetAfterMs: 50 });
    const p = await startProxy(makeTable([{ name: 'tunnel', to: [{ service: 'r', endpoints: [{ id: 'r1', port: resetter.port }] }] }]));
    try {
      const socket = connect(p.port, '127.0.0.1');
      socket.on('error', () => { /* cut */ });
      let answer = '';
      socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
      socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      await waitFor('the tunnel access line', () => p.accessLines().some((l) => l.path === '/ws'));
      const line = p.accessLines().find((l) => l.path === '/ws')!;
      assert.match(answer, /^HTTP\/1\.1 101 /);
      assert.equal(line.status, 101);
      assert.equal(line.upgrade, true);
      assert.equal(line.end, 'upstream_reset');
      assert.equal(line.error, 'SY_UPSTREAM_RESET');
      socket.destroy();
    } finally {
      await p.close();
      await resetter.close();
    }
  });
});
