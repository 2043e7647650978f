/**
 * Header edits (route `headers.request` / `headers.response`): remove, then set (a set replaces
 * every field of its name), with several same-name fields either way; names the proxy owns are
 * never touched at run time even when a table carries them; response edits apply to upstream
 * answers only, not to the proxy's own error answers; upgrade requests get the request edits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { RouteOptions } from '../../src/model/types.js';
import { editableHeader, validHeaderValue } from '../../src/proxy/http/headers.js';
import { refusedPort, startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, send, startProxy, type Reply, type TestProxy } from './harness.js';

/** Every value of header `name` in a raw list (any case), in order. */
function values(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

describe('header edits: the run-time guard', () => {
  it('never edits what the model reserves, nor expect; only tokens', () => {
    for (const name of ['connection', 'transfer-encoding', 'content-length', 'host', 'forwarded', 'x-forwarded-for', 'x-forwarded-anything', 'x-request-id', 'traceparent', 'tracestate', 'proxy-authorization', 'expect', '', 'a b', 'a:b']) {
      assert.equal(editableHeader(name), false, name);
    }
    for (const name of ['x-gateway', 'server', 'set-cookie', 'cookie', 'strict-transport-security', 'x_y', 'a!#$%&\'*+-.^_`|~9']) assert.equal(editableHeader(name), true, name);
    assert.equal(validHeaderValue('a\tb c'), true);
    for (const value of ['a\r\nb', 'a\nb', 'a\u0000', 'a\u007f', 'a\u0100']) assert.equal(validHeaderValue(value), false, JSON.stringify(value));
  });
});

describe('proxy: header edits', () => {
  let up: TestUpstream;
  let p: TestProxy;
  let dead = 0;

  const edits: RouteOptions = {
    headers: {
      request: { set: [['x-gateway', 'switchyard'], ['x-multi', 'one']], remove: ['x-debug', 'cookie'] },
      response: { set: [['strict-transport-security', 'max-age=31536000'], ['x-frame-options', 'DENY']], remove: ['server', 'x-powered-by'] },
    },
  };
  // What validation refuses, as if it had reached the table: the proxy still leaves these alone.
  const protectedEdits: RouteOptions = {
    headers: {
      request: {
        set: [['x-forwarded-for', '6.6.6.6'], ['x-request-id', 'forged'], ['host', 'evil.example'], ['content-length', '0'], ['traceparent', 'x'], ['forwarded', 'for=6.6.6.6'], ['expect', '100-continue'], ['x-ok', 'yes'], ['x-bad', 'a\r\nx-injected: 1']],
        remove: ['x-forwarded-proto', 'connection', 'transfer-encoding', 'te', 'upgrade', 'tracestate'],
      },
      response: { set: [['content-length', '1'], ['x-request-id', 'forged'], ['x-ok', 'yes']], remove: ['transfer-encoding', 'connection'] },
    },
  };

  before(async () => {
    up = await startUpstream({ name: 'a', websocket: true });
    dead = await refusedPort();
    const to = [{ service: 'app', endpoints: [{ id: 'a', port: up.port }] }];
    p = await startProxy(makeTable([
      { name: 'edits', path: '/e', options: edits, to },
      { name: 'protected', path: '/p', options: protectedEdits, to },
      { name: 'dead', path: '/dead', options: edits, to: [{ service: 'dead', endpoints: [{ id: 'd', port: dead }] }], policy: { retries: { count: 0 } } },
      { name: 'plain', path: '/plain', to },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  /** What the echo upstream adds to its answer: two same-name fields in two spellings among them. */
  const upstreamHeaders = (path: string): string => JSON.stringify({
    Server: 'upstream/1.0', 'X-Powered-By': 'php', 'X-Frame-Options': 'SAMEORIGIN', 'x-frame-options': 'ALLOW-FROM x',
    'set-cookie': ['a=1', 'b=2'], 'x-keep': path,
  });

  const call = (path: string, headers: Record<string, string | string[]> = {}): Promise<Reply> => send(p.port, {
    path,
    headers: { 'x-test-response-headers': upstreamHeaders(path), ...headers },
  });

  it('request: remove, then set (replacing every same-name field); the rest passes', async () => {
    const reply = await call('/e/x', { 'x-debug': '1', 'x-multi': ['a', 'b'], 'X-Gateway': 'spoofed', 'x-keep': 'k', cookie: 's=1' });
    assert.equal(reply.status, 200);
    const got = reply.json<EchoReply>();
    assert.deepEqual(values(got.rawHeaders, 'x-gateway'), ['switchyard']);
    assert.deepEqual(values(got.rawHeaders, 'x-multi'), ['one']);
    assert.deepEqual(values(got.rawHeaders, 'x-debug'), []);
    assert.deepEqual(values(got.rawHeaders, 'cookie'), []);
    assert.deepEqual(values(got.rawHeaders, 'x-keep'), ['k']);
  });

  it('response: remove, then set (replacing the upstream\'s same-name fields in any case); the rest passes', async () => {
    const reply = await call('/e/x');
    assert.equal(reply.status, 200);
    assert.deepEqual(values(reply.rawHeaders, 'x-frame-options'), ['DENY']);
    assert.deepEqual(values(reply.rawHeaders, 'strict-transport-security'), ['max-age=31536000']);
    assert.deepEqual(values(reply.rawHeaders, 'server'), []);
    assert.deepEqual(values(reply.rawHeaders, 'x-powered-by'), []);
    assert.deepEqual(values(reply.rawHeaders, 'set-cookie'), ['a=1', 'b=2']);
    assert.deepEqual(values(reply.rawHeaders, 'x-keep'), ['/e/x']);
    assert.equal(values(reply.rawHeaders, 'x-request-id').length, 1);
  });

  it('a route without edits passes everything', async () => {
    const reply = await call('/plain/x', { 'x-debug': '1', 'x-multi': ['a', 'b'] });
    const got = reply.json<EchoReply>();
    assert.deepEqual(values(got.rawHeaders, 'x-multi'), ['a', 'b']);
    assert.deepEqual(values(got.rawHeaders, 'x-debug'), ['1']);
    assert.deepEqual(values(reply.rawHeaders, 'server'), ['upstream/1.0']);
    assert.deepEqual(values(reply.rawHeaders, 'x-frame-options'), ['SAMEORIGIN', 'ALLOW-FROM x']);
  });

  it('an upstream 5xx answer gets the response edits; the proxy\'s own error answer does not', async () => {
    const bad = await call('/e/x', { 'x-test-status': '503' });
    assert.equal(bad.status, 503);
    assert.deepEqual(values(bad.rawHeaders, 'x-frame-options'), ['DENY']);
    const own = await send(p.port, { path: '/dead/x' });
    assert.equal(own.status, 502);
    assert.equal(own.json<{ error: string }>().error, 'SY_UPSTREAM_CONNECT');
    assert.deepEqual(values(own.rawHeaders, 'x-frame-options'), []);
    assert.deepEqual(values(own.rawHeaders, 'strict-transport-security'), []);
  });

  it('framing, hop-by-hop, Host, X-Forwarded-*, X-Request-Id and trace headers are never edited; values with CR/LF are never sent', async () => {
    const reply = await send(p.port, {
      method: 'POST',
      path: '/p/x',
      body: 'hello',
      headers: { 'x-request-id': 'client-id', host: 'public.example.com', 'x-test-response-headers': JSON.stringify({ 'x-up': '1' }) },
    });
    assert.equal(reply.status, 200);
    const got = reply.json<EchoReply>();
    assert.equal(got.body, 'hello');
    assert.equal(got.headers['x-request-id'], 'client-id');
    assert.equal(got.headers.host, 'public.example.com');
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(got.headers['x-forwarded-proto'], 'http');
    assert.equal(got.headers['content-length'], '5');
    assert.match(String(got.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.equal(got.headers['x-ok'], 'yes');
    assert.equal(got.headers.forwarded, undefined);
    assert.equal(got.headers.expect, undefined);
    assert.equal(got.headers['x-bad'], undefined);
    assert.equal(got.headers['x-injected'], undefined);
    assert.equal(reply.headers['x-request-id'], 'client-id');
    assert.equal(reply.headers['x-ok'], 'yes');
    assert.equal(Number(reply.headers['content-length']), reply.body.length);
  });

  it('an upgrade request gets the request edits', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/e/ws`, { headers: { 'x-debug': '1', 'x-gateway': 'spoofed' } });
    const first = await new Promise<EchoReply>((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(String(data)) as EchoReply));
      ws.once('error', reject);
    });
    ws.close();
    assert.deepEqual(values(first.rawHeaders, 'x-gateway'), ['switchyard']);
    assert.deepEqual(values(first.rawHeaders, 'x-debug'), []);
    assert.ok(values(first.rawHeaders, 'sec-websocket-key').length === 1);
  });
});
