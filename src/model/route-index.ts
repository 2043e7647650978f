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
 * Per host (and once for host-less routes) a PrefixTable maps prefix → route, plus a bitmap of the
 * prefix lengths present, so the walk from the right over the path's `/` positions only slices a
 * candidate when some prefix of exactly that length exists.
 */
import { hostKey } from './host.js';
import { pathEnd } from './path.js';
import type { Route } from './types.js';

const SLASH = 47; // '/'

interface PrefixTable {
  readonly byPrefix: Map<string, Route>;
  /** hasLength[n] === 1 when some non-root prefix has length n. */
  readonly hasLength: Uint8Array;
  readonly root: Route | undefined;
}

export class RouteIndex {
  readonly #byHost: Map<string, PrefixTable>;
  readonly #anyHost: PrefixTable | undefined;

  /** `routes` must be validated: hosts in key form, paths normalised, no duplicate host + path. */
  constructor(routes: readonly Route[]) {
    const groups = new Map<string | undefined, Route[]>();
    for (const route of routes) {
      const group = groups.get(route.host);
      if (group === undefined) groups.set(route.host, [route]);
      else group.push(route);
    }
    this.#byHost = new Map();
    let anyHost: PrefixTable | undefined;
    for (const [host, group] of groups) {
      if (host === undefined) anyHost = prefixTable(group);
      else this.#byHost.set(host, prefixTable(group));
    }
    this.#anyHost = anyHost;
  }

  lookup(host: string | undefined, path: string): Route | undefined {
    if (host !== undefined && this.#byHost.size > 0) {
      // Fast path: a Host header already in key form needs no normalisation.
      const table = this.#byHost.get(host) ?? this.#byHost.get(hostKey(host));
      if (table !== undefined) {
        const route = matchPath(table, path);
        if (route !== undefined) return route;
      }
    }
    return this.#anyHost === undefined ? undefined : matchPath(this.#anyHost, path);
  }
}

function prefixTable(routes: readonly Route[]): PrefixTable {
  const byPrefix = new Map<string, Route>();
  let root: Route | undefined;
  let longest = 0;
  for (const route of routes) {
    if (route.path === '/') root = route;
    else {
      byPrefix.set(route.path, route);
      if (route.path.length > longest) longest = route.path.length;
    }
  }
  const hasLength = new Uint8Array(longest + 1);
  for (const prefix of byPrefix.keys()) hasLength[prefix.length] = 1;
  return { byPrefix, hasLength, root };
}

function matchPath(table: PrefixTable, path: string): Route | undefined {
  if (path.charCodeAt(0) !== SLASH) return undefined;
  const { byPrefix, hasLength } = table;
  const end = pathEnd(path);
  const longest = hasLength.length - 1;
  // The whole path (up to the query) is a candidate: `/users` or `/users?x=1` for prefix `/users`.
  if (end <= longest && hasLength[end] === 1) {
    const route = byPrefix.get(end === path.length ? path : path.slice(0, end));
    if (route !== undefined) return route;
  }
  // Then every prefix ending just before a '/', longest first. A non-root prefix has length >= 2.
  for (let i = end - 1 < longest ? end - 1 : longest; i >= 2; i--) {
    if (hasLength[i] === 1 && path.charCodeAt(i) === SLASH) {
      const route = byPrefix.get(path.slice(0, i));
      if (route !== undefined) return route;
    }
  }
  return table.root;
}
