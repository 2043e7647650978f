/**
 * Route policy timeouts against fault-injecting upstreams: connect (a port whose connects hang),
 * response headers (slow head), body idle (slow body), total (hang, and a body longer than the
 * deadline). Each expiry is a 504 SY_UPSTREAM_TIMEOUT (or a cut connection once the head is out)
 * and is counted by kind.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { blackholePort, type Blackhole } from '../support/faulty-upstream.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

interface ErrorJson { error: string; message: string }

/** GET through the proxy, reading whatever arrives until the response ends or the connection breaks. */
function fetchRaw(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string; ended: boolean }> {
  return deadline(new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ended: true }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, ended: false }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, ended: false }));
    });
    req.on('error', () => resolve({ status: 0, body: '', ended: false }));
    req.end();
  }), 10_000, `GET ${path}`);
}

const timeouts = (p: TestProxy, route: string, kind: string): Promise<number> =>
  metricValue(p.metrics, 'switchyard_upstream_timeouts_total', { route, kind });

describe('proxy: per-route timeouts', () => {
  let up: TestUpstream;
  let alive: TestUpstream;
  let hole: Blackhole;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'slow' });
    alive = await startUpstream({ name: 'alive' });
    hole = await blackholePort();
    p = await startProxy(makeTable([
      { name: 'headers', path: '/headers', to: [{ service: 'slow', endpoints: [{ id: 's1', port: up.port }] }], policy: { timeouts: { headersMs: 200 } } },
      { name: 'body', path: '/body', to: [{ service: 'slow', endpoints: [{ id: 's1', port: up.port }] }], policy: { timeouts: { bodyIdleMs: 250 } } },
      { name: 'total', path: '/total', to: [{ service: 'slow', endpoints: [{ id: 's1', port: up.port }] }], policy: { timeouts: { totalMs: 300 } } },
      { name: 'connect', path: '/connect', to: [{ service: 'hole', endpoints: [{ id: 'h1', port: hole.port }] }], policy: { timeouts: { connectMs: 200 } } },
      {
        name: 'connect-retry',
        path: '/connect-retry',
        to: [{ service: 'mixed', endpoints: [{ id: 'h1', port: hole.port }, { id: 'a1', port: alive.port }] }],
        policy: { timeouts: { connectMs: 200 } },
      },
      { name: 'generous', path: '/generous', to: [{ service: 'slow', endpoints: [{ id: 's1', port: up.port }] }], policy: { timeouts: { headersMs: 5_000 } } },
    ]), { upstream: { headersTimeoutMs: 100 } });
  });

  after(async () => {
    await p.close();
    await Promise.all([up.close(), alive.close(), hole.close()]);
  });

  it('response headers: 504 at the route deadline, counted as kind=headers', async () => {
    const started = Date.now();
    // The upstream would answer after 30 s, the client waits up to 60 s: the 10 s bound rules out
    // a 504 sent only when the upstream answers or the client gives up (the deadline is 200 ms).
    const reply = await send(p.port, { path: '/headers/x', headers: { 'x-test-delay-ms': '30000' }, timeoutMs: 60_000 });
    assert.equal(reply.status, 504);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'answered at the 200 ms deadline, not when the upstream would have');
    assert.equal(await timeouts(p, 'headers', 'headers'), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'headers', code: 'SY_UPSTREAM_TIMEOUT' }), 1);
  });

  it('the route policy wins over the pool default (100 ms here): a 400 ms answer passes under a 5 s policy', async () => {
    const reply = await send(p.port, { path: '/generous', headers: { 'x-test-delay-ms': '400' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.json<EchoReply>().upstream, 'slow');
  });

  it('body idle: chunks closer than the limit pass; a longer silence cuts the response (kind=body)', async () => {
    const ok = await fetchRaw(p.port, '/body/ok', { 'x-test-action': 'slow-body', 'x-test-chunks': '4', 'x-test-chunk-delay-ms': '50' });
    assert.deepEqual(ok, { status: 200, body: 'chunk\n'.repeat(4), ended: true });
    const cut = await fetchRaw(p.port, '/body/cut', { 'x-test-action': 'slow-body', 'x-test-chunks': '3', 'x-test-chunk-delay-ms': '1500' });
    // The upstream's head was accepted before the body stalled, so no 504 can follow: the client
    // connection is cut (node sends a head with the first body bytes, so the client may not even
    // have seen the 200).
    assert.ok(cut.status === 200 || cut.status === 0, `status ${cut.status}`);
    assert.equal(cut.ended, false, 'the client connection is cut, not ended cleanly');
    assert.equal(cut.body, '');
    await waitFor('a body timeout to be counted', async () => await timeouts(p, 'body', 'body') === 1);
    await waitFor('the upstream request to be aborted', () => up.inflight === 0);
  });

  it('total: 504 when the upstream hangs, and the upstream request is aborted (kind=total)', async () => {
    const started = Date.now();
    // The upstream never answers and the client waits up to 60 s: the 10 s bound rules out an
    // exchange ended by the client giving up instead of by the 300 ms total deadline.
    const reply = await send(p.port, { path: '/total/hang', headers: { 'x-test-action': 'hang' }, timeoutMs: 60_000 });
    assert.equal(reply.status, 504);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'answered at the total deadline');
    assert.equal(await timeouts(p, 'total', 'total'), 1);
    await waitFor('the hung upstream request to be aborted', () => up.inflight === 0);
  });

  it('total: a body still streaming at the deadline is cut', async () => {
    const cut = await fetchRaw(p.port, '/total/stream', { 'x-test-action': 'slow-body', 'x-test-chunks': '10', 'x-test-chunk-delay-ms': '100' });
    assert.equal(cut.status, 200);
    assert.equal(cut.ended, false);
    assert.ok(cut.body.length < 'chunk\n'.length * 10, 'not every chunk arrived');
    await waitFor('the second total timeout to be counted', async () => await timeouts(p, 'total', 'total') === 2);
  });

  it('connect: 504 when the TCP connect hangs past connectMs (kind=connect), on a pool of its own', async () => {
    const started = Date.now();
    // The connect never completes (the kernel drops the SYNs) and the client waits up to 60 s: the
    // 10 s bound rules out waiting for the OS connect timeout (minutes of SYN retries on Linux) or
    // for the client to give up, instead of the route's 200 ms connectMs.
    const reply = await send(p.port, { path: '/connect', timeoutMs: 60_000 });
    assert.equal(reply.status, 504);
    assert.equal(reply.json<ErrorJson>().error, 'SY_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'answered at the connect deadline');
    assert.equal(await timeouts(p, 'connect', 'connect'), 1);
    assert.ok(p.upstreams.origins().includes(`http://127.0.0.1:${hole.port} connect=200`), 'routes with their own connect timeout get their own pool');
    assert.ok(p.upstreams.origins().includes(up.origin), 'routes with the default connect timeout share the plain pool');
  });

  it('a connect timeout is a connect failure: the request is retried on another endpoint', async () => {
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await send(p.port, { path: `/connect-retry/${i}` }));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
    assert.ok(replies.every((r) => r.json<EchoReply>().upstream === 'alive'));
    const retried = await metricValue(p.metrics, 'switchyard_retries_total', { route: 'connect-retry', reason: 'connect-failure' });
    assert.ok(retried >= 1, `retries counted (${retried})`);
    assert.equal(await timeouts(p, 'connect-retry', 'connect'), retried, 'each retried attempt was a counted connect timeout');
  });
});
