import { methodHolds } from './match-conditions.js';
import type { PolicyInput } from './policy.js';
import type { MatchConditions, RouteOptions, RouteOrigin, TemplateDestination } from './types.js';

/**
 * A route before its destinations are resolved against discovery: what template expansion and tag
 * parsing produce, and what validation checks. After `validateRoutes` (templates) or `tagRoutes`
 * (tags) the host is a lookup key (see host.ts) and path/strip are normalised prefixes (path.ts).
 */
export interface RouteSpec {
  readonly name: string;
  /** Exact hosts and `*.` wildcards; empty = any host. */
  readonly hosts: readonly string[];
  readonly path: string;
  readonly strip: string | undefined;
  readonly to: readonly TemplateDestination[];
  readonly origin: RouteOrigin;
  /** Template file or tag the route came from. */
  readonly source: string;
  /** The template's policy layer (tag routes have none). */
  readonly policy?: PolicyInput;
  /** Gateway options (conditions, rewrite, headers, sticky, mirror, redirect); hosts and path are above. */
  readonly options?: RouteOptions;
}

/** `service` or `service:tag`: how KV route weights name a destination. */
export function destinationKey(service: string, tag: string | undefined): string {
  return tag === undefined ? service : `${service}:${tag}`;
}

/** Identity of a route's match: two routes with the same key would shadow each other. */
export function matchKey(host: string | undefined, path: string): string {
  // A host key never contains a space, so the separator cannot collide.
  return `${host ?? '*'} ${path}`;
}

/** The match keys of a route: one per host, or the any-host key when it has none. */
export function matchKeys(hosts: readonly string[], path: string): string[] {
  return hosts.length === 0 ? [matchKey(undefined, path)] : hosts.map((h) => matchKey(h, path));
}

/** Human form of a match for messages: `api.example.com/users` or `/users` (any host). */
export function describeMatch(host: string | undefined, path: string): string {
  return `${host ?? ''}${path}`;
}

/**
 * How many conditions a route has, for precedence within one host and path: a non-empty method
 * list counts 1, each header condition 1, each query condition 1. No conditions = 0.
 */
export function conditionCount(c: MatchConditions | undefined): number {
  if (c === undefined) return 0;
  return (c.methods.length > 0 ? 1 : 0) + c.headers.length + c.query.length;
}

/**
 * Whether one request can satisfy both condition sets (exactly, not approximately): false only
 * when no method is taken by both method lists (both non-empty; a list with GET takes HEAD too,
 * match-conditions.ts, so [GET] and [HEAD] overlap on a HEAD request), or some header (or query parameter) name
 * is required by both with two different exact values (`*` = present is compatible with any
 * value). Everything else can hold together: a header one route requires and the other does not
 * mention, for instance, is sent by some request.
 */
export function conditionsOverlap(a: MatchConditions | undefined, b: MatchConditions | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  if (a.methods.length > 0 && b.methods.length > 0 && !methodsOverlap(a.methods, b.methods)) return false;
  return pairsOverlap(a.headers, b.headers) && pairsOverlap(a.query, b.query);
}

/** Whether some request method is taken by both (non-empty) lists: a shared method, or HEAD. */
function methodsOverlap(a: readonly string[], b: readonly string[]): boolean {
  return a.some((m) => b.includes(m)) || (methodHolds(a, 'HEAD') && methodHolds(b, 'HEAD'));
}

/** False when some name has two different exact values (neither `*`) in `a` and `b`. */
function pairsOverlap(a: readonly (readonly [string, string])[], b: readonly (readonly [string, string])[]): boolean {
  for (const [name, value] of a) {
    if (value === '*') continue;
    for (const [otherName, otherValue] of b) {
      if (otherName === name && otherValue !== '*' && otherValue !== value) return false;
    }
  }
  return true;
}
