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
  /** `hosts`: as written (exact names and `*.` wildcards; empty = any host). */
  readonly match: { readonly hosts: readonly string[]; readonly path: string };
  /** Prefix removed from the path before forwarding. */
  readonly strip?: string;
  /** Empty only for a redirect route (`options.redirect`). */
  readonly to: readonly TemplateDestination[];
  /** Resilience policy layer of the route (validated input; see policy.ts); defaults apply when absent. */
  readonly policy?: PolicyInput;
  /** Gateway options: match conditions, rewrite, header edits, sticky, mirror, redirect (route-options.ts). */
  readonly options?: RouteOptions;
  /** The file it came from, for error messages. */
  readonly source: string;
}

/**
 * Request conditions beyond host and path prefix (`match.methods`, `match.headers`, `match.query`).
 * Every listed condition must hold. Pairs are `[name, value]` where value `*` means "present".
 */
export interface MatchConditions {
  /** Upper-case methods, sorted; empty = any method. */
  readonly methods: readonly string[];
  /** Header conditions: lower-case names, sorted by name. */
  readonly headers: readonly (readonly [string, string])[];
  /** Query-parameter conditions (names and values as they appear decoded), sorted by name. */
  readonly query: readonly (readonly [string, string])[];
}

/** How the request is rewritten before it goes upstream. `path` and `regex` exclude each other. */
export interface RouteRewrite {
  /** Replaces the route's matched prefix (normalised prefix; `/` = strip the prefix). */
  readonly path?: string;
  /** RE2-syntax pattern matched against the path (without the query); linear time. */
  readonly regex?: string;
  /** Replacement for `regex`; `$1`..`$9` are its groups. */
  readonly to?: string;
  /** Host header sent upstream. */
  readonly host?: string;
}

/** Header edits of one direction. Names lower-case; `set` replaces every field of that name. */
export interface HeaderEdits {
  readonly set: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

export interface RouteHeaderEdits {
  readonly request: HeaderEdits | undefined;
  readonly response: HeaderEdits | undefined;
}

/** Session affinity by cookie. */
export interface StickySession {
  readonly cookie: string;
  readonly ttlMs: number;
}

/** A copy of a share of the route's requests to another service; its answers are discarded. */
export interface MirrorTarget {
  readonly service: string;
  readonly tag?: string;
  /** Share of requests copied, 0..100. */
  readonly percent: number;
  /** Send the client's credentials (Authorization, Cookie, Proxy-Authorization) too. */
  readonly keepAuth: boolean;
  /** Requests with larger bodies are not mirrored. */
  readonly maxBodyBytes: number;
  /** The copy's whole-exchange timeout. */
  readonly timeoutMs: number;
  /** Copies in flight for this route above which new copies are shed. */
  readonly maxInFlight: number;
  /**
   * Header names (lower-case, as written, at least one) left out of the copy only, besides the
   * credentials rule; absent = none.
   */
  readonly removeHeaders?: readonly string[];
}

export type RedirectStatus = 301 | 302 | 303 | 307 | 308;

/** A route that answers by itself with a redirect; it has no destinations. */
export interface RouteRedirect {
  /** Target URL; `{path}` and `{host}` are replaced with the request's path and host. */
  readonly to: string;
  readonly status: RedirectStatus;
  /** Append the request's query string to the target. */
  readonly keepQuery: boolean;
}

/**
 * The gateway options of a route, normalised (route-options.ts): from the template, with KV
 * `routes/<route>/route` merged over them field by field. Absent field = not used.
 */
export interface RouteOptions {
  /** Replaces the template's hosts (KV only; a template's hosts are in `match.hosts`). */
  readonly hosts?: readonly string[];
  /** Replaces the template's path prefix (KV only). */
  readonly path?: string;
  readonly conditions?: MatchConditions;
  readonly rewrite?: RouteRewrite;
  readonly headers?: RouteHeaderEdits;
  readonly sticky?: StickySession;
  readonly mirror?: MirrorTarget;
  readonly redirect?: RouteRedirect;
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
  /**
   * Host keys (lower-case, no port, host.ts) and wildcards `*.example.com` (one or more labels
   * before the suffix); empty matches any host.
   */
  readonly hosts: readonly string[];
  /** Normalised path prefix: starts with `/`, no trailing `/` except the root itself. */
  readonly path: string;
  readonly strip: string | undefined;
  /** Extra request conditions; undefined = none (the route matches on host and path alone). */
  readonly conditions: MatchConditions | undefined;
  readonly rewrite: RouteRewrite | undefined;
  readonly headers: RouteHeaderEdits | undefined;
  readonly sticky: StickySession | undefined;
  /** The mirror and its pool (resolved like a destination); undefined = no mirroring. */
  readonly mirror: { readonly target: MirrorTarget; readonly destination: Destination } | undefined;
  /** Set: the route answers with this redirect and has no destinations. */
  readonly redirect: RouteRedirect | undefined;
  readonly destinations: readonly Destination[];
  /** Destinations with weight > 0. */
  readonly active: readonly Destination[];
  readonly origin: RouteOrigin;
  /** Template file or tag the route came from. */
  readonly source: string;
  /** Effective resilience policy: defaults, then the template's `policy:`, then KV `routes/<route>/policy`. */
  readonly policy: RoutePolicy;
}

/** What conditioned routes look at in a request besides host and path (node's IncomingMessage fits). */
export interface RequestFacts {
  readonly method?: string | undefined;
  /** Flat `[name, value, ...]` as received (any case). */
  readonly rawHeaders: readonly string[];
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
  /**
   * The route for a request, or undefined (404). `host` may carry a port; `path` may carry a query
   * (read by query conditions). Without `request`, routes with method or header conditions do not match.
   */
  lookup(host: string | undefined, path: string, request?: RequestFacts): Route | undefined;
}
