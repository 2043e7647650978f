/**
 * Faults test/support/upstream.ts cannot give with request headers.
 *
 * `blackholePort()`: a 127.0.0.1 port whose TCP connects hang (no SYN-ACK), for connect timeouts.
 * A worker thread listens with a backlog of 1 and then blocks its event loop, so it never accepts;
 * two filler connections fill the kernel's accept queue, after which the kernel drops new SYNs
 * and a connect waits until the client gives up. Nothing leaves the machine.
 */
import { connect, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';

const BLACKHOLE_WORKER = `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const server = net.createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  parentPort.postMessage(server.address().port);
  // Block this thread's event loop (until terminated) so the listener never accepts.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0, 1000);
});
`;

export interface Blackhole {
  readonly port: number;
  close(): Promise<void>;
}

/** Connect within `ms`, or report that the connect hangs. */
function tryConnect(port: number, ms: number): Promise<{ socket: Socket; hung: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => resolve({ socket, hung: true }), ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve({ socket, hung: false });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function blackholePort(): Promise<Blackhole> {
  const worker = new Worker(BLACKHOLE_WORKER, { eval: true });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const sockets: Socket[] = [];
  // Fill the accept queue until a connect hangs (bounded: the backlog is 1).
  for (let i = 0; i < 8; i++) {
    const { socket, hung } = await tryConnect(port, 200);
    sockets.push(socket);
    if (hung) break;
    if (i === 7) throw new Error('blackholePort: connects never started to hang');
  }
  return {
    port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await worker.terminate();
    },
  };
}

export interface RawUpstream {
  readonly port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * An upstream that answers every request (once its head has arrived) with `answer`, byte for byte,
 * then closes: for answers no HTTP server library would send (oversized heads, garbage). With
 * `resetAfterMs`, it keeps the connection open that long after the answer and then resets it (RST).
 */
export async function startRawUpstream(answer: string | Buffer, options: { resetAfterMs?: number } = {}): Promise<RawUpstream> {
  const { createServer } = await import('node:net');
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => { /* the proxy may reset it */ });
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (options.resetAfterMs === undefined) socket.end(answer);
      else socket.write(answer, () => setTimeout(() => socket.resetAndDestroy(), options.resetAfterMs));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    accepted: () => accepted,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
