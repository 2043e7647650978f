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
  return pino(options, pino.destination({ dest: 1, sync: settings.sync ?? false, minLength: settings.sync ? 0 : 4096 }));
}
