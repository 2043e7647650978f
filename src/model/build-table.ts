/**
 * DiscoverySnapshot + KvSnapshot + templates → one frozen RoutingTable. Pure: no I/O, no clock.
 *
 * 1. Routes: templates expanded and validated (fatal: ConfigError), then tag routes (non-fatal).
 * 2. KV overrides parsed (a bad key is a problem, the rest applies).
 * 3. Each destination resolved: the service's instances (a tag narrows to instances carrying it),
 *    weighted by health and KV instance overrides (service-endpoints.ts); `active` keeps weight > 0.
 * 4. Destination weight = KV route override for its key, else the configured weight; but 0 when no
 *    endpoint has weight > 0, so the route-level balancer never picks an empty pool while another
 *    has capacity. A route whose destinations all weigh 0 still matches (503, not 404).
 * 5. Policy: defaults, then the template's `policy:` layer, then KV `routes/<route>/policy`
 *    (policy.ts). A KV layer that cannot combine with the template's is a problem; the template's
 *    policy then applies alone.
 * 6. Everything deep-frozen; the lookup index is built once here.
 *
 * Endpoint objects are shared between destinations of the same service (same id, same object).
 * A destination's service unknown to discovery (in neither catalog nor instances) is reported as a
 * problem of kind 'service'; one in the catalog without health data yet just has no endpoints.
 */
import { collectRoutes, servicesOf } from './collect-routes.js';
import { deepFreeze } from './deep-freeze.js';
import { parseKvOverrides, routeKvKeys, type KvOverrides } from './kv-overrides.js';
import { resolvePolicy, type RoutePolicy } from './policy.js';
import { RouteIndex } from './route-index.js';
import { destinationKey, type RouteSpec } from './route-spec.js';
import { serviceEndpoints } from './service-endpoints.js';
import type {
  BuildProblem, Destination, DiscoverySnapshot, Endpoint, KvSnapshot, Route, RouteTemplate, RoutingTable,
} from './types.js';

export function buildTable(
  discovery: DiscoverySnapshot,
  kv: KvSnapshot,
  templates: readonly RouteTemplate[],
): RoutingTable {
  const collected = collectRoutes(discovery.catalog, templates);
  const overrides = parseKvOverrides(kv);
  const problems: BuildProblem[] = [...collected.problems, ...overrides.problems];
  const endpointsOf = serviceEndpointCache(discovery, overrides, problems);

  const routes = collected.routes.map((spec) => resolveRoute(spec, discovery, overrides, endpointsOf, problems));
  const index = new RouteIndex(routes);
  const table: RoutingTable = {
    routes,
    problems,
    services: servicesOf(collected.routes),
    lookup: (host, path) => index.lookup(host, path),
  };
  return deepFreeze(table);
}

/**
 * The services the routes of these templates and this catalog's tags need instances of: what a
 * discovery provider should watch. Equal to `buildTable(...).services` for the same catalog and
 * templates. Throws ConfigError when the templates are invalid, as buildTable would.
 */
export function neededServices(
  catalog: DiscoverySnapshot['catalog'],
  templates: readonly RouteTemplate[],
): string[] {
  return servicesOf(collectRoutes(catalog, templates).routes);
}

type EndpointsOf = (service: string) => readonly Endpoint[];

function serviceEndpointCache(discovery: DiscoverySnapshot, overrides: KvOverrides, problems: BuildProblem[]): EndpointsOf {
  const cache = new Map<string, readonly Endpoint[]>();
  return (service) => {
    let endpoints = cache.get(service);
    if (endpoints === undefined) {
      const instances = Object.hasOwn(discovery.instances, service) ? discovery.instances[service] ?? [] : [];
      endpoints = serviceEndpoints(service, instances, overrides.instanceWeights.get(service), problems);
      cache.set(service, endpoints);
    }
    return endpoints;
  };
}

function resolveRoute(
  spec: RouteSpec,
  discovery: DiscoverySnapshot,
  overrides: KvOverrides,
  endpointsOf: EndpointsOf,
  problems: BuildProblem[],
): Route {
  const routeOverride = overrides.routeWeights.get(spec.name);
  const destinations = spec.to.map((d): Destination => {
    const known = Object.hasOwn(discovery.catalog, d.service) || Object.hasOwn(discovery.instances, d.service);
    if (!known) {
      problems.push({ kind: 'service', source: spec.source, message: `route "${spec.name}": service "${d.service}" is unknown to discovery; no endpoints` });
    }
    const { tag } = d;
    const key = destinationKey(d.service, tag);
    const all = endpointsOf(d.service);
    const endpoints = tag === undefined ? [...all] : all.filter((e) => e.tags.includes(tag));
    const active = endpoints.filter((e) => e.weight > 0);
    const weight = routeOverride?.get(key) ?? d.weight;
    return {
      key,
      service: d.service,
      tag,
      weight: active.length === 0 ? 0 : weight,
      configuredWeight: d.weight,
      endpoints,
      active,
    };
  });
  if (routeOverride !== undefined) {
    const keys = new Set(destinations.map((d) => d.key));
    for (const name of routeOverride.keys()) {
      if (!keys.has(name)) {
        problems.push({ kind: 'kv', source: routeKvKeys(spec.name).weights, message: `route "${spec.name}" has no destination "${name}"; entry ignored` });
      }
    }
  }
  return {
    name: spec.name,
    host: spec.host,
    path: spec.path,
    strip: spec.strip,
    destinations,
    active: destinations.filter((d) => d.weight > 0),
    origin: spec.origin,
    source: spec.source,
    policy: routePolicy(spec, overrides, problems),
  };
}

function routePolicy(spec: RouteSpec, overrides: KvOverrides, problems: BuildProblem[]): RoutePolicy {
  const kvLayer = overrides.routePolicies.get(spec.name);
  if (kvLayer !== undefined) {
    const combined = resolvePolicy([spec.policy, kvLayer]);
    if (typeof combined !== 'string') return combined;
    problems.push({ kind: 'kv', source: `routes/${spec.name}/policy`, message: `${combined}; key ignored` });
  }
  const own = resolvePolicy([spec.policy]);
  // validateRoutes rejected template layers that do not resolve; tag routes have none.
  if (typeof own === 'string') throw new Error(`route "${spec.name}": unresolvable policy passed validation: ${own}`);
  return own;
}
