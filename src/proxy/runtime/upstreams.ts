import type { Socket } from 'node:net';
import type { Histogram } from 'prom-client';
import { buildConnector, Pool, type Dispatcher } from 'undici';
import type { Route, RoutingTable } from '../../model/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { guardEarlyAnswers } from '../http/early-answer-socket.js';
import { shareOf } from './route-state.js';

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
/** A route's pool settings; its connection cap is for the machine, so each of N workers gets 1/N of it. */
export function poolSettingsOf(route: Route): PoolSettings {
  const max = route.policy.upstream.maxConnections;
  return { connectMs: route.policy.timeouts.connectMs, maxConnections: max === null ? null : shareOf(max) };
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
 * The pool of one pool key, as the runtime holds it: an undici Pool made on its first request.
 *
 * Why not the Pool itself at swap time: undici's Pool costs ~0.1-0.2 ms and ~16 KiB to construct
 * (PoolBase allocates a 2,048-slot request queue up front), so a table with 20,000 new origins
 * spent 3-4 s in `new Pool` and held 300+ MB before a single request, and every rolling deploy
 * churned that through the old generation. An UpstreamPool costs a few fields; the origin is
 * validated here as undici would (so `tryAcquire` still leaves a bad endpoint out at swap time,
 * never on a request). Connections were always opened on demand; now the Pool is too. A pool
 * retired before its first request never makes one.
 */
export class UpstreamPool {
  readonly origin: string;
  /** Its pool key in Upstreams (`poolKey`). */
  readonly key: string;
  /**
   * Uses of this pool by the Route objects Upstreams holds (one per endpoint of each): counted on
   * the pool itself, so holding and releasing a route costs no Map lookup per endpoint.
   */
  uses = 0;
  /**
   * The route whose name labels this pool's connect times (switchyard_upstream_connect_duration_seconds):
   * the first route that held it (a changed route keeps it: same name); cleared when that route
   * leaves the table, then taken by the next route to hold the pool.
   */
  owner: string | undefined = undefined;
  /** The histogram child of `connectLabel`, resolved on the first connection (not per request). */
  connectChild: Histogram.Internal<'route'> | undefined = undefined;
  connectLabel: string | undefined = undefined;
  private pool: Pool | undefined;
  private closed = false;

  constructor(origin: string, key: string, private readonly make: (self: UpstreamPool) => Pool) {
    assertPoolOrigin(origin);
    this.origin = origin;
    this.key = key;
  }

  /** Hot path: one field read and one branch over `Pool.dispatch`. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return (this.pool ?? this.materialize()).dispatch(options, handler);
  }

  /** Whether the undici Pool exists (it had a request). */
  get materialized(): boolean {
    return this.pool !== undefined;
  }

  /** The Pool's stats; zeros before its first request. */
  get stats(): { readonly connected: number; readonly free: number; readonly pending: number; readonly running: number; readonly size: number } {
    return this.pool?.stats ?? { connected: 0, free: 0, pending: 0, running: 0, size: 0 };
  }

  close(): Promise<void> {
    this.closed = true;
    return this.pool === undefined ? Promise.resolve() : this.pool.close();
  }

  destroy(): Promise<void> {
    this.closed = true;
    return this.pool === undefined ? Promise.resolve() : this.pool.destroy();
  }

  private materialize(): Pool {
    const pool = this.make(this);
    this.pool = pool;
    // A request that reaches a pool retired before its first request fails as on a closed Pool.
    if (this.closed) void pool.close();
    return pool;
  }
}

/** Throws as undici's `new Pool(origin)` would for an origin it cannot use (util.parseOrigin). */
function assertPoolOrigin(origin: string): void {
  const url = new URL(origin);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`invalid origin protocol ${url.protocol}`);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new Error('invalid origin: it has a path, query or fragment');
}

/**
 * One pool (keep-alive) per endpoint origin and route settings (UpstreamPool), reconciled
 * make-before-break with the table: `prepare(next)` makes pools for the routes of `next` that are
 * new (Route objects the live table does not have) before the swap; `retainOnly(live)` retires the
 * pools no route of `live` uses any more. A retired pool finishes its in-flight requests
 * (`close()`), bounded by `drainTimeoutMs`, after which it is destroyed.
 *
 * Cost proportional to change: each prepared Route object holds one use of each of its endpoints'
 * pools, and of its mirror's endpoints' pools (`routeKeys`, `UpstreamPool.uses`); a Route object seen before costs a Map lookup, and only
 * the pools of routes that left are released. The runtime takes a route's pools from here
 * (`poolsOf`) instead of looking each origin up again. A table that differs from the live one by one route touches that
 * route's endpoints only, whatever the number of origins.
 *
 * Invariant: `active` holds exactly one open pool per pool key (origin, or origin with a connect
 * timeout and/or a connection cap: `poolKey`); a retired pool is never handed out again (an origin
 * that comes back gets a fresh pool while the old one drains).
 */
export class Upstreams {
  readonly options: ResolvedUpstreamOptions;
  private readonly active = new Map<string, UpstreamPool>();
  /**
   * The pools each prepared (or live) Route object uses (one use of each endpoint's pool, counted
   * in `UpstreamPool.uses`), and the last retainOnly that kept it.
   */
  private readonly routeKeys = new Map<Route, HeldRoute>();
  private retains = 0;
  /** Active keys no route uses (made by `acquire` outside a prepare, or released): retired by the next retainOnly. */
  private readonly unused = new Set<string>();
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
  get(origin: string, settings?: PoolSettings): UpstreamPool | undefined {
    return this.active.get(this.keyOf(origin, settings));
  }

  /**
   * The pool of an origin with these settings (default: the options' connect timeout, no cap),
   * created if missing. Throws when undici refuses the origin or the upstreams are closed; swaps
   * use `tryAcquire`.
   */
  acquire(origin: string, settings?: PoolSettings): UpstreamPool {
    const key = this.keyOf(origin, settings);
    let pool = this.active.get(key);
    if (pool === undefined) {
      if (this.closed) throw new Error('upstreams are closed');
      const o = this.options;
      const connections = settings?.maxConnections ?? null;
      const connectMs = settings?.connectMs ?? o.connectTimeoutMs;
      pool = new UpstreamPool(origin, key, (self) => new Pool(origin, {
        // undici: null = no limit.
        connections,
        connect: guardedConnector(connectMs, self, this.metrics),
        headersTimeout: o.headersTimeoutMs,
        bodyTimeout: o.bodyTimeoutMs,
        keepAliveTimeout: o.keepAliveTimeoutMs,
        keepAliveMaxTimeout: o.keepAliveMaxTimeoutMs,
        pipelining: 1,
      }));
      this.active.set(key, pool);
      // Not used by any route until a prepare counts it.
      this.unused.add(key);
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
  tryAcquire(origin: string, settings?: PoolSettings): UpstreamPool | undefined {
    try {
      const pool = this.acquire(origin, settings);
      if (this.failed.size > 0) this.failed.delete(origin);
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

  /**
   * Make: create pools for every origin (with its route's settings) the routes of `next` use, for
   * Route objects not prepared before. Runs before the swap; never throws.
   */
  prepare(next: RoutingTable): void {
    for (const route of next.routes) this.hold(route, true);
  }

  /**
   * The pool of each active endpoint of `route` (its destinations' `active` endpoints in order;
   * undefined where the pool cannot be made), made and held if the route was not prepared: what
   * the runtime builds its balancers from, so an endpoint's pool key is looked up once per swap.
   */
  poolsOf(route: Route): readonly (UpstreamPool | undefined)[] {
    return this.hold(route, true).pools;
  }

  /**
   * The pool of each active endpoint of `route.mirror` (its destination's `active` endpoints in
   * order; empty without a mirror), held with the route like its own: a mirror's pools have the
   * default settings (the copy bounds itself with `mirror.timeoutMs` and `maxInFlight`, not with
   * the route's connect timeout or connection cap), so they are the pools any route with default
   * settings uses for those origins, keep-alive connections included.
   */
  mirrorPoolsOf(route: Route): readonly (UpstreamPool | undefined)[] {
    return this.hold(route, true).mirror;
  }

  /** Count one use of each endpoint's pool of `route` (once per Route object), making pools when `make`. */
  private hold(route: Route, make: boolean): HeldRoute {
    const known = this.routeKeys.get(route);
    if (known !== undefined) return known;
    const settings = poolSettingsOf(route);
    const pools: (UpstreamPool | undefined)[] = [];
    for (const destination of route.active) {
      for (const endpoint of destination.active) pools.push(this.use(route, endpoint.origin, settings, make));
    }
    let mirror: readonly (UpstreamPool | undefined)[] = NO_POOLS;
    const mirrored = route.mirror?.destination.active;
    if (mirrored !== undefined && mirrored.length > 0) mirror = mirrored.map((endpoint) => this.use(route, endpoint.origin, undefined, make));
    const held: HeldRoute = { pools, mirror, kept: this.retains };
    this.routeKeys.set(route, held);
    return held;
  }

  /** One use of the pool of `origin` with `settings` by `route` (made when `make`); undefined when there is none. */
  private use(route: Route, origin: string, settings: PoolSettings | undefined, make: boolean): UpstreamPool | undefined {
    const pool = make ? this.tryAcquire(origin, settings) : this.active.get(this.keyOf(origin, settings));
    if (pool === undefined) return undefined;
    if (pool.uses++ === 0) this.unused.delete(pool.key);
    pool.owner ??= route.name;
    return pool;
  }

  /** The pool keys `table` sends new requests to (its routes' mirrors included). */
  poolKeys(table: RoutingTable | undefined): Set<string> {
    const keys = new Set<string>();
    for (const route of table?.routes ?? []) {
      const settings = poolSettingsOf(route);
      for (const destination of route.active) {
        for (const endpoint of destination.active) keys.add(this.keyOf(endpoint.origin, settings));
      }
      for (const endpoint of route.mirror?.destination.active ?? []) keys.add(this.keyOf(endpoint.origin, undefined));
    }
    return keys;
  }

  /**
   * Break: retire pools `live` does not use. Runs after a swap (`live` is the new table), and after
   * an aborted one (`live` is the table that stayed: the pools made for the other are retired).
   */
  retainOnly(live: RoutingTable | undefined): void {
    const retain = ++this.retains;
    for (const route of live?.routes ?? []) {
      // Live routes never prepared (a table swapped in without prepare) keep their pools too.
      this.hold(route, false).kept = retain;
    }
    // Names of live routes, made only when a route that owns a pool lets go of it: a new Route object
    // of the same name (a changed route) keeps the ownership.
    let liveNames: Set<string> | undefined;
    for (const [route, held] of this.routeKeys) {
      if (held.kept === retain) continue;
      this.routeKeys.delete(route);
      for (const pools of [held.pools, held.mirror]) {
        for (const pool of pools) {
          if (pool === undefined) continue;
          if (--pool.uses === 0) this.unused.add(pool.key);
          if (pool.owner === route.name && pool.uses > 0) {
            liveNames ??= new Set((live?.routes ?? []).map((r) => r.name));
            if (!liveNames.has(route.name)) pool.owner = undefined;
          }
        }
      }
    }
    for (const key of this.unused) {
      const pool = this.active.get(key);
      if (pool === undefined) continue;
      this.active.delete(key);
      this.retire(key, pool, this.options.drainTimeoutMs);
    }
    this.unused.clear();
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
    this.routeKeys.clear();
    this.unused.clear();
    this.updateGauge();
    await this.drained();
  }

  private retire(origin: string, pool: UpstreamPool, timeoutMs: number): void {
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

/** A Route object's pools (see Upstreams.poolsOf), its mirror's (mirrorPoolsOf) and the last retainOnly that kept it. */
interface HeldRoute {
  readonly pools: readonly (UpstreamPool | undefined)[];
  readonly mirror: readonly (UpstreamPool | undefined)[];
  kept: number;
}

const NO_POOLS: readonly (UpstreamPool | undefined)[] = Object.freeze([]);

/** Label of connect times of a pool whose holding routes all let go while another still holds it. */
const SHARED_POOL_LABEL = '(shared)';

/**
 * One new connection of `pool` took `seconds`: observed under the pool's owner route. Pools are per
 * origin and pool settings, so routes with the same origin and settings share one pool and its
 * connections: a connection belongs to no single route, and is counted once, under the first route
 * that used the pool (a per-request attribution is not possible: undici opens connections for its
 * queue, not for a request).
 */
function observeConnect(pool: UpstreamPool, metrics: Metrics, seconds: number): void {
  const label = pool.owner ?? SHARED_POOL_LABEL;
  if (pool.connectLabel !== label || pool.connectChild === undefined) {
    pool.connectLabel = label;
    pool.connectChild = metrics.upstreamConnectDuration.labels(label);
  }
  pool.connectChild.observe(seconds);
}

/**
 * undici's own connector (same connect timeout and socket options as Pool's `connectTimeout`),
 * with every upstream socket it makes guarded so an upstream's early answer to an upload survives
 * the failed body write that follows it (http/early-answer-socket.ts), and its connect time
 * observed. Only the proxy's pools get it; one closure per connection, none per request.
 */
function guardedConnector(timeoutMs: number, pool: UpstreamPool, metrics: Metrics | undefined): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    const started = performance.now();
    connect(options, (err, socket) => {
      if (err === null) {
        if (metrics !== undefined) observeConnect(pool, metrics, (performance.now() - started) / 1000);
        guardEarlyAnswers(socket as Socket);
        callback(null, socket);
      } else {
        callback(err, null);
      }
    });
  };
}
