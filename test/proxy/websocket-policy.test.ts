/**
 * Upgrade requests under the route's policy: an `Upgrade` header is no way around the rate limit,
 * the concurrency limit (an open tunnel counts until it closes) or the HTTPS redirect; connect
 * failures are retried on another endpoint and count for outlier ejection; an upstream that never
 * answers the upgrade gets the response-headers timeout; one that closes without answering is a 502.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { refusedPort, startUpstream, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

interface Outcome {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  ws?: WebSocket;
}

/** Send a raw upgrade request; resolves with the socket and what it has received so far. */
function rawUpgrade(port: number, path: string): Promise<{ socket: Socket; received: () => string }> {
  return deadline(new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n`
        + 'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      resolve({ socket, received: () => text });
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('error', reject);
  }), 5_000, `raw upgrade ${path}`);
}

/** Try a WebSocket upgrade: 101 resolves with the open socket, anything else with the response. */
function upgrade(port: number, path: string): Promise<Outcome> {
  return deadline(new Promise<Outcome>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.once('open', () => resolve({ status: 101, headers: {}, body: '', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    ws.once('error', reject);
  }), 5_000, `upgrade ${path}`);
}

/** `count` upgrades to `<prefix>/<i>` in turn, each answered 101; all closed again afterwards. */
async function allUpgraded(port: number, prefix: string, count: number): Promise<void> {
  const opened: WebSocket[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const outcome = await upgrade(port, `${prefix}/${i}`);
      assert.equal(outcome.status, 101, `upgrade ${i}`);
      opened.push(outcome.ws!);
    }
  } finally {
    for (const socket of opened) socket.close();
  }
}

/**
 * A TCP server that does `behaviour` with each connection: never answer, close (FIN) once the
 * request head arrives, answer a 400 and keep the connection open regardless, or answer non-HTTP.
 */
async function rawUpstream(behaviour: 'silent' | 'close-after-head' | 'stubborn-400' | 'garbage' | 'unavailable'): Promise<{ server: Server; port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (behaviour === 'close-after-head') socket.once('data', () => socket.destroy());
    if (behaviour === 'stubborn-400') socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno'));
    if (behaviour === 'garbage') socket.once('data', () => socket.write('NOT-HTTP\r\n'));
    if (behaviour === 'unavailable') socket.once('data', () => socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n'));
    if (behaviour !== 'close-after-head') socket.on('end', () => undefined); // half-closed: stay open
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('proxy: upgrade requests under the route policy', () => {
  let ws: TestUpstream;
  let plain: TestUpstream;
  let silent: Awaited<ReturnType<typeof rawUpstream>>;
  let closer: Awaited<ReturnType<typeof rawUpstream>>;
  let stubborn: Awaited<ReturnType<typeof rawUpstream>>;
  let garbage: Awaited<ReturnType<typeof rawUpstream>>;
  let unavailable: Awaited<ReturnType<typeof rawUpstream>>;
  let deadPort: number;
  let p: TestProxy;

  before(async () => {
    ws = await startUpstream({ name: 'ws', websocket: true });
    plain = await startUpstream({ name: 'plain' });
    silent = await rawUpstream('silent');
    closer = await rawUpstream('close-after-head');
    stubborn = await rawUpstream('stubborn-400');
    garbage = await rawUpstream('garbage');
    unavailable = await rawUpstream('unavailable');
    deadPort = await refusedPort();
    const live = { service: 'ws', endpoints: [{ id: 'ws1', port: ws.port }] };
    p = await startProxy(makeTable([
      { name: 'limited', path: '/limited', to: [live], policy: { rateLimit: { requestsPerSecond: 0.1, burst: 2 } } },
      { name: 'plain-limited', path: '/plain-limited', to: [{ service: 'plain', endpoints: [{ id: 'p1', port: plain.port }] }], policy: { rateLimit: { requestsPerSecond: 0.1, burst: 1 } } },
      { name: 'narrow', path: '/narrow', to: [live], policy: { concurrency: { max: 1 } } },
      { name: 'secure', path: '/secure', to: [live], policy: { redirectToHttps: true } },
      {
        name: 'flaky',
        path: '/flaky',
        to: [{ service: 'mixed', endpoints: [{ id: 'dead', port: deadPort }, { id: 'live', port: ws.port }] }],
        policy: { retries: { count: 1, on: ['connect-failure'] }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 } },
      },
      { name: 'silent', path: '/silent', to: [{ service: 'silent', endpoints: [{ id: 's1', port: silent.port }] }], policy: { timeouts: { headersMs: 200 } } },
      { name: 'closer', path: '/closer', to: [{ service: 'closer', endpoints: [{ id: 'c1', port: closer.port }] }], policy: { retries: { count: 0 } } },
      {
        name: 'fin-retry',
        path: '/fin-retry',
        to: [{ service: 'fin', endpoints: [{ id: 'closer', port: closer.port }, { id: 'live', port: ws.port }] }],
        policy: { retries: { count: 1, on: ['reset'] }, outlier: { consecutiveFailures: 0 } },
      },
      { name: 'waiting', path: '/waiting', to: [{ service: 'silent', endpoints: [{ id: 's1', port: silent.port }] }], policy: { concurrency: { max: 1 } } },
      { name: 'stubborn', path: '/stubborn', to: [{ service: 'stubborn', endpoints: [{ id: 'st1', port: stubborn.port }] }] },
      {
        name: 'busy-retry',
        path: '/busy-retry',
        to: [{ service: 'busy', endpoints: [{ id: 'down', port: unavailable.port }, { id: 'live', port: ws.port }] }],
        policy: { retries: { count: 1, on: ['503'] }, outlier: { consecutiveFailures: 0 } },
      },
      { name: 'busy', path: '/busy', to: [{ service: 'busy', endpoints: [{ id: 'down', port: unavailable.port }] }] },
      { name: 'idle', path: '/idle', to: [live], policy: { timeouts: { tunnelIdleMs: 1_000 } } },
      { name: 'garbage', path: '/garbage', to: [{ service: 'garbage', endpoints: [{ id: 'g1', port: garbage.port }] }] },
    ]), { options: { httpsPort: 8443 } });
  });

  after(async () => {
    await p.close();
    await Promise.all([ws.close(), plain.close(), silent.close(), closer.close(), stubborn.close(), garbage.close(), unavailable.close()]);
  });

  it('rate limit: upgrades beyond the burst get 429 with Retry-After and never reach the upstream', async () => {
    const before = ws.requests;
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await upgrade(p.port, '/limited/x'));
    try {
      assert.deepEqual(outcomes.map((o) => o.status), [101, 101, 429, 429]);
      assert.equal(outcomes[2]!.headers['retry-after'], '10');
      assert.equal((JSON.parse(outcomes[2]!.body) as { error: string }).error, 'SY_RATE_LIMITED');
      assert.equal(ws.requests - before, 2, 'only the admitted upgrades reached the upstream');
      assert.equal(await metricValue(p.metrics, 'switchyard_rate_limited_total', { route: 'limited' }), 2);
    } finally {
      for (const o of outcomes) o.ws?.close();
    }
  });

  it('rate limit: an Upgrade header on a plain request does not get around the limit', async () => {
    const headers = { connection: 'upgrade', upgrade: 'websocket' };
    const first = await send(p.port, { path: '/plain-limited/a', headers });
    const second = await send(p.port, { path: '/plain-limited/b', headers });
    const third = await send(p.port, { path: '/plain-limited/c' });
    assert.deepEqual([first.status, second.status, third.status], [200, 429, 429]);
    assert.equal(second.json<{ error: string }>().error, 'SY_RATE_LIMITED');
    assert.equal(await metricValue(p.metrics, 'switchyard_rate_limited_total', { route: 'plain-limited' }), 2);
  });

  it('concurrency: an open tunnel holds its slot; a second upgrade gets 503 until it closes', async () => {
    const first = await upgrade(p.port, '/narrow/1');
    assert.equal(first.status, 101);
    const second = await upgrade(p.port, '/narrow/2');
    assert.equal(second.status, 503);
    assert.equal((JSON.parse(second.body) as { error: string }).error, 'SY_OVERLOADED');
    assert.equal(await metricValue(p.metrics, 'switchyard_overloaded_total', { route: 'narrow' }), 1);
    first.ws!.close();
    await waitFor('the tunnel to give its slot back', () => p.proxy.runtimes.current?.byName.get('narrow')?.state.inflight === 0);
    const third = await upgrade(p.port, '/narrow/3');
    assert.equal(third.status, 101);
    third.ws!.close();
    await waitFor('the last tunnel to close', () => p.proxy.runtimes.current?.byName.get('narrow')?.state.inflight === 0);
  });

  it('redirectToHttps: a plain upgrade gets 308 to the TLS listener', async () => {
    const before = ws.requests;
    const outcome = await upgrade(p.port, '/secure/room?x=1');
    assert.equal(outcome.status, 308);
    assert.equal(outcome.headers.location, 'https://127.0.0.1:8443/secure/room?x=1');
    assert.equal(ws.requests, before);
  });

  it('a refused connect is retried on another endpoint, and repeated failures eject the endpoint', async () => {
    await allUpgraded(p.port, '/flaky', 6);
    const retried = await metricValue(p.metrics, 'switchyard_retries_total', { route: 'flaky', reason: 'connect-failure' });
    assert.ok(retried >= 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'flaky', code: 'SY_UPSTREAM_CONNECT' }), retried, 'each retried failure is counted');
    const ejected = p.proxy.runtimes.ejectedEndpoints().map((e) => e.endpoint);
    assert.deepEqual(ejected, ['mixed/dead']);
    await waitFor('an access line with two attempts', () => p.accessLines().some((l) => l.route === 'flaky' && l.upgrade === true && l.attempts === 2));
  });

  it('an upstream that never answers the upgrade: 504 SY_UPSTREAM_TIMEOUT at the headers timeout', async () => {
    const outcome = await upgrade(p.port, '/silent/x');
    assert.equal(outcome.status, 504);
    assert.equal((JSON.parse(outcome.body) as { error: string }).error, 'SY_UPSTREAM_TIMEOUT');
    assert.equal(silent.accepted(), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_timeouts_total', { route: 'silent', kind: 'headers' }), 1);
  });

  it('an upstream that closes without answering: 502 SY_UPSTREAM_RESET (the request was sent), not a cut connection', async () => {
    const outcome = await upgrade(p.port, '/closer/x');
    assert.equal(outcome.status, 502);
    assert.equal((JSON.parse(outcome.body) as { error: string }).error, 'SY_UPSTREAM_RESET');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'closer', code: 'SY_UPSTREAM_RESET' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_errors_total', { route: 'closer', code: 'SY_UPSTREAM_CONNECT' }), 0);
    await waitFor('every tunnel to be gone', () => p.proxy.upgrades.size === 0);
  });

  it('an upstream that closes (FIN) without answering is retried on another endpoint when the route retries resets', async () => {
    const before = await metricValue(p.metrics, 'switchyard_retries_total', { route: 'fin-retry', reason: 'reset' });
    await allUpgraded(p.port, '/fin-retry', 4);
    assert.ok(await metricValue(p.metrics, 'switchyard_retries_total', { route: 'fin-retry', reason: 'reset' }) - before >= 1);
    await waitFor('a retried tunnel logged as 101 with two attempts', () => p.accessLines().some((l) => l.route === 'fin-retry' && l.status === 101 && l.attempts === 2));
  });

  it('a client that leaves before the upstream answers frees its concurrency slot at once, logged as 499', async () => {
    const route = () => p.proxy.runtimes.current?.byName.get('waiting');
    const acceptedBefore = silent.accepted();
    const { socket } = await rawUpgrade(p.port, '/waiting/x');
    await waitFor('the upgrade to wait at the upstream', () => silent.accepted() === acceptedBefore + 1 && route()?.state.inflight === 1);
    socket.end(); // FIN, and nothing else: the default 60 s headers timeout is far away
    await waitFor('the slot and the tunnel to be released', () => route()?.state.inflight === 0 && p.proxy.upgrades.size === 0);
    await waitFor('a 499 access line ending client_closed', () => p.accessLines().some((l) => l.route === 'waiting' && l.status === 499 && l.end === 'client_closed'));
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_timeouts_total', { route: 'waiting' }), 0);
    socket.destroy();
  });

  it('a refusal from an upstream that keeps its connection open: relayed, and the tunnel ends when the client leaves', async () => {
    const { socket, received } = await rawUpgrade(p.port, '/stubborn/x');
    await waitFor('the 400 answer', () => received().includes('\r\n\r\nno'));
    assert.match(received(), /^HTTP\/1\.1 400 Bad Request/);
    socket.end();
    await waitFor('the tunnel to end', () => p.proxy.upgrades.size === 0 && p.proxy.runtimes.current?.byName.get('stubborn')?.state.inflight === 0);
    await waitFor('a 400 access line', () => p.accessLines().some((l) => l.route === 'stubborn' && l.status === 400));
    socket.destroy();
  });

  it('an upstream that answers the upgrade with something other than HTTP: 502 SY_UPSTREAM_BAD_RESPONSE, counted against the endpoint', async () => {
    const outcome = await upgrade(p.port, '/garbage/x');
    assert.equal(outcome.status, 502);
    assert.equal((JSON.parse(outcome.body) as { error: string }).error, 'SY_UPSTREAM_BAD_RESPONSE');
    assert.equal(p.proxy.runtimes.current?.byName.get('garbage')?.state.healthOf('garbage/g1').consecutive, 1, 'one failure of the endpoint');
  });

  it('tunnel idle timeout: a WebSocket silent both ways is closed and counted; one with traffic stays open', async () => {
    const busy = await upgrade(p.port, '/idle/busy');
    const quiet = await upgrade(p.port, '/idle/quiet');
    assert.equal(busy.status, 101);
    assert.equal(quiet.status, 101);
    const quietClosed = new Promise<number>((resolve) => quiet.ws!.once('close', () => resolve(performance.now())));
    const openedAt = performance.now();
    let busyClosed = false;
    busy.ws!.once('close', () => { busyClosed = true; });
    // Traffic on one tunnel every 100 ms (a tenth of the 1 s idle timeout, so a loaded machine's
    // late timers cannot make it idle) for 1.5 s; nothing on the other.
    for (let i = 0; i < 15; i++) {
      busy.ws!.send(`tick ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const closedAt = await deadline(quietClosed, 5_000, 'the quiet tunnel to be closed');
    assert.ok(closedAt - openedAt >= 900, `closed after ${closedAt - openedAt} ms, before the idle timeout`);
    assert.equal(busyClosed, false, 'the tunnel with traffic is still open');
    assert.equal(await metricValue(p.metrics, 'switchyard_upstream_timeouts_total', { route: 'idle', kind: 'tunnel' }), 1);
    await waitFor('the access line with the reason and end tunnel_idle', () => p.accessLines().some((l) => l.route === 'idle' && l.reason === 'tunnel idle for 1000 ms' && l.end === 'tunnel_idle' && l.status === 101));
    busy.ws!.close();
  });

  it('a 503 answer to the upgrade is retried on another endpoint when the route retries 503; relayed otherwise', async () => {
    await allUpgraded(p.port, '/busy-retry', 4);
    const retried = await metricValue(p.metrics, 'switchyard_retries_total', { route: 'busy-retry', reason: '503' });
    assert.ok(retried >= 1);
    assert.equal(retried, unavailable.accepted(), 'every upgrade that got a 503 went again');
    const relayed = await upgrade(p.port, '/busy/x');
    assert.equal(relayed.status, 503, 'no retry policy for 503: the answer is relayed');
  });
});
