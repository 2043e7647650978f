/** Builders for model tests: small, explicit data with defaults that tests override. */
import assert from 'node:assert/strict';
import type {
  DiscoverySnapshot, HealthStatus, Route, RouteTemplate, RoutingTable, ServiceInstance,
} from '../../src/model/types.js';

export const SOURCE = 'templates/test.yaml';

export function instance(
  service: string,
  id: string,
  options: { port?: number; address?: string; tags?: string[]; status?: HealthStatus; passing?: number; warning?: number } = {},
): ServiceInstance {
  return {
    id,
    service,
    address: options.address ?? '127.0.0.1',
    port: options.port ?? 9000,
    tags: options.tags ?? [],
    status: options.status ?? 'passing',
    weights: { passing: options.passing ?? 1, warning: options.warning ?? 1 },
    meta: {},
  };
}

/** A snapshot whose catalog is the union of its instances' tags (as Consul's catalog is). */
export function discovery(instances: readonly ServiceInstance[], extraCatalog: Record<string, string[]> = {}): DiscoverySnapshot {
  const catalog: Record<string, string[]> = {};
  const byService: Record<string, ServiceInstance[]> = {};
  for (const i of instances) {
    const tags = (catalog[i.service] ??= []);
    for (const t of i.tags) if (!tags.includes(t)) tags.push(t);
    (byService[i.service] ??= []).push(i);
  }
  return { catalog: { ...catalog, ...extraCatalog }, instances: byService };
}

export function template(
  name: string,
  path: string,
  to: RouteTemplate['to'],
  extra: { host?: string; strip?: string; each?: RouteTemplate['each']; source?: string } = {},
): RouteTemplate {
  const { host, strip, each, source } = extra;
  return {
    name,
    match: { hosts: host === undefined ? [] : [host], path },
    to,
    source: source ?? SOURCE,
    ...(strip === undefined ? {} : { strip }),
    ...(each === undefined ? {} : { each }),
  };
}

export function routeNamed(table: RoutingTable, name: string): Route {
  const route = table.routes.find((r) => r.name === name);
  assert.ok(route, `route ${name} exists (have: ${table.routes.map((r) => r.name).join(', ')})`);
  return route;
}

/** instanceId → weight of one destination's endpoints, in endpoint order. */
export function endpointWeights(route: Route, key: string): Record<string, number> {
  const destination = route.destinations.find((d) => d.key === key);
  assert.ok(destination, `destination ${key} exists`);
  return Object.fromEntries(destination.endpoints.map((e) => [e.instanceId, e.weight]));
}
