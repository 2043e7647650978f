import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startRawUpstream, type RawUpstream } from '../support/faulty-upstream.js';
import { refusedPort, startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { makeRefusal, REFUSALS } from '../../src/proxy/edge/request-guard.js';
import { waitFor } from '../support/wait.js';

interface ErrorJson { error: string; message: string }

describe('proxy: upstream failures map to stable error codes', () => {
  let up: TestUpstream;
  let deadPort: number;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'flaky' });
    deadPort = await refusedPort();
    p = await startProxy(makeTable([
      { name: 'dead', path: '/dead', to: [{ service: 'dead', endpoints: [{ id: 'd1', port: deadPort }] }] },
      // Timeouts are route policy; the pool-level options no longer apply to routed requests.
      { name: 'flaky', path: '/', to: [{ service: 'flaky', endpoints: [{ id: 'f1', port: up.port }] }], policy: { timeouts: { headersMs: 300, bodyIdleMs: 300 } } },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('502 SY_UPSTREAM_CONNECT when the upstream refuses the connection', async () => {
    const reply = await send(p.port, { path: '/dead/x' });
    assert.equal(reply.status, 502);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_CONNECT');
    assert.equal(typeof reply.headers['x-request-id'], 'string');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'dead', code: 'SY_UPSTREAM_CONNECT' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'dead', code: '502' }), 1);
  });

  it('502 SY_UPSTREAM_RESET (not SY_UPSTREAM_CONNECT) when the upstream resets after the request was sent', async () => {
    // The route does not retry resets, so the reset surfaces as is.
    const reply = await send(p.port, { method: 'POST', path: '/x', headers: { 'x-test-action': 'reset' }, body: 'data' });
    assert.equal(reply.status, 502);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_RESET');
    const get = await send(p.port, { path: '/x', headers: { 'x-test-action': 'reset' } });
    assert.equal(get.status, 502);
    assert.equal(get.json<ErrorJson>().error, 'SY_UPSTREAM_RESET');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_RESET' }), 2);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_CONNECT' }), 0);
  });

  it('cuts the client connection when the upstream resets mid-response, logged as the 200 the client got, ending upstream_reset', async () => {
    const resetsBefore = await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_RESET' });
    const outcome = await deadline(new Promise<{ status: number; bytes: number; error: string }>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/x', headers: { 'x-test-action': 'reset-mid' }, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => { bytes += c.length; });
        res.on('error', (err) => resolve({ status: res.statusCode ?? 0, bytes, error: err.message }));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, error: 'ended cleanly' }));
      });
      req.on('error', (err) => resolve({ status: 0, bytes: 0, error: err.message }));
      req.end();
    }), 5_000, 'mid-response reset');
    assert.equal(outcome.status, 200, 'the head had already been relayed');
    assert.equal(outcome.bytes, 10);
    assert.notEqual(outcome.error, 'ended cleanly');
    await waitFor('reset metric', async () => await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_RESET' }) === resetsBefore + 1);
    const cutLine = () => p.accessLines().find((l) => l.route === 'flaky' && l.error === 'SY_UPSTREAM_RESET' && l.end !== undefined);
    await waitFor('the access line of the cut response', () => cutLine() !== undefined);
    const line = cutLine()!;
    assert.equal(line.status, 200, 'the status the client received');
    assert.equal(line.end, 'upstream_reset');
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'flaky', code: '502' }), 2, 'only the two answered 502s');
  });

  it('504 SY_UPSTREAM_TIMEOUT when the upstream does not answer in time', async () => {
    const started = Date.now();
    // The upstream would answer after 30 s and the client waits up to 60 s: the 10 s bound rules
    // out a 504 that only comes once the upstream answers (or the client gives up), with room for
    // a loaded machine over the 300 ms headers timeout.
    const reply = await send(p.port, { path: '/slow', headers: { 'x-test-delay-ms': '30000' }, timeoutMs: 60_000 });
    assert.equal(reply.status, 504);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'answered at the headers timeout, not when the upstream would have');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_TIMEOUT' }), 1);
  });

  it('a headers timeout does not fire on a healthy streaming response', async () => {
    // Sanity for the 300 ms timeouts above: a quick answer is unaffected.
    const reply = await send(p.port, { path: '/fast' });
    assert.equal(reply.status, 200);
  });
});

describe('proxy: invalid upstream answers are 502 SY_UPSTREAM_BAD_RESPONSE', () => {
  let bigHead: RawUpstream;
  let garbage: RawUpstream;
  let p: TestProxy;

  before(async () => {
    // undici's limit on a response head is 16 KiB by default: this one is 64 KiB.
    bigHead = await startRawUpstream(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(65_536)}\r\nContent-Length: 2\r\n\r\nok`);
    garbage = await startRawUpstream('SSH-2.0-OpenSSH_9.6\r\n');
    p = await startProxy(makeTable([
      { name: 'big', path: '/big', to: [{ service: 'big', endpoints: [{ id: 'b1', port: bigHead.port }] }] },
      { name: 'garbage', path: '/garbage', to: [{ service: 'garbage', endpoints: [{ id: 'g1', port: garbage.port }] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await Promise.all([bigHead.close(), garbage.close()]);
  });

  it('a response head over the limit: 502 SY_UPSTREAM_BAD_RESPONSE, not SY_UPSTREAM_CONNECT', async () => {
    const reply = await send(p.port, { path: '/big' });
    assert.equal(reply.status, 502);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_BAD_RESPONSE');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'big', code: 'SY_UPSTREAM_BAD_RESPONSE' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'big', code: 'SY_UPSTREAM_CONNECT' }), 0);
  });

  it('an answer that is not HTTP: 502 SY_UPSTREAM_BAD_RESPONSE', async () => {
    const reply = await send(p.port, { path: '/garbage' });
    assert.equal(reply.status, 502);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_BAD_RESPONSE');
  });
});

describe('proxy: retry after a connect failure', () => {
  let alive: TestUpstream;
  let deadPort: number;
  let p: TestProxy;

  before(async () => {
    alive = await startUpstream({ name: 'alive' });
    deadPort = await refusedPort();
    p = await startProxy(makeTable([{
      name: 'half',
      to: [{ service: 'half', endpoints: [{ id: 'dead', port: deadPort }, { id: 'alive', port: alive.port }] }],
    }]));
  });

  after(async () => {
    await p.close();
    await alive.close();
  });

  it('sends a body-less request that could not connect to another endpoint', async () => {
    // Round-robin over [dead, alive] starts with dead, and the retry's pick takes alive's turn,
    // so every request tries dead first and is retried on alive.
    for (let i = 0; i < 4; i++) {
      const reply = await send(p.port, { method: i % 2 === 0 ? 'GET' : 'DELETE', path: `/r${i}` });
      assert.equal(reply.status, 200, `request ${i}`);
      assert.equal(reply.json<EchoReply>().upstream, 'alive');
    }
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'half', code: 'SY_UPSTREAM_CONNECT' }), 4);
    await waitFor('four retried requests in the access log', () => p.accessLines().filter((l) => l.attempts === 2 && l.endpoint === 'half/alive' && l.status === 200).length === 4);
  });

  it('retries a request with a body only while none of it was sent (a connect failure)', async () => {
    // The cycle is back at dead (see above): this POST goes there, cannot connect, and nothing of
    // its body was read, so it goes to alive, whole. (A POST is never retried once sent:
    // test/proxy/resilience.test.ts.)
    const reply = await send(p.port, { method: 'POST', path: '/p', body: 'once only' });
    assert.equal(reply.status, 200);
    assert.equal(reply.json<EchoReply>().body, 'once only');
    assert.equal(reply.json<EchoReply>().upstream, 'alive');
  });
});

describe('proxy: client aborts', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'patient' });
    p = await startProxy(makeTable([{ name: 'patient', to: [{ service: 'patient', endpoints: [{ id: 'p1', port: up.port }] }] }]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('a client that goes away aborts the upstream request', async () => {
    const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/hang', headers: { 'x-test-delay-ms': '5000' }, agent: false });
    req.on('error', () => { /* expected: we destroy it */ });
    req.end();
    await waitFor('the request to reach the upstream', () => up.inflight === 1);
    const aborted = Date.now();
    req.destroy();
    // The upstream would answer after 5 s (and the proxy's timeouts are 60 s): only the abort ends it sooner.
    await waitFor('the upstream request to be aborted', () => up.inflight === 0, 3_000);
    assert.ok(Date.now() - aborted < 3_000);
    await waitFor('access log line with status 499, ending client_closed', () => p.accessLines().some((l) => l.path === '/hang' && l.status === 499 && l.end === 'client_closed'));
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'patient', code: '499' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'patient' }), 0, 'a client abort is no upstream error');
  });
});

describe('proxy: refusals go through the one error serialiser', () => {
  it('a refusal on a raw socket is byte for byte the head and JSON body clients have always received (no request id)', () => {
    const refusal = makeRefusal('SY_HEADERS_TOO_LARGE', 'headers_too_large', 'a "quoted" message');
    const body = '{"error":"SY_HEADERS_TOO_LARGE","message":"a \\"quoted\\" message"}';
    assert.equal(refusal.body.toString('latin1'), body);
    assert.equal(refusal.raw.toString('latin1'), 'HTTP/1.1 431 Request Header Fields Too Large\r\n'
      + `content-type: application/json\r\ncontent-length: ${body.length}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`);
    assert.deepEqual(refusal.headers, ['content-type', 'application/json', 'content-length', String(body.length), 'cache-control', 'no-store']);
    assert.equal(refusal.status, 431);
    assert.equal(REFUSALS.timeout.raw.toString('latin1').split('\r\n')[0], 'HTTP/1.1 408 Request Timeout');
  });
});
