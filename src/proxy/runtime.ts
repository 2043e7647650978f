import type { Pool } from 'undici';
import type { TableStore } from '../control/table-store.js';
import { SmoothWeightedRoundRobin } from '../model/balancer.js';
import type { Destination, Endpoint, Route, RoutingTable } from '../model/types.js';
import type { Metrics } from '../observability/metrics.js';
import { errorBody } from './error-response.js';
import { NO_ROUTE_LABEL, RouteMetrics } from './route-metrics.js';
import type { Upstreams } from './upstreams.js';

/**
 * The proxy's mutable view of one immutable RoutingTable, built once per swap: balancers, pools and
 * metric children resolved ahead of time so a request does one Map lookup (route → runtime route)
 * and two balancer picks. Balancer state is carried over from the previous runtime by stable ids
 * (route name, destination key, endpoint id); SmoothWeightedRoundRobin keeps the cycle when the
 * ids and weights are unchanged.
 */
export class RuntimeEndpoint {
  readonly id: string;
  readonly weight: number;
  readonly origin: string;
  readonly endpoint: Endpoint;
  readonly pool: Pool;

  constructor(endpoint: Endpoint, pool: Pool) {
    this.id = endpoint.id;
    this.weight = endpoint.weight;
    this.origin = endpoint.origin;
    this.endpoint = endpoint;
    this.pool = pool;
  }
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
  }
}

export class RuntimeRoute {
  readonly name: string;
  readonly route: Route;
  /** Normalised prefix to strip (no trailing `/`), or undefined when nothing is stripped. */
  readonly strip: string | undefined;
  readonly balancer: SmoothWeightedRoundRobin<RuntimeDestination>;
  readonly destinations: ReadonlyMap<string, RuntimeDestination>;
  readonly metrics: RouteMetrics;
  /** Precomputed 503 body for this route. */
  readonly noEndpointBody: Buffer;
  /** Active endpoints over all destinations (bounds retry picks). */
  readonly endpointCount: number;

  constructor(route: Route, destinations: RuntimeDestination[], metrics: RouteMetrics, previous: RuntimeRoute | undefined) {
    this.name = route.name;
    this.route = route;
    this.strip = normaliseStrip(route.strip);
    this.balancer = new SmoothWeightedRoundRobin(destinations, previous?.balancer);
    this.destinations = new Map(destinations.map((d) => [d.id, d]));
    this.metrics = metrics;
    this.endpointCount = destinations.reduce((n, d) => n + d.balancer.items.length, 0);
    this.noEndpointBody = errorBody('SY_NO_ENDPOINT', `route ${JSON.stringify(route.name)} has no endpoint that can take traffic`);
  }

  /**
   * The next endpoint other than `failed` (a retry after a connect failure), or undefined when the
   * route has no other. Advances the balancers like ordinary picks; bounded by the endpoint count.
   */
  pickOther(failed: RuntimeEndpoint): RuntimeEndpoint | undefined {
    for (let i = 0; i < this.endpointCount; i++) {
      const endpoint = this.pick();
      if (endpoint === undefined) return undefined;
      if (endpoint.origin !== failed.origin) return endpoint;
    }
    return undefined;
  }

  /** Next endpoint by smooth weighted round-robin over destinations, then over their endpoints. */
  pick(): RuntimeEndpoint | undefined {
    const destination = this.balancer.pick();
    if (destination === undefined) return undefined;
    const endpoint = destination.balancer.pick();
    if (endpoint !== undefined) return endpoint;
    // A destination with weight but no usable endpoint (the model should not produce it): try the others.
    const other = this.balancer.pickExcluding((d) => d.balancer.total === 0);
    return other?.balancer.pick();
  }
}

/** `/users/` → `/users`; `/` and `` → undefined (stripping the root is a no-op). */
export function normaliseStrip(strip: string | undefined): string | undefined {
  if (strip === undefined) return undefined;
  let s = strip;
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  if (s === '' || s === '/') return undefined;
  return s.startsWith('/') ? s : `/${s}`;
}

/**
 * The path to forward: `url` without the `strip` prefix when it is a prefix on a segment boundary.
 * `/users` → `/`, `/users/1` → `/1`, `/users?q` → `/?q`, `/usersx` → unchanged.
 */
export function stripPath(url: string, strip: string | undefined): string {
  if (strip === undefined || !url.startsWith(strip)) return url;
  const n = strip.length;
  if (url.length === n) return '/';
  const next = url.charCodeAt(n);
  if (next === 47 /* / */) return url.slice(n);
  if (next === 63 /* ? */) return `/${url.slice(n)}`;
  return url;
}

export class Runtime {
  readonly table: RoutingTable;
  readonly routes: ReadonlyMap<Route, RuntimeRoute>;
  readonly byName: ReadonlyMap<string, RuntimeRoute>;

  constructor(table: RoutingTable, routes: Map<Route, RuntimeRoute>) {
    this.table = table;
    this.routes = routes;
    this.byName = new Map([...routes.values()].map((r) => [r.name, r]));
  }

  /** The runtime route for a request: the table's lookup, then one identity Map lookup. */
  match(host: string | undefined, path: string): RuntimeRoute | undefined {
    const route = this.table.lookup(host, path);
    return route === undefined ? undefined : this.routes.get(route);
  }
}

/** Build the runtime view of `table`. Pools must exist (`upstreams.prepare(table)` ran). */
export function buildRuntime(table: RoutingTable, upstreams: Upstreams, metrics: Metrics, previous?: Runtime): Runtime {
  const routes = new Map<Route, RuntimeRoute>();
  for (const route of table.routes) {
    const prevRoute = previous?.byName.get(route.name);
    const destinations: RuntimeDestination[] = [];
    for (const destination of route.active) {
      const endpoints: RuntimeEndpoint[] = [];
      for (const endpoint of destination.active) {
        if (endpoint.weight > 0) endpoints.push(new RuntimeEndpoint(endpoint, upstreams.acquire(endpoint.origin)));
      }
      destinations.push(new RuntimeDestination(destination, endpoints, prevRoute?.destinations.get(destination.key)));
    }
    const routeMetrics = prevRoute?.metrics ?? new RouteMetrics(metrics, route.name);
    routes.set(route, new RuntimeRoute(route, destinations, routeMetrics, prevRoute));
  }
  return new Runtime(table, routes);
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

  attach(store: TableStore, upstreams: Upstreams): void {
    store.onPrepare((next) => {
      upstreams.prepare(next);
      this.pending = buildRuntime(next, upstreams, this.metrics, this.current);
    });
    store.onSwapped((next, previous) => {
      const pending = this.pending;
      this.pending = undefined;
      this.current = pending !== undefined && pending.table === next
        ? pending
        : buildRuntime(next, upstreams, this.metrics, this.current);
      upstreams.swapped(next, previous);
    });
    const table = store.current;
    if (table !== undefined && this.current?.table !== table) {
      upstreams.prepare(table);
      this.current = buildRuntime(table, upstreams, this.metrics, this.current);
      upstreams.swapped(table);
    }
  }
}
