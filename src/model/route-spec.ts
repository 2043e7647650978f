import type { PolicyInput } from './policy.js';
import type { RouteOptions, RouteOrigin, TemplateDestination } from './types.js';

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
