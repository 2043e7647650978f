/**
 * The lookup structure behind `RoutingTable.lookup`, built once per table; lookup is on the request
 * hot path, so it uses no regex and no closure, and allocates only the host key (when the Host
 * header is not already canonical), the prefix and wildcard-suffix strings it probes, and a decoded
 * query part when a query condition needs one (match-conditions.ts).
 *
 * Precedence (deterministic; validate-routes.ts refuses the ties it could not break):
 *   1. host tier: routes listing the request's host exactly, then wildcard routes from the longest
 *      suffix to the shortest (`*.a.example.com` before `*.example.com`), then routes without hosts;
 *   2. within a tier, the longest path prefix on a segment boundary;
 *   3. within one host entry and prefix, the route with the most conditions (a method list counts 1,
 *      each header and query condition 1), then table order; the first whose conditions all hold.
 * When no candidate of a prefix holds, the walk goes on to shorter prefixes, then to the next tier:
 * a conditioned route never hides a plainer route elsewhere from requests it does not take.
 * Host compared case-insensitively without its port; `*.suffix` takes one or more labels before the
 * suffix (host.ts); a path not starting with `/` (e.g. `*`) matches nothing.
 *
 * Per exact host, per wildcard suffix, and once for host-less routes, a PrefixTable maps prefix →
 * slot, plus a bitmap of the prefix lengths present, so the walk from the right over the path's `/`
 * positions only slices a candidate when some prefix of exactly that length exists; a bitmap of the
 * wildcard suffix lengths does the same for the walk over the host's dots. A slot is the position
 * of the route in the table when one route without conditions has that host entry and prefix (one
 * map probe, as before conditions existed), or an index into `groups`: the candidates in precedence
 * order. Positions, not Route objects: a table whose routes have the same hosts, paths and
 * condition objects in the same order as the previous one's (a health flip, a weight change) reuses
 * the index with `rebind`, whatever routes were rebuilt, instead of building it again.
 */
import { hostKey, isWildcardHost, wildcardSuffix } from './host.js';
import { conditionsHold } from './match-conditions.js';
import { pathEnd } from './path.js';
import { conditionCount } from './route-spec.js';
import type { RequestFacts, Route } from './types.js';

const SLASH = 47; // '/'
const DOT = 46; // '.'

/**
 * A slot: >= 0 the position of the only route (one without conditions); NONE; or <= -2 the group
 * `-slot - 2` of IndexShape.groups.
 */
type Slot = number;

interface PrefixTable {
  /** Prefix → slot. */
  readonly byPrefix: Map<string, Slot>;
  /** hasLength[n] === 1 when some non-root prefix has length n. */
  readonly hasLength: Uint8Array;
  /** Slot of the routes on `/`, or NONE. */
  readonly root: Slot;
}

/** The lookup maps of an index, shared by `rebind`. */
export interface IndexShape {
  readonly byHost: Map<string, PrefixTable>;
  /** Wildcard suffix (`example.com` for `*.example.com`) → its routes. */
  readonly wildcards: Map<string, PrefixTable>;
  /** suffixLength[n] === 1 when some wildcard suffix has length n. */
  readonly suffixLength: Uint8Array;
  readonly anyHost: PrefixTable | undefined;
  /** Candidates sharing a host entry and prefix, in precedence order (most conditions, then table order). */
  readonly groups: readonly (readonly number[])[];
}

const NONE = -1;

export class RouteIndex {
  readonly #routes: readonly Route[];
  readonly #shape: IndexShape;

  /** `routes` must be validated: hosts in key form, paths normalised, no ties (validate-routes.ts). */
  constructor(routes: readonly Route[], shape: IndexShape = shapeOf(routes)) {
    this.#routes = routes;
    this.#shape = shape;
  }

  /**
   * True when `routes` have the hosts, paths and condition objects of this index's routes, position
   * by position: then `rebind(routes)` answers for them exactly as a new index would.
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
    return new RouteIndex(routes, this.#shape);
  }

  lookup(host: string | undefined, path: string, request?: RequestFacts): Route | undefined {
    if (path.charCodeAt(0) !== SLASH) return undefined;
    const { byHost, wildcards, anyHost } = this.#shape;
    if (host !== undefined && (byHost.size > 0 || wildcards.size > 0)) {
      // Fast path: a Host header already in key form needs no normalisation.
      let table = byHost.size > 0 ? byHost.get(host) : undefined;
      const key = table !== undefined ? host : hostKey(host);
      if (table === undefined && key !== host && byHost.size > 0) table = byHost.get(key);
      if (table !== undefined) {
        const at = this.#matchPath(table, path, request);
        if (at !== NONE) return this.#routes[at];
      }
      if (wildcards.size > 0) {
        const at = this.#matchWildcards(key, path, request);
        if (at !== NONE) return this.#routes[at];
      }
    }
    if (anyHost === undefined) return undefined;
    const at = this.#matchPath(anyHost, path, request);
    return at === NONE ? undefined : this.#routes[at];
  }

  /** Wildcard tables whose suffix ends `key` after one or more labels, longest suffix first. */
  #matchWildcards(key: string, path: string, request: RequestFacts | undefined): number {
    if (key.charCodeAt(0) === DOT) return NONE;
    const { wildcards, suffixLength } = this.#shape;
    const longest = suffixLength.length - 1;
    for (let dot = key.indexOf('.'); dot > 0; dot = key.indexOf('.', dot + 1)) {
      const length = key.length - dot - 1;
      if (length > longest || suffixLength[length] !== 1) continue;
      const table = wildcards.get(key.slice(dot + 1));
      if (table === undefined) continue;
      const at = this.#matchPath(table, path, request);
      if (at !== NONE) return at;
    }
    return NONE;
  }

  /** The position of the route for `path` in this prefix table, or NONE. `path` starts with `/`. */
  #matchPath(table: PrefixTable, path: string, request: RequestFacts | undefined): number {
    const { byPrefix, hasLength } = table;
    const end = pathEnd(path);
    const longest = hasLength.length - 1;
    // The whole path (up to the query) is a candidate: `/users` or `/users?x=1` for prefix `/users`.
    if (end <= longest && hasLength[end] === 1) {
      const slot = byPrefix.get(end === path.length ? path : path.slice(0, end));
      if (slot !== undefined) {
        const at = slot >= 0 ? slot : this.#pick(slot, path, end, request);
        if (at !== NONE) return at;
      }
    }
    // Then every prefix ending just before a '/', longest first. A non-root prefix has length >= 2.
    for (let i = end - 1 < longest ? end - 1 : longest; i >= 2; i--) {
      if (hasLength[i] === 1 && path.charCodeAt(i) === SLASH) {
        const slot = byPrefix.get(path.slice(0, i));
        if (slot !== undefined) {
          const at = slot >= 0 ? slot : this.#pick(slot, path, end, request);
          if (at !== NONE) return at;
        }
      }
    }
    const root = table.root;
    return root >= 0 || root === NONE ? root : this.#pick(root, path, end, request);
  }

  /** The first candidate of a group whose conditions hold, or NONE. */
  #pick(slot: Slot, path: string, end: number, request: RequestFacts | undefined): number {
    const group = this.#shape.groups[-slot - 2]!;
    const routes = this.#routes;
    for (let i = 0; i < group.length; i++) {
      const at = group[i]!;
      const conditions = routes[at]!.conditions;
      if (conditions === undefined || conditionsHold(conditions, path, end, request)) return at;
    }
    return NONE;
  }
}

function shapeOf(routes: readonly Route[]): IndexShape {
  // Host entry (undefined = any host) → positions of its routes, each once.
  const byEntry = new Map<string | undefined, number[]>();
  routes.forEach((route, at) => {
    for (const host of route.hosts.length === 0 ? [undefined] : route.hosts) {
      const positions = byEntry.get(host);
      if (positions === undefined) byEntry.set(host, [at]);
      else if (positions[positions.length - 1] !== at) positions.push(at);
    }
  });
  const groups: number[][] = [];
  const byHost = new Map<string, PrefixTable>();
  const wildcards = new Map<string, PrefixTable>();
  let anyHost: PrefixTable | undefined;
  let longestSuffix = 0;
  for (const [host, positions] of byEntry) {
    const table = prefixTable(routes, positions, groups);
    if (host === undefined) anyHost = table;
    else if (isWildcardHost(host)) {
      const suffix = wildcardSuffix(host);
      wildcards.set(suffix, table);
      if (suffix.length > longestSuffix) longestSuffix = suffix.length;
    } else byHost.set(host, table);
  }
  const suffixLength = new Uint8Array(wildcards.size === 0 ? 0 : longestSuffix + 1);
  for (const suffix of wildcards.keys()) suffixLength[suffix.length] = 1;
  return { byHost, wildcards, suffixLength, anyHost, groups };
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The prefix table of one host entry's routes; groups of several candidates go to `groups`. */
function prefixTable(routes: readonly Route[], positions: readonly number[], groups: number[][]): PrefixTable {
  const byPath = new Map<string, number[]>();
  for (const at of positions) {
    const path = routes[at]!.path;
    const same = byPath.get(path);
    if (same === undefined) byPath.set(path, [at]);
    else same.push(at);
  }
  const byPrefix = new Map<string, Slot>();
  let root: Slot = NONE;
  let longest = 0;
  for (const [path, candidates] of byPath) {
    const slot = slotOf(routes, candidates, groups);
    if (path === '/') root = slot;
    else {
      byPrefix.set(path, slot);
      if (path.length > longest) longest = path.length;
    }
  }
  const hasLength = new Uint8Array(longest + 1);
  for (const prefix of byPrefix.keys()) hasLength[prefix.length] = 1;
  return { byPrefix, hasLength, root };
}

/** One route without conditions: its position. Otherwise a group, most conditions first, then table order. */
function slotOf(routes: readonly Route[], candidates: number[], groups: number[][]): Slot {
  if (candidates.length === 1 && conditionCount(routes[candidates[0]!]!.conditions) === 0) return candidates[0]!;
  const counts = new Map(candidates.map((at) => [at, conditionCount(routes[at]!.conditions)]));
  candidates.sort((a, b) => counts.get(b)! - counts.get(a)! || a - b);
  groups.push(candidates);
  return -(groups.length - 1) - 2;
}
