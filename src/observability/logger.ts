import { fstatSync } from 'node:fs';
import { pino, type Logger, type LoggerOptions } from 'pino';
import { boundLine, LINE_LIMIT_BYTES } from './line-bound.js';

export type { Logger } from 'pino';

/**
 * Paths redacted from every log line. The Consul token must never be logged, whatever object
 * carries it (config dumps, request options, headers).
 */
const REDACT = [
  'token', '*.token', '*.*.token', 'consulToken', '*.consulToken',
  'headers["x-consul-token"]', '*.headers["x-consul-token"]', 'headers.authorization', '*.headers.authorization',
  'adminToken', '*.adminToken',
];

/** Longest time a log line waits in the write buffer. */
const FLUSH_INTERVAL_MS = 100;

export interface LoggerSettings {
  level?: string;
  /** Write synchronously (tests, short-lived commands); default is an async buffered destination. */
  sync?: boolean;
  /** Destination stream; default stdout. */
  destination?: NodeJS.WritableStream;
}

/** Whether `fd` is a regular file (false for pipes, FIFOs, sockets, terminals, or on error). */
function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

/**
 * How sonic-boom batches lines for stdout. It joins whole lines (one `write()` per line, from pino
 * and from AccessLog) into chunks of at most `maxWrite` bytes and writes one chunk per write(2); a
 * line that does not fit starts the next chunk, so every write(2) ends on a line boundary.
 *
 * - A pipe, FIFO or socket (docker's stdout) may be shared by several worker processes: a write(2)
 *   of at most PIPE_BUF (4096) bytes to a pipe is atomic, never split nor interleaved with other
 *   writers' (and never partial: a full non-blocking pipe answers EAGAIN, which sonic-boom retries).
 *   So chunks stay within 4096 bytes and each line is bounded to 4096 bytes (boundLine).
 * - A regular file: write(2)s on one file do not interleave (Linux serialises them per open file),
 *   so chunks of up to 64 KiB, and long lines are kept whole. Each write costs a trip through
 *   libuv's thread pool: 64 KiB instead of 16 KiB chunks cut the access log's CPU per line by
 *   about half (bench/profile-access-log.sh).
 */
export function stdoutBatching(fd: number): { minLength: number; maxWrite: number; boundLines: boolean } {
  return isRegularFile(fd)
    ? { minLength: 32 * 1024, maxWrite: 64 * 1024, boundLines: false }
    : { minLength: LINE_LIMIT_BYTES - 1, maxWrite: LINE_LIMIT_BYTES, boundLines: true };
}

/** Destinations created here in sonic-boom's buffer mode: they take Buffers, not strings. */
const bufferStreams = new WeakSet<object>();

/**
 * How to write one ready-made JSON line (newline included) straight to `logger`'s destination,
 * in the form that destination takes (AccessLog writes its lines without pino's serialisation).
 */
export function lineWriter(logger: Logger): (line: string) => void {
  const stream = (logger as unknown as Record<symbol, { write(chunk: string | Buffer): unknown }>)[pino.symbols.streamSym]!;
  return bufferStreams.has(stream) ? (line) => stream.write(Buffer.from(line)) : (line) => stream.write(line);
}

/** The one root logger; components take `logger.child({ component })`. */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? process.env['SWITCHYARD_LOG_LEVEL'] ?? 'info',
    base: { app: 'switchyard' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (settings.destination !== undefined) return pino(options, settings.destination);
  if (settings.sync === true) return pino(options, pino.destination({ dest: 1, sync: true }));
  // Buffered asynchronous writes keep logging off the request hot path; a short flush timer
  // bounds how long a line can wait in the buffer when traffic is light.
  const { minLength, maxWrite, boundLines } = stdoutBatching(1);
  // Buffer mode: sonic-boom then adds up the lines' byte lengths as they come, where in string mode
  // it measures the whole pending chunk again on every line (Buffer.byteLength of a growing
  // concatenation: about a third of the access log's CPU in profiles). pino hands the hook a
  // string and writes whatever it returns, so the hook makes the Buffer.
  options.hooks = { streamWrite: (boundLines ? (s: string) => Buffer.from(boundLine(s)) : (s: string) => Buffer.from(s)) as unknown as (s: string) => string };
  const destination = pino.destination({ dest: 1, sync: false, minLength, maxWrite, contentMode: 'buffer' });
  bufferStreams.add(destination);
  // The destination's own flush, not logger.flush(): that one passes a callback, and sonic-boom
  // then fsyncs the file on the next drain and adds listeners that pile up while lines keep coming.
  setInterval(() => destination.flush(), FLUSH_INTERVAL_MS).unref();
  return pino(options, destination);
}
