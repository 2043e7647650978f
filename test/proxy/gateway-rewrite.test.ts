/**
 * Path and Host rewriting (route `rewrite:` and `strip`): the rules in src/proxy/http/rewrite.ts,
 * table-driven on the functions, then through the proxy to a real upstream that echoes what it got
 * (path, Host, X-Forwarded-Prefix or X-Replaced-Path), plain requests and WebSocket upgrades, and a huge path against
 * a regex rewrite.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { RouteOptions } from '../../src/model/types.js';
import { REPLACED_PATH_MAX } from '../../src/proxy/http/forwarded-headers.js';
import { PrefixRewrite, RegexRewrite, replacementParts } from '../../src/proxy/http/rewrite.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, send, startProxy, type RouteSpec, type TestProxy } from './harness.js';

describe('rewrite: prefix replacement', () => {
  const cases: [string, string, string, string][] = [
    // route path, rewrite.path, request, forwarded
    ['/api', '/v2', '/api/x?q=1', '/v2/x?q=1'],
    ['/api', '/v2', '/api', '/v2'],
    ['/api', '/v2', '/api/', '/v2/'],
    ['/api', '/v2', '/api?q', '/v2?q'],
    ['/api', '/v2', '/api//x', '/v2//x'],
    ['/api', '/v2', '/api/a%2Fb/%2e%2E', '/v2/a%2Fb/%2e%2E'],
    ['/api', '/v2', '/apix', '/apix'],
    ['/api', '/', '/api/x?q', '/x?q'],
    ['/api', '/', '/api', '/'],
    ['/api', '/', '/api?q', '/?q'],
    ['/api/v1', '/internal/api', '/api/v1/users/7', '/internal/api/users/7'],
    ['/', '/v2', '/x', '/v2/x'],
    ['/', '/v2', '/', '/v2/'],
    ['/', '/v2', '/?q', '/v2/?q'],
  ];
  for (const [prefix, to, url, expected] of cases) {
    it(`${prefix} → ${to}: ${url} → ${expected}`, () => assert.equal(new PrefixRewrite(prefix, to).apply(url), expected));
  }
  it('X-Forwarded-Prefix only for a prefix removed outright (strip, rewrite.path /); none for a replacement or the root route', () => {
    assert.equal(new PrefixRewrite('/api', '/').forwardedPrefix, '/api');
    assert.equal(new PrefixRewrite('/api/', '').forwardedPrefix, '/api');
    assert.equal(new PrefixRewrite('/api', '/v2').forwardedPrefix, undefined);
    assert.equal(new PrefixRewrite('/', '/v2').forwardedPrefix, undefined);
  });
});

describe('rewrite: regex', () => {
  const cases: [string, string, string, string][] = [
    // regex, to, request, forwarded
    ['^/api/users/([0-9]+)$', '/users/$1', '/api/users/42', '/users/42'],
    ['^/api/users/([0-9]+)$', '/users/$1', '/api/users/42?a=1&b', '/users/42?a=1&b'],
    ['^/api/users/([0-9]+)$', '/users/$1', '/api/users/abc', '/api/users/abc'],
    ['^/api/users/([0-9]+)$', '/users/$1', '/api/users/42/x', '/api/users/42/x'],
    ['^/old/(.*)$', '/new/$1', '/old/a%2Fb//c?x', '/new/a%2Fb//c?x'],
    ['/old/', '/new/', '/a/old/b/old/c', '/a/new/b/old/c'],
    ['^/(\\w+)/(\\w+)$', '/$2/$1', '/a/b', '/b/a'],
    ['^/api(/.*)?$', '$1', '/api/x', '/x'],
    ['^/api(/.*)?$', '$1', '/api', '/'],
    ['^/api/(.*)$', '$1', '/api/x', '/x'],
    ['^/s/(.*)$', '/search?q=$1', '/s/cats?page=2', '/search?q=cats&page=2'],
    ['^/p/(.*)$', '/$$/$1/$9', '/p/x', '/$/x/'],
    ['^/u/(?P<id>[0-9]+)$', '/user/$1', '/u/7', '/user/7'],
  ];
  for (const [regex, to, url, expected] of cases) {
    it(`${regex} → ${to}: ${url} → ${expected}`, () => assert.equal(new RegexRewrite(regex, to).apply(url), expected));
  }
  it('splits `to` into literals and groups once', () => {
    assert.deepEqual(replacementParts('/a/$1/$2b$$c$'), ['/a/', 1, '/', 2, 'b$c$']);
  });
  it('a 60 KB path against a regex answers correctly (RE2: linear, no backtracking)', () => {
    const big = `/${'a'.repeat(60_000)}!`;
    assert.equal(new RegexRewrite('(a+)+$', '/x').apply(big), big);
    assert.equal(new RegexRewrite('^/(a+)+!$', '/x').apply(big), '/x');
    const digits = '1'.repeat(60_000);
    assert.equal(new RegexRewrite('^/api/users/([0-9]+)$', '/users/$1').apply(`/api/users/${digits}?q`), `/users/${digits}?q`);
  });
});

describe('proxy: rewrite', () => {
  let up: TestUpstream;
  let p: TestProxy;

  const route = (name: string, path: string, options: RouteOptions, extra: Partial<RouteSpec> = {}): RouteSpec => ({
    name, path, options, ...extra, to: [{ service: 'app', endpoints: [{ id: 'a', port: up.port }] }],
  });

  before(async () => {
    up = await startUpstream({ name: 'a', websocket: true });
    p = await startProxy(makeTable([
      route('prefix', '/api', { rewrite: { path: '/v2' } }),
      route('strip-by-rewrite', '/strip', { rewrite: { path: '/' } }),
      route('regex', '/users', { rewrite: { regex: '^/users/([0-9]+)/profile$', to: '/profiles/$1' } }),
      route('host', '/host', { rewrite: { host: 'internal.example.com' } }),
      route('both', '/both', { rewrite: { path: '/inner', host: 'inner.example.com' } }, { strip: '/both' }),
      route('strip', '/plain', {}, { strip: '/plain' }),
      route('none', '/none', {}),
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  const echo = async (path: string, headers: Record<string, string> = {}): Promise<EchoReply> => {
    const reply = await send(p.port, { path, headers: { host: 'public.example.com', ...headers } });
    assert.equal(reply.status, 200, reply.text());
    return reply.json<EchoReply>();
  };

  // X-Forwarded-Prefix only when a prefix is removed outright (prefix + the upstream's path = the
  // public path); X-Replaced-Path (the target as received) when a prefix or regex rewrite replaced it.
  const cases: [string, string, string | undefined, string | undefined][] = [
    // request, path upstream, X-Forwarded-Prefix, X-Replaced-Path
    ['/api/users/7', '/v2/users/7', undefined, '/api/users/7'],
    ['/api/x?q=1', '/v2/x?q=1', undefined, '/api/x?q=1'],
    ['/api', '/v2', undefined, '/api'],
    ['/api//a%2Fb?x=%20', '/v2//a%2Fb?x=%20', undefined, '/api//a%2Fb?x=%20'],
    ['/strip/a/b', '/a/b', '/strip', undefined],
    ['/strip', '/', '/strip', undefined],
    ['/users/42/profile?full=1', '/profiles/42?full=1', undefined, '/users/42/profile?full=1'],
    ['/users/42/settings', '/users/42/settings', undefined, undefined],
    ['/both/x', '/inner/x', undefined, '/both/x'],
    ['/plain/x?y', '/x?y', '/plain', undefined],
    ['/none/x', '/none/x', undefined, undefined],
  ];
  for (const [request, upstream, prefix, replaced] of cases) {
    it(`${request} reaches the upstream as ${upstream} (X-Forwarded-Prefix ${String(prefix)}, X-Replaced-Path ${String(replaced)})`, async () => {
      const got = await echo(request);
      assert.equal(got.url, upstream);
      assert.equal(got.headers['x-forwarded-prefix'], prefix);
      assert.equal(got.headers['x-replaced-path'], replaced);
    });
  }

  it('rewrite.host is the Host sent upstream; X-Forwarded-Host stays the client\'s', async () => {
    const got = await echo('/host/x');
    assert.equal(got.headers.host, 'internal.example.com');
    assert.equal(got.headers['x-forwarded-host'], 'public.example.com');
    assert.equal(got.url, '/host/x');
    assert.equal((await echo('/both/y')).headers.host, 'inner.example.com');
    // Without rewrite.host: the client's Host (preserved by default).
    assert.equal((await echo('/none/x')).headers.host, 'public.example.com');
  });

  it('a client X-Forwarded-Prefix or X-Replaced-Path never passes, on any route; a route without a rewrite sends neither', async () => {
    const spoof = { 'x-forwarded-prefix': '/evil', 'x-replaced-path': '/evil' };
    const none = await echo('/none/x', spoof);
    assert.deepEqual([none.headers['x-forwarded-prefix'], none.headers['x-replaced-path']], [undefined, undefined]);
    const strip = await echo('/plain/x', spoof);
    assert.deepEqual([strip.headers['x-forwarded-prefix'], strip.headers['x-replaced-path']], ['/plain', undefined]);
    const replaced = await echo('/api/x', spoof);
    assert.deepEqual([replaced.headers['x-forwarded-prefix'], replaced.headers['x-replaced-path']], [undefined, '/api/x']);
    const unchanged = await echo('/users/1/other', spoof);
    assert.deepEqual([unchanged.headers['x-forwarded-prefix'], unchanged.headers['x-replaced-path']], [undefined, undefined]);
  });

  it('a huge path against the regex rewrite is answered correctly', async () => {
    // The listener's header limit (16 KiB) bounds the request line.
    const digits = '9'.repeat(12_000);
    const huge = await echo(`/users/${digits}/profile`);
    assert.equal(huge.url, `/profiles/${digits}`);
    // A second 12 KB copy would push the head past the upstream's 16 KiB limit (a 431): not sent.
    assert.equal(huge.headers['x-replaced-path'], undefined);
    const limit = `/users/${'9'.repeat(REPLACED_PATH_MAX - '/users//profile'.length)}/profile`;
    assert.equal((await echo(limit)).headers['x-replaced-path'], limit);
    const junk = `/users/${'1'.repeat(12_000)}x/profile`;
    assert.equal((await echo(junk)).url, junk);
  });

  it('WebSocket upgrades get the rewritten path and Host', async () => {
    const own = `127.0.0.1:${p.port}`;
    for (const [path, expected, host] of [['/api/ws?x=1', '/v2/ws?x=1', own], ['/users/5/profile', '/profiles/5', own], ['/host/ws', '/host/ws', 'internal.example.com']] as const) {
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}${path}`);
      const first = await new Promise<EchoReply>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse(String(data)) as EchoReply));
        ws.once('error', reject);
      });
      ws.close();
      assert.equal(first.url, expected);
      assert.equal(first.headers.host, host);
      assert.equal(first.headers['x-forwarded-prefix'], undefined);
      assert.equal(first.headers['x-replaced-path'], path.startsWith('/host') ? undefined : path);
    }
  });
});
