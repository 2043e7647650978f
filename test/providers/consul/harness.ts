/**
 * Shared set-up of the Consul provider tests: a ConsulTestServer, a provider with short timings
 * and captured logs, its emitted updates, and metric readers.
 */
import type { ConsulSettings } from '../../../src/config/config.js';
import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../../../src/model/types.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { ConsulProvider, type ConsulProviderOptions } from '../../../src/providers/consul/consul-provider.js';
import type { DiscoveryUpdate } from '../../../src/providers/provider.js';
import { captureLogger } from '../../support/capture-logger.js';
import type { ConsulTestServer, LoggedRequest } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';

export const KV_PREFIX = 'switchyard/';

/** Timings shrunk so that backoff, timeouts and recovery take milliseconds. */
export const FAST: Partial<ConsulProviderOptions> = {
  minIntervalMs: 5,
  backoffBaseMs: 20,
  backoffMaxMs: 200,
  timeoutMarginMs: 300,
  readTimeoutMs: 1_000,
};

export function consulSettings(url: string, overrides: Partial<ConsulSettings> = {}): ConsulSettings {
  return {
    url,
    token: undefined,
    caCert: undefined,
    clientCert: undefined,
    clientKey: undefined,
    tlsVerify: true,
    datacenter: undefined,
    consistency: 'default',
    waitMs: 2_000,
    ...overrides,
  };
}

export class ProviderHarness {
  readonly updates: DiscoveryUpdate[] = [];
  discovery: DiscoverySnapshot | undefined;
  kv: KvSnapshot | undefined;
  readonly metrics = new Metrics({ defaultMetrics: false });
  readonly log = captureLogger('trace');
  readonly provider: ConsulProvider;

  constructor(url: string, settings: Partial<ConsulSettings> = {}, options: Partial<ConsulProviderOptions> = {}) {
    this.provider = new ConsulProvider(consulSettings(url, settings), KV_PREFIX, this.log.logger, this.metrics, { ...FAST, ...options });
  }

  start(services: readonly string[] = []): Promise<void> {
    if (services.length > 0) this.provider.watchServices(services);
    return this.provider.start((update) => {
      this.updates.push(update);
      if (update.discovery !== undefined) this.discovery = update.discovery;
      if (update.kv !== undefined) this.kv = update.kv;
    });
  }

  instances(service: string): readonly ServiceInstance[] | undefined {
    return this.discovery?.instances[service];
  }

  /** Instance id → status, for compact assertions. */
  statuses(service: string): Record<string, string> | undefined {
    const list = this.instances(service);
    return list === undefined ? undefined : Object.fromEntries(list.map((i) => [i.id, i.status]));
  }

  waitSynced(timeoutMs = 5_000): Promise<true> {
    return waitFor('the provider to sync', () => this.provider.status().synced, timeoutMs);
  }

  async errors(watch?: string, code?: string): Promise<number> {
    const metric = this.metrics.registry.getSingleMetric('switchyard_consul_errors_total');
    if (metric === undefined) return 0;
    const { values } = await metric.get();
    return values
      .filter((v) => (watch === undefined || v.labels['watch'] === watch) && (code === undefined || v.labels['code'] === code))
      .reduce((sum, v) => sum + v.value, 0);
  }

  async gauge(name: string): Promise<number | undefined> {
    const metric = this.metrics.registry.getSingleMetric(name);
    if (metric === undefined) return undefined;
    return (await metric.get()).values[0]?.value;
  }

  stop(): Promise<void> {
    return this.provider.stop();
  }
}

/** Requests of the server log to one path, oldest first. */
export function requestsTo(server: ConsulTestServer, path: string): LoggedRequest[] {
  return server.requests.filter((r) => r.path === path);
}

/** A TTL-checked instance registration (check id `service:<id>`), passing by default. */
export function instance(
  name: string,
  id: string,
  port: number,
  extra: { tags?: string[]; address?: string; weights?: { Passing: number; Warning: number }; status?: 'passing' | 'warning' | 'critical' } = {},
): Parameters<ConsulTestServer['registerService']>[0] {
  return {
    ID: id,
    Name: name,
    Port: port,
    Address: extra.address ?? '127.0.0.1',
    Tags: extra.tags ?? [],
    ...(extra.weights === undefined ? {} : { Weights: extra.weights }),
    Check: { TTL: '30s', Status: extra.status ?? 'passing' },
  };
}

/**
 * Resolves once every path in `paths` has a blocking read parked that arrived after request
 * `mark` (server.requestCount taken before the event): true only of the state after the event,
 * unlike the blocked-query count, which may already be reached before it.
 */
export function parkedSince(server: ConsulTestServer, mark: number, paths: readonly string[], timeoutMs = 5_000): Promise<true> {
  return waitFor(`a new parked read of ${paths.join(', ')}`, () => paths.every((path) =>
    server.requests.some((r) => r.seq > mark && r.path === path && r.blocked === true && r.status === undefined)), timeoutMs);
}

/**
 * The paths of the four blocking watches of a provider under the `switchyard/` prefix, whatever the
 * services it follows (those are read without blocking, only when they may have changed).
 */
export const WATCH_PATHS = ['/v1/catalog/services', '/v1/health/state/any', '/v1/catalog/nodes', '/v1/kv/switchyard/'] as const;
