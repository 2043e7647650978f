import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const PROCESS_PREFIX = 'switchyard_process_';
const PROMTOOL_REJECTED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

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
    help: 'Rejected configuration by kind (template, services, kv, tag, service, build, tls); the last good table (or certificate) keeps serving',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly tableRoutes = new Gauge({
    name: 'switchyard_routes',
    help: 'Routes in the live routing table',
    // With --workers > 1 only the primary builds tables: the workers report 0, the machine the primary's value.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tableBuiltAt = new Gauge({
    name: 'switchyard_table_last_swap_timestamp_seconds',
    help: 'Unix time of the last table swap',
    // As switchyard_routes: set by the primary only.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly upstreamPools = new Gauge({
    name: 'switchyard_upstream_pools',
    help: 'Open upstream connection pools (one per endpoint origin), including draining ones',
    registers: [this.registry],
  });

  readonly tlsCertificates = new Gauge({
    name: 'switchyard_tls_certificates',
    help: 'TLS certificate pairs the TLS listener serves (broken pairs on disk excluded)',
    // Every worker serves the same directory: the machine serves that many, not N times as many.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tlsReloads = new Counter({
    name: 'switchyard_tls_reloads_total',
    help: 'TLS certificate sets swapped in after a change in the certificate directory',
    // Every worker reloads the same change: one reload of the machine.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tlsCertificateExpiry = new Gauge({
    name: 'switchyard_tls_certificate_expiry_timestamp_seconds',
    help: 'Unix time at which each served TLS certificate expires, by pair name',
    labelNames: ['certificate'] as const,
    // The same certificate in every worker.
    aggregator: 'max',
    registers: [this.registry],
  });

  // ---- resilience policies (src/proxy/route-state.ts, forward.ts) ----

  readonly retries = new Counter({
    name: 'switchyard_retries_total',
    help: 'Upstream attempts retried on another endpoint, by route and reason (connect-failure, reset, 502, 503, 504)',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });

  readonly retryBudgetExhausted = new Counter({
    name: 'switchyard_retry_budget_exhausted_total',
    help: 'Retries refused because the route spent its retry budget (the failure was returned as is)',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'switchyard_ejections_total',
    help: 'Endpoints ejected by outlier detection (consecutive failures), by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly ejectedEndpoints = new Gauge({
    name: 'switchyard_ejected_endpoints',
    help: 'Endpoints currently ejected by outlier detection, by route',
    labelNames: ['route'] as const,
    // Workers share ejections (src/cluster/): each reports the machine's count.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'switchyard_rate_limited_total',
    help: 'Requests refused with 429 by the route rate limit',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly overloaded = new Counter({
    name: 'switchyard_overloaded_total',
    help: 'Requests refused with 503 because the route concurrency limit was reached',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly bodyTooLarge = new Counter({
    name: 'switchyard_body_too_large_total',
    help: 'Requests refused with 413 because their body exceeded the route limit',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly upstreamTimeouts = new Counter({
    name: 'switchyard_upstream_timeouts_total',
    help: 'Upstream timeouts by route and kind (connect, headers, body, total, tunnel); each but tunnel (an idle upgraded connection closed) is also an upstream error SY_UPSTREAM_TIMEOUT',
    labelNames: ['route', 'kind'] as const,
    registers: [this.registry],
  });

  /** Requests waiting for an upstream connection on routes with `upstream.maxConnections`. */
  readonly upstreamQueued = new Gauge({
    name: 'switchyard_upstream_queued_requests',
    help: 'Requests waiting for a connection to an upstream endpoint, by route (only routes with upstream.maxConnections); past upstream.queueTimeoutMs they are answered 503 SY_QUEUE_TIMEOUT',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  // ---- request mirroring (src/proxy/http/mirror.ts, src/proxy/runtime/mirror-route.ts) ----

  readonly mirror = new Counter({
    name: 'switchyard_mirror_total',
    help: 'Request copies decided for routes with a mirror (requests not sampled are not counted), by route and result: ok, server_error (the mirror answered 5xx), error, timeout, shed (maxInFlight reached), no_endpoint, body_too_large, incomplete (the client body never completed)',
    labelNames: ['route', 'result'] as const,
    registers: [this.registry],
  });

  // ---- upstream timing (src/proxy/http/exchange.ts, src/proxy/runtime/upstreams.ts) ----

  readonly upstreamConnectDuration = new Histogram({
    name: 'switchyard_upstream_connect_duration_seconds',
    help: 'Time to open a new upstream connection (TCP, and TLS where used), by route',
    labelNames: ['route'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly upstreamFirstByteDuration = new Histogram({
    name: 'switchyard_upstream_first_byte_duration_seconds',
    help: 'Time from the request sent upstream to the upstream response head (time to first byte), by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  // ---- control plane (src/control/; set by the primary only) ----

  readonly changeToSwapDelay = new Histogram({
    name: 'switchyard_change_to_swap_seconds',
    help: 'Time from a source delivering a change (a Consul answer, a file read) to the table holding it being swapped in, by provider',
    labelNames: ['provider'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly buildDuration = new Histogram({
    name: 'switchyard_table_build_duration_seconds',
    help: 'Time to build and validate one routing table (successful or rejected)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tableVersion = new Gauge({
    name: 'switchyard_table_version',
    help: 'Version of the live routing table (increases by one per swap)',
    aggregator: 'max',
    registers: [this.registry],
  });

  // ---- workers (src/cluster/, --workers > 1; set by the primary only) ----

  readonly workerRestarts = new Counter({
    name: 'switchyard_worker_restarts_total',
    help: 'Worker processes that exited unexpectedly and were replaced (with --workers > 1)',
    registers: [this.registry],
  });

  readonly workersServing = new Gauge({
    name: 'switchyard_workers_serving',
    help: 'Worker processes with their listeners open (with --workers > 1)',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly workerMetricsStale = new Gauge({
    name: 'switchyard_worker_metrics_stale',
    help: '1 while the worker in this slot did not answer the metrics request in time: /metrics counts it with its last answer (with --workers > 1)',
    labelNames: ['slot'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: PROCESS_PREFIX });
      // prom-client names three gauges `..._total`, which promtool rejects (`_total` is for
      // counters); each is the sum of its per-type gauge (`sum(switchyard_process_nodejs_active_handles)`).
      for (const name of PROMTOOL_REJECTED_DEFAULTS) this.registry.removeSingleMetric(`${PROCESS_PREFIX}${name}`);
    }
  }
}
