/**
 * Why a request goes to the route it goes to (or to none): the lookup rules of RouteIndex spelled
 * out for one request, for the admin API's /api/match. Not on the hot path: it walks every route.
 * The route it names is always `table.lookup`'s own answer; the candidates explain it, with the
 * verdict of every condition from the same functions the lookup uses (match-conditions.ts).
 *
 * Candidates: the routes whose hosts cover the request's host, in precedence order: host tier
 * (exact, then wildcards longest suffix first, then any host), then prefix length, then condition
 * count (most first), then table order. A route listing several host entries appears once, under
 * its best entry for this host.
 */
import { hostEntryMatch, hostKey, wildcardSuffix } from './host.js';
import { headerValues, methodHolds, headerHolds, PRESENT, queryHolds, queryValues } from './match-conditions.js';
import { matchesPrefix, pathEnd } from './path.js';
import { conditionCount } from './route-spec.js';
import type { RequestFacts, Route, RoutingTable } from './types.js';

/** How a route's hosts cover the request's host. */
export type HostMatch = 'exact' | 'wildcard' | 'any';

/** One condition of a route, judged against the request. */
export interface ConditionVerdict {
  readonly kind: 'method' | 'header' | 'query';
  /** Header (lower-case) or query parameter name; null for methods. */
  readonly name: string | null;
  /** The methods listed, or the value wanted (`*` = present). */
  readonly expected: string | readonly string[];
  readonly held: boolean;
  /** What the request has: its method, the values of that header or (decoded) query parameter. */
  readonly seen: readonly string[];
}

/** One route the lookup considered for the request's host. */
export interface RouteCandidate {
  readonly route: string;
  /** The host entry that covers the request's host (exact or wildcard), or null for a route that serves any host. */
  readonly host: string | null;
  /** Every host entry of the route (empty: any host). */
  readonly hosts: readonly string[];
  readonly hostMatch: HostMatch;
  readonly path: string;
  /** The path falls under the route's prefix on a segment boundary. */
  readonly prefixMatches: boolean;
  /** Methods count 1, each header and query condition 1: more wins within one host entry and prefix. */
  readonly conditionCount: number;
  /** One verdict per condition (empty: the route has none). */
  readonly conditions: readonly ConditionVerdict[];
  /** Every condition holds (true without conditions). */
  readonly conditionsHold: boolean;
  readonly chosen: boolean;
}

export interface LookupExplanation {
  /** The Host in key form (lower-case, no port), or null without one. */
  readonly host: string | null;
  readonly route: Route | undefined;
  /** In precedence order (file header). */
  readonly candidates: readonly RouteCandidate[];
  /** One sentence: why this route, or why none. */
  readonly reason: string;
}

interface Ranked {
  readonly route: Route;
  readonly at: number;
  readonly entry: string | null;
  readonly hostMatch: HostMatch;
  /** exact: +Infinity; wildcard: the suffix length; any host: -1. */
  readonly tier: number;
  readonly count: number;
}

export function explainLookup(table: RoutingTable, host: string | undefined, path: string, request?: RequestFacts): LookupExplanation {
  const key = host === undefined || host === '' ? undefined : hostKey(host);
  const route = table.lookup(host, path, request);
  const ranked: Ranked[] = [];
  table.routes.forEach((r, at) => {
    const best = bestEntry(r, key);
    if (best !== undefined) ranked.push({ route: r, at, ...best, count: conditionCount(r.conditions) });
  });
  ranked.sort((a, b) => b.tier - a.tier || b.route.path.length - a.route.path.length || (a.route.path < b.route.path ? -1 : a.route.path > b.route.path ? 1 : 0) || b.count - a.count || a.at - b.at);
  const end = pathEnd(path);
  const candidates = ranked.map((c): RouteCandidate => {
    const conditions = verdicts(c.route, path, end, request);
    return {
      route: c.route.name,
      host: c.entry,
      hosts: c.route.hosts,
      hostMatch: c.hostMatch,
      path: c.route.path,
      prefixMatches: matchesPrefix(path, c.route.path),
      conditionCount: c.count,
      conditions,
      conditionsHold: conditions.every((v) => v.held),
      chosen: c.route === route,
    };
  });
  return { host: key ?? null, route, candidates, reason: reasonFor(route, key, ranked, candidates, table.routes.length) };
}

/** The route's entry that covers `key` best (exact, then longest wildcard), any host, or undefined. */
function bestEntry(r: Route, key: string | undefined): Pick<Ranked, 'entry' | 'hostMatch' | 'tier'> | undefined {
  if (r.hosts.length === 0) return { entry: null, hostMatch: 'any', tier: -1 };
  if (key === undefined) return undefined;
  let best: Pick<Ranked, 'entry' | 'hostMatch' | 'tier'> | undefined;
  for (const entry of r.hosts) {
    const how = hostEntryMatch(entry, key);
    if (how === 'exact') return { entry, hostMatch: 'exact', tier: Number.POSITIVE_INFINITY };
    if (how === 'wildcard') {
      const tier = wildcardSuffix(entry).length;
      if (best === undefined || tier > best.tier) best = { entry, hostMatch: 'wildcard', tier };
    }
  }
  return best;
}

function verdicts(r: Route, path: string, end: number, request: RequestFacts | undefined): ConditionVerdict[] {
  const c = r.conditions;
  if (c === undefined) return [];
  const out: ConditionVerdict[] = [];
  if (c.methods.length > 0) {
    const method = request?.method;
    out.push({ kind: 'method', name: null, expected: c.methods, held: methodHolds(c.methods, method), seen: method === undefined ? [] : [method] });
  }
  for (const [name, value] of c.headers) {
    out.push({ kind: 'header', name, expected: value, held: headerHolds(name, value, request?.rawHeaders), seen: headerValues(name, request?.rawHeaders) });
  }
  for (const [name, value] of c.query) {
    out.push({ kind: 'query', name, expected: value, held: queryHolds(name, value, path, end), seen: queryValues(name, path, end) });
  }
  return out;
}

/**
 * `method GET or POST (GET includes HEAD)`, `header x-canary = "1"`, `query beta present`. The
 * methods as configured; the note when the list has GET without HEAD (match-conditions.ts).
 */
export function conditionText(v: ConditionVerdict): string {
  if (v.kind === 'method') {
    const methods = v.expected as readonly string[];
    const note = methods.includes('GET') && !methods.includes('HEAD') ? ' (GET includes HEAD)' : '';
    return `method ${methods.join(' or ')}${note}`;
  }
  const wanted = v.expected === PRESENT ? 'present' : `= ${JSON.stringify(v.expected)}`;
  return `${v.kind} ${v.name ?? ''} ${wanted}`;
}

function hostPhrase(c: RouteCandidate, key: string | undefined): string {
  if (c.hostMatch === 'exact') return `is for host "${key ?? ''}"`;
  if (c.hostMatch === 'wildcard') return `covers host "${key ?? ''}" with the wildcard "${c.host ?? ''}"`;
  return 'serves any host';
}

function reasonFor(route: Route | undefined, key: string | undefined, ranked: readonly Ranked[], candidates: readonly RouteCandidate[], total: number): string {
  if (total === 0) return 'the routing table has no routes';
  const hostText = key === undefined ? 'the request has no Host' : `host "${key}"`;
  const forHost = ranked.filter((r) => r.hostMatch !== 'any');
  const wildcards = forHost.filter((r) => r.hostMatch === 'wildcard').length;
  const anyHost = ranked.length - forHost.length;
  // Routes ranked before the answer (all of them without one) that the path fell under but a condition ruled out.
  const chosenAt = candidates.findIndex((c) => c.chosen);
  const failed = candidates.filter((c, at) => (chosenAt < 0 || at < chosenAt) && c.prefixMatches && !c.conditionsHold);
  const failedText = failed.length === 0 ? '' : `; passed over because a condition failed: ${failed.map((c) => `"${c.route}" (${c.conditions.filter((v) => !v.held).map(conditionText).join(', ')})`).join(', ')}`;
  if (route === undefined) {
    const byWildcard = wildcards === 0 ? '' : ` (${wildcards} by wildcard)`;
    const scope = key === undefined
      ? `the request has no Host, so only the ${anyHost} route(s) for any host apply`
      : `${forHost.length} route(s) for host "${key}"${byWildcard} and ${anyHost} for any host`;
    if (failed.length > 0) return `no route matches: ${scope}; the path falls under the prefix of ${failed.length}, but a condition of each fails${failedText}`;
    return `no route matches: ${scope}, and none has a prefix the path falls under (prefixes match whole segments: /api matches /api and /api/x, not /apix)`;
  }
  const chosen = candidates[chosenAt]!;
  const held = chosen.conditions.length === 0 ? '' : `; its conditions hold (${chosen.conditions.map(conditionText).join(', ')})`;
  const prefix = failed.length === 0
    ? `has the longest prefix the path falls under ("${route.path}")`
    : `has the longest prefix the path falls under among the routes whose conditions hold ("${route.path}")`;
  const head = `route "${route.name}" ${hostPhrase(chosen, key)} and ${prefix}${held}`;
  if (chosen.hostMatch !== 'any') {
    const tiers = chosen.hostMatch === 'exact'
      ? 'routes for a host come before routes for any host'
      : 'exact hosts come before wildcards, longer wildcards before shorter ones, and all before routes for any host';
    return `${head}; ${tiers}${failedText}`;
  }
  if (key === undefined) return `${head}; the request has no Host, so only routes for any host apply${failedText}`;
  if (forHost.length === 0) return `${head}; ${hostText} has no routes of its own${failedText}`;
  return `${head}; none of the ${forHost.length} route(s) for ${hostText} has a prefix the path falls under${failed.some((c) => c.hostMatch !== 'any') ? ' with conditions that hold' : ''}${failedText}`;
}
