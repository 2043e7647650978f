/**
 * The JSON shape of a route, destination and endpoint for the admin API (/api/routes, /api/match),
 * in one place so both answer with the same field names. Pure: plain objects, undefined as null.
 */
import { routeKvKeys } from './kv-overrides.js';
import type { Destination, Endpoint, Route } from './types.js';

/** `kvKeys`: the route's KV keys relative to the KV prefix, in the form every Consul version accepts. */
export function routeHead(route: Route): { name: string; host: string | null; hosts: readonly string[]; path: string; strip: string | null; origin: string; source: string; kvKeys: { weights: string; policy: string } } {
  // `host`: the first host (null for any host), as before host lists; `hosts`: all of them.
  return { name: route.name, host: route.hosts[0] ?? null, hosts: route.hosts, path: route.path, strip: route.strip ?? null, origin: route.origin, source: route.source, kvKeys: routeKvKeys(route.name) };
}

export function destinationHead(d: Destination): { key: string; service: string; tag: string | null; weight: number; configuredWeight: number } {
  return { key: d.key, service: d.service, tag: d.tag ?? null, weight: d.weight, configuredWeight: d.configuredWeight };
}

export function endpointHead(e: Endpoint): { id: string; address: string; port: number; status: string; state: string; weight: number } {
  return { id: e.id, address: e.address, port: e.port, status: e.status, state: e.state, weight: e.weight };
}
