import { closeSync, fstatSync, openSync } from 'node:fs';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { AccessLogTarget } from '../config/config.js';
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
    ? FILE_BATCHING
    : { minLength: LINE_LIMIT_BYTES - 1, maxWrite: LINE_LIMIT_BYTES, boundLines: true };
}

/** Batching for a regular file (stdoutBatching). */
const FILE_BATCHING = { minLength: 32 * 1024, maxWrite: 64 * 1024, boundLines: false } as const;

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

/** A file the access log appends to: pino's sonic-boom destination, reopened on SIGUSR1. */
interface LogFile {
  readonly path: string;
  readonly stream: DestinationStream & {
    readonly fd: number;
    reopen(): void;
    flush(cb?: (err?: Error) => void): void;
    flushSync(): void;
    on(event: 'error', listener: (err: Error) => void): unknown;
  };
}

/** The log files this process opened: SIGUSR1 reopens them, the exit path flushes them. */
const logFiles: LogFile[] = [];

/** Bytes an access log file may hold in memory while its disk is slow or gone; more lines are dropped. */
const FILE_BUFFER_LIMIT = 16 * 1024 * 1024;

/**
 * Where the proxy's access lines go for `--access-log`: `undefined` (stdout: the proxy's own logger,
 * as before the flag), `false` (off), or a logger writing to the file, with the proxy logger's
 * bindings so that the lines are the same as on stdout.
 *
 * The file is opened in append mode (O_APPEND), so every worker process of `--workers N` appends to
 * the same file and each write(2) lands whole at its end (POSIX: no other write comes between the
 * seek to the end and the write); AccessLog bounds every line to 4096 bytes and sonic-boom writes
 * whole lines only. Lines are batched as for a regular file on stdout (stdoutBatching) and flushed
 * every 100 ms. The file gets every access line whatever --log-level says: `off` turns them off.
 * Throws with a one-line reason when the file cannot be opened (at start: exit 1).
 */
export function accessLogger(target: AccessLogTarget, proxyLogger: Logger): Logger | false | undefined {
  if (target.kind === 'stdout') return undefined;
  if (target.kind === 'off') return false;
  const { path } = target;
  checkAccessLogFile(target);
  const { minLength, maxWrite } = FILE_BATCHING;
  const stream = pino.destination({
    dest: path, append: true, sync: false, minLength, maxWrite, maxLength: FILE_BUFFER_LIMIT, contentMode: 'buffer',
  }) as unknown as LogFile['stream'];
  bufferStreams.add(stream);
  // pino flushes the file synchronously when the process exits, and sonic-boom throws there ("sonic
  // boom is not ready yet") while its asynchronous open has not completed: a SIGTERM or a failure
  // (EADDRINUSE) in the first milliseconds of start-up then exited 1, or with a stack trace. Until
  // the file is open there is nothing to write to; what is buffered then is lost only on such an exit.
  const flushSync = stream.flushSync.bind(stream);
  stream.flushSync = () => {
    if (stream.fd >= 0) flushSync();
  };
  // A failed reopen (the directory is gone) keeps writing to the old file; a failed write is retried with the next lines.
  stream.on('error', (err) => proxyLogger.error({ file: path, error: (err as NodeJS.ErrnoException).code ?? err.message }, 'access log file error'));
  setInterval(() => stream.flush(), FLUSH_INTERVAL_MS).unref();
  logFiles.push({ path, stream });
  return pino({ level: 'info', base: null, timestamp: false }, stream).child(proxyLogger.bindings());
}

/**
 * Open `--access-log PATH` for appending once, synchronously, and close it: a missing directory or
 * a permission problem fails start-up with its reason (one line), where sonic-boom's own
 * (asynchronous) open would only emit an error later. The primary of `--workers N` calls it before
 * forking, so that the workers' own open cannot fail for that reason.
 */
export function checkAccessLogFile(target: AccessLogTarget): void {
  if (target.kind !== 'file') return;
  try {
    closeSync(openSync(target.path, 'a'));
  } catch (err) {
    throw new Error(`--access-log: cannot open ${target.path} for appending: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * SIGUSR1 (logrotate's `postrotate kill -USR1`, as nginx does): every log file is closed and opened
 * again at its path, so after a rename the lines go to a new file there. Lines buffered meanwhile
 * go to the new file; none is lost. Returns the paths reopened.
 */
export function reopenLogFiles(): string[] {
  for (const file of logFiles) file.stream.reopen();
  return logFiles.map((f) => f.path);
}

/** Write what the log files hold in memory (before exiting). */
export async function flushLogFiles(): Promise<void> {
  await Promise.all(logFiles.map((file) => new Promise<void>((resolve) => {
    file.stream.flush(() => resolve());
  })));
}
