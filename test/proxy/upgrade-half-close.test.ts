/**
 * A half-closed tunnel is bounded (HAProxy's `timeout client-fin` / `server-fin`; nginx ends an
 * upgraded connection at either side's EOF): when the client leaves (FIN) and the upstream ignores
 * the FIN it was passed, both sides are closed within HALF_CLOSE_GRACE_MS, the concurrency slot is
 * free again and the access line is written; not an hour later at the tunnel idle timeout.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HALF_CLOSE_GRACE_MS } from '../../src/proxy/upgrade/tunnel.js';
import { deadline, makeTable, startProxy, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

/** An upstream that answers every upgrade 101 and then ignores a FIN (it never closes by itself). */
async function finIgnoringUpstream(farewell?: string): Promise<{ server: Server; port: number; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('end', () => undefined); // half-closed by the proxy: stay open
    socket.once('data', () => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
      if (farewell !== undefined) socket.end(farewell);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    open: () => sockets.size,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A raw upgrade that resolves once the 101 head arrived; `allowHalfOpen`: the client ignores a FIN. */
function upgraded(port: number, path: string, allowHalfOpen = false): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return deadline(new Promise((resolve, reject) => {
    let text = '';
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\r\n\r\n')) {
        if (text.startsWith('HTTP/1.1 101')) resolve({ socket, received: () => text, closed });
        else reject(new Error(`not upgraded: ${text}`));
      }
    });
    socket.on('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n`
      + 'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  }), 5_000, `upgrade ${path}`);
}

describe('proxy: a half-closed tunnel is closed within a bounded grace', () => {
  let stubborn: Awaited<ReturnType<typeof finIgnoringUpstream>>;
  let leaving: Awaited<ReturnType<typeof finIgnoringUpstream>>;
  let p: TestProxy;

  before(async () => {
    stubborn = await finIgnoringUpstream();
    leaving = await finIgnoringUpstream('bye');
    p = await startProxy(makeTable([
      // The default tunnel idle timeout (1 h): only the half-close bound can free the slot in time.
      { name: 'narrow', path: '/narrow', to: [{ service: 'stubborn', endpoints: [{ id: 's1', port: stubborn.port }] }], policy: { concurrency: { max: 1 } } },
      { name: 'leaving', path: '/leaving', to: [{ service: 'leaving', endpoints: [{ id: 'l1', port: leaving.port }] }], policy: { concurrency: { max: 1 } } },
    ]));
  });

  after(async () => {
    await p.close();
    await Promise.all([stubborn.close(), leaving.close()]);
  });

  it('the client leaves, the upstream ignores the FIN: the slot is free again and a second upgrade gets 101', async () => {
    const first = await upgraded(p.port, '/narrow/1');
    const state = () => p.proxy.runtimes.current?.byName.get('narrow')?.state;
    assert.equal(state()?.inflight, 1, 'the open tunnel holds the slot');
    first.socket.end(); // the client leaves: FIN
    // Bounded: the grace plus a generous margin for a loaded machine, far below the 1 h idle timeout.
    await waitFor('the tunnel to give its slot back', () => state()?.inflight === 0, HALF_CLOSE_GRACE_MS + 15_000);
    // inflight drops only once both sockets are closed (Tunnel.finish).
    assert.equal(p.proxy.upgrades.size, 0, 'no tunnel left open');
    await deadline(first.closed, 5_000, 'the client connection to be closed');
    const line = await waitFor('the access line', () => p.accessLines().find((l) => l['path'] === '/narrow/1'), 5_000);
    assert.equal(line['status'], 101);
    assert.match(String(line['reason']), /half-closed by the client/);

    const second = await upgraded(p.port, '/narrow/2');
    second.socket.destroy();
    await waitFor('the second tunnel to close', () => state()?.inflight === 0, HALF_CLOSE_GRACE_MS + 15_000);
  });

  it('the upstream ends after its last bytes, the client ignores the FIN: the bytes arrive and the slot is free', async () => {
    const client = await upgraded(p.port, '/leaving/1', true);
    await waitFor('the farewell to arrive', () => client.received().endsWith('bye'), 5_000);
    await waitFor('the slot to be free', () => p.proxy.runtimes.current?.byName.get('leaving')?.state.inflight === 0, HALF_CLOSE_GRACE_MS + 15_000);
    client.socket.end();
    await client.closed;
  });
});
