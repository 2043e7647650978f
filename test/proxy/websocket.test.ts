import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { refusedPort, startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

/** Open a WebSocket; resolve with it and a queue of incoming text messages. */
function open(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; next: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const queue: string[] = [];
    const waiting: ((message: string) => void)[] = [];
    ws.on('message', (data) => {
      const text = (data as Buffer).toString();
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(text);
      else queue.push(text);
    });
    ws.once('open', () => resolve({
      ws,
      next: () => deadline(new Promise<string>((r) => {
        const queued = queue.shift();
        if (queued !== undefined) r(queued);
        else waiting.push(r);
      }), 5_000, 'a WebSocket message'),
    }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

describe('proxy: WebSocket upgrades', () => {
  let up: TestUpstream;
  let p: TestProxy;
  let deadPort: number;

  before(async () => {
    up = await startUpstream({ name: 'ws', websocket: true });
    deadPort = await refusedPort();
    p = await startProxy(makeTable([
      { name: 'chat', path: '/chat', strip: '/chat', to: [{ service: 'chat', endpoints: [{ id: 'c1', port: up.port }] }] },
      { name: 'dead', path: '/dead', to: [{ service: 'dead', endpoints: [{ id: 'd1', port: deadPort }] }] },
      { name: 'empty', path: '/empty', to: [{ service: 'empty', endpoints: [] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('echoes messages through the proxy with the path stripped and forwarded headers set', async () => {
    const { ws, next } = await open(`ws://127.0.0.1:${p.port}/chat/room-1?u=7`, { 'x-request-id': 'ws-id-1', 'x-forwarded-for': '198.51.100.1', 'x-forwarded-port': '1234' });
    try {
      const hello = JSON.parse(await next()) as EchoReply;
      assert.equal(hello.url, '/room-1?u=7');
      assert.equal(hello.headers['x-request-id'], 'ws-id-1');
      // Not from a --trusted-proxies address: replaced (appending is tested in hardening-xff.test.ts).
      assert.equal(hello.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(hello.headers['x-forwarded-proto'], 'http');
      assert.equal(hello.headers['x-forwarded-host'], `127.0.0.1:${p.port}`);
      assert.equal(hello.headers['x-forwarded-prefix'], '/chat');
      assert.equal(hello.headers['x-forwarded-port'], String(p.port), 'from the listener, not the client');
      assert.equal(hello.headers.upgrade, 'websocket');
      for (let i = 0; i < 5; i++) {
        ws.send(`message ${i}`);
        assert.equal(await next(), `ws:message ${i}`);
      }
      const big = 'x'.repeat(256 * 1024);
      ws.send(big);
      assert.equal(await next(), `ws:${big}`);
    } finally {
      ws.close();
    }
    await waitFor('the tunnel to close', () => p.proxy.upgrades.size === 0);
    await waitFor('the tunnel access log line', () => p.accessLines().some((l) => l.upgrade === true && l.route === 'chat' && l.status === 101 && l.reqId === 'ws-id-1'));
  });

  it('closing the client closes the upstream connection', async () => {
    const before = up.openConnections;
    const { ws, next } = await open(`ws://127.0.0.1:${p.port}/chat/x`);
    await next();
    assert.equal(up.openConnections, before + 1);
    ws.terminate();
    await waitFor('the upstream side of the tunnel to close', () => up.openConnections === before);
  });

  it('answers 502 SY_UPSTREAM_CONNECT when the upstream refuses the connection', async () => {
    await assert.rejects(open(`ws://127.0.0.1:${p.port}/dead/x`), (err: Error & { status?: number }) => err.status === 502);
    await waitFor('the failed tunnel log line', () => p.accessLines().some((l) => l.upgrade === true && l.route === 'dead' && l.error === 'SY_UPSTREAM_CONNECT'));
  });

  it('answers 404 and 503 like plain requests', async () => {
    await assert.rejects(open(`ws://127.0.0.1:${p.port}/nowhere`), (err: Error & { status?: number }) => err.status === 404);
    await assert.rejects(open(`ws://127.0.0.1:${p.port}/empty`), (err: Error & { status?: number }) => err.status === 503);
  });
});
