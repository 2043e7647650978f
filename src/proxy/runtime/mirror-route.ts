import type { Counter } from 'prom-client';
import { SmoothWeightedRoundRobin } from '../../model/balancer.js';
import type { Endpoint, MirrorTarget, Route } from '../../model/types.js';
import type { Metrics } from '../../observability/metrics.js';
import { shareOf } from './route-state.js';
import type { UpstreamPool } from './upstreams.js';

/**
 * The runtime side of a route's mirror (`mirror:` in a template, `Route.mirror` in the table): its
 * own balancer over the mirror service's active endpoints, the pools Upstreams holds for them
 * (`mirrorPoolsOf`: shared with any route using the same origin with default pool settings, so
 * keep-alive connections are reused), the target's bounds as plain fields and the set of header
 * names a copy leaves out (credentials unless keepAuth, plus removeHeaders), and a MirrorState that
 * outlives table swaps by route name. Built at swap time (buildRuntime); a route without a mirror
 * has none, and a request on it pays one field check. The per-request copy is http/mirror.ts.
 *
 * Results (`switchyard_mirror_total{route,result}`), one per request that was sampled:
 * - `ok`: the mirror answered completely with a status below 500 (the answer is read and dropped);
 * - `server_error`: the mirror answered completely with a 5xx;
 * - `error`: no complete answer (connection refused or reset, invalid response, pool closed);
 * - `timeout`: the copy was not done within `timeoutMs` of the decision (waiting for the client's
 *   body included), or undici's headers/body timeout (also `timeoutMs`) or the connect timeout hit;
 * - `shed`: `maxInFlight` copies of this route were already in flight; nothing was sent;
 * - `no_endpoint`: the mirror service has no active endpoint; nothing was sent;
 * - `body_too_large`: the body is over `maxBodyBytes` (by Content-Length, or while it streamed,
 *   or the route's own body limit refused it); nothing was sent;
 * - `incomplete`: the client's body never completed (the client went away, or the main exchange
 *   failed before reading it all); nothing was sent.
 */
export const MIRROR_RESULTS = ['ok', 'server_error', 'error', 'timeout', 'shed', 'no_endpoint', 'body_too_large', 'incomplete'] as const;
export type MirrorResult = (typeof MIRROR_RESULTS)[number];

/** One endpoint of the mirror service, as the mirror's balancer holds it. */
export class MirrorEndpoint {
  readonly id: string;
  readonly weight: number;
  readonly pool: UpstreamPool;

  constructor(endpoint: Endpoint, pool: UpstreamPool) {
    this.id = endpoint.id;
    this.weight = endpoint.weight;
    this.pool = pool;
  }
}

/**
 * What a route's mirror keeps across table swaps (by route name, like RouteState): the copies in
 * flight (each copy holds the state it was counted in, so counts stay balanced across swaps) and
 * the metric children, made on first use.
 */
export class MirrorState {
  readonly route: string;
  /** Copies decided and not yet released (waiting for the body, or in undici). */
  inflight = 0;
  private readonly metrics: Metrics;
  private readonly children: (Counter.Internal | undefined)[] = [];

  constructor(metrics: Metrics, route: string) {
    this.metrics = metrics;
    this.route = route;
  }

  count(result: MirrorResult): void {
    const at = MIRROR_RESULTS.indexOf(result);
    let child = this.children[at];
    if (child === undefined) {
      child = this.metrics.mirror.labels(this.route, result);
      this.children[at] = child;
    }
    child.inc();
  }
}

/** The client's credentials, left out of a copy unless the target says `keepAuth`. */
export const MIRROR_CREDENTIALS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * The header names a copy leaves out (http/mirror.ts mirrorHeaders): the credentials unless
 * `keepAuth`, and the target's `removeHeaders` in any case. Made once per table build.
 */
export function mirrorDropSet(target: Pick<MirrorTarget, 'keepAuth' | 'removeHeaders'>): ReadonlySet<string> {
  const drop = new Set<string>(target.keepAuth ? [] : MIRROR_CREDENTIALS);
  for (const name of target.removeHeaders ?? []) drop.add(name);
  return drop;
}

export class RouteMirror {
  readonly target: MirrorTarget;
  readonly balancer: SmoothWeightedRoundRobin<MirrorEndpoint>;
  readonly state: MirrorState;
  /** Share of requests copied, 0..100 (Math.random per request between 0 and 100 exclusive). */
  readonly percent: number;
  readonly keepAuth: boolean;
  /** Header names left out of the copy (mirrorDropSet: credentials unless keepAuth, and removeHeaders). */
  readonly dropHeaders: ReadonlySet<string>;
  readonly maxBodyBytes: number;
  readonly timeoutMs: number;
  /** This process's share of `maxInFlight` (1/N with N workers, at least 1: route-state.ts shareOf). */
  readonly maxInFlight: number;

  constructor(target: MirrorTarget, endpoints: MirrorEndpoint[], state: MirrorState, previous: RouteMirror | undefined) {
    this.target = target;
    this.balancer = new SmoothWeightedRoundRobin(endpoints, previous?.balancer);
    this.state = state;
    this.percent = target.percent;
    this.keepAuth = target.keepAuth;
    this.dropHeaders = mirrorDropSet(target);
    this.maxBodyBytes = target.maxBodyBytes;
    this.timeoutMs = target.timeoutMs;
    this.maxInFlight = shareOf(target.maxInFlight);
  }

  /**
   * Whether this request is copied: always at 100, never at 0, else Math.random() (uniform, no
   * pattern for a client's request sequence to line up with, as Envoy's runtime fraction).
   */
  sampled(): boolean {
    const percent = this.percent;
    return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
  }
}

/**
 * The runtime mirror of `route` (which has `route.mirror`), from the pools Upstreams holds for the
 * mirror's active endpoints (`pools`, in the same order; undefined where a pool could not be made:
 * that endpoint is left out). `previous`: the mirror of the route of the same name in the live
 * runtime, whose state and balancer cycle carry over.
 */
export function buildMirror(route: Route, pools: readonly (UpstreamPool | undefined)[], metrics: Metrics, previous: RouteMirror | undefined): RouteMirror | undefined {
  const mirror = route.mirror;
  if (mirror === undefined) return undefined;
  const endpoints: MirrorEndpoint[] = [];
  const active = mirror.destination.active;
  for (let i = 0; i < active.length; i++) {
    const endpoint = active[i]!;
    const pool = pools[i];
    if (endpoint.weight > 0 && pool !== undefined) endpoints.push(new MirrorEndpoint(endpoint, pool));
  }
  const state = previous?.state ?? new MirrorState(metrics, route.name);
  return new RouteMirror(mirror.target, endpoints, state, previous);
}
