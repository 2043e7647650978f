/**
 * The routing table as it crosses a process boundary (src/cluster/: the primary builds, workers
 * swap). Pure: text in, frozen RoutingTable out, and back.
 *
 * Whole state, cheap for what did not change. Every message carries every route, each route as one
 * JSON string:
 * - the encoder (primary) caches each Route's string by object identity (WeakMap), so a route the
 *   build reused costs nothing to send again but the bytes;
 * - the decoder (worker) keeps the previous table's routes with their strings; a route whose string
 *   is byte for byte the one it had decodes to the SAME Route object (no parse, no allocation),
 *   so the proxy runtime's per-route reuse by identity works across processes as it does in one.
 *   Only changed routes are parsed and frozen, and the lookup index is rebuilt (one pass over
 *   the routes, no endpoint visited).
 *
 * A route's string is compact: its endpoints once, as arrays, with destinations pointing at them by
 * position (a destination's `endpoints` and `active` share objects, as the builder's do), and the
 * default policy as `0` (decoded to DEFAULT_POLICY itself, the builder's shared object).
 */
import { deepFreeze } from './deep-freeze.js';
import { DEFAULT_POLICY, type RoutePolicy } from './policy.js';
import { RouteIndex } from './route-index.js';
import type { BuildProblem, Destination, Endpoint, EndpointState, HealthStatus, MirrorTarget, RequestFacts, Route, RouteOrigin, RoutingTable } from './types.js';

/** A table on the wire: plain strings and data, for `process.send` (structured clone or JSON). */
export interface TableWire {
  /** One string per route (encodeRoute), in table order. */
  readonly routes: readonly string[];
  readonly problems: readonly BuildProblem[];
  readonly services: readonly string[];
}

/** id, instanceId, service, address, port, origin, status, weight, state, tags. */
type EndpointWire = [string, string, string, string, number, string, HealthStatus, number, EndpointState, string[]];

interface DestinationWire {
  k: string;
  s: string;
  t: string | null;
  w: number;
  c: number;
  /** Positions in RouteWire.e. */
  e: number[];
  a: number[];
}

interface RouteWire {
  n: string;
  h: string[];
  p: string;
  s: string | null;
  o: RouteOrigin;
  src: string;
  /** 0: DEFAULT_POLICY. */
  pol: RoutePolicy | 0;
  e: EndpointWire[];
  d: DestinationWire[];
  /** Positions in `d` of the active destinations. */
  a: number[];
  /** Gateway options, present only when set: conditions, rewrite, headers, sticky, redirect. */
  x?: Pick<Route, 'conditions' | 'rewrite' | 'headers' | 'sticky' | 'redirect'>;
  /** Mirror: its target and its pool as a destination. */
  m?: { t: MirrorTarget; d: DestinationWire };
}

export function encodeRoute(route: Route): string {
  const positions = new Map<Endpoint, number>();
  const endpoints: EndpointWire[] = [];
  const at = (e: Endpoint): number => {
    let i = positions.get(e);
    if (i === undefined) {
      i = endpoints.length;
      positions.set(e, i);
      endpoints.push([e.id, e.instanceId, e.service, e.address, e.port, e.origin, e.status, e.weight, e.state, [...e.tags]]);
    }
    return i;
  };
  const destinationAt = new Map<Destination, number>();
  const destinationWire = (d: Destination): DestinationWire => (
    { k: d.key, s: d.service, t: d.tag ?? null, w: d.weight, c: d.configuredWeight, e: d.endpoints.map(at), a: d.active.map(at) }
  );
  const destinations = route.destinations.map((d, i): DestinationWire => {
    destinationAt.set(d, i);
    return destinationWire(d);
  });
  const { conditions, rewrite, headers, sticky, redirect, mirror } = route;
  const options = conditions === undefined && rewrite === undefined && headers === undefined && sticky === undefined && redirect === undefined
    ? undefined
    : { conditions, rewrite, headers, sticky, redirect };
  const wire: RouteWire = {
    n: route.name,
    h: [...route.hosts],
    p: route.path,
    s: route.strip ?? null,
    o: route.origin,
    src: route.source,
    pol: route.policy === DEFAULT_POLICY ? 0 : route.policy,
    e: endpoints,
    d: destinations,
    a: route.active.map((d) => destinationAt.get(d) ?? -1),
    ...(options === undefined ? {} : { x: options }),
    ...(mirror === undefined ? {} : { m: { t: mirror.target, d: destinationWire(mirror.destination) } }),
  };
  return JSON.stringify(wire);
}

/** A frozen Route from encodeRoute's string. Throws on text that is not one (a bug, not input). */
export function decodeRoute(text: string): Route {
  const wire = JSON.parse(text) as RouteWire;
  const endpoints = wire.e.map(([id, instanceId, service, address, port, origin, status, weight, state, tags]): Endpoint => (
    { id, instanceId, service, address, port, origin, status, weight, state, tags }
  ));
  const pick = (i: number): Endpoint => {
    const e = endpoints[i];
    if (e === undefined) throw new Error(`route ${JSON.stringify(wire.n)}: endpoint position ${i} out of range`);
    return e;
  };
  const destinationOf = (d: DestinationWire): Destination => ({
    key: d.k, service: d.s, tag: d.t ?? undefined, weight: d.w, configuredWeight: d.c, endpoints: d.e.map(pick), active: d.a.map(pick),
  });
  const destinations = wire.d.map(destinationOf);
  // JSON drops undefined fields: an absent option reads back as undefined, as the builder made it.
  const x = wire.x;
  const route: Route = {
    name: wire.n,
    hosts: wire.h,
    path: wire.p,
    strip: wire.s ?? undefined,
    conditions: x?.conditions,
    rewrite: x?.rewrite,
    // Both directions are keys of RouteHeaderEdits, one of them possibly undefined (dropped by JSON).
    headers: x?.headers === undefined ? undefined : { request: x.headers.request, response: x.headers.response },
    sticky: x?.sticky,
    mirror: wire.m === undefined ? undefined : { target: wire.m.t, destination: destinationOf(wire.m.d) },
    redirect: x?.redirect,
    destinations,
    active: wire.a.map((i) => {
      const d = destinations[i];
      if (d === undefined) throw new Error(`route ${JSON.stringify(wire.n)}: destination position ${i} out of range`);
      return d;
    }),
    origin: wire.o,
    source: wire.src,
    // DEFAULT_POLICY is frozen already; deepFreeze skips nothing else it shares.
    policy: wire.pol === 0 ? DEFAULT_POLICY : wire.pol,
  };
  return deepFreeze(route);
}

/**
 * A RoutingTable from routes that are already frozen (decoded or reused): the lookup index built
 * once, the shell and its arrays frozen, the routes not visited again.
 */
export function tableOfRoutes(routes: readonly Route[], problems: readonly BuildProblem[], services: readonly string[]): RoutingTable {
  const index = new RouteIndex(routes);
  return Object.freeze({
    routes: Object.freeze([...routes]),
    problems: deepFreeze(problems.map((p) => ({ ...p }))),
    services: Object.freeze([...services]),
    lookup: (host: string | undefined, path: string, request?: RequestFacts) => index.lookup(host, path, request),
  });
}

/** The primary's side: one string per Route object, made once. */
export class TableEncoder {
  private readonly cache = new WeakMap<Route, string>();

  encode(table: RoutingTable): TableWire {
    const routes = table.routes.map((route) => {
      let text = this.cache.get(route);
      if (text === undefined) {
        text = encodeRoute(route);
        this.cache.set(route, text);
      }
      return text;
    });
    return { routes, problems: table.problems, services: table.services };
  }
}

/** What one decode did: for logs and measurements. */
export interface DecodeStats {
  readonly routes: number;
  /** Routes whose string changed (parsed and frozen); the others are the previous objects. */
  readonly parsed: number;
}

/** A worker's side: keeps the last table's routes by name with their strings, to reuse them. */
export class TableDecoder {
  /** Keyed by the route's name as it stands in its string (still JSON-escaped: no parse needed). */
  private previous = new Map<string, { text: string; route: Route }>();
  lastStats: DecodeStats = { routes: 0, parsed: 0 };

  decode(wire: TableWire): RoutingTable {
    const next = new Map<string, { text: string; route: Route }>();
    const routes: Route[] = [];
    let parsed = 0;
    for (const text of wire.routes) {
      // The name is the JSON's first field; finding the previous entry needs it before any parse.
      const key = rawNameOf(text);
      const before = this.previous.get(key);
      let route: Route;
      if (before !== undefined && before.text === text) route = before.route;
      else {
        route = decodeRoute(text);
        parsed += 1;
      }
      next.set(key, { text, route });
      routes.push(route);
    }
    this.previous = next;
    this.lastStats = { routes: routes.length, parsed };
    return tableOfRoutes(routes, wire.problems, wire.services);
  }
}

/**
 * The `n` field of encodeRoute's string as written (JSON-escaped, unparsed), or the whole text when
 * it does not start so (then it only matches itself). Names are unique in a table, and so are
 * their escaped forms.
 */
function rawNameOf(text: string): string {
  const START = '{"n":"';
  if (!text.startsWith(START)) return text;
  let end = START.length;
  for (;;) {
    end = text.indexOf('"', end);
    if (end === -1) return text;
    let slashes = 0;
    for (let i = end - 1; text.charCodeAt(i) === 92 /* \ */; i--) slashes += 1;
    if (slashes % 2 === 0) return text.slice(START.length, end);
    end += 1;
  }
}
