import type { Socket } from 'node:net';

/**
 * An upstream's early answer to an upload must not be lost to the write error that follows it.
 *
 * An upstream that answers before reading the whole request body (a 413, a 401) and then closes
 * leaves its answer in our receive buffer and resets the connection, since the body it did not
 * read is still arriving. undici writes the body on the same socket; when a write fails (EPIPE or
 * ECONNRESET) node destroys the socket at once, and undici fails the request
 * (client-h1.js onHttpSocketError), before the event loop has polled the socket for reading: the
 * answer still in the kernel's receive buffer is never read (socket.bytesRead is 0), and the
 * client gets 502 SY_UPSTREAM_RESET instead of the upstream's 413. Measured: 1 to 2 tries in 20
 * on this machine, about 60% on a loaded one.
 *
 * The fix holds a failed write's callback back for one full turn of the event loop (two
 * setImmediate hops: at least one poll phase in between) before handing the error on. The socket
 * stays open that long and keeps reading, so undici parses the answer first: a complete early
 * answer reaches the client (undici itself then ends the connection), a partial one is a cut after
 * the head. When nothing was received the error goes on as before, one loop turn later. nginx and
 * HAProxy likewise read the upstream's response when sending the body fails.
 *
 * Installed by the proxy's pools' connector (runtime/upstreams.ts) on every upstream socket they
 * make, before the first request is written; nothing else in the process is touched. The only
 * change is the timing of a write error on a socket that already failed.
 */

const HELD = new Set(['EPIPE', 'ECONNRESET']);

type WriteCallback = (error?: Error | null) => void;
type WriteFn = (chunk: unknown, encoding: BufferEncoding, cb: WriteCallback) => void;
type WritevFn = (chunks: { chunk: unknown; encoding: BufferEncoding }[], cb: WriteCallback) => void;

/**
 * Make `socket`'s write errors wait for what it has already received (see above). A Writable has
 * at most one `_write`/`_writev` in flight (the next starts after its callback), so one callback
 * per socket, made here, stands in for each write's: no allocation per write.
 */
export function guardEarlyAnswers(socket: Socket): void {
  const s = socket as unknown as { _write: WriteFn; _writev?: WritevFn };
  const write = s._write;
  const writev = s._writev;
  if (typeof write !== 'function') return;
  let pending: WriteCallback | undefined;
  const done: WriteCallback = (error) => {
    const cb = pending!;
    pending = undefined;
    const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
    if (code === undefined || !HELD.has(code)) cb(error);
    else setImmediate(() => setImmediate(cb, error));
  };
  s._write = function guardedWrite(this: Socket, chunk, encoding, cb) {
    pending = cb;
    write.call(this, chunk, encoding, done);
  };
  if (typeof writev === 'function') {
    s._writev = function guardedWritev(this: Socket, chunks, cb) {
      pending = cb;
      writev.call(this, chunks, done);
    };
  }
}
