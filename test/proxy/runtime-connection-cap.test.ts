import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { makeTable, send, startProxy, type Reply, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

/**
 * An upstream that holds every request until the test releases it (a long-poll server), counting
 * the TCP connections it accepted and the requests it holds.
 */
async function startHoldingUpstream(): Promise<{
  port: number; accepted: () => number; held: () => number; releaseAll: () => void; close: () => Promise<void>;
}> {
  const waiting: ServerResponse[] = [];
  let accepted = 0;
  let releasing = false;
  const sockets = new Set<Socket>();
  const answer = (res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('done');
  };
  const server: Server = createServer((_req: IncomingMessage, res: ServerResponse) => {
    if (releasing) answer(res);
    else waiting.push(res);
  });
  server.on('connection', (socket: Socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    held: () => waiting.length,
    releaseAll: () => {
      releasing = true;
      for (const res of waiting.splice(0)) answer(res);
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    }),
  };
}

describe('runtime: upstream connections per endpoint', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('upstream.maxConnections 2: five concurrent slow requests hold at most 2 upstream connections, the rest queue, all succeed', async () => {
    const up = await startHoldingUpstream();
    cleanups.push(up.close);
    const p: TestProxy = await startProxy(makeTable([{
      name: 'capped', to: [{ service: 'app', endpoints: [{ id: 'a', port: up.port }] }], policy: { upstream: { maxConnections: 2 } },
    }]));
    cleanups.push(() => p.close());
    const route = p.proxy.runtimes.current!.byName.get('capped')!;
    assert.equal(route.policy.upstream.maxConnections, 2);
    assert.equal(route.policy.upstream.queueTimeoutMs, 30_000);
    assert.deepEqual([route.maxConnections, route.queueTimeout], [2, 30_000]);

    const replies: Promise<Reply>[] = [];
    for (let i = 0; i < 5; i++) replies.push(send(p.port, { path: `/poll/${i}` }));
    const pool = p.upstreams.get(`http://127.0.0.1:${up.port}`, { connectMs: 5_000, maxConnections: 2 });
    assert.ok(pool !== undefined, 'the capped route has a pool of its own');
    // All five reached the proxy: two on the wire, three queued behind the cap.
    await waitFor('two requests held upstream, five in the proxy', () => up.held() === 2 && p.proxy.handler.inflight === 5, 10_000)
      .catch((err: Error) => {
        throw new Error(`${err.message} (held ${up.held()}, accepted ${up.accepted()}, in the proxy ${p.proxy.handler.inflight}, pool pending ${pool.stats.pending})`);
      });
    assert.equal(up.accepted(), 2);
    up.releaseAll();
    const done = await Promise.all(replies);
    assert.deepEqual(done.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(up.accepted(), 2, 'the queued requests reused the two connections');
  });

  it('pools: routes with the same settings share one, a cap or a connect timeout of its own gets its own', async () => {
    const p: TestProxy = await startProxy(undefined);
    cleanups.push(() => p.close());
    const to = [{ service: 'app', endpoints: [{ id: 'a', port: 1 }] }];
    p.store.swap(makeTable([
      { name: 'plain', path: '/plain', to },
      { name: 'plain2', path: '/plain2', to },
      { name: 'capped', path: '/capped', to, policy: { upstream: { maxConnections: 2 } } },
      { name: 'capped-slow', path: '/capped-slow', to, policy: { upstream: { maxConnections: 2, queueTimeoutMs: '1s' }, timeouts: { connectMs: 250 } } },
      { name: 'queue-only', path: '/queue-only', to, policy: { upstream: { queueTimeoutMs: '1s' } } },
    ]));
    assert.deepEqual(p.upstreams.origins().sort(), [
      'http://127.0.0.1:1', 'http://127.0.0.1:1 connect=250 max=2', 'http://127.0.0.1:1 max=2',
    ]);
    const byName = p.proxy.runtimes.current!.byName;
    const pool = (name: string): unknown => byName.get(name)!.balancer.items[0]!.balancer.items[0]!.pool;
    assert.equal(pool('plain'), pool('plain2'));
    assert.equal(pool('plain'), pool('queue-only'), 'a queue timeout without a cap needs no pool of its own');
    assert.notEqual(pool('capped'), pool('plain'));
    assert.notEqual(pool('capped'), pool('capped-slow'));
    // The cap removed again (KV null): the route goes back to the shared pool, the capped one retires.
    p.store.swap(makeTable([{ name: 'plain', path: '/plain', to }, { name: 'capped', path: '/capped', to, policy: { upstream: { maxConnections: null } } }]));
    assert.deepEqual(p.upstreams.origins(), ['http://127.0.0.1:1']);
  });

  it('no cap by default: 150 concurrent long-polls to one endpoint are all on the wire at once (the old hidden cap was 128)', async () => {
    const up = await startHoldingUpstream();
    cleanups.push(up.close);
    const p: TestProxy = await startProxy(makeTable([{ name: 'open', to: [{ service: 'app', endpoints: [{ id: 'a', port: up.port }] }] }]));
    cleanups.push(() => p.close());
    const open = p.proxy.runtimes.current!.byName.get('open')!;
    assert.equal(open.policy.upstream.maxConnections, null);
    assert.deepEqual([open.maxConnections, open.queueTimeout], [null, 0], 'no cap, no queue, no queue timer');

    const replies: Promise<Reply>[] = [];
    for (let i = 0; i < 150; i++) replies.push(send(p.port, { path: `/poll/${i}`, timeoutMs: 30_000 }));
    await waitFor('150 long-polls held upstream at once', () => up.held() === 150, 20_000).catch((err: Error) => {
      const detail = `held ${up.held()}, accepted ${up.accepted()}`;
      up.releaseAll();
      throw new Error(`${err.message} (${detail})`);
    });
    assert.equal(up.accepted(), 150);
    up.releaseAll();
    const done = await Promise.all(replies);
    assert.equal(done.filter((r) => r.status === 200).length, 150);
  });
});
