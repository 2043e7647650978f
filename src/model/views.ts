/**
 * The JSON shape of a route, destination and endpoint for the admin API (/api/routes, /api/match),
 * in one place so both answer with the same field names. Pure: plain objects, undefined as null.
 */
import { routeKvKeys } from './kv-overrides.js';
import type {
  Destination, Endpoint, HeaderEdits, MirrorTarget, Route, RouteRedirect, RouteRewrite, StickySession,
} from './types.js';

type Pairs = readonly (readonly [string, string])[];

/** A route as the admin API shows it. Gateway fields are null when the route does not use them. */
export interface RouteHeadJson {
  readonly name: string;
  /** The first host entry (null for any host), as before host lists; `hosts`: all of them. */
  readonly host: string | null;
  readonly hosts: readonly string[];
  readonly path: string;
  readonly strip: string | null;
  readonly origin: string;
  readonly source: string;
  /** The route's KV keys relative to the KV prefix, in the form every Consul version accepts. */
  readonly kvKeys: ReturnType<typeof routeKvKeys>;
  /** As the template writes them: `methods` (empty = any), `headers` and `query` as name → value (`*` = present). */
  readonly conditions: { methods: readonly string[]; headers: Record<string, string>; query: Record<string, string> } | null;
  readonly rewrite: RouteRewrite | null;
  readonly headers: { request: HeaderEditsJson | null; response: HeaderEditsJson | null } | null;
  readonly sticky: StickySession | null;
  /** The mirror's target (service, share, limits); its pool is not shown. */
  readonly mirror: MirrorTarget | null;
  readonly redirect: RouteRedirect | null;
}

interface HeaderEditsJson {
  set: Record<string, string>;
  remove: readonly string[];
}

export function routeHead(route: Route): RouteHeadJson {
  const c = route.conditions;
  return {
    name: route.name, host: route.hosts[0] ?? null, hosts: route.hosts, path: route.path, strip: route.strip ?? null,
    origin: route.origin, source: route.source, kvKeys: routeKvKeys(route.name),
    conditions: c === undefined ? null : { methods: c.methods, headers: record(c.headers), query: record(c.query) },
    rewrite: route.rewrite ?? null,
    headers: route.headers === undefined ? null : { request: editsJson(route.headers.request), response: editsJson(route.headers.response) },
    sticky: route.sticky ?? null,
    mirror: route.mirror?.target ?? null,
    redirect: route.redirect ?? null,
  };
}

function record(pairs: Pairs): Record<string, string> {
  // fromEntries defines own properties: a name like `__proto__` stays a plain key.
  return Object.fromEntries(pairs);
}

function editsJson(edits: HeaderEdits | undefined): HeaderEditsJson | null {
  return edits === undefined ? null : { set: record(edits.set), remove: edits.remove };
}

export function destinationHead(d: Destination): { key: string; service: string; tag: string | null; weight: number; configuredWeight: number } {
  return { key: d.key, service: d.service, tag: d.tag ?? null, weight: d.weight, configuredWeight: d.configuredWeight };
}

export function endpointHead(e: Endpoint): { id: string; address: string; port: number; status: string; state: string; weight: number } {
  return { id: e.id, address: e.address, port: e.port, status: e.status, state: e.state, weight: e.weight };
}
