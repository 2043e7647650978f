/**
 * Why a request goes to the route it goes to (or to none): the lookup rules of RouteIndex spelled
 * out for one request, for the admin API's /api/match. Not on the hot path: it walks every route.
 * The route it names is always `table.lookup`'s own answer; the candidates explain it.
 */
import { hostKey } from './host.js';
import { matchesPrefix } from './path.js';
import type { Route, RoutingTable } from './types.js';

/** One route the lookup considered for the request's host. */
export interface RouteCandidate {
  readonly route: string;
  /** The route's host, or null for a route that serves any host. */
  readonly host: string | null;
  readonly path: string;
  /** The path falls under the route's prefix on a segment boundary. */
  readonly prefixMatches: boolean;
  readonly chosen: boolean;
}

export interface LookupExplanation {
  /** The Host in key form (lower-case, no port), or null without one. */
  readonly host: string | null;
  readonly route: Route | undefined;
  /** Routes for this host first, then routes for any host; each group longest prefix first. */
  readonly candidates: readonly RouteCandidate[];
  /** One sentence: why this route, or why none. */
  readonly reason: string;
}

export function explainLookup(table: RoutingTable, host: string | undefined, path: string): LookupExplanation {
  const key = host === undefined || host === '' ? undefined : hostKey(host);
  const route = table.lookup(host, path);
  const forHost = key === undefined ? [] : table.routes.filter((r) => r.hosts.includes(key));
  const anyHost = table.routes.filter((r) => r.hosts.length === 0);
  const byPrefixLength = (a: Route, b: Route): number => b.path.length - a.path.length || (a.path < b.path ? -1 : 1);
  const candidates = [...forHost.sort(byPrefixLength), ...anyHost.sort(byPrefixLength)].map((r) => ({
    route: r.name,
    host: r.hosts.length === 0 ? null : key !== undefined && r.hosts.includes(key) ? key : r.hosts[0]!,
    path: r.path,
    prefixMatches: matchesPrefix(path, r.path),
    chosen: r === route,
  }));
  return { host: key ?? null, route, candidates, reason: reasonFor(route, key, forHost, anyHost, table.routes.length) };
}

function reasonFor(route: Route | undefined, key: string | undefined, forHost: readonly Route[], anyHost: readonly Route[], total: number): string {
  if (total === 0) return 'the routing table has no routes';
  const hostText = key === undefined ? 'the request has no Host' : `host "${key}"`;
  if (route === undefined) {
    const scope = key === undefined
      ? `the request has no Host, so only the ${anyHost.length} route(s) for any host apply`
      : `${forHost.length} route(s) for host "${key}" and ${anyHost.length} for any host`;
    return `no route matches: ${scope}, and none has a prefix the path falls under (prefixes match whole segments: /api matches /api and /api/x, not /apix)`;
  }
  if (route.hosts.length > 0) {
    return `route "${route.name}" is for ${hostText} and has the longest prefix the path falls under ("${route.path}"); routes for a host come before routes for any host`;
  }
  const prefix = `route "${route.name}" serves any host and has the longest prefix the path falls under ("${route.path}")`;
  if (key === undefined) return `${prefix}; the request has no Host, so only routes for any host apply`;
  if (forHost.length === 0) return `${prefix}; ${hostText} has no routes of its own`;
  return `${prefix}; none of the ${forHost.length} route(s) for ${hostText} has a prefix the path falls under`;
}
