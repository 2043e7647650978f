import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Lingering close (nginx's `lingering_close`): when the proxy answers a request before its body
 * has fully arrived (a 413, a 503, an error, or an upstream's early answer), closing the
 * connection at once would make the kernel answer the client's next body bytes with a reset, and
 * a client still uploading then loses the answer it has not read yet (it sees EPIPE or ECONNRESET).
 * Instead the answer is sent with `Connection: close`, our side is half-closed (FIN) once it is
 * written, and whatever the client still sends is read and thrown away until it closes too, within
 * bounds: at most LINGER_TIME_MS in all, LINGER_IDLE_MS without a byte, LINGER_MAX_BYTES read.
 * nginx's defaults are lingering_time 30 s and lingering_timeout 5 s with no byte cap; the cap
 * here keeps a fast client from holding the connection for the whole 30 s.
 */
export const LINGER_TIME_MS = 30_000;
export const LINGER_IDLE_MS = 5_000;
export const LINGER_MAX_BYTES = 16 * 1024 * 1024;

const LINGERING = Symbol('switchyard.lingering');
type LingeringSocket = Socket & { [LINGERING]?: Linger };

/**
 * Close the connection of `req` with a lingering close once its response has been written: call
 * before the response ends, along with `res.shouldKeepAlive = false`. node's own close after a
 * `Connection: close` response (its `destroySoon`, from resOnFinish) becomes a half-close followed
 * by the bounded linger above, during which the rest of the request body is discarded. Until the
 * response is written the body keeps flowing where it goes (an upstream may stream its answer
 * while it reads the upload).
 */
export function lingerAfterAnswer(req: IncomingMessage): void {
  const socket = req.socket as LingeringSocket | null;
  if (socket === null || socket.destroyed || socket[LINGERING] !== undefined) return;
  socket[LINGERING] = new Linger(socket, req);
  socket.destroySoon = lingeringDestroySoon;
}

function lingeringDestroySoon(this: LingeringSocket): void {
  const linger = this[LINGERING];
  if (this.writable) this.end();
  if (linger === undefined) {
    this.destroy();
    return;
  }
  // From now on nobody reads the body: discard it (it may have been piped into an upstream request).
  linger.discard();
  if (this.writableFinished) linger.start();
  else this.once('finish', linger.start);
}

/** The part of a socket's libuv handle node's own HTTP server drives (net.js, _http_server.js). */
interface StreamHandle { reading?: boolean; readStart?: () => number }

/**
 * After the parser handed reading back to the socket, make sure the handle reads. When the request
 * had paused the socket (its buffer full, nobody reading it), node's HTTP server restarts the
 * handle from its own 'resume' listener, which the unconsume just removed, while the stream's
 * read state still says a read is pending (the consumed handle never pushed to it): nothing would
 * read again and the client would stall until the idle bound. This is what that listener does.
 */
function restartReading(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (handle === null || handle === undefined || handle.reading !== false || typeof handle.readStart !== 'function') return;
  handle.reading = true;
  handle.readStart();
}

/** The linger of one socket: its bounds, and its end when the client closes. */
class Linger {
  private readonly socket: Socket;
  private readonly req: IncomingMessage;
  private read = 0;
  private counting = false;
  private total: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;

  constructor(socket: Socket, req: IncomingMessage) {
    this.socket = socket;
    this.req = req;
  }

  /**
   * Read the rest of the body into nothing, counting the socket's bytes against LINGER_MAX_BYTES.
   * Counted on the socket, not the request: node dumps the request when the response finishes
   * (resOnFinish calls `req._dump()` before destroySoon), which removes the request's data
   * listeners and stops its parser pushing body chunks, so a count on `req` never moves. node's
   * HTTP server reads the socket inside its parser (`parser.consume`, no 'data' events); adding a
   * 'data' listener makes it hand reading back to the socket (its `socketListenerWrap` unconsumes
   * the parser), so every chunk passes through `onData` before the parser discards it.
   */
  discard(): void {
    const req = this.req;
    req.unpipe();
    if (req.complete || this.counting) return;
    this.counting = true;
    const socket = this.socket;
    socket.on('data', this.onData);
    restartReading(socket);
    req.resume();
  }

  /** Our half is closed: wait (bounded) for the client's. */
  readonly start = (): void => {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (socket.readableEnded) {
      socket.destroy();
      return;
    }
    socket.once('end', this.stop);
    socket.once('close', this.clear);
    // The HTTP server may have paused the socket; the parser keeps discarding into the request.
    socket.resume();
    this.total = setTimeout(this.stop, LINGER_TIME_MS);
    this.idle = setTimeout(this.stop, LINGER_IDLE_MS);
  };

  readonly onData = (chunk: Buffer): void => {
    this.read += chunk.length;
    if (this.read > LINGER_MAX_BYTES) {
      this.stop();
      return;
    }
    this.idle?.refresh();
  };

  readonly stop = (): void => {
    this.clear();
    this.socket.destroy();
  };

  private readonly clear = (): void => {
    if (this.total !== undefined) clearTimeout(this.total);
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.total = this.idle = undefined;
  };
}
