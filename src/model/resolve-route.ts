/**
 * One route spec + its services' endpoints + its KV overrides → one Route (steps 3 to 5 of
 * build-table.ts). Pure, and independent of every other route: which is what lets the incremental
 * TableBuilder reuse a route whose inputs did not change. The route is frozen as it is made (its
 * endpoints come frozen from service-endpoints.ts): freezing by walking the table with a WeakSet
 * was a fifth of a full build's time and much of its GC.
 */
import { routeKvKeys } from './kv-overrides.js';
import { DEFAULT_POLICY, resolvePolicy, type PolicyInput, type RoutePolicy } from './policy.js';
import { destinationKey, type RouteSpec } from './route-spec.js';
import type { BuildProblem, Destination, Endpoint, Route } from './types.js';

export interface RouteInputs {
  /** The endpoints of each destination's service, in `spec.to` order. */
  readonly endpoints: readonly (readonly Endpoint[])[];
  /** KV `routes/<route>/weights`: destination key → weight. */
  readonly weights: ReadonlyMap<string, number> | undefined;
  /** KV `routes/<route>/policy`. */
  readonly policy: PolicyInput | undefined;
  /** The endpoints of the mirror's service, when the route mirrors. */
  readonly mirrorEndpoints?: readonly Endpoint[];
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
    return Object.freeze({
      key,
      service: d.service,
      tag,
      weight: active.length === 0 ? 0 : weight,
      configuredWeight: d.weight,
      endpoints: Object.freeze(endpoints),
      active: Object.freeze(active),
    });
  });
  if (routeOverride !== undefined) {
    const keys = new Set(destinations.map((d) => d.key));
    for (const name of routeOverride.keys()) {
      if (!keys.has(name)) {
        problems.push({ kind: 'kv', source: routeKvKeys(spec.name).weights, message: `route "${spec.name}" has no destination "${name}"; entry ignored` });
      }
    }
  }
  const route: Route = Object.freeze({
    name: spec.name,
    hosts: spec.hosts,
    path: spec.path,
    strip: spec.strip,
    conditions: spec.options?.conditions,
    rewrite: spec.options?.rewrite,
    headers: spec.options?.headers,
    sticky: spec.options?.sticky,
    mirror: mirrorOf(spec, inputs.mirrorEndpoints),
    redirect: spec.options?.redirect,
    destinations: Object.freeze(destinations),
    active: Object.freeze(destinations.filter((d) => d.weight > 0)),
    origin: spec.origin,
    source: spec.source,
    // resolvePolicy's results are frozen deeply (policy.ts), DEFAULT_POLICY included.
    policy: routePolicy(spec, inputs.policy, problems),
  });
  for (const problem of problems) Object.freeze(problem);
  return { route, problems };
}

/** The mirror's pool: its service's endpoints (narrowed to the tag), weighted like a destination's. */
function mirrorOf(spec: RouteSpec, all: readonly Endpoint[] | undefined): Route['mirror'] {
  const target = spec.options?.mirror;
  if (target === undefined) return undefined;
  const { tag } = target;
  const endpoints = tag === undefined ? [...(all ?? [])] : (all ?? []).filter((e) => e.tags.includes(tag));
  const active = endpoints.filter((e) => e.weight > 0);
  const destination: Destination = Object.freeze({
    key: destinationKey(target.service, tag),
    service: target.service,
    tag,
    weight: active.length === 0 ? 0 : 1,
    configuredWeight: 1,
    endpoints: Object.freeze(endpoints),
    active: Object.freeze(active),
  });
  return Object.freeze({ target, destination });
}

function routePolicy(spec: RouteSpec, kvLayer: PolicyInput | undefined, problems: BuildProblem[]): RoutePolicy {
  if (kvLayer !== undefined) {
    const combined = resolvePolicy([spec.policy, kvLayer]);
    if (typeof combined !== 'string') return combined;
    problems.push({ kind: 'kv', source: `routes/${spec.name}/policy`, message: `${combined}; key ignored` });
  }
  const layer = spec.policy;
  if (layer === undefined) return DEFAULT_POLICY;
  const known = templatePolicies.get(layer);
  if (known !== undefined) return known;
  const own = resolvePolicy([layer]);
  // validateRoutes rejected template layers that do not resolve; tag routes have none.
  if (typeof own === 'string') throw new Error(`route "${spec.name}": unresolvable policy passed validation: ${own}`);
  templatePolicies.set(layer, own);
  return own;
}

/**
 * A template's policy layer → its resolved (deeply frozen) policy. Every route a template expands
 * to carries the same layer object, so a template change resolves and freezes it once, not once
 * per route (a thousand times for a `{{service}}` template). Keyed by identity: layers are
 * validated input, never changed after (the table builder compares them by identity too).
 */
const templatePolicies = new WeakMap<PolicyInput, RoutePolicy>();
