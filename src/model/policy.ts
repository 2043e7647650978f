/**
 * Per-route resilience policies: the resolved shape every Route carries, its defaults, and the
 * layering of partial inputs (template `policy:` block, then KV `routes/<route>/policy`) over them.
 * Pure data; parsing of untrusted input lives in policy-parse.ts.
 *
 * Layering is JSON merge patch (RFC 7386) restricted to this shape: each layer changes only the
 * fields it names; `timeouts`, `retries`, `outlier` and `upstream` merge field by field
 * (`upstream.maxConnections: null` removes the cap); `rateLimit` and
 * `concurrency` merge field by field too, and `null` turns them off; `maxBodyBytes: null` removes
 * the limit; arrays (`retries.on`) are replaced whole.
 *
 * Every duration is in milliseconds; 0 turns a timeout off (except `connectMs`, which must be > 0).
 */

/** What a retry may follow. `connect-failure`: no connection could be made (nothing was sent). */
export const RETRY_CONDITIONS = ['connect-failure', 'reset', '502', '503', '504'] as const;
export type RetryCondition = typeof RETRY_CONDITIONS[number];

export interface TimeoutPolicy {
  /** TCP connect to the upstream. */
  readonly connectMs: number;
  /** From the request sent to the complete response head; 0 = none. */
  readonly headersMs: number;
  /** Longest silence between two response body chunks; 0 = none. */
  readonly bodyIdleMs: number;
  /** The whole exchange, every attempt included, from request received to response end; 0 = none. */
  readonly totalMs: number;
  /**
   * An upgraded connection (WebSocket) with no byte in either direction for this long is closed
   * (HAProxy's `timeout tunnel`); 0 = none. Long by default: idle WebSockets are normal.
   */
  readonly tunnelIdleMs: number;
}

export interface RetryPolicy {
  /** Extra attempts after the first, each on another endpoint. */
  readonly count: number;
  /** Conditions that allow a retry (the proxy also requires a safe method / an unsent body). */
  readonly on: readonly RetryCondition[];
  /** Retries allowed as a share of the route's requests over a 10 s sliding window, in percent. */
  readonly budgetPercent: number;
  /** Retries always allowed per second on top of the share, so low traffic can still retry. */
  readonly minPerSecond: number;
  /**
   * Request bodies up to this many bytes are kept while they stream, so that an idempotent request
   * with a body (PUT, DELETE) can be sent again after a reset or a 502/503/504 (HAProxy buffers
   * the request for its L7 retries the same way); larger bodies are not retried; 0 = never kept.
   */
  readonly bufferBytes: number;
}

export interface OutlierPolicy {
  /** Consecutive failures (connect errors, resets, timeouts, 5xx) that eject an endpoint; 0 = never. */
  readonly consecutiveFailures: number;
  /** Ejection time = baseEjectionMs × number of ejections so far, capped at maxEjectionMs. */
  readonly baseEjectionMs: number;
  /** At most this share of a destination's endpoints is ejected at once. */
  readonly maxEjectionPercent: number;
  readonly maxEjectionMs: number;
}

export interface RateLimitPolicy {
  /** Token refill rate. */
  readonly requestsPerSecond: number;
  /** Bucket size: requests that may arrive at once after a quiet period. */
  readonly burst: number;
  /** One bucket per client address instead of one for the whole route. */
  readonly perClient: boolean;
}

/**
 * Connections to each upstream endpoint. No cap by default, like HAProxy (a server line without
 * `maxconn`) and nginx (an upstream server without `max_conns`).
 */
export interface UpstreamPolicy {
  /**
   * Connections the route opens to each endpoint at once; requests beyond wait in a queue. null = no
   * cap. Routes with a cap get pools of their own (one cap per route and endpoint).
   */
  readonly maxConnections: number | null;
  /**
   * Longest wait in that queue before the request is answered 503 SY_QUEUE_TIMEOUT (HAProxy's
   * `timeout queue`). Only matters with a cap. Default 30 s: HAProxy's documentation examples and
   * most shipped configurations use `timeout queue 30s`, and it stays below the common 60 s client
   * timeouts, so the client gets a clear 503 rather than its own timeout.
   */
  readonly queueTimeoutMs: number;
}

export interface ConcurrencyPolicy {
  /** Requests of the route in flight at once; more are refused with 503. */
  readonly max: number;
}

/** The effective policy of a route: always complete, frozen with the table. `null` = off. */
export interface RoutePolicy {
  readonly timeouts: TimeoutPolicy;
  readonly retries: RetryPolicy;
  readonly outlier: OutlierPolicy;
  readonly rateLimit: RateLimitPolicy | null;
  readonly concurrency: ConcurrencyPolicy | null;
  /** Largest request body accepted, in bytes; null = no limit. */
  readonly maxBodyBytes: number | null;
  /** Answer plain-HTTP requests with a 308 to HTTPS (when the proxy has a TLS listener). */
  readonly redirectToHttps: boolean;
  readonly upstream: UpstreamPolicy;
  /**
   * Responses relayed from the upstream carry `x-switchyard-route`, `x-switchyard-endpoint` (the
   * endpoint id) and `x-switchyard-upstream-ms` (time to the upstream's response head), like Envoy's
   * `x-envoy-upstream-service-time`. Off by default: they name internal services.
   */
  readonly debugHeaders: boolean;
}

/**
 * One validated layer (template block or KV value): any subset of RoutePolicy, same names, values
 * already converted (durations in ms, sizes in bytes).
 */
export interface PolicyInput {
  readonly timeouts?: Partial<TimeoutPolicy>;
  readonly retries?: Partial<RetryPolicy>;
  readonly outlier?: Partial<OutlierPolicy>;
  readonly rateLimit?: Partial<RateLimitPolicy> | null;
  readonly concurrency?: Partial<ConcurrencyPolicy> | null;
  readonly maxBodyBytes?: number | null;
  readonly redirectToHttps?: boolean;
  readonly upstream?: Partial<UpstreamPolicy>;
  readonly debugHeaders?: boolean;
}

/**
 * Defaults. Timeouts and the connect-failure retry are what the proxy did before policies existed;
 * ejection follows Envoy's outlier detection defaults (5 consecutive failures, 30 s base, 50%,
 * 300 s cap); the retry budget follows Finagle's (20% of requests over 10 s plus a small floor).
 */
export const DEFAULT_POLICY: RoutePolicy = deepFreezePolicy({
  timeouts: { connectMs: 5_000, headersMs: 60_000, bodyIdleMs: 60_000, totalMs: 0, tunnelIdleMs: 3_600_000 },
  retries: { count: 1, on: ['connect-failure'], budgetPercent: 20, minPerSecond: 3, bufferBytes: 64 * 1024 },
  outlier: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50, maxEjectionMs: 300_000 },
  rateLimit: null,
  concurrency: null,
  maxBodyBytes: null,
  redirectToHttps: false,
  upstream: { maxConnections: null, queueTimeoutMs: 30_000 },
  debugHeaders: false,
});

/**
 * The effective policy: DEFAULT_POLICY with each layer applied in order (undefined layers skipped),
 * or the reason the combination is unusable (a rate limit without `requestsPerSecond`, a
 * concurrency limit without `max`, `maxEjectionMs` below `baseEjectionMs`). Layers must be
 * validated input (parsePolicyInput). With no layer at all, returns DEFAULT_POLICY itself.
 */
export function resolvePolicy(layers: readonly (PolicyInput | undefined)[]): RoutePolicy | string {
  if (layers.every((layer) => layer === undefined)) return DEFAULT_POLICY;
  let timeouts: TimeoutPolicy = DEFAULT_POLICY.timeouts;
  let retries: RetryPolicy = DEFAULT_POLICY.retries;
  let outlier: OutlierPolicy = DEFAULT_POLICY.outlier;
  let rateLimit: Partial<RateLimitPolicy> | null = null;
  let concurrency: Partial<ConcurrencyPolicy> | null = null;
  let maxBodyBytes: number | null = DEFAULT_POLICY.maxBodyBytes;
  let redirectToHttps = DEFAULT_POLICY.redirectToHttps;
  let upstream: UpstreamPolicy = DEFAULT_POLICY.upstream;
  let debugHeaders = DEFAULT_POLICY.debugHeaders;
  for (const layer of layers) {
    if (layer === undefined) continue;
    if (layer.timeouts !== undefined) timeouts = { ...timeouts, ...layer.timeouts };
    if (layer.retries !== undefined) retries = { ...retries, ...layer.retries };
    if (layer.outlier !== undefined) outlier = { ...outlier, ...layer.outlier };
    if (layer.rateLimit !== undefined) rateLimit = layer.rateLimit === null ? null : { ...(rateLimit ?? {}), ...layer.rateLimit };
    if (layer.concurrency !== undefined) concurrency = layer.concurrency === null ? null : { ...(concurrency ?? {}), ...layer.concurrency };
    if (layer.maxBodyBytes !== undefined) maxBodyBytes = layer.maxBodyBytes;
    if (layer.redirectToHttps !== undefined) redirectToHttps = layer.redirectToHttps;
    if (layer.upstream !== undefined) upstream = { ...upstream, ...layer.upstream };
    if (layer.debugHeaders !== undefined) debugHeaders = layer.debugHeaders;
  }
  if (outlier.maxEjectionMs < outlier.baseEjectionMs) {
    return `outlier.maxEjectionMs (${outlier.maxEjectionMs}) is below outlier.baseEjectionMs (${outlier.baseEjectionMs})`;
  }
  let limit: RateLimitPolicy | null = null;
  if (rateLimit !== null) {
    const { requestsPerSecond, burst, perClient } = rateLimit;
    if (requestsPerSecond === undefined) return 'rateLimit needs requestsPerSecond';
    limit = { requestsPerSecond, burst: burst ?? Math.max(1, Math.ceil(requestsPerSecond)), perClient: perClient ?? false };
  }
  let maxConcurrent: ConcurrencyPolicy | null = null;
  if (concurrency !== null) {
    if (concurrency.max === undefined) return 'concurrency needs max';
    maxConcurrent = { max: concurrency.max };
  }
  return deepFreezePolicy({
    timeouts: { ...timeouts },
    retries: { ...retries, on: [...retries.on] },
    outlier: { ...outlier },
    rateLimit: limit,
    concurrency: maxConcurrent,
    maxBodyBytes,
    redirectToHttps,
    upstream: { ...upstream },
    debugHeaders,
  });
}

function deepFreezePolicy(policy: RoutePolicy): RoutePolicy {
  for (const value of Object.values(policy)) {
    if (typeof value === 'object' && value !== null) {
      for (const inner of Object.values(value)) if (typeof inner === 'object' && inner !== null) Object.freeze(inner);
      Object.freeze(value);
    }
  }
  return Object.freeze(policy);
}
