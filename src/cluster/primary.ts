/**
 * The cluster primary (--workers > 1): one control plane for the machine. It runs the providers
 * (templates, services file, Consul: one set of watches), control (build, validate, keep the last
 * good) into its own TableStore, and the admin server; it opens no proxy listener. Each swapped
 * table goes to every worker (WorkerPool: whole, versioned, newest wins). /readyz turns ready once
 * every worker serves: workers open their listeners only after the first table, as one process
 * does. Ejections from any worker are shared with the others; /metrics sums every worker (counters
 * never go down: cluster-metrics.ts).
 */
import type { AddressInfo } from 'node:net';
import type { Lifecycle } from '../app.js';
import type { Config } from '../config/config.js';
import { TableStore } from '../control/table-store.js';
import { TableEncoder } from '../model/table-wire.js';
import { checkAccessLogFile, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { EjectionBoard } from './ejection-board.js';
import { WorkerPool } from './worker-pool.js';

export interface Primary {
  /** SIGHUP: every source re-read; every worker re-reads its certificates. */
  reload(): Promise<void>;
  /** SIGTERM: /readyz 503, every worker drains (--shutdown-delay, --drain-timeout), then the rest stops. */
  stop(): Promise<void>;
}

/** Extra time, past --shutdown-delay plus --drain-timeout, a worker gets to exit before it is killed. */
const EXIT_GRACE_MS = 5_000;

export async function startPrimary(config: Config, logger: Logger, signal: AbortSignal): Promise<Primary> {
  // Before anything starts: each worker opens --access-log PATH itself, and a path that cannot be
  // opened would fail every worker (their stack traces, the demo upstreams started for nothing).
  checkAccessLogFile(config.accessLog);
  const metrics = new Metrics({ defaultMetrics: true });
  const store = new TableStore();
  let lifecycle: Lifecycle = 'starting';
  const board = new EjectionBoard(() => store.current);
  const encoder = new TableEncoder();

  let startFailure: ((err: Error) => void) | undefined;
  let allListening: (() => void) | undefined;
  let proxyAddress: AddressInfo | undefined;
  let tlsAddress: AddressInfo | undefined;
  const clusterMetrics = new ClusterMetrics(metrics.registry, metrics.workerMetricsStale, logger.child({ component: 'cluster' }));
  const pool: WorkerPool = new WorkerPool(config.workers, logger.child({ component: 'cluster' }), metrics, {
    ejected: (from, ejection) => {
      if (board.record(ejection)) pool.broadcast({ type: 'sy:eject', ejection }, from);
    },
    liveEjections: () => board.live(),
    fatal: (slot, message) => {
      logger.error({ slot, error: message }, 'a worker could not start');
      startFailure?.(new Error(message));
    },
    listening: (slot, proxy, tls) => {
      proxyAddress = proxy;
      tlsAddress = tls;
      logger.debug({ slot }, 'worker listening');
      if (pool.allListening()) allListening?.();
    },
  });
  const started = new Promise<void>((resolve, reject) => {
    allListening = resolve;
    startFailure = reject;
  });
  // A worker that cannot bind fails the start, also while the sources are still syncing.
  started.catch(() => undefined);
  // Forked before the control plane's modules load (the bulk of the primary's start-up on a busy
  // machine): the workers load theirs meanwhile.
  pool.start();
  let modules;
  let sources;
  try {
    modules = await Promise.all([import('../app.js'), import('../admin/admin-server.js'), import('../control/watcher.js')]);
    sources = await modules[0].createSources(config, logger, metrics);
  } catch (err) {
    await pool.drain(config.drainTimeoutMs + EXIT_GRACE_MS);
    throw err;
  }
  const [{ abortable, configView, controlAdminSources, waitForFirstTable }, { AdminServer }, { ConfigWatcher, DEFAULT_WATCHER_OPTIONS }] = modules;
  const watcher = new ConfigWatcher(sources.discovery, sources.templates, store, logger.child({ component: 'control' }), metrics, DEFAULT_WATCHER_OPTIONS);
  // Subscribed before the watcher starts: the first table cannot be missed.
  store.onSwapped((next) => pool.publish(store.version, encoder.encode(next)));
  const firstTable = waitForFirstTable(store, watcher, [sources.templates, ...sources.discovery], logger, config.startupWaitMs);

  const admin = new AdminServer({
    ...controlAdminSources(config, store, metrics, logger, () => lifecycle, watcher),
    ejections: board,
    matcher: { explain: (host, target, request) => pool.explain(host, target, request) },
    stats: { stats: () => pool.stats() },
    exposition: () => clusterMetrics.exposition(pool.connected()),
    workers: () => ({ tableVersion: store.version, everyWorkerAt: pool.everyWorkerAt(), workers: pool.views() }),
    config: () => ({ ...configView(config, { store, watcher, sources, certificates: undefined, lifecycle }), workers: config.workers }),
  });

  let released: Promise<void> | undefined;
  const release = (): Promise<void> => {
    released ??= (async () => {
      firstTable.cancel();
      await pool.drain(config.shutdownDelayMs + config.drainTimeoutMs + EXIT_GRACE_MS);
      await watcher.stop();
      await admin.close();
      await sources.demo?.close();
      logger.info('switchyard stopped');
      logger.flush();
    })();
    return released;
  };

  let adminAddress: AddressInfo;
  try {
    adminAddress = await admin.listen(config.admin.host, config.admin.port);
    await abortable(Promise.race([watcher.start(), started.then(() => undefined)]), signal);
    logger.info({ waitMs: firstTable.waitMs, workers: pool.size }, 'waiting for the first routing table before the workers open the proxy listener');
    await abortable(Promise.race([firstTable.live, started]), signal);
    pool.openListeners();
    await abortable(started, signal);
  } catch (err) {
    await release();
    throw err;
  }
  startFailure = undefined;
  lifecycle = 'serving';
  logger.info({
    proxy: proxyAddress, admin: adminAddress, tableVersion: store.version, workers: pool.size,
    ...(tlsAddress === undefined ? {} : { tls: tlsAddress }),
  }, 'switchyard listening');

  let stopping: Promise<void> | undefined;
  return {
    reload: async () => {
      pool.broadcast({ type: 'sy:reload-certs' });
      await watcher.reload();
    },
    stop: () => {
      stopping ??= (async () => {
        lifecycle = 'draining';
        if (config.shutdownDelayMs > 0) {
          logger.info({ shutdownDelayMs: config.shutdownDelayMs }, 'draining: /readyz answers 503; the workers serve until the shutdown delay ends, every answer with Connection: close');
        }
        await release();
      })();
      return stopping;
    },
  };
}
