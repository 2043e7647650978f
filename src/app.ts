import type { AddressInfo } from 'node:net';
import { AdminServer } from './admin/admin-server.js';
import type { Config } from './config/config.js';
import { formatHostPort } from './config/host-port.js';
import { TableStore } from './control/table-store.js';
import { ConfigWatcher, DEFAULT_WATCHER_OPTIONS, type WatcherOptions } from './control/watcher.js';
import { startDemoUpstreams, type DemoUpstreams } from './demo/demo-upstreams.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ConsulProvider } from './providers/consul/consul-provider.js';
import { FileProvider } from './providers/file/file-provider.js';
import type { DiscoveryProvider } from './providers/provider.js';
import { StaticProvider } from './providers/static-provider.js';
import { DirectoryTemplatesProvider } from './providers/templates/templates-provider.js';
import { explainRequest } from './proxy/runtime/explain.js';
import { createProxy, type Proxy, type ProxyOptions } from './proxy/server.js';
import { Upstreams } from './proxy/runtime/upstreams.js';
import { CertStore } from './tls/cert-store.js';

export interface StartOptions {
  readonly logger?: Logger;
  /** Collect Node's default process metrics (off in tests that start many instances). */
  readonly defaultMetrics?: boolean;
  readonly watcher?: WatcherOptions;
}

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
  reload(): Promise<void>;
  /** Stop accepting, let in-flight requests finish (bounded by the drain timeout), release all. */
  stop(): Promise<void>;
}

/** Wire providers → control → table store → proxy, plus the admin server. The only wiring place besides cli.ts. */
export async function startSwitchyard(config: Config, options: StartOptions = {}): Promise<Switchyard> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
  const store = new TableStore();
  // First, so a missing or empty certificate directory fails start-up before anything listens.
  const certificates = config.tls === undefined ? undefined : await CertStore.open(config.tls.certDir, logger.child({ component: 'tls' }), metrics);

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

  const upstreams = new Upstreams({ drainTimeoutMs: config.drainTimeoutMs }, logger.child({ component: 'upstreams' }), metrics);
  const proxy: Proxy = createProxy({ store, upstreams, logger: logger.child({ component: 'proxy' }), metrics, options: { ...hardeningOptions(config), drainTimeoutMs: config.drainTimeoutMs, httpsPort: config.tls?.listen.port } });
  const templates = new DirectoryTemplatesProvider(config.templatesDir, logger.child({ component: 'templates' }), metrics);
  const watcher = new ConfigWatcher(discovery, templates, store, logger.child({ component: 'control' }), metrics, options.watcher ?? DEFAULT_WATCHER_OPTIONS);

  const admin = new AdminServer({
    store,
    metrics,
    logger: logger.child({ component: 'admin' }),
    token: config.adminToken,
    ready: () => watcher.ready,
    ejections: proxy.runtimes,
    matcher: { explain: (host, target) => explainRequest(proxy.runtimes.current, host, target) },
    config: () => ({
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
        token: config.consul.token === undefined ? 'not set' : 'set (hidden)',
        tls: { caCert: config.consul.caCert ?? null, clientCert: config.consul.clientCert ?? null, verify: config.consul.tlsVerify },
      },
      tls: config.tls === undefined || certificates === undefined ? null : { listen: formatHostPort(config.tls.listen), ...certificates.status() },
      embeddedDefault: demo !== undefined,
      drainTimeoutMs: config.drainTimeoutMs,
      listener: config.listener,
      trustedProxies: config.trustedProxies,
      adminToken: config.adminToken === undefined ? 'not set' : 'set (hidden)',
      tableVersion: store.version,
      lastSwapAt: store.swappedAt === 0 ? null : new Date(store.swappedAt).toISOString(),
      lastRejectedBuild: watcher.lastFailure ?? null,
      providers: [templates.status(), ...discovery.map((p) => p.status())],
    }),
  });

  const adminAddress = await admin.listen(config.admin.host, config.admin.port);
  await watcher.start();
  const proxyAddress = await proxy.listen(config.listen.host, config.listen.port);
  const tlsAddress = config.tls === undefined || certificates === undefined ? undefined : await proxy.listenTls(config.tls.listen.host, config.tls.listen.port, certificates);
  logger.info({ proxy: proxyAddress, admin: adminAddress, ...(tlsAddress === undefined ? {} : { tls: tlsAddress }) }, 'switchyard listening');

  let stopping: Promise<void> | undefined;
  return {
    config, logger, metrics, store, watcher, proxyAddress, adminAddress, tlsAddress, certificates, demo,
    reload: async () => {
      await Promise.all([watcher.reload(), certificates?.reload()]);
    },
    stop: () => {
      stopping ??= (async () => {
        await watcher.stop();
        await proxy.close(config.drainTimeoutMs); // also closes the upstream pools
        await certificates?.close();
        await admin.close();
        await demo?.close();
        logger.info('switchyard stopped');
        logger.flush();
      })();
      return stopping;
    },
  };
}

/** Listener limits and request guard settings from the command line, for createProxy. */
function hardeningOptions(config: Config): ProxyOptions {
  const { listener } = config;
  return {
    headersTimeoutMs: listener.headersTimeoutMs,
    requestTimeoutMs: listener.requestTimeoutMs,
    keepAliveTimeoutMs: listener.keepAliveTimeoutMs,
    maxConnections: listener.maxConnections,
    maxHeaderSize: listener.maxHeaderSize,
    maxHeaderCount: listener.maxHeaderCount,
    trustedProxies: config.trustedProxies,
  };
}
