import { jsonString } from '../../observability/access-log.js';
import type { TableStore } from '../../control/table-store.js';
import { SmoothWeightedRoundRobin } from '../../model/balancer.js';
import type { OutlierPolicy, RetryCondition, RoutePolicy } from '../../model/policy.js';
import type { Destination, Endpoint, RequestFacts, Route, RoutingTable } from '../../model/types.js';
import type { Metrics } from '../../observability/metrics.js';
import { headerValue } from '../http/debug-headers.js';
import { errorBody } from '../http/error-response.js';
import { headerEditPlan, type HeaderEditPlan } from '../http/headers.js';
import { RedirectTemplate } from '../http/redirect.js';
import { pathRewriteOf, type PathRewrite } from '../http/rewrite.js';
import { stickyOf, type StickySessions } from '../http/sticky.js';
import type { RateLimiter } from '../policy/rate-limiter.js';
import { EndpointWindow, type EndpointSample, type StatsSample } from './endpoint-window.js';
import { buildMirror, type RouteMirror } from './mirror-route.js';
import { NO_ROUTE_LABEL, RouteMetrics } from './route-metrics.js';
import { RouteState, type EjectedEndpoint, type EndpointHealth } from './route-state.js';
import type { UpstreamPool, Upstreams } from './upstreams.js';

/**
 * The proxy's mutable view of one immutable RoutingTable, built once per swap: balancers, pools,
 * metric children and each route's policy resolved ahead of time into plain fields, so a request
 * does one Map lookup (route → runtime route), two balancer picks and a few field reads. State that
 * must outlive a swap (balancer scores, in-flight counts, retry budget, rate-limit buckets, outlier
 * ejections, metric children) is carried over by stable ids (route name, destination key,
 * endpoint id); SmoothWeightedRoundRobin keeps the cycle when the ids and weights are unchanged.
 */
export class RuntimeEndpoint {
  readonly id: string;
  readonly weight: number;
  readonly origin: string;
  readonly endpoint: Endpoint;
  readonly pool: UpstreamPool;
  /** Outlier state of this endpoint in this route (shared by the route's runtimes across swaps). */
  readonly health: EndpointHealth;
  /** The last minute of this endpoint's traffic in this route (the status page); kept with `health`. */
  readonly window: EndpointWindow;
  /** The destination (pool) whose balancer holds this endpoint; set by RuntimeDestination. */
  destination!: RuntimeDestination;
  /** `id` as a header value (debug headers), made on first use. */
  private debugValue: string | undefined;

  constructor(endpoint: Endpoint, pool: UpstreamPool, health: EndpointHealth) {
    this.id = endpoint.id;
    this.weight = endpoint.weight;
    this.origin = endpoint.origin;
    this.endpoint = endpoint;
    this.pool = pool;
    this.health = health;
    this.window = windowOf(health);
  }

  /** `x-switchyard-endpoint` of routes with debug headers (http/debug-headers.ts). */
  get debugId(): string {
    return this.debugValue ??= headerValue(this.id);
  }
}

/**
 * Each endpoint's traffic window, keyed by its outlier state object: RouteState keeps that object
 * by endpoint id across swaps and drops it when the endpoint leaves the route, so the window lives
 * exactly as long (a WeakMap: nothing to clean up, and route-state.ts stays unaware of it).
 */
const windows = new WeakMap<EndpointHealth, EndpointWindow>();

function windowOf(health: EndpointHealth): EndpointWindow {
  let window = windows.get(health);
  if (window === undefined) {
    window = new EndpointWindow();
    windows.set(health, window);
  }
  return window;
}

export class RuntimeDestination {
  /** The destination key (`service` or `service:tag`). */
  readonly id: string;
  readonly weight: number;
  readonly destination: Destination;
  readonly balancer: SmoothWeightedRoundRobin<RuntimeEndpoint>;

  constructor(destination: Destination, endpoints: RuntimeEndpoint[], previous: RuntimeDestination | undefined) {
    this.id = destination.key;
    this.weight = destination.weight;
    this.destination = destination;
    this.balancer = new SmoothWeightedRoundRobin(endpoints, previous?.balancer);
    for (const endpoint of endpoints) endpoint.destination = this;
  }
}

/** Bits of RuntimeRoute.retryOn. */
export const RETRY_ON_CONNECT_FAILURE = 1;
export const RETRY_ON_RESET = 2;
export const RETRY_ON_502 = 4;
export const RETRY_ON_503 = 8;
export const RETRY_ON_504 = 16;

const RETRY_BITS: Readonly<Record<RetryCondition, number>> = {
  'connect-failure': RETRY_ON_CONNECT_FAILURE,
  reset: RETRY_ON_RESET,
  '502': RETRY_ON_502,
  '503': RETRY_ON_503,
  '504': RETRY_ON_504,
};

const isEjected = (endpoint: RuntimeEndpoint): boolean => endpoint.health.ejected;

export class RuntimeRoute {
  readonly name: string;
  /** `name` as a JSON string literal, for the access log line. */
  readonly nameJson: string;
  readonly route: Route;
  readonly policy: RoutePolicy;
  readonly balancer: SmoothWeightedRoundRobin<RuntimeDestination>;
  readonly destinations: ReadonlyMap<string, RuntimeDestination>;
  readonly state: RouteState;
  readonly metrics: RouteMetrics;
  /** Precomputed 503 body for this route. */
  readonly noEndpointBody: Buffer;
  /** Active endpoints over all destinations (bounds retry picks). */
  readonly endpointCount: number;
  /** `x-switchyard-route` when the policy asks for debug headers; undefined = none. */
  readonly debugRoute: string | undefined;

  // Request shaping (gateway options), made once here; each is undefined on a route without it,
  // so a plain route pays one field check per feature.
  /** `strip`, `rewrite.path` or `rewrite.regex` (http/rewrite.ts). */
  readonly pathRewrite: PathRewrite | undefined;
  /** `rewrite.host`: the Host sent upstream (over `--preserve-host` and the endpoint's). */
  readonly upstreamHost: string | undefined;
  /** `headers.request` / `headers.response` edits (http/headers.ts). */
  readonly requestEdits: HeaderEditPlan | undefined;
  readonly responseEdits: HeaderEditPlan | undefined;
  /** `sticky`: cookie → endpoint of this route's balancers (http/sticky.ts). */
  readonly sticky: StickySessions | undefined;
  /** `redirect`: the route answers by itself (http/redirect.ts). */
  readonly redirect: RedirectTemplate | undefined;

  // The policy, resolved into fields the hot path reads without indirection.
  /** Per-request undici timeouts (0 = none). */
  /** Connect timeout in ms (undici's is per pool; upgrade tunnels connect with it themselves). */
  readonly connectMs: number;
  /** Upgraded connections with no byte either way for this long are closed; 0 = never. */
  readonly tunnelIdleMs: number;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** Whole-exchange deadline in ms; 0 = none (no timer is created). */
  readonly totalMs: number;
  /** Extra attempts allowed; 0 = no retries (and no budget bookkeeping). */
  readonly retryCount: number;
  /** RETRY_ON_* bits. */
  readonly retryOn: number;
  readonly budgetPercent: number;
  readonly minRetriesPerSecond: number;
  /**
   * Bytes of an idempotent request's body kept while it streams, so that a reset or a 5xx can be
   * retried with it; 0 = none kept (no retry condition that needs it, or `retries.bufferBytes` 0).
   */
  readonly replayBytes: number;
  readonly outlier: OutlierPolicy;
  /** Consecutive failures that eject an endpoint; 0 = never. */
  readonly ejectAfter: number;
  /** True when any admission check applies (redirect, rate limit, body limit, concurrency). */
  readonly guarded: boolean;
  readonly redirectToHttps: boolean;
  readonly limiter: RateLimiter | undefined;
  /** Concurrency limit; Infinity = none. */
  readonly maxConcurrent: number;
  /** Body size limit in bytes; -1 = none. */
  readonly maxBody: number;
  /** Connections per endpoint (the route's pools are capped at it); null = no cap. */
  readonly maxConnections: number | null;
  /**
   * Longest wait for an upstream connection behind that cap, in ms; 0 when there is no cap (no
   * queue forms, so no timer is needed). From `policy.upstream.queueTimeoutMs`.
   */
  readonly queueTimeout: number;
  /** The route's mirror (mirror-route.ts), set by buildRuntime; undefined = none (one check per request). */
  mirror: RouteMirror | undefined = undefined;

  constructor(route: Route, destinations: RuntimeDestination[], state: RouteState, previous: RuntimeRoute | undefined) {
    this.name = route.name;
    this.nameJson = jsonString(route.name);
    this.route = route;
    this.balancer = new SmoothWeightedRoundRobin(destinations, previous?.balancer);
    this.destinations = new Map(destinations.map((d) => [d.id, d]));
    this.state = state;
    this.metrics = state.metrics;
    this.endpointCount = destinations.reduce((n, d) => n + d.balancer.items.length, 0);
    this.noEndpointBody = errorBody('SY_NO_ENDPOINT', `route ${JSON.stringify(route.name)} has no endpoint that can take traffic`);

    const policy = route.policy;
    this.policy = policy;
    this.connectMs = policy.timeouts.connectMs;
    this.tunnelIdleMs = policy.timeouts.tunnelIdleMs;
    this.headersTimeout = policy.timeouts.headersMs;
    this.bodyTimeout = policy.timeouts.bodyIdleMs;
    this.totalMs = policy.timeouts.totalMs;
    this.retryOn = policy.retries.on.reduce((bits, condition) => bits | RETRY_BITS[condition], 0);
    this.retryCount = this.retryOn === 0 ? 0 : policy.retries.count;
    this.budgetPercent = policy.retries.budgetPercent;
    this.minRetriesPerSecond = policy.retries.minPerSecond;
    const replayable = RETRY_ON_RESET | RETRY_ON_502 | RETRY_ON_503 | RETRY_ON_504;
    this.replayBytes = this.retryCount > 0 && (this.retryOn & replayable) !== 0 ? policy.retries.bufferBytes : 0;
    this.outlier = policy.outlier;
    this.ejectAfter = policy.outlier.consecutiveFailures;
    this.redirectToHttps = policy.redirectToHttps;
    this.limiter = state.limiter;
    this.maxConcurrent = policy.concurrency === null ? Number.POSITIVE_INFINITY : policy.concurrency.max;
    this.maxBody = policy.maxBodyBytes ?? -1;
    this.maxConnections = policy.upstream.maxConnections;
    this.queueTimeout = this.maxConnections === null ? 0 : policy.upstream.queueTimeoutMs;
    this.debugRoute = policy.debugHeaders ? headerValue(route.name) : undefined;
    this.guarded = this.redirectToHttps || this.limiter !== undefined || this.maxBody >= 0 || policy.concurrency !== null;

    this.pathRewrite = pathRewriteOf(route);
    this.upstreamHost = route.rewrite?.host;
    this.requestEdits = headerEditPlan(route.headers?.request);
    this.responseEdits = headerEditPlan(route.headers?.response);
    this.sticky = stickyOf(route.sticky, route.path, destinations);
    this.redirect = route.redirect === undefined ? undefined : new RedirectTemplate(route.redirect);
  }

  /** The request target the upstream gets for `url` (strip or rewrite applied). */
  forwardPath(url: string): string {
    const rewrite = this.pathRewrite;
    return rewrite === undefined ? url : rewrite.apply(url);
  }

  /**
   * Next endpoint by smooth weighted round-robin over destinations, then over their endpoints,
   * skipping ejected endpoints. Undefined when no endpoint can take the request.
   */
  pick(): RuntimeEndpoint | undefined {
    const destination = this.balancer.pick();
    if (destination === undefined) return undefined;
    const endpoint = destination.balancer.pick();
    if (endpoint !== undefined && !endpoint.health.ejected) return endpoint;
    return this.pickAround(destination);
  }

  /** Slow path of pick: the destination's next endpoint that is not ejected, else another destination's. */
  private pickAround(first: RuntimeDestination): RuntimeEndpoint | undefined {
    const own = first.balancer.pickExcluding(isEjected);
    if (own !== undefined) return own;
    const n = this.balancer.items.length;
    for (let i = 0; i < n; i++) {
      const destination = this.balancer.pick();
      if (destination === undefined || destination === first) continue;
      const endpoint = destination.balancer.pickExcluding(isEjected);
      if (endpoint !== undefined) return endpoint;
    }
    return undefined;
  }

  /**
   * An endpoint for a retry: not ejected and on none of the origins already `tried`. Picks through
   * the balancers first (so retries spread like traffic), then scans, so a rarely picked
   * destination is still found. Undefined when no other endpoint exists.
   */
  pickRetry(tried: readonly RuntimeEndpoint[]): RuntimeEndpoint | undefined {
    for (let i = 0; i < this.endpointCount; i++) {
      const endpoint = this.pick();
      if (endpoint === undefined) return undefined;
      if (!wasTried(tried, endpoint)) return endpoint;
    }
    for (const destination of this.balancer.items) {
      for (const endpoint of destination.balancer.items) {
        if (!endpoint.health.ejected && !wasTried(tried, endpoint)) return endpoint;
      }
    }
    return undefined;
  }

  /**
   * The endpoint for a retry after `failed` (added to `tried`), if another one can take it and the
   * retry budget allows one more retry now (a refusal by the budget is counted).
   */
  retryEndpoint(tried: RuntimeEndpoint[], failed: RuntimeEndpoint, now: number): RuntimeEndpoint | undefined {
    tried.push(failed);
    const next = this.pickRetry(tried);
    if (next === undefined) return undefined;
    if (!this.state.budget.withdraw(now, this.budgetPercent, this.minRetriesPerSecond)) {
      this.metrics.retryBudgetExhausted();
      return undefined;
    }
    return next;
  }

  /**
   * Outlier detection: one more failure of `endpoint` (connect error, reset, timeout, 5xx); at the
   * policy's threshold the endpoint is ejected if its destination may lose one more endpoint.
   */
  failed(endpoint: RuntimeEndpoint): void {
    endpoint.window.fail(performance.now());
    const health = endpoint.health;
    health.consecutive += 1;
    if (this.ejectAfter === 0 || health.consecutive < this.ejectAfter || health.ejected) return;
    const pool = endpoint.destination.balancer.items;
    let ejected = 0;
    for (const other of pool) if (other.health.ejected) ejected += 1;
    this.state.eject(health, this.outlier, pool.length, ejected);
  }
}

function wasTried(tried: readonly RuntimeEndpoint[], endpoint: RuntimeEndpoint): boolean {
  for (const t of tried) if (t.origin === endpoint.origin) return true;
  return false;
}

export class Runtime {
  readonly table: RoutingTable;
  readonly routes: ReadonlyMap<Route, RuntimeRoute>;
  readonly byName: ReadonlyMap<string, RuntimeRoute>;

  constructor(table: RoutingTable, routes: Map<Route, RuntimeRoute>) {
    this.table = table;
    this.routes = routes;
    const byName = new Map<string, RuntimeRoute>();
    for (const route of routes.values()) byName.set(route.name, route);
    this.byName = byName;
  }

  /** The runtime route for a request: the table's lookup, then one identity Map lookup. */
  match(host: string | undefined, path: string, request?: RequestFacts): RuntimeRoute | undefined {
    const route = this.table.lookup(host, path, request);
    return route === undefined ? undefined : this.routes.get(route);
  }

  /** Endpoints outlier detection has taken out of rotation right now, by route (for /api/routes). */
  ejectedEndpoints(): EjectedEndpoint[] {
    return [...this.byName.values()].flatMap((route) => route.state.ejected());
  }

  /**
   * This process's last minute (the status page): every endpoint of every route with traffic in
   * the window or requests on its pool now, and each route's requests in flight. Admin-time work.
   */
  stats(nowMs = performance.now()): StatsSample {
    const endpoints: EndpointSample[] = [];
    const routeInflight: Record<string, number> = {};
    for (const route of this.byName.values()) {
      if (route.state.inflight > 0) routeInflight[route.name] = route.state.inflight;
      const pools = new Map<string, UpstreamPool>();
      for (const d of route.destinations.values()) for (const e of d.balancer.items) pools.set(e.id, e.pool);
      for (const d of route.route.destinations) {
        for (const e of d.endpoints) {
          const health = route.state.peekHealth(e.id);
          const summary = health === undefined ? undefined : windows.get(health)?.summary(nowMs);
          const stats = pools.get(e.id)?.stats;
          const inflight = stats === undefined ? 0 : stats.running + stats.pending;
          if (summary === undefined && inflight === 0) continue;
          endpoints.push({
            route: route.name, endpoint: e.id, inflight,
            requests: summary?.requests ?? 0, errors: summary?.errors ?? 0, failures: summary?.failures ?? 0,
            latency: summary === undefined || summary.requests === 0 ? null : summary.latency,
          });
        }
      }
    }
    return { endpoints, routeInflight };
  }
}

/**
 * Build the runtime view of `table`, in work proportional to the routes that are not in `previous`
 * (by identity). Pools come from `upstreams.prepare(table)` (`poolsOf`); an endpoint whose
 * pool cannot be made is left out of its balancer (reported by Upstreams.tryAcquire), so one bad
 * origin never stops the build. Route state comes from `previous` by route name and is reconciled
 * with the new route (rate-limit settings, endpoints that left).
 */
export function buildRuntime(table: RoutingTable, upstreams: Upstreams, metrics: Metrics, previous?: Runtime): Runtime {
  const routes = new Map<Route, RuntimeRoute>();
  for (const route of table.routes) {
    // The same Route object (the model's TableBuilder reuses unchanged routes): its runtime route
    // is unchanged too (endpoints, weights, policy, pools), so it is kept whole, balancer cycle
    // and all. Per-endpoint work below is for routes that changed.
    const same = previous?.routes.get(route);
    if (same !== undefined) {
      routes.set(route, same);
      continue;
    }
    const prevRoute = previous?.byName.get(route.name);
    const state = prevRoute?.state ?? new RouteState(metrics, route.name);
    state.reconcile(route);
    // One pool per active endpoint, in this loop's order: held by `upstreams.prepare` (made here
    // when the route was not prepared), so no origin is looked up again.
    const pools = upstreams.poolsOf(route);
    let at = 0;
    const destinations: RuntimeDestination[] = [];
    for (const destination of route.active) {
      const endpoints: RuntimeEndpoint[] = [];
      for (const endpoint of destination.active) {
        const pool = pools[at++];
        if (endpoint.weight > 0 && pool !== undefined) endpoints.push(new RuntimeEndpoint(endpoint, pool, state.healthOf(endpoint.id)));
      }
      destinations.push(new RuntimeDestination(destination, endpoints, prevRoute?.destinations.get(destination.key)));
    }
    const runtimeRoute = new RuntimeRoute(route, destinations, state, prevRoute);
    if (route.mirror !== undefined) runtimeRoute.mirror = buildMirror(route, upstreams.mirrorPoolsOf(route), metrics, prevRoute?.mirror);
    routes.set(route, runtimeRoute);
  }
  return new Runtime(table, routes);
}

/** Stop the timers of route states the new runtime no longer has (their routes left the table). */
function disposeDropped(next: Runtime, previous: Runtime | undefined): void {
  if (previous === undefined) return;
  for (const [name, route] of previous.byName) {
    if (next.byName.get(name)?.state !== route.state) route.state.dispose();
  }
}

/**
 * Holds the live Runtime and keeps it in step with a TableStore: on prepare, create pools for the
 * next table and build its runtime (make); on swap, publish the runtime with one assignment, then
 * retire pools the new table no longer uses (break). Requests read `current` once.
 */
export class RuntimeStore {
  current: Runtime | undefined;
  readonly noRouteMetrics: RouteMetrics;
  private readonly metrics: Metrics;
  private pending: Runtime | undefined;

  constructor(metrics: Metrics) {
    this.metrics = metrics;
    this.noRouteMetrics = new RouteMetrics(metrics, NO_ROUTE_LABEL);
  }

  /** Endpoints ejected by outlier detection in the live runtime (read-only view for the admin API). */
  ejectedEndpoints(): EjectedEndpoint[] {
    return this.current?.ejectedEndpoints() ?? [];
  }

  /** The live runtime's last minute per endpoint (the status page; runtime.stats). */
  stats(): StatsSample {
    return this.current?.stats() ?? { endpoints: [], routeInflight: {} };
  }

  attach(store: TableStore, upstreams: Upstreams): void {
    store.onPrepare((next) => {
      upstreams.prepare(next);
      this.pending = buildRuntime(next, upstreams, this.metrics, this.current);
    });
    // A prepare that threw (a bug: neither step above throws on bad input): drop what was made for `next`.
    store.onAborted((_next, live) => {
      this.pending = undefined;
      upstreams.retainOnly(live);
    });
    store.onSwapped((next) => {
      const pending = this.pending;
      this.pending = undefined;
      const before = this.current;
      this.current = pending !== undefined && pending.table === next
        ? pending
        : buildRuntime(next, upstreams, this.metrics, this.current);
      disposeDropped(this.current, before);
      upstreams.retainOnly(next);
    });
    const table = store.current;
    if (table !== undefined && this.current?.table !== table) {
      upstreams.prepare(table);
      this.current = buildRuntime(table, upstreams, this.metrics, this.current);
      upstreams.retainOnly(table);
    }
  }
}
