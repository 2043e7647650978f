import type { AddressInfo } from 'node:net';
import { AdminServer, type AdminSources } from './admin/admin-server.js';
import type { Config } from './config/config.js';
import { formatHostPort } from './config/host-port.js';
import { TableStore } from './control/table-store.js';
import { ConfigWatcher, DEFAULT_WATCHER_OPTIONS, type WatcherOptions } from './control/watcher.js';
import { startDemoUpstreams, type DemoUpstreams } from './demo/demo-upstreams.js';
import { accessLogger, createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { startTracing, TRACE_FLUSH_MS } from './observability/tracing.js';
import { ConsulProvider } from './providers/consul/consul-provider.js';
import { FileProvider } from './providers/file/file-provider.js';
import type { DiscoveryProvider, ProviderStatus } from './providers/provider.js';
import { StaticProvider } from './providers/static-provider.js';
import { DirectoryTemplatesProvider } from './providers/templates/templates-provider.js';
import { explainRequest } from './proxy/runtime/explain.js';
import { createProxy, proxyOptionsOf, type Proxy } from './proxy/server.js';
import { Upstreams } from './proxy/runtime/upstreams.js';
import { CertStore } from './tls/cert-store.js';

export interface StartOptions {
  readonly logger?: Logger;
  /** Collect Node's default process metrics (off in tests that start many instances). */
  readonly defaultMetrics?: boolean;
  readonly watcher?: WatcherOptions;
  /**
   * How long the proxy listener waits for the first table built from every source's data before
   * it opens anyway (see `waitForFirstTable`). Default `config.startupWaitMs` (--startup-wait, 15 s: Envoy's initial_fetch_timeout); 0 opens at once.
   */
  readonly firstTableWaitMs?: number;
  /**
   * Aborts the start-up (SIGTERM before the listener opened): what was started is released and
   * the promise rejects with `signal.reason`.
   */
  readonly signal?: AbortSignal;
}

/** `starting`: the proxy listener is not open yet; `draining`: SIGTERM (or `stop()`) arrived. */
export type Lifecycle = 'starting' | 'serving' | 'draining';

/** A running Switchyard: what cli.ts drives and what integration tests start in-process. */
export interface Switchyard {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: TableStore;
  readonly watcher: ConfigWatcher;
  readonly proxyAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  /** The TLS listener's address, when `--tls-listen` is set. */
  readonly tlsAddress: AddressInfo | undefined;
  /** The TLS certificates, when `--tls-listen` is set. */
  readonly certificates: CertStore | undefined;
  /** Present when running the embedded default. */
  readonly demo: DemoUpstreams | undefined;
  /** `serving` once returned; `draining` from the first call of `stop()`. */
  readonly lifecycle: Lifecycle;
  reload(): Promise<void>;
  /**
   * Graceful shutdown: /readyz answers 503 at once; requests are served as usual for
   * `config.shutdownDelayMs` (so load balancers and Consul checks see the 503 first); then the
   * listeners close and in-flight requests finish, bounded by the drain timeout; then everything
   * is released. Resolves as soon as that is done: no timer outlives the last request.
   */
  stop(): Promise<void>;
}

/** The configuration sources: the templates directory and the discovery providers (or the embedded default). */
export interface Sources {
  readonly discovery: readonly DiscoveryProvider[];
  readonly templates: DirectoryTemplatesProvider;
  /** Present when running the embedded default. */
  readonly demo: DemoUpstreams | undefined;
}

/**
 * The providers `config` asks for: a services file, Consul, or (neither) the embedded default with
 * its demo upstreams started here. Shared by the single process and the cluster primary.
 */
export async function createSources(config: Config, logger: Logger, metrics: Metrics): Promise<Sources> {
  let demo: DemoUpstreams | undefined;
  const discovery: DiscoveryProvider[] = [];
  if (config.servicesFile !== undefined) {
    discovery.push(new FileProvider(config.servicesFile, config.kvPrefix, logger.child({ component: 'file-provider' }), metrics));
  }
  if (config.consul !== undefined) {
    discovery.push(new ConsulProvider(config.consul, config.kvPrefix, logger.child({ component: 'consul' }), metrics));
  }
  if (discovery.length === 0) {
    demo = await startDemoUpstreams();
    const services: Record<string, typeof demo.instances[number][]> = {};
    for (const instance of demo.instances) (services[instance.service] ??= []).push(instance);
    const catalog = Object.fromEntries(Object.entries(services).map(([name, list]) => [name, [...new Set(list.flatMap((i) => i.tags))]]));
    discovery.push(new StaticProvider('embedded-default', { discovery: { catalog, instances: services }, kv: {} }));
    logger.info({ instances: demo.instances.map((i) => `${i.id}@${i.address}:${i.port}`) }, 'no --services and no Consul: running the embedded default with demo upstreams');
  }
  const templates = new DirectoryTemplatesProvider(config.templatesDir, logger.child({ component: 'templates' }), metrics);
  return { discovery, templates, demo };
}

/**
 * The admin sources the single process and the cluster primary share: the table store, metrics,
 * token, and /readyz: not ready while starting (no listener yet) or draining (SIGTERM: tell load
 * balancers first).
 */
export function controlAdminSources(
  config: Config, store: TableStore, metrics: Metrics, logger: Logger, lifecycle: () => Lifecycle, watcher: ConfigWatcher,
): Pick<AdminSources, 'store' | 'metrics' | 'logger' | 'token' | 'ready' | 'readiness'> {
  return {
    store,
    metrics,
    logger: logger.child({ component: 'admin' }),
    token: config.adminToken,
    ready: () => lifecycle() === 'serving' && watcher.ready,
    readiness: () => {
      const now = lifecycle();
      return {
        lifecycle: now,
        reason: now === 'starting' ? 'the first routing table is not live yet'
          : now === 'draining' ? 'shutting down (SIGTERM): take this instance out of rotation'
          : watcher.ready ? undefined : 'a configuration source has not synced yet (see /api/config)',
      };
    },
  };
}

/** /api/config: the effective configuration, free of secrets, and the state of every source. */
export function configView(config: Config, state: {
  store: TableStore;
  watcher: ConfigWatcher;
  sources: Sources;
  certificates: CertStore | undefined;
  lifecycle: Lifecycle;
}): Record<string, unknown> {
  const { store, watcher, sources, certificates, lifecycle } = state;
  return {
    listen: formatHostPort(config.listen),
    admin: formatHostPort(config.admin),
    templatesDir: config.templatesDir,
    servicesFile: config.servicesFile ?? null,
    kvPrefix: config.kvPrefix,
    consul: config.consul === undefined ? null : {
      url: config.consul.url,
      datacenter: config.consul.datacenter ?? null,
      consistency: config.consul.consistency,
      waitMs: config.consul.waitMs,
      socketPath: config.consul.socketPath ?? null,
      namespace: config.consul.namespace ?? null,
      partition: config.consul.partition ?? null,
      token: config.consul.token === undefined ? 'not set' : 'set (hidden)',
      httpAuth: config.consul.httpAuth === undefined ? 'not set' : 'set (hidden)',
      tls: {
        caCert: config.consul.caCert ?? null, caPath: config.consul.caPath ?? null, clientCert: config.consul.clientCert ?? null,
        serverName: config.consul.tlsServerName ?? null, verify: config.consul.tlsVerify,
      },
    },
    tls: config.tls === undefined ? null
      : certificates === undefined ? { listen: formatHostPort(config.tls.listen), certDir: config.tls.certDir }
      : { listen: formatHostPort(config.tls.listen), ...certificates.status() },
    embeddedDefault: sources.demo !== undefined,
    drainTimeoutMs: config.drainTimeoutMs,
    shutdownDelayMs: config.shutdownDelayMs,
    startupWaitMs: config.startupWaitMs,
    lifecycle,
    listener: config.listener,
    trustedProxies: config.trustedProxies,
    adminToken: config.adminToken === undefined ? 'not set' : 'set (hidden)',
    tableVersion: store.version,
    lastSwapAt: store.swappedAt === 0 ? null : new Date(store.swappedAt).toISOString(),
    lastRejectedBuild: watcher.lastFailure ?? null,
    problems: store.current?.problems ?? [],
    providers: [sources.templates.status(), ...sources.discovery.map((p) => p.status())],
  };
}

/** Wire providers → control → table store → proxy, plus the admin server. The only wiring place besides cli.ts. */
export async function startSwitchyard(config: Config, options: StartOptions = {}): Promise<Switchyard> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  const store = new TableStore();
  // An access log file that cannot be opened fails start-up before anything starts.
  const proxyLogger = logger.child({ component: 'proxy' });
  const access = accessLogger(config.accessLog, proxyLogger);
  // First, so a missing or empty certificate directory fails start-up before anything listens.
  const certificates = config.tls === undefined ? undefined : await CertStore.open(config.tls.certDir, logger.child({ component: 'tls' }), metrics);

  const { discovery, templates, demo } = await createSources(config, logger, metrics);
  const upstreams = new Upstreams({ drainTimeoutMs: config.drainTimeoutMs }, logger.child({ component: 'upstreams' }), metrics);
  const proxy: Proxy = createProxy({ store, upstreams, logger: proxyLogger, accessLogger: access, metrics, options: proxyOptionsOf(config) });
  // Trace propagation, and span export when an OTLP endpoint is set (only then is the SDK loaded).
  proxy.handler.tracing = await startTracing(process.env, metrics.registry, logger.child({ component: 'tracing' }));
  const watcher = new ConfigWatcher(discovery, templates, store, logger.child({ component: 'control' }), metrics, options.watcher ?? DEFAULT_WATCHER_OPTIONS);
  let lifecycle: Lifecycle = 'starting';
  // Subscribed before the watcher starts, so the first table's swap cannot be missed.
  const firstTable = waitForFirstTable(store, watcher, [templates, ...discovery], logger, options.firstTableWaitMs ?? config.startupWaitMs);

  const admin = new AdminServer({
    ...controlAdminSources(config, store, metrics, logger, () => lifecycle, watcher),
    ejections: proxy.runtimes,
    matcher: { explain: (host, target, request) => explainRequest(proxy.runtimes.current, host, target, request) },
    stats: proxy.runtimes,
    config: () => configView(config, { store, watcher, sources: { discovery, templates, demo }, certificates, lifecycle }),
  });

  /** Everything but the delay: stop watching, drain the proxy, close the rest. Once. */
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => {
    released ??= (async () => {
      firstTable.cancel();
      await watcher.stop();
      await proxy.close(config.drainTimeoutMs); // also closes the upstream pools
      await proxy.handler.tracing.shutdown(TRACE_FLUSH_MS);
      await certificates?.close();
      await admin.close();
      await demo?.close();
      logger.info('switchyard stopped');
      logger.flush();
    })();
    return released;
  };
  const { signal } = options;
  /** Between start-up steps: SIGTERM arrived, so release what was started and reject. */
  const checkAborted = async (): Promise<void> => {
    if (signal?.aborted !== true) return;
    await release();
    throw signal.reason;
  };

  let adminAddress: AddressInfo;
  try {
    adminAddress = await admin.listen(config.admin.host, config.admin.port);
    await checkAborted();
    // The first attempt of a source can take long (an unreachable Consul: its read timeout).
    await abortable(watcher.start(), signal);
    await checkAborted();
    logger.info({ waitMs: firstTable.waitMs }, 'waiting for the first routing table before opening the proxy listener');
    await abortable(firstTable.live, signal);
  } catch (err) {
    await release();
    throw err;
  }
  const proxyAddress = await proxy.listen(config.listen.host, config.listen.port);
  const tlsAddress = config.tls === undefined || certificates === undefined ? undefined : await proxy.listenTls(config.tls.listen.host, config.tls.listen.port, certificates);
  await checkAborted();
  lifecycle = 'serving';
  logger.info({ proxy: proxyAddress, admin: adminAddress, tableVersion: store.version, ...(tlsAddress === undefined ? {} : { tls: tlsAddress }) }, 'switchyard listening');

  let stopping: Promise<void> | undefined;
  return {
    config, logger, metrics, store, watcher, proxyAddress, adminAddress, tlsAddress, certificates, demo,
    get lifecycle() {
      return lifecycle;
    },
    reload: async () => {
      await Promise.all([watcher.reload(), certificates?.reload()]);
    },
    stop: () => {
      stopping ??= (async () => {
        lifecycle = 'draining';
        // From now on every answer says `Connection: close`: a keep-alive client reconnects for its
        // next request (served during the delay) rather than losing an idle connection at its end.
        proxy.beginDrain();
        if (config.shutdownDelayMs > 0) {
          logger.info({ shutdownDelayMs: config.shutdownDelayMs }, 'draining: /readyz answers 503; serving until the shutdown delay ends, every answer with Connection: close');
          await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
        }
        await release();
      })();
      return stopping;
    },
  };
}

export interface FirstTableWait {
  /** Resolves when the first table is live, or when the wait ends without it (logged). */
  readonly live: Promise<void>;
  readonly waitMs: number;
  /** Stop waiting (start-up failed or aborted): clears the timer. */
  cancel(): void;
}

/**
 * "The first table is live": a table swapped in while every source (templates, services file,
 * Consul) had delivered its data, Consul's health of every service a route needs included. Until
 * then a request could only get 404 SY_NO_ROUTE or 503 SY_NO_ENDPOINT for lack of data, so the
 * proxy listener stays closed (connections are refused: clients and load balancers try elsewhere),
 * as Fabio does ("Waiting for first routing table"). The wait is bounded by `waitMs`, as Envoy's
 * `initial_fetch_timeout`: a source that cannot deliver (Consul down, an ACL token that may not
 * read a service) must not keep every other route down; the listener then opens with the live
 * table, one warning names each source not synced and why, and /readyz stays 503 until they are.
 *
 * Invariant: `ready` is read in a swapped hook, when the new table is `current`; the watcher builds
 * in a timer, after the provider step that set `synced` and emitted the data (one synchronous
 * step), so a swap seen as ready was built from the data of every source.
 */
export function waitForFirstTable(store: TableStore, watcher: ConfigWatcher, sources: readonly { status(): ProviderStatus }[], logger: Logger, waitMs: number): FirstTableWait {
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveLive: () => void = () => {};
  const live = new Promise<void>((resolve) => {
    resolveLive = resolve;
  });
  const finish = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    resolveLive();
  };
  // TableStore has no unsubscribe: after the first table this hook is one boolean test per swap.
  store.onSwapped(() => {
    if (!done && watcher.ready) finish();
  });
  if (waitMs <= 0) finish();
  else if (Number.isFinite(waitMs)) {
    timer = setTimeout(() => {
      const waiting = sources.map((s) => s.status()).filter((s) => !s.synced).map((s) => ({ source: s.name, lastError: s.lastError ?? null }));
      logger.warn({ waitMs, tableVersion: store.version, waiting }, `no routing table from every source after ${waitMs} ms: opening the proxy listener with the live table; /readyz stays 503 until every source has delivered`);
      finish();
    }, waitMs);
  }
  return { live, waitMs, cancel: finish };
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
