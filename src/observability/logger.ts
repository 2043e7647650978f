import { pino, type Logger, type LoggerOptions } from 'pino';

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
  const logger = pino(options, pino.destination({ dest: 1, sync: false, minLength: 4096 }));
  setInterval(() => logger.flush(), FLUSH_INTERVAL_MS).unref();
  return logger;
}
