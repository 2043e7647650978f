/**
 * The lookup structure behind `RoutingTable.lookup`, built once per table; lookup is on the request
 * hot path, so it uses no regex and no closure, and allocates only the host key (when the Host
 * header is not already canonical) and the prefix strings it probes.
 *
 * Rules: host compared case-insensitively without its port; a route with a host beats any route
 * without one (host-specific routes are tried first, host-less ones only when none matches); within
 * each, the longest path prefix on a segment boundary wins; the query string is ignored; a path
 * not starting with `/` (e.g. `*`) matches nothing.
 *
 * Per host (and once for host-less routes) a PrefixTable maps prefix → the route's position in
 * the table, plus a bitmap of the prefix lengths present, so the walk from the right over the
 * path's `/` positions only slices a candidate when some prefix of exactly that length exists.
 * Positions, not Route objects: a table whose routes have the same hosts and paths in the same
 * order as the previous one's (a health flip, a weight change) reuses the index with `rebind`,
 * whatever routes were rebuilt, instead of building it again.
 */
import { hostKey } from './host.js';
import { pathEnd } from './path.js';
import type { RequestFacts, Route } from './types.js';

const SLASH = 47; // '/'

interface PrefixTable {
  /** Prefix → position of its route in the table. */
  readonly byPrefix: Map<string, number>;
  /** hasLength[n] === 1 when some non-root prefix has length n. */
  readonly hasLength: Uint8Array;
  /** Position of the route on `/`, or -1. */
  readonly root: number;
}

/** The lookup maps of an index, shared by `rebind`. */
export interface IndexShape {
  readonly byHost: Map<string, PrefixTable>;
  readonly anyHost: PrefixTable | undefined;
}

const NONE = -1;

export class RouteIndex {
  readonly #routes: readonly Route[];
  readonly #byHost: Map<string, PrefixTable>;
  readonly #anyHost: PrefixTable | undefined;

  /** `routes` must be validated: hosts in key form, paths normalised, no duplicate host + path. */
  constructor(routes: readonly Route[], shape: IndexShape = shapeOf(routes)) {
    this.#routes = routes;
    this.#byHost = shape.byHost;
    this.#anyHost = shape.anyHost;
  }

  /**
   * True when `routes` have the hosts and paths of this index's routes, position by position:
   * then `rebind(routes)` answers for them exactly as a new index would.
   */
  fits(routes: readonly Route[]): boolean {
    const own = this.#routes;
    if (routes === own) return true;
    if (routes.length !== own.length) return false;
    for (let i = 0; i < routes.length; i++) {
      const a = routes[i]!;
      const b = own[i]!;
      if (a !== b && (a.path !== b.path || !sameHosts(a.hosts, b.hosts) || a.conditions !== b.conditions)) return false;
    }
    return true;
  }

  /** The same lookup structure over `routes`, which must `fit` (checked by the caller). */
  rebind(routes: readonly Route[]): RouteIndex {
    return new RouteIndex(routes, { byHost: this.#byHost, anyHost: this.#anyHost });
  }

  lookup(host: string | undefined, path: string, _request?: RequestFacts): Route | undefined {
    if (host !== undefined && this.#byHost.size > 0) {
      // Fast path: a Host header already in key form needs no normalisation.
      const table = this.#byHost.get(host) ?? this.#byHost.get(hostKey(host));
      if (table !== undefined) {
        const at = matchPath(table, path);
        if (at !== NONE) return this.#routes[at];
      }
    }
    if (this.#anyHost === undefined) return undefined;
    const at = matchPath(this.#anyHost, path);
    return at === NONE ? undefined : this.#routes[at];
  }
}

function shapeOf(routes: readonly Route[]): IndexShape {
  const groups = new Map<string | undefined, number[]>();
  routes.forEach((route, at) => {
    for (const host of route.hosts.length === 0 ? [undefined] : route.hosts) {
      const group = groups.get(host);
      if (group === undefined) groups.set(host, [at]);
      else group.push(at);
    }
  });
  const byHost = new Map<string, PrefixTable>();
  let anyHost: PrefixTable | undefined;
  for (const [host, group] of groups) {
    if (host === undefined) anyHost = prefixTable(routes, group);
    else byHost.set(host, prefixTable(routes, group));
  }
  return { byHost, anyHost };
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function prefixTable(routes: readonly Route[], positions: readonly number[]): PrefixTable {
  const byPrefix = new Map<string, number>();
  let root = NONE;
  let longest = 0;
  for (const at of positions) {
    const path = routes[at]!.path;
    if (path === '/') root = at;
    else {
      byPrefix.set(path, at);
      if (path.length > longest) longest = path.length;
    }
  }
  const hasLength = new Uint8Array(longest + 1);
  for (const prefix of byPrefix.keys()) hasLength[prefix.length] = 1;
  return { byPrefix, hasLength, root };
}

/** The position of the route for `path` in this prefix table, or NONE. */
function matchPath(table: PrefixTable, path: string): number {
  if (path.charCodeAt(0) !== SLASH) return NONE;
  const { byPrefix, hasLength } = table;
  const end = pathEnd(path);
  const longest = hasLength.length - 1;
  // The whole path (up to the query) is a candidate: `/users` or `/users?x=1` for prefix `/users`.
  if (end <= longest && hasLength[end] === 1) {
    const at = byPrefix.get(end === path.length ? path : path.slice(0, end));
    if (at !== undefined) return at;
  }
  // Then every prefix ending just before a '/', longest first. A non-root prefix has length >= 2.
  for (let i = end - 1 < longest ? end - 1 : longest; i >= 2; i--) {
    if (hasLength[i] === 1 && path.charCodeAt(i) === SLASH) {
      const at = byPrefix.get(path.slice(0, i));
      if (at !== undefined) return at;
    }
  }
  return table.root;
}
