/**
 * A cluster worker (--workers > 1): the proxy listeners (plain and TLS) and their runtime, fed
 * tables by the primary. Everything else (providers, control, admin) runs in the primary.
 *
 * - Tables arrive whole with the primary's version; the newest wins (messages that queued while
 *   the worker was busy collapse to the last). Each is decoded (unchanged routes keep their Route
 *   objects: model/table-wire.ts) and swapped into the worker's own TableStore, so the runtime
 *   reconciles make-before-break exactly as in one process. The version is acknowledged.
 * - The listeners open on `sy:listen` only, which the primary sends after the first table (as a
 *   single process waits for it: app.ts waitForFirstTable). The listeners share the machine's
 *   ports through node:cluster.
 * - Ejections decided here go to the primary; those decided elsewhere are applied here.
 * - Limits: this process enforces 1/N of each route's rate and concurrency limit (route-state.ts).
 * - Drain on `sy:drain` (the primary's SIGTERM), on its own SIGTERM/SIGINT (a terminal's Ctrl-C
 *   reaches the whole process group), or when the primary is gone (the IPC channel closed).
 */
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/config.js';
import { TableStore } from '../control/table-store.js';
import { TableDecoder, type TableWire } from '../model/table-wire.js';
import { accessLogger, flushLogFiles, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { startTracing, TRACE_FLUSH_MS } from '../observability/tracing.js';
import { explainRequest } from '../proxy/runtime/explain.js';
import { onLocalEjection, setLimitShare } from '../proxy/runtime/route-state.js';
import type { Runtime } from '../proxy/runtime/runtime.js';
import { Upstreams } from '../proxy/runtime/upstreams.js';
import { createProxy, proxyOptionsOf } from '../proxy/server.js';
import { CertStore } from '../tls/cert-store.js';
import { isToWorker, type FromWorker, type ToWorker } from './messages.js';
import type { SharedEjection } from '../proxy/runtime/route-state.js';

export async function runWorker(config: Config, logger: Logger): Promise<void> {
  const send = (message: FromWorker): void => {
    if (process.connected) process.send!(message);
  };
  const fatal = (err: unknown): never => {
    const message = (err as Error).message;
    logger.fatal({ err }, 'worker start-up failed');
    send({ type: 'sy:fatal', message });
    logger.flush();
    process.exit(1);
  };

  setLimitShare(config.workers);
  const metrics = new Metrics({ defaultMetrics: true });
  // prom-client answers the primary's metric requests from this registry (its cluster protocol).
  AggregatorRegistry.setRegistries([metrics.registry]);
  new AggregatorRegistry();
  let certificates: CertStore | undefined;
  try {
    // Each worker watches the certificate directory itself: a renewal reaches every listener.
    certificates = config.tls === undefined ? undefined : await CertStore.open(config.tls.certDir, logger.child({ component: 'tls' }), metrics);
  } catch (err) {
    fatal(err);
  }
  const store = new TableStore();
  const upstreams = new Upstreams({ drainTimeoutMs: config.drainTimeoutMs }, logger.child({ component: 'upstreams' }), metrics);
  const proxyLogger = logger.child({ component: 'proxy' });
  let access: Logger | false | undefined;
  try {
    access = accessLogger(config.accessLog, proxyLogger);
  } catch (err) {
    fatal(err);
  }
  const proxy = createProxy({
    store, upstreams, logger: proxyLogger, accessLogger: access, metrics,
    options: proxyOptionsOf(config),
  });
  // Each worker exports its own spans (the SDK is loaded only when an OTLP endpoint is set).
  proxy.handler.tracing = await startTracing(process.env, metrics.registry, logger.child({ component: 'tracing' }));
  onLocalEjection((ejection) => send({ type: 'sy:ejected', ejection }));

  const decoder = new TableDecoder();
  let applied = 0;
  let latest: { version: number; table: TableWire } | undefined;
  // Set when the drain closes the proxy (and its upstream pools): a table arriving after that has
  // no pools to make (it logged 'cannot create an upstream pool' per endpoint) and nothing to serve.
  let closing = false;
  const apply = (): void => {
    const next = latest;
    latest = undefined;
    if (next === undefined || next.version <= applied || closing) return;
    const started = performance.now();
    try {
      store.swap(decoder.decode(next.table));
      applied = next.version;
      const { routes, parsed } = decoder.lastStats;
      logger.debug({ version: applied, routes, parsed, ms: Math.round((performance.now() - started) * 100) / 100 }, 'table applied');
      send({ type: 'sy:applied', version: applied });
    } catch (err) {
      // The live table stays (TableStore: all or nothing); the primary logs the refusal.
      logger.error({ err, version: next.version }, 'table refused');
      send({ type: 'sy:applied', version: applied, error: (err as Error).message });
    }
  };

  let draining: Promise<void> | undefined;
  const drain = (why: string): void => {
    draining ??= (async () => {
      logger.info({ why, shutdownDelayMs: config.shutdownDelayMs, drainTimeoutMs: config.drainTimeoutMs }, 'worker draining');
      proxy.beginDrain();
      if (config.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
      closing = true;
      await proxy.close(config.drainTimeoutMs);
      await proxy.handler.tracing.shutdown(TRACE_FLUSH_MS);
      await certificates?.close();
      await flushLogFiles();
      logger.info('worker stopped');
      logger.flush(() => process.exit(0));
    })();
  };

  const listen = async (): Promise<void> => {
    let address: AddressInfo;
    let tls: AddressInfo | undefined;
    try {
      address = await proxy.listen(config.listen.host, config.listen.port);
      if (config.tls !== undefined && certificates !== undefined) tls = await proxy.listenTls(config.tls.listen.host, config.tls.listen.port, certificates);
    } catch (err) {
      fatal(err);
    }
    send({ type: 'sy:listening', version: applied, proxy: address!, tls });
  };

  process.on('message', (message: unknown) => {
    if (!isToWorker(message)) return;
    const m = message as ToWorker;
    // Whatever follows a table in the channel applies to it: make a pending one live first
    // (a replacement worker receives its table and the live ejections back to back).
    if (m.type !== 'sy:table') apply();
    switch (m.type) {
      case 'sy:table':
        // Several tables read in one chunk collapse to the newest, swapped once, in a later turn.
        if (latest === undefined) setImmediate(apply);
        if (latest === undefined || m.version > latest.version) latest = { version: m.version, table: m.table };
        return;
      case 'sy:listen':
        if (!proxy.server.listening && draining === undefined) void listen();
        return;
      case 'sy:eject':
        adoptEjection(proxy.runtimes.current, m.ejection);
        return;
      case 'sy:reload-certs':
        void certificates?.reload();
        return;
      case 'sy:drain':
        drain('the primary is stopping');
        return;
      case 'sy:explain':
        send({ type: 'sy:explained', id: m.id, result: explainRequest(proxy.runtimes.current, m.host, m.target, m.request) });
        return;
      case 'sy:stats':
        send({ type: 'sy:stats-sample', id: m.id, sample: proxy.runtimes.stats() });
        return;
    }
  });
  process.on('disconnect', () => drain('the primary is gone (IPC channel closed)'));
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));
  // A terminal hang-up reaches the whole group; in a worker it only re-reads the certificates.
  process.on('SIGHUP', () => void certificates?.reload());
  send({ type: 'sy:hello' });
}

/**
 * Apply an ejection another worker decided, when this worker's live runtime has the route and the
 * endpoint in rotation (the policy's ejection share is checked again here: route-state.ts adopt).
 */
export function adoptEjection(runtime: Runtime | undefined, ejection: SharedEjection): boolean {
  const route = runtime?.byName.get(ejection.route);
  if (route === undefined) return false;
  for (const destination of route.destinations.values()) {
    const pool = destination.balancer.items;
    const endpoint = pool.find((e) => e.id === ejection.endpoint);
    if (endpoint === undefined) continue;
    let ejected = 0;
    for (const other of pool) if (other.health.ejected) ejected += 1;
    return route.state.adopt(endpoint.health, ejection, route.outlier, pool.length, ejected);
  }
  return false;
}
