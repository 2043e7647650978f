import type { Socket } from 'node:net';
import { buildConnector, Pool } from 'undici';
import type { Route, RoutingTable } from '../../model/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { guardEarlyAnswers } from '../http/early-answer-socket.js';

/**
 * Connection settings for every upstream pool. Times in milliseconds. Route policies take
 * precedence: each request carries its route's headers and body timeouts, and a route whose
 * connect timeout differs from `connectTimeoutMs`, or that caps its connections
 * (`upstream.maxConnections`), gets pools of its own (see `poolKey`); the values here remain the
 * pools' defaults and the WebSocket connect timeout.
 *
 * Connections per origin are not capped by default, as in HAProxy (no `maxconn` on a server line)
 * and nginx (no `max_conns`): a hidden cap queued requests past it with no timeout, so long-polls
 * and SSE streams beyond it hung. A route caps them with its policy's `upstream.maxConnections`.
 */
export interface UpstreamOptions {
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
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly keepAliveMaxTimeoutMs: number;
  readonly drainTimeoutMs: number;
}

export function resolveUpstreamOptions(options: UpstreamOptions = {}): ResolvedUpstreamOptions {
  return Object.freeze({
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    headersTimeoutMs: options.headersTimeoutMs ?? 60_000,
    bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 4_000,
    keepAliveMaxTimeoutMs: options.keepAliveMaxTimeoutMs ?? 600_000,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
  });
}

/** What a route asks of the pools it uses: undici sets both per pool, not per request. */
export interface PoolSettings {
  readonly connectMs: number;
  /** Connections per origin; null = no cap. */
  readonly maxConnections: number | null;
}

/** The pool settings of a route, from its policy. */
export function poolSettingsOf(route: Route): PoolSettings {
  return { connectMs: route.policy.timeouts.connectMs, maxConnections: route.policy.upstream.maxConnections };
}

/**
 * The key of the pool for an origin, a connect timeout and a connection cap: the origin itself for
 * the default timeout and no cap, `origin connect=<ms>` and/or `origin max=<n>` otherwise.
 * undici's connect timeout and connection cap are pool settings, so routes with their own get
 * pools of their own (created at swap time, nothing per request); routes that share the settings
 * share the pool and its keep-alive connections. A cap is per route and origin: two routes with
 * `maxConnections: 2` each open up to 2 connections to a shared origin.
 */
export function poolKey(origin: string, connectTimeoutMs: number, defaultConnectTimeoutMs: number, maxConnections: number | null = null): string {
  let key = connectTimeoutMs === defaultConnectTimeoutMs ? origin : `${origin} connect=${connectTimeoutMs}`;
  if (maxConnections !== null) key += ` max=${maxConnections}`;
  return key;
}

/**
 * One undici Pool (keep-alive) per endpoint origin, reconciled make-before-break with the table:
 * `prepare(next)` creates pools for new origins before the swap; `retainOnly(next)` retires the
 * pools of origins the live table no longer uses. A retired pool finishes its in-flight requests
 * (`pool.close()`), bounded by `drainTimeoutMs`, after which it is destroyed.
 *
 * Invariant: `active` holds exactly one open pool per pool key (origin, or origin with a connect
 * timeout and/or a connection cap: `poolKey`); a retired pool is never handed out again (an origin that comes back gets a
 * fresh pool while the old one drains).
 */
export class Upstreams {
  readonly options: ResolvedUpstreamOptions;
  private readonly active = new Map<string, Pool>();
  private readonly draining = new Set<Promise<void>>();
  private readonly metrics: Metrics | undefined;
  private readonly logger: Logger | undefined;
  /** Origins whose pool could not be made (reported once until they work). */
  private readonly failed = new Set<string>();
  private closed = false;

  constructor(options: UpstreamOptions = {}, logger?: Logger, metrics?: Metrics) {
    this.options = resolveUpstreamOptions(options);
    this.logger = logger;
    this.metrics = metrics;
  }

  /** The open pool of an origin with these settings, if the live (or prepared) table uses it. */
  get(origin: string, settings?: PoolSettings): Pool | undefined {
    return this.active.get(this.keyOf(origin, settings));
  }

  /**
   * The pool of an origin with these settings (default: the options' connect timeout, no cap),
   * created if missing. Throws when undici refuses the origin or the upstreams are closed; swaps
   * use `tryAcquire`.
   */
  acquire(origin: string, settings?: PoolSettings): Pool {
    const key = this.keyOf(origin, settings);
    let pool = this.active.get(key);
    if (pool === undefined) {
      if (this.closed) throw new Error('upstreams are closed');
      const o = this.options;
      pool = new Pool(origin, {
        // undici: null = no limit.
        connections: settings?.maxConnections ?? null,
        connect: guardedConnector(settings?.connectMs ?? o.connectTimeoutMs),
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

  /**
   * `acquire` that cannot throw: undefined when the pool cannot be made, logged and counted
   * (`switchyard_config_errors_total{kind="endpoint"}`) once per origin until it works again. The
   * model already leaves out addresses undici cannot parse (model/endpoint-address.ts); this is the
   * guarantee that a swap never stops half-way whatever reaches it: the endpoint is left out, the
   * rest of the table applies.
   */
  tryAcquire(origin: string, settings?: PoolSettings): Pool | undefined {
    try {
      const pool = this.acquire(origin, settings);
      this.failed.delete(origin);
      return pool;
    } catch (err) {
      if (!this.failed.has(origin)) {
        this.failed.add(origin);
        this.metrics?.configErrors.inc({ kind: 'endpoint' });
        this.logger?.error({ origin, err: (err as Error).message }, 'cannot create an upstream pool; endpoint left out of its route');
      }
      return undefined;
    }
  }

  /** Make: create pools for every origin (with its route's settings) `next` uses. Runs before the swap; never throws. */
  prepare(next: RoutingTable): void {
    for (const route of next.routes) {
      const settings = poolSettingsOf(route);
      for (const destination of route.active) {
        for (const endpoint of destination.active) this.tryAcquire(endpoint.origin, settings);
      }
    }
  }

  /** The pool keys `table` sends new requests to. */
  poolKeys(table: RoutingTable | undefined): Set<string> {
    const keys = new Set<string>();
    for (const route of table?.routes ?? []) {
      const settings = poolSettingsOf(route);
      for (const destination of route.active) {
        for (const endpoint of destination.active) keys.add(this.keyOf(endpoint.origin, settings));
      }
    }
    return keys;
  }

  /**
   * Break: retire pools `live` does not use. Runs after a swap (`live` is the new table), and after
   * an aborted one (`live` is the table that stayed: the pools made for the other are retired).
   */
  retainOnly(live: RoutingTable | undefined): void {
    const keep = this.poolKeys(live);
    for (const [key, pool] of this.active) {
      if (!keep.has(key)) {
        this.active.delete(key);
        this.retire(key, pool, this.options.drainTimeoutMs);
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
  private async drained(): Promise<void> {
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

  private keyOf(origin: string, settings: PoolSettings | undefined): string {
    const connectMs = settings?.connectMs ?? this.options.connectTimeoutMs;
    return poolKey(origin, connectMs, this.options.connectTimeoutMs, settings?.maxConnections ?? null);
  }

  private updateGauge(): void {
    this.metrics?.upstreamPools.set(this.size);
  }
}

/**
 * undici's own connector (same connect timeout and socket options as Pool's `connectTimeout`),
 * with every upstream socket it makes guarded so an upstream's early answer to an upload survives
 * the failed body write that follows it (http/early-answer-socket.ts). Only the proxy's pools get
 * it; one closure per connection, none per request.
 */
function guardedConnector(timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    connect(options, (err, socket) => {
      if (err === null) {
        guardEarlyAnswers(socket as Socket);
        callback(null, socket);
      } else {
        callback(err, null);
      }
    });
  };
}
