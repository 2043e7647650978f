import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Switchyard exports, on one registry. Created once at start-up; components receive
 * the object and keep references to the children they use on the hot path.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'switchyard_requests_total',
    help: 'Proxied requests by route and response status code',
    labelNames: ['route', 'code'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'switchyard_request_duration_seconds',
    help: 'Time from request received to response finished, by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'switchyard_upstream_errors_total',
    help: 'Upstream failures by route and error code (SY_UPSTREAM_CONNECT, SY_UPSTREAM_TIMEOUT, ...)',
    labelNames: ['route', 'code'] as const,
    registers: [this.registry],
  });

  readonly tableSwaps = new Counter({
    name: 'switchyard_table_swaps_total',
    help: 'Routing tables built, validated and swapped in',
    registers: [this.registry],
  });

  readonly configErrors = new Counter({
    name: 'switchyard_config_errors_total',
    help: 'Rejected configuration by kind (template, services, kv, tag, build); the last good table keeps serving',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly tableRoutes = new Gauge({
    name: 'switchyard_routes',
    help: 'Routes in the live routing table',
    registers: [this.registry],
  });

  readonly tableBuiltAt = new Gauge({
    name: 'switchyard_table_last_swap_timestamp_seconds',
    help: 'Unix time of the last table swap',
    registers: [this.registry],
  });

  readonly upstreamPools = new Gauge({
    name: 'switchyard_upstream_pools',
    help: 'Open upstream connection pools (one per endpoint origin), including draining ones',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_process_' });
  }
}
