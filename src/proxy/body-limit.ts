import { Transform, type TransformCallback } from 'node:stream';

/** The request body grew past the route's `maxBodyBytes` while streaming. */
export class BodyTooLargeError extends Error {
  readonly code = 'SY_BODY_TOO_LARGE';
  constructor(limit: number) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

/**
 * Counts a streamed (chunked) request body on its way to the upstream and fails with
 * BodyTooLargeError once it passes `limit` bytes; undici then aborts the upstream request and the
 * exchange answers 413. The client request is piped into it rather than handed to undici directly
 * so that undici's clean-up destroys this stream, not the client's request (which would destroy
 * the client socket before the 413 could be written). Only used for chunked bodies on routes with
 * a limit: a Content-Length body is checked before anything is sent, and node enforces the length.
 */
export class BodyLimit extends Transform {
  private readonly limit: number;
  private received = 0;

  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.limit) callback(new BodyTooLargeError(this.limit));
    else callback(null, chunk);
  }
}
