/**
 * A raw-socket HTTP client for hostile-input tests: it writes exactly the bytes it is given (no
 * client library to fix them up), reads until the server closes the connection or a deadline
 * passes, and parses whatever responses arrived.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  reason: string;
  /** Header names lower-cased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawResult {
  /** Everything the server sent. */
  data: Buffer;
  /** Complete responses parsed from `data`, in order. */
  responses: RawResponse[];
  /** The server closed (or reset) the connection before the deadline. */
  closed: boolean;
  /** A socket error (e.g. ECONNRESET), if one happened. */
  error: string | undefined;
  /** Milliseconds from connect to close (or to the deadline). */
  ms: number;
}

export interface RawOptions {
  host?: string;
  /** Give up waiting for the close after this long. Default 3 s. */
  deadlineMs?: number;
  /** Write the bytes in pieces of `chunkSize` bytes, one every `paceMs` (slowloris). */
  paceMs?: number;
  chunkSize?: number;
  /** Resolve as soon as this many complete responses arrived, without waiting for the close. */
  responses?: number;
}

/** Send `bytes` (a string is sent as latin1, one byte per char) and collect the answer. */
export function rawExchange(port: number, bytes: string | Buffer, options: RawOptions = {}): Promise<RawResult> {
  const payload = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const deadlineMs = options.deadlineMs ?? 3_000;
  const start = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: options.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let pacer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(pacer);
      const data = Buffer.concat(chunks);
      socket.destroy();
      resolve({ data, responses: parseResponses(data), closed, error, ms: Date.now() - start });
    };
    const timer = setTimeout(() => finish(false), deadlineMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.responses !== undefined && parseResponses(Buffer.concat(chunks)).length >= options.responses) finish(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code ?? err.message; });
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      if (options.paceMs === undefined) {
        if (payload.length > 0) socket.write(payload);
        return;
      }
      const size = options.chunkSize ?? 1;
      let offset = 0;
      pacer = setInterval(() => {
        if (offset >= payload.length || socket.destroyed || !socket.writable) {
          clearInterval(pacer);
          return;
        }
        socket.write(payload.subarray(offset, offset + size));
        offset += size;
      }, options.paceMs);
    });
  });
}

/** Parse as many complete HTTP/1.x responses as `data` holds (Content-Length, chunked, or to the end). */
export function parseResponses(data: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  const text = data.toString('latin1');
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const lines = text.slice(at, headEnd).split('\r\n');
    const statusLine = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
    if (statusLine === null) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const status = Number(statusLine[1]);
    let bodyStart = headEnd + 4;
    let body: Buffer;
    if (status < 200 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked') === true) {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', bodyStart);
        if (lineEnd === -1) break;
        const size = Number.parseInt(text.slice(bodyStart, lineEnd), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = text.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd === -1 && text.slice(lineEnd, lineEnd + 4) !== '\r\n\r\n') break;
          bodyStart = (trailerEnd === -1 ? lineEnd : trailerEnd) + 4;
          complete = true;
          break;
        }
        if (lineEnd + 2 + size + 2 > text.length) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (bodyStart + length > data.length) break;
      body = data.subarray(bodyStart, bodyStart + length);
      bodyStart += length;
    } else {
      body = data.subarray(bodyStart);
      bodyStart = data.length;
    }
    out.push({ status, reason: statusLine[2] ?? '', headers, body });
    at = bodyStart;
  }
  return out;
}

/** A plain, well-formed request, for the "still serving" checks between hostile ones. */
export function plainGet(path: string, host = 'localhost', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;
}
