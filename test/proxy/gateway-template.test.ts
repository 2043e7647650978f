/**
 * The request shaping end to end from a template file: Switchyard in-process with a templates
 * directory and a services file (the model's parsing and validation, the table, the proxy), real
 * requests. The issue's own example shapes: rewrite path and host, header edits both ways, sticky
 * sessions, a redirect route.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Switchyard } from '../../src/app.js';
import { stickyId } from '../../src/proxy/http/sticky.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { send } from './harness.js';

describe('gateway options from a template file', () => {
  let workspace: Workspace;
  let a: TestUpstream;
  let b: TestUpstream;
  let app: Switchyard;
  let port = 0;

  before(async () => {
    [a, b] = await Promise.all([startUpstream({ name: 'a' }), startUpstream({ name: 'b' })]);
    workspace = await Workspace.create();
    await workspace.writeServices(`services:\n  api:\n    - { id: a, address: 127.0.0.1, port: ${a.port} }\n    - { id: b, address: 127.0.0.1, port: ${b.port} }\n`);
    await workspace.writeTemplate('gateway.yaml', [
      'routes:',
      '  - name: partner-api',
      '    match: { host: api.example.com, path: /api }',
      '    rewrite: { path: /v2, host: internal.example.com }',
      '    headers:',
      '      request:  { set: { x-gateway: switchyard }, remove: [x-debug] }',
      '      response: { set: { strict-transport-security: "max-age=31536000" }, remove: [x-upstream] }',
      '    sticky: { cookie: sy_affinity, ttlMs: 1h }',
      '    to: [ { service: api } ]',
      '  - name: users',
      '    match: { host: api.example.com, path: /users }',
      '    rewrite: { regex: "^/users/([0-9]+)$", to: "/people/$1" }',
      '    to: [ { service: api } ]',
      '  - name: old-home',
      '    match: { host: www.example.com, path: /home.php }',
      '    redirect: { to: "https://www.example.com/home", status: 301, keepQuery: true }',
      '',
    ].join('\n'));
    app = await startTestSwitchyard(workspace);
    port = app.proxyAddress.port;
  });

  after(async () => {
    await app?.stop();
    await Promise.all([a?.close(), b?.close()]);
    await workspace?.remove();
  });

  it('rewrites the path and Host, edits headers both ways, sets the sticky cookie and honours it', async () => {
    const first = await send(port, { path: '/api/orders?x=1', headers: { host: 'api.example.com', 'x-debug': '1' } });
    assert.equal(first.status, 200, first.text());
    const got = first.json<EchoReply>();
    assert.equal(got.url, '/v2/orders?x=1');
    assert.equal(got.headers.host, 'internal.example.com');
    // A prefix replaced (not stripped): X-Replaced-Path, no X-Forwarded-Prefix (rewrite.ts).
    assert.equal(got.headers['x-forwarded-prefix'], undefined);
    assert.equal(got.headers['x-replaced-path'], '/api/orders?x=1');
    assert.equal(got.headers['x-gateway'], 'switchyard');
    assert.equal(got.headers['x-debug'], undefined);
    assert.equal(first.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(first.headers['x-upstream'], undefined);
    const cookie = first.headers['set-cookie']?.[0];
    assert.equal(cookie, `sy_affinity=${stickyId(`api/${got.upstream}`)}; Path=/api; Max-Age=3600; HttpOnly; SameSite=Lax`);
    const value = cookie.split(';')[0]!;
    for (let i = 0; i < 6; i++) {
      const again = await send(port, { path: '/api/orders', headers: { host: 'api.example.com', cookie: value } });
      assert.equal(again.json<EchoReply>().upstream, got.upstream);
      assert.equal(again.headers['set-cookie'], undefined);
    }
  });

  it('rewrites by regex', async () => {
    const reply = await send(port, { path: '/users/42?full=1', headers: { host: 'api.example.com' } });
    assert.equal(reply.json<EchoReply>().url, '/people/42?full=1');
  });

  it('answers a redirect route by itself', async () => {
    const reply = await send(port, { path: '/home.php?id=3', headers: { host: 'www.example.com' } });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, 'https://www.example.com/home?id=3');
  });
});
