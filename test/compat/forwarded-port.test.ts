/**
 * X-Forwarded-Port is set from the listener that accepted the connection, whatever the client
 * sent, like X-Forwarded-Proto and -Host (a client could otherwise make an upstream build its
 * redirects and absolute URLs with a port of its choosing).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeTable, send, startProxy, type TestProxy } from '../proxy/harness.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { missing, run } from './real-clients.js';

const PYTHON_GET = `
import http.client, json, sys
conn = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)
conn.request('GET', '/py', headers={'X-Forwarded-Port': '1234'})
print(json.loads(conn.getresponse().read())['headers'].get('x-forwarded-port'))
`;

describe('compat: X-Forwarded-Port', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'ports' });
    p = await startProxy(makeTable([{ name: 'ports', to: [{ service: 'ports', endpoints: [{ id: 'p1', port: up.port }] }] }]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it("a client's own X-Forwarded-Port is replaced by the listener's port", async () => {
    const reply = await send(p.port, { path: '/node', headers: { 'x-forwarded-port': '1234' } });
    assert.equal(reply.json<EchoReply>().headers['x-forwarded-port'], String(p.port));
  });

  it('set when the client sent none', async () => {
    const reply = await send(p.port, { path: '/none' });
    assert.equal(reply.json<EchoReply>().headers['x-forwarded-port'], String(p.port));
  });

  it("curl -H 'X-Forwarded-Port: 1234'", { skip: missing('curl') }, async () => {
    const out = await run('curl', ['-s', '--max-time', '10', '-H', 'X-Forwarded-Port: 1234', `http://127.0.0.1:${p.port}/curl`]);
    assert.equal((JSON.parse(out.stdout) as EchoReply).headers['x-forwarded-port'], String(p.port));
  });

  it('python3 http.client with X-Forwarded-Port: 1234', { skip: missing('python3') }, async () => {
    const out = await run('python3', ['-c', PYTHON_GET, String(p.port)]);
    assert.equal(out.stdout.trim(), String(p.port), out.stderr);
  });
});
