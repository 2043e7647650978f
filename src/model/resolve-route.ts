/**
 * One route spec + its services' endpoints + its KV overrides → one Route (steps 3 to 5 of
 * build-table.ts). Pure, and independent of every other route: which is what lets the incremental
 * TableBuilder reuse a route whose inputs did not change.
 */
import { routeKvKeys } from './kv-overrides.js';
import { resolvePolicy, type PolicyInput, type RoutePolicy } from './policy.js';
import { destinationKey, type RouteSpec } from './route-spec.js';
import type { BuildProblem, Destination, Endpoint, Route } from './types.js';

export interface RouteInputs {
  /** The endpoints of each destination's service, in `spec.to` order. */
  readonly endpoints: readonly (readonly Endpoint[])[];
  /** KV `routes/<route>/weights`: destination key → weight. */
  readonly weights: ReadonlyMap<string, number> | undefined;
  /** KV `routes/<route>/policy`. */
  readonly policy: PolicyInput | undefined;
}

/**
 * The route, and the problems it raises itself (KV weights naming a destination it lacks, a KV
 * policy that cannot combine with the template's), in the order buildTable reports them.
 */
export function resolveRoute(spec: RouteSpec, inputs: RouteInputs): { route: Route; problems: BuildProblem[] } {
  const problems: BuildProblem[] = [];
  const routeOverride = inputs.weights;
  const destinations = spec.to.map((d, i): Destination => {
    const { tag } = d;
    const key = destinationKey(d.service, tag);
    const all = inputs.endpoints[i] ?? [];
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
  const route: Route = {
    name: spec.name,
    host: spec.host,
    path: spec.path,
    strip: spec.strip,
    destinations,
    active: destinations.filter((d) => d.weight > 0),
    origin: spec.origin,
    source: spec.source,
    policy: routePolicy(spec, inputs.policy, problems),
  };
  return { route, problems };
}

function routePolicy(spec: RouteSpec, kvLayer: PolicyInput | undefined, problems: BuildProblem[]): RoutePolicy {
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
