/**
 * Admission policies: rate limit (429 + Retry-After, per route and per client), concurrency
 * (503), request body size (413, by Content-Length and while streaming a chunked body) and the
 * redirect of plain HTTP to HTTPS (308).
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { ProxyOptions } from '../../src/proxy/server.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, metricValue, send, startProxy, type Reply, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

interface ErrorJson { error: string }

/** A GET from a chosen loopback source address (127.0.0.0/8 is all loopback on Linux). */
function getFrom(port: number, localAddress: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; retryAfter: string | undefined }> {
  return deadline(new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
    req.end();
  }), 5_000, `GET ${path} from ${localAddress}`);
}

/** A POST with a chunked body (no Content-Length), written in `chunks`. */
function postChunked(port: number, path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return deadline(new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'transfer-encoding': 'chunked', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  }), 5_000, `chunked POST ${path}`);
}

describe('proxy: admission policies', () => {
  let up: TestUpstream;
  let p: TestProxy;
  const options: ProxyOptions = { httpsPort: 8443, trustedProxies: ['127.0.0.3/32'] };

  before(async () => {
    up = await startUpstream({ name: 'up' });
    const to = [{ service: 'up', endpoints: [{ id: 'u1', port: up.port }] }];
    p = await startProxy(makeTable([
      // 1 request a minute: the exact 200/429 sequence holds however slowly a loaded machine sends it.
      { name: 'limited', path: '/limited', to, policy: { rateLimit: { requestsPerSecond: 1 / 60, burst: 3 } } },
      // Fast refill, for tokens coming back within the test.
      { name: 'refill', path: '/refill', to, policy: { rateLimit: { requestsPerSecond: 2, burst: 1 } } },
      { name: 'per-client', path: '/per-client', to, policy: { rateLimit: { requestsPerSecond: 0.1, burst: 1, perClient: true } } },
      { name: 'narrow', path: '/narrow', to, policy: { concurrency: { max: 2 } } },
      { name: 'small', path: '/small', to, policy: { maxBodyBytes: 100 } },
      { name: 'chunked', path: '/chunked', to, policy: { maxBodyBytes: '1kb' } },
      { name: 'secure', path: '/secure', to, policy: { redirectToHttps: true } },
      { name: 'open', path: '/', to },
    ]), { options });
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('rate limit: the burst passes, then 429 SY_RATE_LIMITED with Retry-After', async () => {
    const started = Date.now();
    const replies: Reply[] = [];
    for (let i = 0; i < 5; i++) replies.push(await send(p.port, { path: '/limited/x' }));
    const elapsedS = Math.ceil((Date.now() - started) / 1_000);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 429, 429]);
    // 1 request a minute: the next token is 60 s away less the time the requests took, rounded up.
    const retryAfter = Number(replies[3]!.headers['retry-after']);
    assert.ok(retryAfter <= 60 && retryAfter >= 60 - elapsedS, `Retry-After ${retryAfter} s, ${elapsedS} s after the first request`);
    assert.equal(replies[3]!.json<ErrorJson>().error, 'SY_RATE_LIMITED');
    assert.equal(await metricValue(p.metrics, 'switchyard_rate_limited_total', { route: 'limited' }), 2);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'limited', code: '429' }), 2);
    assert.equal((await send(p.port, { path: '/' })).status, 200, 'other routes are not limited');
  });

  it('rate limit: tokens come back with time', async () => {
    assert.equal((await send(p.port, { path: '/refill/x' })).status, 200, 'the burst of 1');
    // Empty the bucket (2 tokens/s: at most a few requests before one finds it empty).
    let refused: Reply | undefined;
    for (let i = 0; i < 20 && refused === undefined; i++) {
      const reply = await send(p.port, { path: '/refill/x' });
      if (reply.status === 429) refused = reply;
    }
    assert.ok(refused !== undefined, 'the bucket runs empty');
    assert.equal(refused.json<ErrorJson>().error, 'SY_RATE_LIMITED');
    // Only a refill can turn the 429 into a 200.
    await waitFor('a token to come back', async () => (await send(p.port, { path: '/refill/x' })).status === 200, 5_000);
  });

  it('per-client rate limit: each client address has its own bucket', async () => {
    assert.deepEqual(await getFrom(p.port, '127.0.0.1', '/per-client'), { status: 200, retryAfter: undefined });
    assert.deepEqual(await getFrom(p.port, '127.0.0.1', '/per-client'), { status: 429, retryAfter: '10' });
    assert.deepEqual(await getFrom(p.port, '127.0.0.2', '/per-client'), { status: 200, retryAfter: undefined });
    assert.deepEqual(await getFrom(p.port, '127.0.0.2', '/per-client'), { status: 429, retryAfter: '10' });
    assert.equal(p.proxy.runtimes.current?.byName.get('per-client')?.limiter?.clientCount, 2);
    assert.equal(await metricValue(p.metrics, 'switchyard_rate_limited_total', { route: 'per-client' }), 2);
  });

  it('per-client rate limit behind a trusted proxy counts the forwarded client; a spoofed X-Forwarded-For counts its sender', async () => {
    const viaProxy = (client: string) => getFrom(p.port, '127.0.0.3', '/per-client', { 'x-forwarded-for': `203.0.113.9, ${client}` });
    assert.equal((await viaProxy('198.51.100.1')).status, 200);
    assert.equal((await viaProxy('198.51.100.1')).status, 429, 'the same client behind the proxy is limited');
    assert.equal((await viaProxy('198.51.100.2')).status, 200, 'another client behind the same proxy has its own bucket');
    const spoof = (claimed: string) => getFrom(p.port, '127.0.0.4', '/per-client', { 'x-forwarded-for': claimed });
    assert.equal((await spoof('192.0.2.1')).status, 200);
    assert.equal((await spoof('192.0.2.2')).status, 429, 'an untrusted sender cannot dodge its limit by changing X-Forwarded-For');
  });

  it('concurrency: 503 SY_OVERLOADED while max requests are in flight; capacity returns when they finish', async () => {
    const slow = [0, 1].map(() => send(p.port, { path: '/narrow/slow', headers: { 'x-test-delay-ms': '1000' } }));
    await waitFor('two slow requests at the upstream', () => up.inflight === 2);
    const refused = await send(p.port, { path: '/narrow/x' });
    assert.equal(refused.status, 503);
    assert.equal(refused.json<ErrorJson>().error, 'SY_OVERLOADED');
    assert.equal(await metricValue(p.metrics, 'switchyard_overloaded_total', { route: 'narrow' }), 1);
    assert.deepEqual((await Promise.all(slow)).map((r) => r.status), [200, 200]);
    assert.equal((await send(p.port, { path: '/narrow/x' })).status, 200);
    assert.equal(p.proxy.runtimes.current?.byName.get('narrow')?.state.inflight, 0);
  });

  it('body size by Content-Length: 413 SY_BODY_TOO_LARGE before anything reaches the upstream', async () => {
    const before = up.requests;
    const tooLarge = await send(p.port, { method: 'POST', path: '/small', body: 'x'.repeat(101) });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.json<ErrorJson>().error, 'SY_BODY_TOO_LARGE');
    assert.equal(up.requests, before);
    const fits = await send(p.port, { method: 'POST', path: '/small', body: 'x'.repeat(100) });
    assert.equal(fits.status, 200);
    assert.equal(fits.json<EchoReply>().bodyLength, 100);
    assert.equal(await metricValue(p.metrics, 'switchyard_body_too_large_total', { route: 'small' }), 1);
  });

  it('chunked body: counted as it streams; over the limit the upstream request is aborted and the client gets 413', async () => {
    const fits = await postChunked(p.port, '/chunked', [Buffer.alloc(500, 1), Buffer.alloc(524, 2)], { 'x-test-action': 'count' });
    assert.equal(fits.status, 200);
    assert.equal((JSON.parse(fits.body) as { bytes: number }).bytes, 1024);

    const before = up.requests;
    const over = await postChunked(p.port, '/chunked', [Buffer.alloc(600, 1), Buffer.alloc(600, 2)], { 'x-test-action': 'count' });
    assert.equal(over.status, 413, over.body);
    assert.equal((JSON.parse(over.body) as ErrorJson).error, 'SY_BODY_TOO_LARGE');
    assert.ok(up.requests - before <= 1);
    await waitFor('the upstream request to be aborted', () => up.inflight === 0);
    assert.equal(await metricValue(p.metrics, 'switchyard_body_too_large_total', { route: 'chunked' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'chunked' }), 0, 'the client’s body is no upstream error');
  });

  it('redirectToHttps: plain HTTP gets 308 to https://<host>:<httpsPort><path>; nothing reaches the upstream', async () => {
    const before = up.requests;
    const reply = await send(p.port, { path: '/secure/a?b=1', headers: { host: 'shop.example.com:8080' } });
    assert.equal(reply.status, 308);
    assert.equal(reply.headers.location, 'https://shop.example.com:8443/secure/a?b=1');
    const v6 = await send(p.port, { path: '/secure', headers: { host: '[2001:db8::1]:8080' } });
    assert.equal(v6.headers.location, 'https://[2001:db8::1]:8443/secure');
    options.httpsPort = 443;
    const standard = await send(p.port, { path: '/secure/x', headers: { host: 'shop.example.com' } });
    assert.equal(standard.headers.location, 'https://shop.example.com/secure/x', 'no port for 443');
    assert.equal(up.requests, before);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'secure', code: '308' }), 3);

    assert.equal((await send(p.port, { path: '/other', headers: { host: 'shop.example.com' } })).status, 200, 'routes without the policy are not redirected');
    options.httpsPort = undefined;
    const noTls = await send(p.port, { path: '/secure/x', headers: { host: 'shop.example.com' } });
    assert.equal(noTls.status, 200, 'without a TLS listener the request is proxied');
  });
});

describe('policy: upstream connection cap and queue timeout', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'capped' });
    p = await startProxy(makeTable([{
      name: 'capped',
      to: [{ service: 'capped', endpoints: [{ id: 'c1', port: up.port }] }],
      policy: { upstream: { maxConnections: 1, queueTimeoutMs: 300 } },
    }]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  const queued = (): Promise<number> => metricValue(p.metrics, 'switchyard_upstream_queued_requests', { route: 'capped' });

  it('a request that waits for a connection longer than queueTimeoutMs: 503 SY_QUEUE_TIMEOUT, counted in the queue gauge meanwhile', async () => {
    // The one connection is busy for 2 s.
    const busy = send(p.port, { path: '/busy', headers: { 'x-test-delay-ms': '2000' } });
    await waitFor('the first request to hold the only connection', () => up.inflight === 1);
    const waiting = send(p.port, { path: '/waiting' });
    await waitFor('the second request to be counted as queued', async () => await queued() === 1);
    const reply = await waiting;
    assert.equal(reply.status, 503);
    assert.equal(reply.json<ErrorJson>().error, 'SY_QUEUE_TIMEOUT');
    assert.equal(await queued(), 0, 'no longer queued once answered');
    await waitFor('the queue timeout access line', () => p.accessLines().some((l) => l.path === '/waiting' && l.status === 503 && l.error === 'SY_QUEUE_TIMEOUT' && l.end === 'queue_timeout'));
    assert.equal((await busy).status, 200);
    // The abandoned request leaves undici's queue when it reaches the connection, without being sent.
    const after = await send(p.port, { path: '/after' });
    assert.equal(after.status, 200);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'capped', code: 'SY_QUEUE_TIMEOUT' }), 1);
    assert.equal(up.requests, 2, 'the upstream saw /busy and /after, never /waiting');
    assert.equal(await queued(), 0);
  });
});
