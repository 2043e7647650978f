/**
 * What the proxy would do with a request, and why: the admin API's /api/match. The same steps as a
 * real request (absolute-form split, path normalisation, the table's lookup, strip) on the live
 * runtime, plus the state behind the balancer's choice: each destination's share, each endpoint's
 * weight and why it does or does not take traffic (health, drain, outlier ejection). The request's
 * method and headers reach the lookup as a real request's do (conditioned routes), and every
 * candidate carries the verdict of each of its conditions. Admin-time code: it allocates freely
 * and is never on the request path.
 */
import { explainLookup } from '../../model/explain.js';
import type { Destination, Endpoint } from '../../model/types.js';
import { destinationHead, endpointHead, routeHead } from '../../model/views.js';
import { normalizeRequestTarget } from '../edge/path-normalize.js';
import { isValidAuthority, splitAbsoluteForm } from '../edge/request-guard.js';
import type { Runtime, RuntimeRoute } from './runtime.js';

/**
 * `routed`: forwarded; `redirected`: a redirect route answers itself (its status, `location`);
 * `no-route`: 404; `no-endpoint`: 503; `refused`: 400 before routing.
 */
export type MatchOutcome = 'routed' | 'redirected' | 'no-route' | 'no-endpoint' | 'refused';

/** The request line and headers /api/match asks about besides host and target. */
export interface MatchRequest {
  /** As sent (methods are case-sensitive); GET when /api/match was not given one. */
  readonly method: string;
  /** `[name, value]` in order, names as given. */
  readonly headers: readonly (readonly [string, string])[];
}

/** What /api/match asks about when it is given only a host and a target. */
export const DEFAULT_MATCH_REQUEST: MatchRequest = { method: 'GET', headers: [] };

export interface MatchExplanation {
  readonly outcome: MatchOutcome;
  /** The status the client would get when the proxy answers itself; null when forwarded. */
  readonly status: number | null;
  readonly reason: string;
  readonly request: {
    readonly host: string | null;
    readonly target: string;
    readonly normalizedTarget: string | null;
    readonly method: string;
    readonly headers: readonly (readonly [string, string])[];
  };
  readonly route?: unknown;
  readonly candidates?: unknown;
  /** The Location a redirect route answers with (outcome `redirected`); null when none can be made. */
  readonly location?: string | null;
}

export function explainRequest(runtime: Runtime | undefined, hostHeader: string | undefined, rawTarget: string, asked: MatchRequest = DEFAULT_MATCH_REQUEST): MatchExplanation {
  let host = hostHeader === '' ? undefined : hostHeader;
  let target = rawTarget;
  const request = (normalizedTarget: string | null) => ({ host: host ?? null, target: rawTarget, normalizedTarget, method: asked.method, headers: asked.headers });
  if (target.charCodeAt(0) !== 47 /* / */) {
    const absolute = splitAbsoluteForm(target);
    if (absolute === undefined) {
      return { outcome: 'refused', status: 400, reason: 'the target is neither a path (/...) nor an absolute http(s) URL', request: request(null) };
    }
    // An absolute-form request is routed by its authority, as the proxy does.
    host = absolute.authority;
    target = absolute.path;
  } else if (host !== undefined && !isValidAuthority(host)) {
    return { outcome: 'refused', status: 400, reason: `the Host "${host}" is not a valid host[:port]: the proxy answers 400`, request: request(null) };
  }
  const normalized = normalizeRequestTarget(target);
  if (typeof normalized !== 'string') return { outcome: 'refused', status: 400, reason: normalized.message, request: request(null) };
  if (runtime === undefined) {
    return { outcome: 'no-route', status: 404, reason: 'no routing table is live yet', request: request(normalized) };
  }
  const facts = { method: asked.method, rawHeaders: asked.headers.flat() };
  const lookup = explainLookup(runtime.table, host, normalized, facts);
  // HTTP/1.1 requires Host: without one, the answer holds for an HTTP/1.0 request.
  const noHost = host === undefined ? '. Without a Host only an HTTP/1.0 request is routed so; an HTTP/1.1 one gets 400' : '';
  const route = lookup.route === undefined ? undefined : runtime.routes.get(lookup.route);
  if (route === undefined) {
    return { outcome: 'no-route', status: 404, reason: lookup.reason + noHost, request: request(normalized), candidates: lookup.candidates };
  }
  const view = routeView(route, normalized);
  const redirect = route.redirect;
  if (redirect !== undefined) {
    const location = redirect.location(normalized, host) ?? null;
    return {
      outcome: 'redirected',
      status: location === null ? 400 : redirect.status,
      reason: `${lookup.reason}; the route is a redirect route: ${location === null ? 'no Location can be made for this request (its target uses {host} and the request has none), so the answer is 400' : `the answer is ${redirect.status} to ${location}`}${noHost}`,
      request: request(normalized),
      route: view.route,
      candidates: lookup.candidates,
      location,
    };
  }
  const routed = view.takesTraffic;
  return {
    outcome: routed ? 'routed' : 'no-endpoint',
    status: routed ? null : 503,
    reason: (routed ? lookup.reason : `${lookup.reason}; but no endpoint of the route can take a request now (see each endpoint's "why")`) + noHost,
    request: request(normalized),
    route: view.route,
    candidates: lookup.candidates,
  };
}

/** An endpoint the balancer can pick now: in the table with a weight, not ejected. */
function available(route: RuntimeRoute, e: Endpoint): boolean {
  return e.weight > 0 && route.state.peekHealth(e.id)?.ejected !== true;
}

/**
 * The route with each destination's and endpoint's share of new requests. Shares follow the
 * balancer: weights over what can take traffic now, so an ejected endpoint's share goes to the
 * others of its destination, and a destination with none left gives its share to the others
 * (the balancer hands such picks to the next destination; the split shown is the weighted one).
 */
function routeView(route: RuntimeRoute, target: string): { takesTraffic: boolean; route: unknown } {
  const model = route.route;
  let total = 0;
  for (const d of model.active) if (d.active.some((e) => available(route, e))) total += d.weight;
  let takesTraffic = false;
  const destinations = model.destinations.map((d) => {
    const view = destinationView(route, d, total);
    if (view.takesTraffic) takesTraffic = true;
    return view.json;
  });
  return {
    takesTraffic,
    route: {
      ...routeHead(model),
      upstreamTarget: route.redirect === undefined ? route.forwardPath(target) : null,
      destinations,
      policy: model.policy,
      admission: admissionNotes(route),
    },
  };
}

function destinationView(route: RuntimeRoute, d: Destination, total: number): { takesTraffic: boolean; json: unknown } {
  let availableWeight = 0;
  for (const e of d.active) if (available(route, e)) availableWeight += e.weight;
  const takesTraffic = d.weight > 0 && availableWeight > 0;
  const endpoints = d.endpoints.map((e) => {
    const health = route.state.peekHealth(e.id);
    const ejected = health?.ejected === true;
    const taking = takesTraffic && available(route, e);
    return {
      ...endpointHead(e),
      share: taking ? round(e.weight / availableWeight) : 0,
      ejected,
      ejectedUntil: ejected ? new Date(health!.ejectedUntil).toISOString() : null,
      takesTraffic: taking,
      why: endpointWhy(e, d, ejected),
    };
  });
  return {
    takesTraffic,
    json: {
      ...destinationHead(d),
      share: takesTraffic && total > 0 ? round(d.weight / total) : 0,
      endpoints,
    },
  };
}

/** Checks that may still answer before the request is forwarded (they depend on the listener and on traffic). */
function admissionNotes(route: RuntimeRoute): string[] {
  const notes: string[] = [];
  if (route.redirectToHttps) notes.push('redirectToHttps: on the plain listener, with a TLS listener configured, the answer is 308 to https');
  const limit = route.route.policy.rateLimit;
  if (limit !== null) notes.push(`rateLimit: ${limit.requestsPerSecond}/s, burst ${limit.burst}${limit.perClient ? ' per client' : ''}; over it, 429`);
  if (route.maxBody >= 0) notes.push(`maxBodyBytes: ${route.maxBody}; a larger body gets 413`);
  if (Number.isFinite(route.maxConcurrent)) {
    // With N workers the state holds this worker's share and this worker's in-flight count.
    const { maxConcurrent, inflight } = route.state;
    const own = maxConcurrent === route.maxConcurrent ? `${inflight} now` : `this worker: at most ${maxConcurrent}, ${inflight} now`;
    notes.push(`concurrency: at most ${route.maxConcurrent} in flight (${own}); beyond, 503`);
  }
  return notes;
}

function endpointWhy(e: Endpoint, d: Destination, ejected: boolean): string {
  if (e.state === 'unhealthy') return `health is ${e.status}: out of rotation until its checks pass`;
  if (e.status === 'warning' && e.weight === 0) return 'health is warning and its warning weight is 0: out of rotation until its checks pass';
  if (e.weight === 0) return 'weight 0: draining (no new requests; requests in flight finish)';
  if (d.weight === 0) {
    return d.configuredWeight === 0
      ? `its destination "${d.key}" has weight 0 in its template`
      : `its destination "${d.key}" has weight 0 from a KV override (configured ${d.configuredWeight})`;
  }
  if (ejected) return 'ejected by outlier detection after consecutive failures; back at ejectedUntil';
  if (e.status === 'warning') return `health is warning: in rotation with its warning weight ${e.weight}`;
  return `in rotation with weight ${e.weight}`;
}

function round(share: number): number {
  return Math.round(share * 10_000) / 10_000;
}
