import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { WORKER_SLOT_ENV } from '../cluster/messages.js';
import { helpText, parseCommandLine, type CliAction } from '../config/config.js';
import { UsageError } from '../errors.js';
import { createLogger, flushLogFiles, reopenLogFiles, type Logger } from '../observability/logger.js';

/**
 * `switchyard [flags]` (no command): flags and environment → start; SIGHUP reloads, SIGTERM/SIGINT
 * drain and exit 0, SIGUSR1 reopens the access log file. `--workers 1`: one process (app.ts).
 * More: this process is the cluster primary (cluster/primary.ts) and re-runs as each worker
 * (cluster/worker.ts), with the same flags and environment, so every process reads the same
 * configuration.
 */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** What the signals drive: the single process or the cluster primary. */
interface Running {
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * SIGUSR1 (logrotate's `postrotate`, as nginx does): reopen the access log file. The primary of
 * `--workers N` writes no access line itself and passes the signal to every worker. Installed in
 * every process whatever --access-log says: without a listener, SIGUSR1 would open node's inspector.
 */
function onSigusr1(logger: Logger): void {
  process.on('SIGUSR1', () => {
    const files = reopenLogFiles();
    const workers = cluster.isPrimary ? Object.values(cluster.workers ?? {}) : [];
    for (const worker of workers) worker?.process.kill('SIGUSR1');
    logger.info({ files, workers: workers.length }, 'SIGUSR1: reopening log files');
  });
}

export async function runProxy(argv: readonly string[]): Promise<void> {
  let action: CliAction;
  try {
    action = parseCommandLine(argv, process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`switchyard: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (action.kind === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (action.kind === 'version') {
    process.stdout.write(`switchyard ${version()}\n`);
    return;
  }
  const { config } = action;
  // Each role imports only its own modules (dynamic imports): a worker loads the proxy, not the
  // providers and control plane, so it starts in a fraction of the time (it loads at every
  // replacement, and --help never loads either).
  if (config.workers > 1 && cluster.isWorker) {
    const slot = Number(process.env[WORKER_SLOT_ENV] ?? cluster.worker?.id ?? 0);
    const { runWorker } = await import('../cluster/worker.js');
    const logger = createLogger({ level: config.logLevel }).child({ worker: slot });
    onSigusr1(logger);
    await runWorker(config, logger);
    return;
  }
  // Signal handlers first: a SIGTERM while start-up waits (for Consul, for the first table) stops
  // it cleanly and exits 0, as one after start-up does.
  const logger = createLogger({ level: config.logLevel });
  const aborter = new AbortController();
  let app: Running | undefined;
  const stop = (running: Running, signal: string): void => {
    logger.info({ signal, shutdownDelayMs: config.shutdownDelayMs, drainTimeoutMs: config.drainTimeoutMs }, 'draining and stopping');
    void running.stop().then(flushLogFiles).then(() => logger.flush(() => process.exit(0)));
  };
  let signalled: string | undefined;
  const shutdown = (signal: string): void => {
    signalled = signal;
    if (app !== undefined) {
      stop(app, signal);
      return;
    }
    logger.info({ signal }, 'stopping during start-up');
    aborter.abort();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    if (app === undefined) return; // start-up reads every source anyway
    logger.info('SIGHUP: reloading every source');
    void app.reload();
  });
  onSigusr1(logger);
  try {
    app = config.workers > 1
      ? await (await import('../cluster/primary.js')).startPrimary(config, logger, aborter.signal)
      : await (await import('../app.js')).startSwitchyard(config, { logger, signal: aborter.signal });
  } catch (err) {
    // Aborted: startSwitchyard released what it had started and flushed the log.
    if (aborter.signal.aborted) process.exit(0);
    throw err;
  }
  // The signal came after start-up's last check but before it returned: drain now.
  if (signalled !== undefined) stop(app, signalled);
}
