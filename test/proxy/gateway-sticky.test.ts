/**
 * Sticky sessions (route `sticky: {cookie, ttlMs}`): a cookie naming an endpoint by an opaque id
 * keeps a client on it; new sessions follow the weights; an endpoint that left the table, was
 * drained or ejected is replaced by the normal pick and the cookie rewritten; a retry's endpoint is
 * the one the cookie names; cookie flags (Secure on TLS only); the cookie found among others,
 * quoted, in a second field, in a 60 KB header; garbage values; WebSocket upgrades.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import WebSocket from 'ws';
import type { RoutingTable } from '../../src/model/types.js';
import { stickyId } from '../../src/proxy/http/sticky.js';
import { HAVE_OPENSSL, makePair } from '../tls/certs.js';
import { makeTable, send, startProxy, type EndpointSpec, type Reply, type TestProxy } from './harness.js';

/**
 * An upstream that answers with its name (header `x-name`, and the body); `x-fail: NAME` makes
 * the named one answer 503; `x-upstream-cookie` is sent back as its own Set-Cookie. Header limit
 * 256 KiB, so a 60 KB Cookie reaches it. Upgrades (ws) send the name as the first message.
 */
interface Named {
  name: string;
  port: number;
  requests: number;
  cookieBytes: number;
  server: Server;
}

async function startNamed(name: string): Promise<Named> {
  const named: Named = { name, port: 0, requests: 0, cookieBytes: 0, server: undefined as unknown as Server };
  const server = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    named.requests += 1;
    named.cookieBytes = String(req.headers.cookie ?? '').length;
    req.resume();
    const headers: Record<string, string> = { 'x-name': name, 'content-type': 'text/plain' };
    const own = req.headers['x-upstream-cookie'];
    if (typeof own === 'string') headers['set-cookie'] = own;
    res.writeHead(req.headers['x-fail'] === name ? 503 : 200, headers);
    res.end(name);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.send(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  named.port = (server.address() as AddressInfo).port;
  named.server = server;
  return named;
}

const COOKIE = 'sy_affinity';
const idOf = (name: string): string => stickyId(`svc/${name}`);
const setCookies = (reply: Reply): string[] => {
  const raw = reply.headers['set-cookie'];
  return raw === undefined ? [] : raw;
};
const ours = (reply: Reply): string | undefined => setCookies(reply).find((c) => c.startsWith(`${COOKIE}=`));

describe('proxy: sticky sessions', () => {
  let a: Named;
  let b: Named;
  let c: Named;
  let p: TestProxy | undefined;

  before(async () => {
    [a, b, c] = await Promise.all([startNamed('a'), startNamed('b'), startNamed('c')]);
  });

  afterEach(async () => {
    await p?.close();
    p = undefined;
  });

  after(async () => {
    for (const u of [a, b, c]) {
      u.server.closeAllConnections();
      await new Promise<void>((resolve) => u.server.close(() => resolve()));
    }
  });

  function table(endpoints: EndpointSpec[], policy: Record<string, unknown> = {}, path = '/', ttlMs = 3_600_000): RoutingTable {
    return makeTable([{
      name: 'shop', path, policy, options: { sticky: { cookie: COOKIE, ttlMs } },
      to: [{ service: 'svc', endpoints }],
    }]);
  }
  const ep = (u: Named, weight = 1): EndpointSpec => ({ id: u.name, port: u.port, weight });
  const start = async (t: RoutingTable): Promise<TestProxy> => {
    p = await startProxy(t, { options: { maxHeaderSize: 128 * 1024 } });
    return p;
  };
  const get = (proxy: TestProxy, cookie?: string | string[], headers: Record<string, string> = {}): Promise<Reply> =>
    send(proxy.port, { path: '/cart', headers: cookie === undefined ? headers : { cookie, ...headers } });

  it('new sessions follow the weights (3:1 over 40 sessions), each told its endpoint; the cookie names it by an opaque id', async () => {
    const proxy = await start(table([ep(a, 3), ep(b, 1)]));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const reply = await get(proxy);
      const name = String(reply.headers['x-name']);
      counts[name] = (counts[name] ?? 0) + 1;
      const cookie = ours(reply);
      assert.equal(cookie, `${COOKIE}=${idOf(name)}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`);
      assert.ok(!cookie.includes(String(a.port)) && !cookie.includes('127.0.0.1'), 'no address in the cookie');
    }
    assert.deepEqual(counts, { a: 30, b: 10 });
  });

  it('50 requests with the cookie all reach its endpoint and set no cookie; the balancer is not advanced by them', async () => {
    const proxy = await start(table([ep(a), ep(b), ep(c)]));
    const before = { a: a.requests, b: b.requests, c: c.requests };
    for (let i = 0; i < 50; i++) {
      const reply = await get(proxy, `${COOKIE}=${idOf('b')}`);
      assert.equal(reply.headers['x-name'], 'b');
      assert.equal(ours(reply), undefined);
    }
    assert.deepEqual({ a: a.requests - before.a, b: b.requests - before.b, c: c.requests - before.c }, { a: 0, b: 50, c: 0 });
    // New sessions still go round the pool.
    const next = await Promise.all([get(proxy), get(proxy), get(proxy)]);
    assert.deepEqual(next.map((r) => String(r.headers['x-name'])).sort(), ['a', 'b', 'c']);
  });

  it('finds the cookie among others, with spaces, quoted, or in a second Cookie field; keeps the upstream\'s Set-Cookie', async () => {
    const proxy = await start(table([ep(a), ep(b), ep(c)]));
    const id = idOf('c');
    for (const cookie of [`x=1; ${COOKIE}=${id}; z=2`, `x=1;${COOKIE} = "${id}" ;z`, ['x=1', `${COOKIE}=${id}`], `${COOKIE}x=${idOf('a')}; ${COOKIE}=${id}`, `${COOKIE}=nope; ${COOKIE}=${id}`]) {
      const reply = await get(proxy, cookie);
      assert.equal(reply.headers['x-name'], 'c', JSON.stringify(cookie));
    }
    const fresh = await get(proxy, undefined, { 'x-upstream-cookie': 'session=abc; Path=/' });
    assert.deepEqual(setCookies(fresh).length, 2);
    assert.equal(setCookies(fresh)[0], 'session=abc; Path=/');
    assert.ok(ours(fresh) !== undefined);
  });

  it('garbage, unknown or empty values get the normal pick and a new cookie', async () => {
    const proxy = await start(table([ep(a), ep(b)]));
    for (const value of ['garbage', '', '""', idOf('zzz'), `${idOf('a')}x`, idOf('a').slice(0, 15), '%00%0d%0a', '"unterminated']) {
      const reply = await get(proxy, `${COOKIE}=${value}`);
      assert.equal(reply.status, 200);
      const name = String(reply.headers['x-name']);
      assert.equal(ours(reply), `${COOKIE}=${idOf(name)}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`, value);
    }
  });

  it('a 60 KB Cookie header with the cookie at its end is honoured and forwarded whole', async () => {
    const proxy = await start(table([ep(a), ep(b), ep(c)]));
    const junk = Array.from({ length: 2_000 }, (_, i) => `k${i}=${'v'.repeat(24)}`).join('; ');
    const cookie = `${junk}; ${COOKIE}=${idOf('b')}`;
    assert.ok(cookie.length > 60_000);
    const reply = await get(proxy, cookie);
    assert.equal(reply.headers['x-name'], 'b');
    assert.equal(b.cookieBytes, cookie.length);
    // And one without our cookie: a normal pick.
    const other = await get(proxy, junk);
    assert.ok(ours(other) !== undefined);
  });

  it('an endpoint removed by a table swap, or drained (weight 0), is replaced and the cookie rewritten', async () => {
    const proxy = await start(table([ep(a), ep(b)]));
    const cookieB = `${COOKIE}=${idOf('b')}`;
    assert.equal((await get(proxy, cookieB)).headers['x-name'], 'b');
    proxy.store.swap(table([ep(a), ep(c)]));
    const moved = await get(proxy, cookieB);
    const name = String(moved.headers['x-name']);
    assert.notEqual(name, 'b');
    assert.equal(ours(moved), `${COOKIE}=${idOf(name)}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`);
    // Following the new cookie sticks again.
    for (let i = 0; i < 5; i++) assert.equal((await get(proxy, `${COOKIE}=${idOf(name)}`)).headers['x-name'], name);

    proxy.store.swap(table([ep(a), ep(b, 0), ep(c)]));
    const drained = await get(proxy, cookieB);
    assert.notEqual(drained.headers['x-name'], 'b');
    assert.ok(ours(drained)?.startsWith(`${COOKIE}=${idOf(String(drained.headers['x-name']))};`));
    // Back to weight 1: the cookie is honoured again.
    proxy.store.swap(table([ep(a), ep(b), ep(c)]));
    assert.equal((await get(proxy, cookieB)).headers['x-name'], 'b');
  });

  it('an ejected endpoint is replaced and the cookie rewritten', async () => {
    const proxy = await start(table([ep(a), ep(b)], { retries: { count: 0 }, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100, baseEjectionMs: 60_000 } }));
    const cookieB = `${COOKIE}=${idOf('b')}`;
    const failed = await get(proxy, cookieB, { 'x-fail': 'b' });
    assert.equal(failed.status, 503);
    assert.equal(ours(failed), undefined, 'b answered: its cookie stands');
    assert.deepEqual(proxy.proxy.runtimes.ejectedEndpoints().map((e) => e.endpoint), ['svc/b']);
    const moved = await get(proxy, cookieB);
    assert.equal(moved.headers['x-name'], 'a');
    assert.equal(ours(moved), `${COOKIE}=${idOf('a')}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`);
  });

  it('a retry that moves the request rewrites the cookie to the endpoint that answered', async () => {
    const proxy = await start(table([ep(a), ep(b)], { retries: { count: 1, on: ['503'] }, outlier: { consecutiveFailures: 0 } }));
    const reply = await get(proxy, `${COOKIE}=${idOf('b')}`, { 'x-fail': 'b' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-name'], 'a');
    assert.equal(ours(reply), `${COOKIE}=${idOf('a')}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`);
  });

  it('Path is the route\'s prefix; ttlMs 0 is a session cookie', async () => {
    const proxy = await start(table([ep(a)], {}, '/cart', 0));
    assert.equal(ours(await get(proxy)), `${COOKIE}=${idOf('a')}; Path=/cart; HttpOnly; SameSite=Lax`);
  });

  it('WebSocket upgrades go to the cookie\'s endpoint', async () => {
    const proxy = await start(table([ep(a), ep(b), ep(c)]));
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/live`, { headers: { cookie: `${COOKIE}=${idOf('c')}` } });
      const first = await new Promise<string>((resolve, reject) => {
        ws.once('message', (data) => resolve(String(data)));
        ws.once('error', reject);
      });
      ws.close();
      assert.equal(first, 'c');
    }
  });

  it('the cookie is Secure on the TLS listener only', { skip: HAVE_OPENSSL ? false : 'openssl is not installed' }, async () => {
    const proxy = await start(table([ep(a)]));
    const pair = await makePair({ cn: 'shop.test', dns: ['shop.test'] });
    const tls = await proxy.proxy.listenTls('127.0.0.1', 0, { serverOptions: () => ({ cert: pair.cert, key: pair.key }), attach: () => () => undefined });
    const cookie = await new Promise<string | undefined>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: tls.port, path: '/cart', servername: 'shop.test', rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve((res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${COOKIE}=`))));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(cookie, `${COOKIE}=${idOf('a')}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure`);
    assert.ok(!(ours(await get(proxy)) ?? '').includes('Secure'));
  });
});

describe('sticky: ids', () => {
  it('are 16 base64url characters, deterministic, distinct per endpoint', () => {
    assert.match(stickyId('svc/a'), /^[A-Za-z0-9_-]{16}$/);
    assert.equal(stickyId('svc/a'), stickyId('svc/a'));
    assert.notEqual(stickyId('svc/a'), stickyId('svc/b'));
    // sha256("svc/a"), base64url, first 16 characters: the same in every process and release.
    assert.equal(stickyId('svc/a'), 'PoZPaBmBFLOLaehm');
  });
});
