/**
 * A non-101 answer to an upgrade reaches the client as the plain path would send it: the
 * upstream's keep-alive promise replaced by `connection: close` (the proxy closes after it),
 * `x-request-id` added, the body byte for byte; a head over the limit is 502
 * SY_UPSTREAM_BAD_RESPONSE, as on the plain path.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { deadline, makeTable, startProxy, type TestProxy } from './harness.js';

/** An upstream that writes `pieces` (apart, to split the head) to every request, then closes. */
async function answering(pieces: string[]): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  // allowHalfOpen: the proxy half-closes its side after the request; the answer still comes.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => {
      let i = 0;
      const next = (): void => {
        if (socket.destroyed) return;
        if (i < pieces.length) socket.write(pieces[i++]!, 'latin1', () => setTimeout(next, 20));
        else socket.end();
      };
      next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A raw upgrade request; resolves with everything received once the proxy closed the connection. */
function upgradeUntilClosed(port: number, path: string): Promise<string> {
  return deadline(new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n`
        + 'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  }), 15_000, `upgrade ${path}`);
}

describe('proxy: a non-101 answer to an upgrade', () => {
  let keepAlive: Awaited<ReturnType<typeof answering>>;
  let huge: Awaited<ReturnType<typeof answering>>;
  let p: TestProxy;
  const body = 'no\r\n\r\nHTTP/1.1 200 OK\r\n\r\n'; // body bytes that look like a head: relayed as they are

  before(async () => {
    keepAlive = await answering([
      'HTTP/1.1 400 Bad Request\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n',
      `X-Hop: 1\r\nX-Custom: Kept\r\nX-Request-Id: upstream-id\r\nContent-Length: ${body.length}\r\n\r\n`,
      body,
    ]);
    huge = await answering([`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(200 * 1024)}\r\nContent-Length: 0\r\n\r\n`]);
    p = await startProxy(makeTable([
      { name: 'refusing', path: '/refusing', to: [{ service: 'refusing', endpoints: [{ id: 'r1', port: keepAlive.port }] }] },
      { name: 'huge', path: '/huge', to: [{ service: 'huge', endpoints: [{ id: 'h1', port: huge.port }] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await Promise.all([keepAlive.close(), huge.close()]);
  });

  it('says connection: close (no Keep-Alive, no nominated field), adds x-request-id, keeps the body byte for byte', async () => {
    const received = await upgradeUntilClosed(p.port, '/refusing/x');
    const split = received.indexOf('\r\n\r\n');
    const head = received.slice(0, split).split('\r\n');
    assert.equal(head[0], 'HTTP/1.1 400 Bad Request');
    const fields = head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const);
    const values = (name: string) => fields.filter(([n]) => n === name).map(([, v]) => v);
    assert.deepEqual(values('connection'), ['close'], received);
    assert.deepEqual(values('keep-alive'), [], received);
    assert.deepEqual(values('x-hop'), [], 'a field the Connection header nominates is hop-by-hop');
    assert.ok(head.includes('X-Custom: Kept'), 'other fields keep their case and value');
    const ids = values('x-request-id');
    assert.equal(ids.length, 1, received);
    assert.notEqual(ids[0], 'upstream-id');
    const line = p.accessLines().find((l) => l['path'] === '/refusing/x');
    assert.equal(line?.['reqId'] ?? line?.['requestId'], ids[0], JSON.stringify(line));
    assert.equal(received.slice(split + 4), body, 'the body byte for byte');
  });

  it('a head over the limit is 502 SY_UPSTREAM_BAD_RESPONSE, as on the plain path', async () => {
    const received = await upgradeUntilClosed(p.port, '/huge/x');
    assert.match(received, /^HTTP\/1\.1 502 /);
    assert.match(received, /SY_UPSTREAM_BAD_RESPONSE/);
    assert.ok(received.length < 4096, `no part of the oversized head reached the client (${received.length} bytes)`);
  });
});
