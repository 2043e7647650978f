import { Transform, type TransformCallback } from 'node:stream';

/** The request body grew past the route's `maxBodyBytes` while streaming. */
export class BodyTooLargeError extends Error {
  readonly code = 'SY_BODY_TOO_LARGE';
  constructor(limit: number) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

/**
 * A request body on its way to the upstream, watched as it streams, for two route policies:
 * - `limit` (≥ 0): fail with BodyTooLargeError once the body passes it; undici then aborts the
 *   upstream request and the exchange answers 413. Used for chunked bodies on routes with a limit:
 *   a Content-Length body is checked before anything is sent, and node enforces the length.
 * - `keep` (> 0): keep a copy of the chunks while the body stays within `keep` bytes, so that an
 *   idempotent request can be sent again after a reset or a 5xx (`replay()`); past it, the copy is
 *   dropped and the request is not retried.
 * The client request is piped into it rather than handed to undici directly so that undici's
 * clean-up destroys this stream, not the client's request (which would destroy the client socket
 * before an error answer could be written). Streaming is unchanged: chunks pass on at once.
 */
export class BodyTap extends Transform {
  private readonly limit: number;
  private readonly keep: number;
  private received = 0;
  private chunks: Buffer[] | undefined;
  private ended = false;
  private whole: Buffer | undefined;

  /** `limit`: -1 = none. `keep`: 0 = keep nothing. */
  constructor(limit: number, keep: number) {
    super();
    this.limit = limit;
    this.keep = keep;
    this.chunks = keep > 0 ? [] : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.limit >= 0 && this.received > this.limit) {
      callback(new BodyTooLargeError(this.limit));
      return;
    }
    const chunks = this.chunks;
    if (chunks !== undefined) {
      if (this.received > this.keep) this.chunks = undefined;
      else chunks.push(chunk);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.ended = true;
    callback();
  }

  /** The whole body, when it has been received completely and kept; undefined otherwise. */
  replay(): Buffer | undefined {
    if (this.whole !== undefined) return this.whole;
    if (!this.ended || this.chunks === undefined) return undefined;
    this.whole = Buffer.concat(this.chunks, this.received);
    this.chunks = undefined;
    return this.whole;
  }
}
