import { Pool } from 'undici';
import type { RoutingTable } from '../../model/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';

/**
 * Connection settings for every upstream pool. Times in milliseconds. Route policies take
 * precedence: each request carries its route's headers and body timeouts, and a route whose
 * connect timeout differs from `connectTimeoutMs` gets pools of its own (see `poolKey`); the values
 * here remain the pools' defaults and the WebSocket connect timeout.
 */
export interface UpstreamOptions {
  /** Maximum connections per origin; null for unbounded. Default 128. */
  connections?: number | null;
  /** TCP connect timeout of the default pools. Default 5 s (the route policy default too). */
  connectTimeoutMs?: number;
  /** Time to wait for the complete response head after the request was sent. Default 60 s. */
  headersTimeoutMs?: number;
  /** Maximum idle time between two response body chunks (0 disables). Default 60 s. */
  bodyTimeoutMs?: number;
  /** Idle keep-alive time of an upstream connection when the upstream gives no hint. Default 4 s. */
  keepAliveTimeoutMs?: number;
  /** Upper bound for the upstream's `Keep-Alive: timeout=` hint. Default 10 min. */
  keepAliveMaxTimeoutMs?: number;
  /** How long a removed origin's pool may take to finish in-flight requests before it is destroyed. Default 30 s. */
  drainTimeoutMs?: number;
}

export interface ResolvedUpstreamOptions {
  readonly connections: number | null;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly keepAliveMaxTimeoutMs: number;
  readonly drainTimeoutMs: number;
}

export function resolveUpstreamOptions(options: UpstreamOptions = {}): ResolvedUpstreamOptions {
  return Object.freeze({
    connections: options.connections === undefined ? 128 : options.connections,
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    headersTimeoutMs: options.headersTimeoutMs ?? 60_000,
    bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 4_000,
    keepAliveMaxTimeoutMs: options.keepAliveMaxTimeoutMs ?? 600_000,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
  });
}

/** The origins a table sends new requests to: those of active endpoints of active destinations. */
export function tableOrigins(table: RoutingTable): Set<string> {
  const origins = new Set<string>();
  for (const route of table.routes) {
    for (const destination of route.active) {
      for (const endpoint of destination.active) origins.add(endpoint.origin);
    }
  }
  return origins;
}

/**
 * The key of the pool for an origin and a connect timeout: the origin itself for the default
 * timeout, `origin connect=<ms>` otherwise. undici's connect timeout is a pool setting, so routes
 * with their own connect timeout get pools of their own (created at swap time, nothing per request);
 * routes that share a timeout share the pool and its keep-alive connections.
 */
export function poolKey(origin: string, connectTimeoutMs: number, defaultConnectTimeoutMs: number): string {
  return connectTimeoutMs === defaultConnectTimeoutMs ? origin : `${origin} connect=${connectTimeoutMs}`;
}

/**
 * One undici Pool (keep-alive) per endpoint origin, reconciled make-before-break with the table:
 * `prepare(next)` creates pools for new origins before the swap; `swapped(next)` retires the pools
 * of origins the live table no longer uses. A retired pool finishes its in-flight requests
 * (`pool.close()`), bounded by `drainTimeoutMs`, after which it is destroyed.
 *
 * Invariant: `active` holds exactly one open pool per pool key (origin, or origin and connect
 * timeout: `poolKey`); a retired pool is never handed out again (an origin that comes back gets a
 * fresh pool while the old one drains).
 */
export class Upstreams {
  readonly options: ResolvedUpstreamOptions;
  private readonly active = new Map<string, Pool>();
  private readonly draining = new Set<Promise<void>>();
  private readonly metrics: Metrics | undefined;
  private readonly logger: Logger | undefined;
  private closed = false;

  constructor(options: UpstreamOptions = {}, logger?: Logger, metrics?: Metrics) {
    this.options = resolveUpstreamOptions(options);
    this.logger = logger;
    this.metrics = metrics;
  }

  /** The open pool of an origin (default connect timeout), if the live (or prepared) table uses it. */
  get(origin: string, connectTimeoutMs = this.options.connectTimeoutMs): Pool | undefined {
    return this.active.get(poolKey(origin, connectTimeoutMs, this.options.connectTimeoutMs));
  }

  /** The pool of an origin with a connect timeout (default: the options'), created if missing. */
  acquire(origin: string, connectTimeoutMs = this.options.connectTimeoutMs): Pool {
    const key = poolKey(origin, connectTimeoutMs, this.options.connectTimeoutMs);
    let pool = this.active.get(key);
    if (pool === undefined) {
      if (this.closed) throw new Error('upstreams are closed');
      const o = this.options;
      pool = new Pool(origin, {
        connections: o.connections,
        connectTimeout: connectTimeoutMs,
        headersTimeout: o.headersTimeoutMs,
        bodyTimeout: o.bodyTimeoutMs,
        keepAliveTimeout: o.keepAliveTimeoutMs,
        keepAliveMaxTimeout: o.keepAliveMaxTimeoutMs,
        pipelining: 1,
      });
      this.active.set(key, pool);
      this.updateGauge();
    }
    return pool;
  }

  /** Make: create pools for every origin (and route connect timeout) `next` uses. Runs before the swap. */
  prepare(next: RoutingTable): void {
    for (const route of next.routes) {
      const connectMs = route.policy.timeouts.connectMs;
      for (const destination of route.active) {
        for (const endpoint of destination.active) this.acquire(endpoint.origin, connectMs);
      }
    }
  }

  /** The pool keys `table` sends new requests to. */
  poolKeys(table: RoutingTable): Set<string> {
    const keys = new Set<string>();
    for (const route of table.routes) {
      const connectMs = route.policy.timeouts.connectMs;
      for (const destination of route.active) {
        for (const endpoint of destination.active) keys.add(poolKey(endpoint.origin, connectMs, this.options.connectTimeoutMs));
      }
    }
    return keys;
  }

  /** Break: retire pools `next` does not use. Runs after the swap. */
  swapped(next: RoutingTable, _previous?: RoutingTable): void {
    const keep = this.poolKeys(next);
    for (const [origin, pool] of this.active) {
      if (!keep.has(origin)) {
        this.active.delete(origin);
        this.retire(origin, pool, this.options.drainTimeoutMs);
      }
    }
    this.updateGauge();
  }

  /** Open pools, including draining ones. */
  get size(): number {
    return this.active.size + this.draining.size;
  }

  /** Keys (origins, see `poolKey`) with an open, non-draining pool. */
  origins(): string[] {
    return [...this.active.keys()];
  }

  /** Resolves once every retired pool has closed or been destroyed. */
  async drained(): Promise<void> {
    while (this.draining.size > 0) await Promise.all([...this.draining]);
  }

  /** Shutdown: retire every pool (in-flight requests get `timeoutMs`) and wait for all of them. */
  async close(timeoutMs = this.options.drainTimeoutMs): Promise<void> {
    this.closed = true;
    for (const [origin, pool] of this.active) this.retire(origin, pool, timeoutMs);
    this.active.clear();
    this.updateGauge();
    await this.drained();
  }

  private retire(origin: string, pool: Pool, timeoutMs: number): void {
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger?.warn({ origin, timeoutMs }, 'upstream pool did not drain in time; destroying it');
        pool.destroy().then(resolve, resolve);
      }, timeoutMs);
      timer.unref();
      pool.close().then(resolve, resolve);
    });
    const done = bounded.then(() => {
      clearTimeout(timer);
      this.draining.delete(done);
      this.updateGauge();
      this.logger?.debug({ origin }, 'upstream pool closed');
    });
    this.draining.add(done);
  }

  private updateGauge(): void {
    this.metrics?.upstreamPools.set(this.size);
  }
}
