import { Transform, type TransformCallback } from 'node:stream';
import { SwitchyardError } from '../../errors.js';

/** The request body grew past the route's `maxBodyBytes` while streaming. */
export class BodyTooLargeError extends SwitchyardError {
  constructor(limit: number) {
    super('SY_BODY_TOO_LARGE', `the request body exceeds ${limit} bytes`);
  }
}

/**
 * A request body on its way to the upstream, watched as it streams, for two route policies:
 * - `limit` (≥ 0): fail with BodyTooLargeError once the body passes it; undici then aborts the
 *   upstream request and the exchange answers 413. Used for chunked bodies on routes with a limit:
 *   a Content-Length body is checked before anything is sent, and node enforces the length.
 * - `keep` (> 0): keep a copy of the body while it stays within `keep` bytes, so that an
 *   idempotent request can be sent again after a reset or a 5xx (`replay()`); past it, the copy is
 *   dropped and the request is not retried. The copy is one buffer grown by doubling (never one
 *   object per chunk: a chunked body of 1-byte chunks would cost ~190 bytes of heap per byte).
 * The client request is piped into it rather than handed to undici directly so that undici's
 * clean-up destroys this stream, not the client's request (which would destroy the client socket
 * before an error answer could be written). Streaming is unchanged: chunks pass on at once.
 */
export class BodyTap extends Transform {
  private readonly limit: number;
  private readonly keep: number;
  private received = 0;
  /** The bytes received so far, copied into one buffer (grown by doubling up to `keep`). */
  private copy: Buffer | undefined;
  private ended = false;

  /** `limit`: -1 = none. `keep`: 0 = keep nothing. */
  constructor(limit: number, keep: number) {
    super();
    this.limit = limit;
    this.keep = keep;
    // undici listens for errors while it reads this stream; a BodyTooLargeError after it stopped
    // (the exchange already answered) must not reach pipe()'s rethrow as an uncaught exception.
    this.on('error', ignore);
    this.copy = keep > 0 ? EMPTY : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const at = this.received;
    this.received += chunk.length;
    if (this.limit >= 0 && this.received > this.limit) {
      callback(new BodyTooLargeError(this.limit));
      return;
    }
    let copy = this.copy;
    if (copy !== undefined) {
      if (this.received > this.keep) this.copy = undefined;
      else {
        if (this.received > copy.length) {
          const grown = Buffer.allocUnsafe(Math.min(this.keep, Math.max(this.received, 2 * copy.length, 4096)));
          copy.copy(grown, 0, 0, at);
          this.copy = copy = grown;
        }
        chunk.copy(copy, at);
      }
    }
    callback(null, chunk);
  }

  /** No retry can happen any more: let the copy go. */
  forgetCopy(): void {
    this.copy = undefined;
  }

  override _flush(callback: TransformCallback): void {
    this.ended = true;
    callback();
  }

  /** The whole body, when it has been received completely and kept; undefined otherwise. */
  replay(): Buffer | undefined {
    if (!this.ended || this.copy === undefined) return undefined;
    return this.copy.subarray(0, this.received);
  }
}

const EMPTY = Buffer.alloc(0);

function ignore(): void {
  // The exchange has its own account of the failure (see the constructor).
}
