/**
 * Redirect routes (`redirect: {to, status, keepQuery}`): answered by the proxy, no upstream; the
 * `{path}` and `{host}` placeholders, the query kept or not, every status, the access line and
 * switchyard_requests_total with the route's label, upgrade requests, and requests whose Location
 * cannot be made.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RedirectStatus, RouteRedirect } from '../../src/model/types.js';
import { RedirectTemplate } from '../../src/proxy/http/redirect.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { makeTable, metricValue, send, startProxy, type RouteSpec, type TestProxy } from './harness.js';

describe('redirect: Location', () => {
  const cases: [string, boolean, string, string | undefined, string | undefined][] = [
    // to, keepQuery, request, Host, Location
    ['https://www.example.com/home', false, '/home.php?a=1', 'www.example.com', 'https://www.example.com/home'],
    ['https://www.example.com/home', true, '/home.php?a=1&b', 'www.example.com', 'https://www.example.com/home?a=1&b'],
    ['https://www.example.com/home', true, '/home.php?', 'www.example.com', 'https://www.example.com/home'],
    ['https://{host}{path}', true, '/a/b%2Fc//d?x=1', 'Old.Example.com:8080', 'https://old.example.com/a/b%2Fc//d?x=1'],
    ['https://{host}{path}', false, '/a?x=1', '[::1]:8080', 'https://[::1]/a'],
    ['https://new.example.com/v2{path}', true, '/p', 'x', 'https://new.example.com/v2/p'],
    ['/search?from=old', true, '/s?q=cats', 'x', '/search?from=old&q=cats'],
    ['/docs#top', true, '/d?v=2', 'x', '/docs?v=2#top'],
    ['https://{host}/{path}/{host}', false, '/p', 'h.example', 'https://h.example//p/h.example'],
    ['https://{host}/x', false, '/p', undefined, undefined],
    ['https://{host}/x', false, '/p', '', undefined],
    ['/plain{path}', false, '/a\r\nx', 'x', undefined],
    // Open-redirect guard: never a protocol-relative Location (`//host`, `/\\host`).
    ['/{path}', false, '/evil.com/phish', 'x', '/evil.com/phish'],
    ['/{path}', false, '//evil.com', 'x', '/evil.com'],
    ['/{path}', true, '/?a=1', 'x', '/?a=1'],
    ['{path}', false, '//evil.com/x', 'x', '/evil.com/x'],
    ['{path}', false, '/\\/\\evil.com', 'x', '/evil.com'],
    ['//{host}{path}', false, '/p', 'h.example', '/h.example/p'],
    ['/old{path}', false, '//evil.com', 'x', '/old//evil.com'],
    ['https://example.com{path}', false, '//evil.com', 'x', 'https://example.com//evil.com'],
  ];
  for (const [to, keepQuery, url, host, expected] of cases) {
    it(`${to} keepQuery=${String(keepQuery)}: ${JSON.stringify(url)} Host ${String(host)} → ${String(expected)}`, () => {
      const template = new RedirectTemplate({ to, status: 301, keepQuery });
      assert.equal(template.location(url, host), expected);
    });
  }
});

describe('proxy: redirect routes', () => {
  let up: TestUpstream;
  let p: TestProxy;

  const redirectRoute = (name: string, host: string | undefined, path: string, redirect: RouteRedirect): RouteSpec =>
    ({ name, ...(host === undefined ? {} : { host }), path, options: { redirect }, to: [] });

  before(async () => {
    up = await startUpstream({ name: 'a' });
    p = await startProxy(makeTable([
      redirectRoute('old-home', 'www.example.com', '/home.php', { to: 'https://www.example.com/home', status: 301, keepQuery: true }),
      redirectRoute('moved', undefined, '/moved', { to: 'https://{host}/new{path}', status: 308, keepQuery: false }),
      ...([302, 303, 307] as const).map((status) => redirectRoute(`s${status}`, undefined, `/s${status}`, { to: `/target-${status}`, status, keepQuery: true })),
      { name: 'app', path: '/', to: [{ service: 'app', endpoints: [{ id: 'a', port: up.port }] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('answers 301 with the Location, Content-Length 0 and the request id; no upstream is asked', async () => {
    const before = up.requests;
    const reply = await send(p.port, { path: '/home.php?id=7', headers: { host: 'www.example.com', 'x-request-id': 'r-1' } });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, 'https://www.example.com/home?id=7');
    assert.equal(reply.headers['content-length'], '0');
    assert.equal(reply.headers['x-request-id'], 'r-1');
    assert.equal(reply.headers['cache-control'], undefined);
    assert.equal(reply.body.length, 0);
    assert.equal(up.requests, before);
  });

  it('{host} (no port, lower-case) and {path} (no query: keepQuery false)', async () => {
    const reply = await send(p.port, { path: '/moved/a//b%2F?x=1', headers: { host: 'Shop.Example.com:8080' } });
    assert.equal(reply.status, 308);
    assert.equal(reply.headers.location, 'https://shop.example.com/new/moved/a//b%2F');
  });

  for (const status of [302, 303, 307] as const) {
    it(`status ${status}`, async () => {
      const reply = await send(p.port, { method: 'POST', path: `/s${status}?k=v`, body: 'payload' });
      assert.equal(reply.status, status);
      assert.equal(reply.headers.location, `/target-${status}?k=v`);
    });
  }

  it('counts the answer under the route and writes one access line', async () => {
    const count = (): Promise<number> => metricValue(p.metrics, 'switchyard_requests_total', { route: 's302', code: '302' });
    const before = await count();
    const reply = await send(p.port, { path: '/s302', headers: { 'x-request-id': 'count-me' } });
    assert.equal(reply.status, 302);
    await waitFor('the redirect counted', async () => (await count()) === before + 1);
    const line = await waitFor('the access line', () => p.accessLines().find((l) => l['reqId'] === 'count-me'));
    assert.equal(line['route'], 's302');
    assert.equal(line['status'], 302);
    assert.equal(line['upstream'], undefined);
  });

  it('an upgrade request on a redirect route gets the redirect, then the connection closes', async () => {
    const socket = connect(p.port, '127.0.0.1');
    socket.write('GET /moved/ws HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
      + 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    let text = '';
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
    await new Promise<void>((resolve, reject) => {
      socket.once('close', () => resolve());
      socket.once('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 308 Permanent Redirect\r\n/);
    assert.match(text, /\r\nlocation: https:\/\/ws\.example\.com\/new\/moved\/ws\r\n/);
    assert.match(text, /\r\ncontent-length: 0\r\n/);
  });

  it('a {host} redirect without a Host header is a 400, never a broken Location', async () => {
    const socket = connect(p.port, '127.0.0.1');
    socket.write('GET /moved/x HTTP/1.0\r\n\r\n');
    let text = '';
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.doesNotMatch(text, /location:/i);
  });

  it('the statuses a redirect may have are the model\'s', () => {
    const statuses: RedirectStatus[] = [301, 302, 303, 307, 308];
    for (const status of statuses) assert.equal(new RedirectTemplate({ to: '/x', status, keepQuery: false }).status, status);
  });
});

/**
 * The open-redirect guard through the real proxy: a root redirect route `to: "/{path}"` (and
 * `{path}`, what tag-routes makes of Fabio's `redirect=302,/$path`) never answers with a
 * protocol-relative Location that a browser would follow to another site.
 */
describe('proxy: redirect routes never send a protocol-relative Location', () => {
  let root: TestProxy;
  let fabio: TestProxy;
  const rootRedirect = (to: string): RouteSpec => ({ name: 'root', path: '/', options: { redirect: { to, status: 302, keepQuery: true } }, to: [] });

  /** The status line and Location of a raw request (backslashes and `//` sent as written). */
  async function rawLocation(port: number, target: string): Promise<[string, string | undefined]> {
    const socket = connect(port, '127.0.0.1');
    socket.write(`GET ${target} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n`);
    let text = '';
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
    await new Promise<void>((resolve, reject) => {
      socket.once('close', () => resolve());
      socket.once('error', reject);
    });
    return [text.slice(0, text.indexOf('\r\n')), /\r\nlocation: ([^\r]*)\r\n/i.exec(text)?.[1]];
  }

  before(async () => {
    root = await startProxy(makeTable([rootRedirect('/{path}')]));
    fabio = await startProxy(makeTable([rootRedirect('{path}')]));
  });

  after(async () => {
    await root.close();
    await fabio.close();
  });

  it('/{path}: GET /evil.com/phish → Location /evil.com/phish; GET //evil.com → /evil.com', async () => {
    const phish = await send(root.port, { path: '/evil.com/phish?x=1', headers: { host: 'www.example.com' } });
    assert.equal(phish.status, 302);
    assert.equal(phish.headers.location, '/evil.com/phish?x=1');
    const double = await send(root.port, { path: '//evil.com', headers: { host: 'www.example.com' } });
    assert.equal(double.status, 302);
    assert.equal(double.headers.location, '/evil.com');
  });

  it('{path} (Fabio\'s /$path): //evil.com and ///evil.com stay on the site; /\\evil.com is refused', async () => {
    assert.deepEqual(await rawLocation(fabio.port, '//evil.com/phish'), ['HTTP/1.1 302 Found', '/evil.com/phish']);
    // A raw backslash in the target never reaches the route (the edge refuses it); the guard's
    // handling of `/\\` is the unit cases' above.
    assert.deepEqual(await rawLocation(fabio.port, '/\\evil.com'), ['HTTP/1.1 400 Bad Request', undefined]);
    assert.deepEqual(await rawLocation(root.port, '///evil.com'), ['HTTP/1.1 302 Found', '/evil.com']);
  });
});
