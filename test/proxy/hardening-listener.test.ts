import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TableStore } from '../../src/control/table-store.js';
import { Metrics } from '../../src/observability/metrics.js';
import { LISTENER_DEFAULTS } from '../../src/proxy/edge/listener-guard.js';
import { createProxy } from '../../src/proxy/server.js';
import { Upstreams } from '../../src/proxy/runtime/upstreams.js';
import { parseResponses, plainGet, rawExchange } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

function table(port: number) {
  return makeTable([{ name: 'public', path: '/', to: [{ service: 'rec', endpoints: [{ id: 'r1', port }] }] }]);
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

describe('listener: defaults', () => {
  it('applies the documented limits when none are given', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const proxy = createProxy({ store: new TableStore(), upstreams: new Upstreams({}, undefined, metrics), metrics });
    try {
      assert.equal(proxy.server.headersTimeout, LISTENER_DEFAULTS.headersTimeoutMs);
      assert.equal(proxy.server.requestTimeout, LISTENER_DEFAULTS.requestTimeoutMs);
      assert.equal(proxy.server.keepAliveTimeout, LISTENER_DEFAULTS.keepAliveTimeoutMs);
      assert.equal(proxy.server.maxConnections, LISTENER_DEFAULTS.maxConnections);
      assert.equal(proxy.handler.guard.maxHeaderCount, LISTENER_DEFAULTS.maxHeaderCount);
      assert.deepEqual(LISTENER_DEFAULTS, {
        headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 65_000,
        maxHeaderSize: 16_384, maxConnections: 10_000, maxHeaderCount: 100,
      });
    } finally {
      await proxy.close(0);
    }
  });
});

describe('listener: limits and timeouts', () => {
  let up: RecordingUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startRecordingUpstream('rec');
    p = await startProxy(table(up.port), {
      options: {
        accessLog: false,
        maxHeaderSize: 4096,
        headersTimeoutMs: 400,
        requestTimeoutMs: 1_000,
        keepAliveTimeoutMs: 300,
        connectionsCheckingIntervalMs: 50,
      },
    });
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('answers 431 SY_HEADERS_TOO_LARGE above --max-header-size, and serves a head below it', async () => {
    const refusedBefore = await metricValue(p.metrics, 'switchyard_requests_refused_total', { reason: 'headers_too_large' });
    const big = await rawExchange(p.port, `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(5000)}\r\n\r\n`);
    assert.deepEqual(big.responses.map((r) => r.status), [431]);
    assert.equal(big.closed, true);
    assert.equal(big.responses[0]!.headers['connection'], 'close');
    assert.deepEqual(JSON.parse(big.responses[0]!.body.toString()), { error: 'SY_HEADERS_TOO_LARGE', message: 'the request head is too large' });
    const fits = await send(p.port, { path: '/fits', headers: { 'x-big': 'b'.repeat(3000) } });
    assert.equal(fits.status, 200);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_refused_total', { reason: 'headers_too_large' }), refusedBefore + 1, 'this refusal counted, once');
  });

  it('closes a slowloris client with 408 once the header timeout passes', async () => {
    // A proxy of its own whose request timeout (30 s) is far beyond every bound below, so only the
    // 400 ms header timeout can end this exchange in time.
    const own = await startProxy(table(up.port), {
      options: { accessLog: false, headersTimeoutMs: 400, requestTimeoutMs: 30_000, connectionsCheckingIntervalMs: 50 },
    });
    try {
      // ~330 bytes at one byte per 20 ms: the head would be complete after >= 6.6 s (then answered 200).
      const started = Date.now();
      const slow = await rawExchange(own.port, `GET /slow HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(300)}\r\n\r\n`, { paceMs: 20, deadlineMs: 10_000 });
      const ms = Date.now() - started;
      assert.deepEqual(slow.responses.map((r) => r.status), [408]);
      assert.equal(slow.closed, true);
      assert.equal(JSON.parse(slow.responses[0]!.body.toString()).error, 'SY_REQUEST_TIMEOUT');
      // >= 350: not closed before the header timeout. < 5 s: closed long before the head could have
      // been completed (6.6 s) and before the 30 s request timeout, i.e. by the header timeout;
      // 5 s leaves a loaded machine 4.6 s of slack over the 400 ms timeout and its 50 ms checks.
      assert.ok(ms >= 350 && ms < 5_000, `closed after ${ms} ms`);
      assert.ok(!up.requests.some((r) => r.url === '/slow'));
    } finally {
      await own.close();
    }
  });

  it('cuts a request whose body does not arrive within the request timeout, and aborts its upstream request', async () => {
    const before = up.requests.length;
    const slow = await rawExchange(p.port, 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(1000), { paceMs: 20, chunkSize: 5, deadlineMs: 5_000 });
    assert.equal(slow.closed, true);
    assert.deepEqual(slow.responses.map((r) => r.status), [408]);
    await waitFor('the upstream to see the request start', () => up.requests.length > before);
    const seen = up.requests.slice(before);
    assert.deepEqual(seen.map((r) => [r.url, r.complete]), [['/upload', false]], 'streamed to the upstream, then aborted');
    // The 408 carries the request id the upstream got (and the access line has), like every answer.
    const id = slow.responses[0]!.headers['x-request-id'];
    assert.ok(id !== undefined && id !== '', `the 408 has an x-request-id: ${JSON.stringify(slow.responses[0]!.headers)}`);
    assert.equal(id, seen[0]!.headers['x-request-id']);
  });

  it('a malformed chunk after a forwarded head aborts the upstream request; the rest never arrives', async () => {
    up.reset();
    const ended: boolean[] = [];
    const onRequest = (req: IncomingMessage): void => void req.once('close', () => ended.push(req.complete));
    up.server.on('request', onRequest);
    const client = await openSocket(p.port);
    try {
      const received: Buffer[] = [];
      client.on('data', (chunk: Buffer) => received.push(chunk));
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.on('error', () => { /* a reset is a close too */ });
      client.write('POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      // The head has been forwarded: the upstream is reading this request's body.
      await waitFor('the upstream to see the request start', () => up.requests.length === 1);
      assert.deepEqual(ended, [], 'still streaming');
      client.write('zz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
      await deadline(closed, 5_000, 'the proxy to close the client connection');
      await waitFor('the upstream request to end', () => ended.length === 1);
      assert.deepEqual(ended, [false], 'aborted mid-body, never completed');
      assert.deepEqual(up.requests.map((r) => [r.url, r.complete]), [['/chunks', false]]);
      const statuses = parseResponses(Buffer.concat(received)).map((r) => r.status);
      assert.ok(statuses.length <= 1 && statuses.every((status) => status === 400 || status === 502), JSON.stringify(statuses));
      assert.doesNotMatch(up.rawText(), /smuggled/);
    } finally {
      client.destroy();
      up.server.off('request', onRequest);
    }
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const started = Date.now();
    const idle = await rawExchange(p.port, 'GET /idle HTTP/1.1\r\nHost: a\r\n\r\n', { deadlineMs: 10_000 });
    assert.deepEqual(idle.responses.map((r) => r.status), [200]);
    assert.equal(idle.closed, true, 'closed by the server');
    const ms = Date.now() - started;
    // >= 250: kept open after the answer (not a close-after-response). < 5 s: closed by the 300 ms
    // keep-alive timeout, not held to the 65 s default; the margin
    // over 300 ms is for a loaded machine.
    assert.ok(ms >= 250 && ms < 5_000, `closed after ${ms} ms`);
  });

  it('a malformed chunk in the same packet as the head: 400, nothing complete or smuggled reaches the upstream', async () => {
    up.reset();
    // Every upstream request that ends is noted with whether its body arrived whole: the proof
    // that the proxy's side of the exchange is over, instead of a sleep.
    const ended: boolean[] = [];
    const onRequest = (req: IncomingMessage): void => void req.once('close', () => ended.push(req.complete));
    up.server.on('request', onRequest);
    try {
      const exchangesBefore = await metricValue(p.metrics, 'switchyard_requests_total', { route: 'public' });
      const result = await rawExchange(p.port, 'POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(result.closed, true);
      // One answer, a refusal: nothing behind the bad chunk is parsed as a request of its own.
      assert.equal(result.responses.length, 1, JSON.stringify(result.responses.map((r) => r.status)));
      assert.ok(result.responses.every((r) => r.status === 400 || r.status === 502), JSON.stringify(result.responses.map((r) => r.status)));
      // The proxy recorded the exchange as finished (one request, whatever its status)...
      await waitFor('the proxy to finish the /chunks exchange', async () => await metricValue(p.metrics, 'switchyard_requests_total', { route: 'public' }) === exchangesBefore + 1);
      // ...and the upstream request it opened (if the head got that far) has ended.
      await waitFor('every upstream request to end', () => ended.length === up.requests.length);
      assert.ok(up.requests.length <= 1, JSON.stringify(up.requests.map((r) => r.url)));
      assert.ok(up.requests.every((r) => r.url === '/chunks' && !r.complete), JSON.stringify(up.requests.map((r) => [r.url, r.complete])));
      assert.deepEqual(ended, up.requests.map(() => false), 'aborted mid-body, never completed');
      assert.doesNotMatch(up.rawText(), /smuggled/);
    } finally {
      up.server.off('request', onRequest);
    }
  });
});

describe('listener: timeouts never cut a WebSocket tunnel', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'ws', websocket: true });
    p = await startProxy(makeTable([{ name: 'ws', path: '/', to: [{ service: 'ws', endpoints: [{ id: 'w1', port: up.port }] }] }]), {
      options: { accessLog: false, headersTimeoutMs: 150, requestTimeoutMs: 300, keepAliveTimeoutMs: 200, connectionsCheckingIntervalMs: 25 },
    });
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('a tunnel lives longer than the header, request and keep-alive timeouts', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/chat`);
    const messages: string[] = [];
    ws.on('message', (data) => messages.push((data as Buffer).toString()));
    await deadline(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5_000, 'the tunnel to open');
    try {
      for (let i = 0; i < 8; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(ws.readyState, WebSocket.OPEN, `open after ${(i + 1) * 100} ms`);
        ws.send(`m${i}`);
      }
      await waitFor('all echoes', () => messages.length === 9);
      assert.equal(messages.at(-1), 'ws:m7');
    } finally {
      ws.close();
    }
  });
});

describe('listener: connection cap', () => {
  let up: RecordingUpstream;
  let p: TestProxy;
  const held: Socket[] = [];

  before(async () => {
    up = await startRecordingUpstream('rec');
    p = await startProxy(table(up.port), { options: { accessLog: false, maxConnections: 3 } });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await p.close();
    await up.close();
  });

  it('closes connections beyond --max-connections at once, and accepts again when one closes', async () => {
    for (let i = 0; i < 3; i++) held.push(await openSocket(p.port));
    await waitFor('three connections', async () => (await new Promise<number>((resolve) => p.proxy.server.getConnections((_e, n) => resolve(n)))) === 3);
    const refusedBefore = await metricValue(p.metrics, 'switchyard_requests_refused_total', { reason: 'max_connections' });
    const refused = await rawExchange(p.port, plainGet('/over'), { deadlineMs: 2_000 });
    assert.equal(refused.closed, true);
    assert.deepEqual(refused.responses, [], 'closed without an answer');
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_refused_total', { reason: 'max_connections' }), refusedBefore + 1, 'this refusal counted, once');
    assert.ok(!up.requests.some((r) => r.url === '/over'));

    held.pop()!.destroy();
    await waitFor('one connection freed', async () => (await new Promise<number>((resolve) => p.proxy.server.getConnections((_e, n) => resolve(n)))) === 2);
    const accepted = await rawExchange(p.port, plainGet('/again'));
    assert.deepEqual(accepted.responses.map((r) => r.status), [200]);
  });
});
