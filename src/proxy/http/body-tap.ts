import { Transform, type TransformCallback } from 'node:stream';
import { SwitchyardError } from '../../errors.js';

/** The request body grew past the route's `maxBodyBytes` while streaming. */
export class BodyTooLargeError extends SwitchyardError {
  constructor(limit: number) {
    super('SY_BODY_TOO_LARGE', `the request body exceeds ${limit} bytes`);
  }
}

/**
 * Who wants the whole body once the client has sent it (a mirror copy, http/mirror.ts), if it
 * stays within `maxBytes`. Exactly one of the two calls is made, at most once.
 */
export interface BodySink {
  readonly maxBytes: number;
  /** The client's body is complete; `body` is the tap's copy (not to be written to). */
  bodyComplete(body: Buffer): void;
  /** The body will not be complete: over `maxBytes` or the route's limit, or it never ended. */
  bodyDropped(reason: 'body_too_large' | 'incomplete'): void;
}

/**
 * A request body on its way to the upstream, watched as it streams, for three route policies:
 * - `limit` (≥ 0): fail with BodyTooLargeError once the body passes it; undici then aborts the
 *   upstream request and the exchange answers 413. Used for chunked bodies on routes with a limit:
 *   a Content-Length body is checked before anything is sent, and node enforces the length.
 * - `keep` (> 0): keep a copy of the body while it stays within `keep` bytes, so that an
 *   idempotent request can be sent again after a reset or a 5xx (`replay()`); past it, the copy is
 *   dropped and the request is not retried.
 * - `sink` (a mirror copy): keep a copy while it stays within `sink.maxBytes`, and hand it over
 *   when the client's body is complete (`_flush`); past the bound, or when the stream is destroyed
 *   before its end, the sink is told so and forgotten. The copy never holds the body back: chunks
 *   pass on at once, so the main upstream gets the body at full speed.
 * Both copies are the same buffer, grown by doubling up to the larger bound still wanted (never one
 * object per chunk: a chunked body of 1-byte chunks would cost ~190 bytes of heap per byte).
 * The client request is piped into it rather than handed to undici directly so that undici's
 * clean-up destroys this stream, not the client's request (which would destroy the client socket
 * before an error answer could be written). Streaming is unchanged: chunks pass on at once.
 */
export class BodyTap extends Transform {
  private readonly limit: number;
  /** Bound of the retry copy; 0 = no retry copy (none asked, past the bound, or forgotten). */
  private keep: number;
  private sink: BodySink | undefined;
  private received = 0;
  /** The bytes received so far, copied into one buffer (grown by doubling up to the bound). */
  private copy: Buffer | undefined;
  private ended = false;

  /** `limit`: -1 = none. `keep`: 0 = keep nothing for a retry. `sink`: the mirror copy, if any. */
  constructor(limit: number, keep: number, sink?: BodySink) {
    super();
    this.limit = limit;
    this.keep = keep;
    this.sink = sink;
    // undici listens for errors while it reads this stream; a BodyTooLargeError after it stopped
    // (the exchange already answered) must not reach pipe()'s rethrow as an uncaught exception.
    this.on('error', ignore);
    this.copy = keep > 0 || sink !== undefined ? EMPTY : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const at = this.received;
    const received = (this.received += chunk.length);
    if (this.limit >= 0 && received > this.limit) {
      this.dropSink('body_too_large');
      callback(new BodyTooLargeError(this.limit));
      return;
    }
    let copy = this.copy;
    if (copy !== undefined) {
      if (received > this.keep) this.keep = 0;
      const sink = this.sink;
      if (sink !== undefined && received > sink.maxBytes) this.dropSink('body_too_large');
      const bound = this.sink === undefined ? this.keep : Math.max(this.keep, this.sink.maxBytes);
      if (bound === 0) this.copy = undefined;
      else {
        if (received > copy.length) {
          const grown = Buffer.allocUnsafe(Math.min(bound, Math.max(received, 2 * copy.length, 4096)));
          copy.copy(grown, 0, 0, at);
          this.copy = copy = grown;
        }
        chunk.copy(copy, at);
      }
    }
    callback(null, chunk);
  }

  /** No retry can happen any more: let the retry copy go (a mirror copy stays until the body ends). */
  forgetCopy(): void {
    this.keep = 0;
    if (this.sink === undefined) this.copy = undefined;
  }

  override _flush(callback: TransformCallback): void {
    this.ended = true;
    const sink = this.sink;
    if (sink !== undefined) {
      this.sink = undefined;
      const body = this.copy!.subarray(0, this.received);
      if (this.keep === 0) this.copy = undefined;
      sink.bodyComplete(body);
    }
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed before the client's body ended (undici's clean-up after a failure, or an abort).
    this.dropSink('incomplete');
    callback(err);
  }

  /** The whole body, when it has been received completely and kept; undefined otherwise. */
  replay(): Buffer | undefined {
    if (!this.ended || this.copy === undefined || this.keep === 0) return undefined;
    return this.copy.subarray(0, this.received);
  }

  private dropSink(reason: 'body_too_large' | 'incomplete'): void {
    const sink = this.sink;
    if (sink === undefined) return;
    this.sink = undefined;
    if (this.keep === 0) this.copy = undefined;
    sink.bodyDropped(reason);
  }
}

const EMPTY = Buffer.alloc(0);

function ignore(): void {
  // The exchange has its own account of the failure (see the constructor).
}
