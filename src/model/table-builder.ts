/**
 * The incremental table builder: `build` gives exactly the table `buildTable` gives for the same
 * inputs (same routes, problems, services, lookups), but does work proportional to what changed
 * since its previous build, and reuses the previous table's objects for what did not:
 *
 * - Route specs (template expansion, validation, tag routes): redone only when the templates are
 *   another array or the catalog differs (identity per service, else its tags compared).
 * - KV overrides: parsed again only when the KV snapshot differs (identity, else key by key).
 * - KV route options (`routes/<route>/route`, kv-overrides.ts applyRouteOverride): applied after
 *   the specs are collected, only when the specs or the overrides changed; each route's merge is
 *   kept while its spec and its layer are unchanged (an override changes its route only). A merged
 *   route that ties with another (validate-routes.ts findMatchConflict, against the routes as
 *   they stand with the overrides accepted so far, in table order) or does not apply is a
 *   problem of kind 'kv' naming the key, and the route stays as collected. The table's
 *   `services` follow the routes as overridden (a mirror set in KV is watched).
 * - A service's endpoints: rebuilt only when its instances differ (identity of the array, as the
 *   Consul provider keeps it for an unchanged service; else compared field by field), its KV
 *   instance weights differ, or it became known or unknown to discovery. A rebuilt service keeps
 *   the Endpoint objects of instances that did not change.
 * - A Route: the previous Route object itself when its spec, its services' endpoint entries and
 *   its KV weights and policy are unchanged. Consumers rely on that identity: the proxy runtime
 *   keeps the balancers and pools of an identical route, the workers' table encoder its encoding.
 * - The lookup index: rebound, not rebuilt, while the routes' hosts and paths are unchanged.
 * - Freezing: routes and endpoints are frozen where they are made (resolve-route.ts,
 *   service-endpoints.ts); here only the table's shell and its problems.
 *
 * Still pure (no I/O, no clock). State kept between builds is only the previous build's: services
 * and routes that left are forgotten at the next build. A build that throws on bad input (an
 * invalid template) throws before changing anything, so the next one compares against the last
 * good build. A build allocates per changed route and service, not per route: entries are
 * updated in place and stamped with the build that used them.
 */
import { collectRoutes, servicesOf } from './collect-routes.js';
import { applyRouteOverride, parseKvOverrides, type KvOverrides, type RouteOverride } from './kv-overrides.js';
import type { PolicyInput } from './policy.js';
import { resolveRoute } from './resolve-route.js';
import { RouteIndex } from './route-index.js';
import type { RouteOptionsLayer } from './route-options.js';
import type { RouteSpec } from './route-spec.js';
import { serviceEndpoints } from './service-endpoints.js';
import { sameCatalog, sameInstances, sameKv, sameMap, sameStrings } from './snapshot-equal.js';
import { findMatchConflict, tieError } from './validate-routes.js';
import type {
  BuildProblem, DiscoverySnapshot, Endpoint, KvSnapshot, RequestFacts, Route, RouteTemplate, RoutingTable, ServiceInstance,
} from './types.js';

/** One service's endpoints as the previous build made them, and the inputs they came from. */
interface ServiceEntry {
  instances: readonly ServiceInstance[];
  readonly weights: ReadonlyMap<string, number> | undefined;
  readonly known: boolean;
  readonly endpoints: readonly Endpoint[];
  /** Problems serviceEndpoints reported for it (bad weights, bad addresses, duplicate ids). */
  readonly problems: readonly BuildProblem[];
  /** The build that last used it, and the one that last reported its problems. */
  usedIn: number;
  reportedIn: number;
}

interface RouteEntry {
  spec: RouteSpec;
  /** The entries of `spec.to`'s services, then the mirror's service when the route mirrors. */
  readonly services: readonly ServiceEntry[];
  readonly weights: ReadonlyMap<string, number> | undefined;
  readonly policy: PolicyInput | undefined;
  readonly route: Route;
  /** The route's own problems (KV weights and policy), reported after its services'. */
  readonly problems: readonly BuildProblem[];
  /** The build that last used it. */
  usedIn: number;
}

/** Route specs, the problems found making them, and the services they need. */
interface Specs {
  readonly routes: readonly RouteSpec[];
  readonly problems: readonly BuildProblem[];
  readonly services: readonly string[];
}

interface Collected extends Specs {
  readonly templates: readonly RouteTemplate[];
  readonly catalog: DiscoverySnapshot['catalog'];
}

/** The collected specs with KV route options applied, for one (collected, overrides) pair. */
interface Overridden extends Specs {
  readonly collected: Collected;
  readonly overrides: KvOverrides;
}

/** One route's merge with its KV layer, kept while both are unchanged. */
interface MergeEntry {
  readonly spec: RouteSpec;
  readonly layer: RouteOptionsLayer;
  /** The merged spec, or why the layer does not apply. */
  readonly result: RouteSpec | string;
}

/** What the last build did, for tests and benchmarks: counts, never timings. */
export interface BuildStats {
  readonly routesBuilt: number;
  readonly routesReused: number;
  readonly servicesBuilt: number;
  readonly servicesReused: number;
  readonly specsCollected: boolean;
  readonly kvParsed: boolean;
  /** KV route options merged this build (routes whose spec or layer changed). */
  readonly overridesMerged: number;
  readonly indexBuilt: boolean;
}

export class TableBuilder {
  #collected: Collected | undefined;
  #kv: { readonly kv: KvSnapshot; readonly overrides: KvOverrides } | undefined;
  #overridden: Overridden | undefined;
  #merges = new Map<string, MergeEntry>();
  #services = new Map<string, ServiceEntry>();
  #routes = new Map<string, RouteEntry>();
  #index: RouteIndex | undefined;
  /** Build counter: entries carry the build that last used them (no per-build maps or sets). */
  #generation = 0;
  /** Counts of the last build. */
  stats: BuildStats = { routesBuilt: 0, routesReused: 0, servicesBuilt: 0, servicesReused: 0, specsCollected: false, kvParsed: false, overridesMerged: 0, indexBuilt: false };

  build(discovery: DiscoverySnapshot, kv: KvSnapshot, templates: readonly RouteTemplate[]): RoutingTable {
    // The only step that throws on bad input (an invalid template): before anything is changed.
    const collected = this.collect(discovery.catalog, templates);
    const kvState = this.#kv !== undefined && sameKv(this.#kv.kv, kv) ? this.#kv : { kv, overrides: parseKvOverrides(kv) };
    const { overrides } = kvState;
    const mergesBefore = this.#mergeCount;
    const overridden = this.override(collected, overrides);
    const problems: BuildProblem[] = [...collected.problems, ...overrides.problems, ...overridden.problems];
    const generation = ++this.#generation;
    let servicesUsed = 0;
    let servicesBuilt = 0;
    let routesBuilt = 0;

    const entryOf = (service: string): ServiceEntry => {
      const previous = this.#services.get(service);
      if (previous !== undefined && previous.usedIn === generation) return previous;
      const entry = this.serviceEntry(service, discovery, overrides.instanceWeights.get(service), previous);
      if (entry !== previous) {
        servicesBuilt += 1;
        this.#services.set(service, entry);
      }
      entry.usedIn = generation;
      servicesUsed += 1;
      return entry;
    };

    const routes: Route[] = [];
    for (const spec of overridden.routes) {
      const weights = overrides.routeWeights.get(spec.name);
      const policy = overrides.routePolicies.get(spec.name);
      const previous = this.#routes.get(spec.name);
      const wanted = servicesOfSpec(spec);
      let same = previous !== undefined && previous.services.length === wanted.length;
      for (let i = 0; i < wanted.length; i++) {
        const service = entryOf(wanted[i]!);
        if (same && previous!.services[i] !== service) same = false;
      }
      let entry: RouteEntry;
      if (same && sameRouteInputs(previous!, spec, weights, policy)) {
        entry = previous!;
        // An equal spec from a new expansion: remember it so the next comparison is by identity.
        entry.spec = spec;
      } else {
        const services = wanted.map(entryOf);
        const mirrorEndpoints = spec.options?.mirror === undefined ? undefined : services[spec.to.length]!.endpoints;
        const resolved = resolveRoute(spec, { endpoints: services.slice(0, spec.to.length).map((e) => e.endpoints), weights, policy, ...(mirrorEndpoints === undefined ? {} : { mirrorEndpoints }) });
        entry = { spec, services, weights, policy, route: resolved.route, problems: resolved.problems, usedIn: generation };
        this.#routes.set(spec.name, entry);
        routesBuilt += 1;
      }
      entry.usedIn = generation;
      routes.push(entry.route);
      // Problems in buildTable's order: per destination, its unknown service, then (once per
      // build) its service's own problems; then the route's.
      // The mirror's service (last in entry.services) is reported like a destination's.
      for (let i = 0; i < entry.services.length; i++) {
        const service = entry.services[i]!;
        if (!service.known) {
          const message = i < spec.to.length
            ? `service "${spec.to[i]!.service}" is unknown to discovery; no endpoints`
            : `mirror service "${spec.options!.mirror!.service}" is unknown to discovery; no copies are sent`;
          problems.push({ kind: 'service', source: spec.source, message: `route "${spec.name}": ${message}` });
        }
        if (service.reportedIn !== generation) {
          service.reportedIn = generation;
          for (const problem of service.problems) problems.push(problem);
        }
      }
      for (const problem of entry.problems) problems.push(problem);
    }
    // Forget services and routes no longer in the table: nothing is kept per id for what left.
    if (this.#services.size > servicesUsed) sweep(this.#services, generation);
    if (this.#routes.size > routes.length) sweep(this.#routes, generation);

    const reuseIndex = this.#index !== undefined && this.#index.fits(routes);
    const index = reuseIndex ? this.#index!.rebind(routes) : new RouteIndex(routes);
    for (const problem of problems) Object.freeze(problem);
    const table: RoutingTable = Object.freeze({
      routes: Object.freeze(routes),
      problems: Object.freeze(problems),
      services: overridden.services,
      lookup: (host: string | undefined, path: string, request?: RequestFacts) => index.lookup(host, path, request),
    });

    this.stats = {
      routesBuilt,
      routesReused: routes.length - routesBuilt,
      servicesBuilt,
      servicesReused: servicesUsed - servicesBuilt,
      specsCollected: collected !== this.#collected,
      kvParsed: kvState !== this.#kv,
      overridesMerged: this.#mergeCount - mergesBefore,
      indexBuilt: !reuseIndex,
    };
    this.#collected = collected;
    this.#kv = kvState;
    this.#overridden = overridden;
    this.#index = index;
    return table;
  }

  /** Route specs of the templates over the catalog; the previous ones while neither changed. */
  private collect(catalog: DiscoverySnapshot['catalog'], templates: readonly RouteTemplate[]): Collected {
    const previous = this.#collected;
    if (previous !== undefined && previous.templates === templates && sameCatalog(previous.catalog, catalog)) return previous;
    const { routes, problems } = collectRoutes(catalog, templates);
    return { templates, catalog, routes, problems, services: Object.freeze(servicesOf(routes)) };
  }

  /** Merges done so far (stats). */
  #mergeCount = 0;

  /**
   * The collected specs with the KV route layers applied (the previous result while neither
   * changed). Layers are applied in table order, each merged spec checked against the routes as
   * they stand (earlier overrides accepted, later routes as collected), so no two routes of the
   * result tie. A layer for a route that does not exist is kept silently, as weights are.
   */
  private override(collected: Collected, overrides: KvOverrides): Overridden {
    const previous = this.#overridden;
    if (previous !== undefined && previous.collected === collected && previous.overrides === overrides) return previous;
    if (overrides.routeOptions.size === 0) {
      this.#merges.clear();
      return { collected, overrides, routes: collected.routes, problems: [], services: collected.services };
    }
    const routes = [...collected.routes];
    const problems: BuildProblem[] = [];
    const merges = new Map<string, MergeEntry>();
    let changed = false;
    for (let i = 0; i < routes.length; i++) {
      const spec = routes[i]!;
      const override = overrides.routeOptions.get(spec.name);
      if (override === undefined) continue;
      const merge = this.merged(spec, override);
      merges.set(spec.name, merge);
      let refusal = typeof merge.result === 'string' ? merge.result : undefined;
      if (typeof merge.result !== 'string') {
        const tie = findMatchConflict(merge.result, routes);
        if (tie !== undefined) {
          const message = tieError(merge.result, tie).message;
          refusal = message.slice(message.indexOf(`route "${spec.name}": `) + `route "${spec.name}": `.length);
        }
      }
      if (refusal !== undefined) {
        problems.push({ kind: 'kv', source: override.key, message: `route "${spec.name}": ${refusal}; key ignored, the route's own options apply` });
        continue;
      }
      routes[i] = merge.result as RouteSpec;
      changed = true;
    }
    this.#merges = merges;
    return { collected, overrides, routes, problems, services: changed ? Object.freeze(servicesOf(routes)) : collected.services };
  }

  /** The route's merge with its layer: the previous one while the spec and the layer are unchanged. */
  private merged(spec: RouteSpec, override: RouteOverride): MergeEntry {
    const previous = this.#merges.get(spec.name);
    if (previous !== undefined && previous.spec === spec && (previous.layer === override.layer || JSON.stringify(previous.layer) === JSON.stringify(override.layer))) {
      return previous;
    }
    this.#mergeCount += 1;
    return { spec, layer: override.layer, result: applyRouteOverride(spec, override.layer) };
  }

  /** The previous build's entry while its inputs are unchanged; else a new one. */
  private serviceEntry(service: string, discovery: DiscoverySnapshot, weights: ReadonlyMap<string, number> | undefined, previous: ServiceEntry | undefined): ServiceEntry {
    const instances = Object.hasOwn(discovery.instances, service) ? discovery.instances[service] ?? [] : [];
    const known = Object.hasOwn(discovery.catalog, service) || Object.hasOwn(discovery.instances, service);
    if (previous !== undefined && previous.known === known && sameMap(previous.weights, weights) && sameInstances(previous.instances, instances)) {
      // Equal content in a new array: remember the new array so the next comparison is by identity.
      previous.instances = instances;
      return previous;
    }
    const problems: BuildProblem[] = [];
    const fresh = serviceEndpoints(service, instances, weights, problems);
    return { instances, weights, known, endpoints: previous === undefined ? fresh : keepUnchanged(previous.endpoints, fresh), problems, usedIn: 0, reportedIn: 0 };
  }
}

/** The services a route spec reads endpoints of: its destinations', then its mirror's. */
function servicesOfSpec(spec: RouteSpec): string[] {
  const names = spec.to.map((d) => d.service);
  const mirror = spec.options?.mirror;
  if (mirror !== undefined) names.push(mirror.service);
  return names;
}

function sweep(entries: Map<string, { usedIn: number }>, generation: number): void {
  for (const [key, entry] of entries) if (entry.usedIn !== generation) entries.delete(key);
}

/** `fresh`, with each endpoint equal to one of `previous` replaced by that (frozen) object. */
function keepUnchanged(previous: readonly Endpoint[], fresh: Endpoint[]): Endpoint[] {
  if (previous.length === 0) return fresh;
  const byId = new Map(previous.map((e) => [e.id, e]));
  return fresh.map((e) => {
    const old = byId.get(e.id);
    return old !== undefined && sameEndpoint(old, e) ? old : e;
  });
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port && a.status === b.status && a.weight === b.weight
    && a.state === b.state && a.origin === b.origin && a.instanceId === b.instanceId && a.service === b.service && sameStrings(a.tags, b.tags);
}

/** The route's own inputs unchanged (its services' entries were compared by the caller). */
function sameRouteInputs(entry: RouteEntry, spec: RouteSpec, weights: ReadonlyMap<string, number> | undefined, policy: PolicyInput | undefined): boolean {
  return (entry.spec === spec || sameSpec(entry.spec, spec)) && sameMap(entry.weights, weights) && samePolicyLayer(entry.policy, policy);
}

function sameSpec(a: RouteSpec, b: RouteSpec): boolean {
  if (a.name !== b.name || a.path !== b.path || a.strip !== b.strip || a.origin !== b.origin || a.source !== b.source) return false;
  if (!sameStrings(a.hosts, b.hosts)) return false;
  if (a.options !== b.options && JSON.stringify(a.options) !== JSON.stringify(b.options)) return false;
  if (a.to.length !== b.to.length) return false;
  for (let i = 0; i < a.to.length; i++) {
    const x = a.to[i]!;
    const y = b.to[i]!;
    if (x.service !== y.service || x.tag !== y.tag || x.weight !== y.weight) return false;
  }
  return samePolicyLayer(a.policy, b.policy);
}

/** Policy layers are small validated trees: compared by identity, else by their JSON (rare: a template or KV change). */
function samePolicyLayer(a: PolicyInput | undefined, b: PolicyInput | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b));
}
