/**
 * The data every provider produces and the model consumes. Shapes mirror Consul's catalog, health
 * and KV so that the services file and the Consul provider feed the same pipeline.
 * Everything here is plain data: providers build it, the model freezes what it derives from it.
 */
import type { PolicyInput, RoutePolicy } from './policy.js';


/** Aggregated health of one instance, as Consul's checks reduce to it. */
export type HealthStatus = 'passing' | 'warning' | 'critical' | 'maintenance';

/** Consul's `Service.Weights`: the weight an instance gets while passing, and while warning. */
export interface InstanceWeights {
  readonly passing: number;
  readonly warning: number;
}

/** One registered instance of a service (Consul: one entry of /v1/health/service/:name). */
export interface ServiceInstance {
  /** Service ID, unique within the service (Consul's `Service.ID`). */
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly status: HealthStatus;
  readonly weights: InstanceWeights;
  readonly meta: Readonly<Record<string, string>>;
}

/** What discovery knows at one moment. */
export interface DiscoverySnapshot {
  /** Service name → union of its instances' tags (Consul: /v1/catalog/services). */
  readonly catalog: Readonly<Record<string, readonly string[]>>;
  /**
   * Service name → its instances. A service missing here has no health data yet (for Consul: not
   * watched yet); a service present with [] has no registered instance.
   */
  readonly instances: Readonly<Record<string, readonly ServiceInstance[]>>;
}

/** KV pairs with the KV prefix already removed: `routes/api-users/weights` → raw string value. */
export type KvSnapshot = Readonly<Record<string, string>>;

/** A destination of a route template: a service, optionally narrowed to instances with one tag. */
export interface TemplateDestination {
  readonly service: string;
  readonly tag?: string;
  /** Relative weight among the route's destinations; default 1. */
  readonly weight: number;
}

/** One route of `templates/*.yaml`, validated for shape but not yet expanded. */
export interface RouteTemplate {
  /** Route name; may contain `{{service}}` when `each` is set. */
  readonly name: string;
  /** Expand once per catalog service that matches (all given conditions must hold). */
  readonly each?: { readonly tag?: string; readonly service?: string };
  readonly match: { readonly host?: string; readonly path: string };
  /** Prefix removed from the path before forwarding. */
  readonly strip?: string;
  readonly to: readonly TemplateDestination[];
  /** Resilience policy layer of the route (validated input; see policy.ts); defaults apply when absent. */
  readonly policy?: PolicyInput;
  /** The file it came from, for error messages. */
  readonly source: string;
}

/** Where a route came from. */
export type RouteOrigin = 'template' | 'tag';

/** Why an endpoint does or does not take new requests. */
export type EndpointState = 'active' | 'draining' | 'unhealthy';

/** One instance as a route destination sees it, with its effective weight. Frozen. */
export interface Endpoint {
  /** Stable id used to key runtime state across swaps: `service/instanceId`. */
  readonly id: string;
  readonly instanceId: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  /** `http://address:port` (IPv6 bracketed); upstream connection pools are keyed by it. */
  readonly origin: string;
  readonly status: HealthStatus;
  /** Effective weight after health and KV overrides; 0 means no new requests. */
  readonly weight: number;
  readonly state: EndpointState;
  readonly tags: readonly string[];
}

/** A weighted pool of endpoints inside a route. */
export interface Destination {
  /** `service` or `service:tag`: the name KV route weights use. */
  readonly key: string;
  readonly service: string;
  readonly tag: string | undefined;
  /** Effective weight after KV overrides; a destination whose endpoints all weigh 0 gets 0. */
  readonly weight: number;
  /** Weight from the template or tag, before KV overrides. */
  readonly configuredWeight: number;
  /** Every instance of the pool, including unhealthy and drained ones (weight 0), for inspection. */
  readonly endpoints: readonly Endpoint[];
  /** The endpoints with weight > 0, in the order the balancer cycles over them. */
  readonly active: readonly Endpoint[];
}

export interface Route {
  readonly name: string;
  /** Lower-case host without port; undefined matches any host. */
  readonly host: string | undefined;
  /** Normalised path prefix: starts with `/`, no trailing `/` except the root itself. */
  readonly path: string;
  readonly strip: string | undefined;
  readonly destinations: readonly Destination[];
  /** Destinations with weight > 0. */
  readonly active: readonly Destination[];
  readonly origin: RouteOrigin;
  /** Template file or tag the route came from. */
  readonly source: string;
  /** Effective resilience policy: defaults, then the template's `policy:`, then KV `routes/<route>/policy`. */
  readonly policy: RoutePolicy;
}

/** A problem that did not stop the build: the offending item was skipped (e.g. bad JSON in KV). */
export interface BuildProblem {
  /**
   * Stable kind used as a metric label. `endpoint`: an instance whose address or port the proxy
   * cannot connect to (endpoint-address.ts), left out of its pool.
   */
  readonly kind: 'kv' | 'template' | 'tag' | 'service' | 'endpoint';
  /** The key, file or tag at fault. */
  readonly source: string;
  readonly message: string;
}

/** The immutable routing table: swapped whole, never mutated. */
export interface RoutingTable {
  readonly routes: readonly Route[];
  readonly problems: readonly BuildProblem[];
  /** Services some route needs instances of (what a discovery provider should watch). */
  readonly services: readonly string[];
  /** The route for a request, or undefined (404). `host` may carry a port; `path` may carry a query. */
  lookup(host: string | undefined, path: string): Route | undefined;
}
