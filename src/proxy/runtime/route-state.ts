import type { OutlierPolicy } from '../../model/policy.js';
import type { Route } from '../../model/types.js';
import type { Metrics } from '../../observability/metrics.js';
import { RateLimiter } from '../policy/rate-limiter.js';
import { RetryBudget } from '../policy/retry-budget.js';
import { RouteMetrics } from './route-metrics.js';

/**
 * Outlier state of one endpoint as one route sees it. Lives in its route's RouteState, keyed by
 * endpoint id, so it survives table swaps. `ejected` is the only field the hot path reads (a
 * boolean, no clock): a timer per ejection (a rare event) clears it.
 */
export class EndpointHealth {
  readonly id: string;
  readonly owner: RouteState;
  /** Failures since the last success. */
  consecutive = 0;
  ejected = false;
  /** Ejections so far, less one per base ejection time spent back in service (the multiplier). */
  ejections = 0;
  /** Wall-clock times of the current ejection, for /api/routes. */
  ejectedAt = 0;
  ejectedUntil = 0;
  /** The owner's clock (`RouteState.now`) when the endpoint last came back. */
  returnedAt = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  /** The owner's last `reconcile` that found this endpoint in the route (see RouteState.reconcile). */
  seen = 0;

  constructor(id: string, owner: RouteState) {
    this.id = id;
    this.owner = owner;
  }
}

/** An endpoint taken out of rotation, as /api/routes shows it. */
export interface EjectedEndpoint {
  readonly route: string;
  readonly endpoint: string;
  /** The ejection multiplier: ejection time = base × this, capped. */
  readonly ejections: number;
  readonly ejectedAt: string;
  readonly until: string;
}

function monotonicNow(): number {
  return performance.now();
}

/**
 * The share of each machine-wide limit this process enforces: 1 in a single process; N in each of
 * N cluster workers (src/cluster/worker.ts sets it once, before the first table). A route's rate
 * limit becomes requestsPerSecond / N (burst / N, at least 1) and its concurrency limit
 * floor(max / N) (at least 1) per worker: exact over the machine when connections spread evenly
 * over the workers (cluster's round-robin), but a client on one keep-alive connection meets one
 * worker, so it sees 1/N of the limit (README "Limits with several workers").
 */
let limitShare = 1;

export function setLimitShare(workers: number): void {
  limitShare = Math.max(1, Math.floor(workers));
}

/** This process's share of a machine-wide count: floor(count / N), at least 1 (see setLimitShare). */
export function shareOf(count: number): number {
  return limitShare === 1 ? count : Math.max(1, Math.floor(count / limitShare));
}

/** An ejection as it travels between processes: wall-clock times, so every worker ends it at once. */
export interface SharedEjection {
  readonly route: string;
  readonly endpoint: string;
  readonly ejections: number;
  /** Epoch milliseconds. */
  readonly ejectedAt: number;
  readonly until: number;
}

/**
 * Told of every ejection outlier detection decides in this process (not of those adopted from
 * others): a cluster worker sends it to the primary, which shares it with the other workers.
 * Unset in a single process. Called on the failure path, never per successful request.
 */
let ejectionListener: ((ejection: SharedEjection) => void) | undefined;

export function onLocalEjection(listener: ((ejection: SharedEjection) => void) | undefined): void {
  ejectionListener = listener;
}

/**
 * Ejections allowed at once in a destination of `poolSize` endpoints: the policy's share, but one
 * of a pool of two or more whatever the share (as Envoy does).
 */
function ejectionsAllowed(policy: OutlierPolicy, poolSize: number): number {
  const allowed = Math.floor((poolSize * policy.maxEjectionPercent) / 100);
  return allowed === 0 && poolSize > 1 && policy.maxEjectionPercent > 0 ? 1 : allowed;
}

function endEjection(health: EndpointHealth): void {
  health.timer = undefined;
  if (!health.ejected) return;
  health.ejected = false;
  health.consecutive = 0;
  health.returnedAt = health.owner.now();
  health.owner.ejectedCount -= 1;
  health.owner.metrics.ejectedEndpoints(health.owner.ejectedCount);
}

/** Whether both routes have the very same Endpoint objects, destination by destination. */
function sameEndpoints(a: Route, b: Route): boolean {
  if (a.destinations.length !== b.destinations.length) return false;
  for (let i = 0; i < a.destinations.length; i++) {
    const x = a.destinations[i]!.endpoints;
    const y = b.destinations[i]!.endpoints;
    if (x === y) continue;
    if (x.length !== y.length) return false;
    for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  }
  return true;
}

/**
 * Mutable per-route state that must outlive a table swap, keyed by route name: requests in flight
 * (concurrency limit), the retry budget, rate-limit buckets, endpoint outlier state and metric
 * children. The RuntimeRoute built for each table reads its policy into plain fields and points
 * here; an exchange keeps the state it was admitted into, so counts stay balanced across swaps.
 */
export class RouteState {
  readonly name: string;
  readonly metrics: RouteMetrics;
  readonly budget = new RetryBudget();
  /** Requests admitted and not yet finished. */
  inflight = 0;
  /** This process's share of the route's concurrency limit (see setLimitShare); Infinity = none. */
  maxConcurrent = Number.POSITIVE_INFINITY;
  limiter: RateLimiter | undefined;
  ejectedCount = 0;
  /**
   * Monotonic milliseconds, read when an endpoint comes back and when it is ejected again (the
   * multiplier decays by one per base ejection time in between). Not on the hot path. Replaceable
   * so a test can fix the decay instead of racing the wall clock.
   */
  now: () => number = monotonicNow;
  private readonly health = new Map<string, EndpointHealth>();
  /** Counts reconciles: health entries are stamped with the last one that found their endpoint. */
  private reconciles = 0;
  /** The route of the last reconcile: health entries exist only for its endpoints (healthOf follows reconcile). */
  private reconciled: Route | undefined;

  constructor(metrics: Metrics, name: string) {
    this.name = name;
    this.metrics = new RouteMetrics(metrics, name);
  }

  /** Bring the state in line with a new table's route: limiter settings, endpoints still present. */
  reconcile(route: Route): void {
    const limit = route.policy.rateLimit;
    if (limit === null) this.limiter = undefined;
    else {
      const rate = limit.requestsPerSecond / limitShare;
      const burst = limitShare === 1 ? limit.burst : Math.max(1, limit.burst / limitShare);
      if (this.limiter === undefined || !this.limiter.sameAs(rate, burst, limit.perClient)) this.limiter = new RateLimiter(rate, burst, limit.perClient);
    }
    const concurrency = route.policy.concurrency;
    this.maxConcurrent = concurrency === null ? Number.POSITIVE_INFINITY : shareOf(concurrency.max);
    // Endpoints that left the route lose their state. Stamped, not collected into a Set of ids: a
    // full swap reconciles every route, and a Set per route was much of its cost and garbage.
    const before = this.reconciled;
    this.reconciled = route;
    // The same Endpoint objects as the last route (a template change: the model keeps every
    // service's endpoints): the same ids, so every health entry stays, no lookup needed.
    if (this.health.size === 0 || (before !== undefined && sameEndpoints(before, route))) return;
    const stamp = ++this.reconciles;
    let present = 0;
    for (const destination of route.destinations) {
      for (const endpoint of destination.endpoints) {
        const health = this.health.get(endpoint.id);
        if (health !== undefined && health.seen !== stamp) {
          health.seen = stamp;
          present += 1;
        }
      }
    }
    if (present === this.health.size) return;
    for (const [id, health] of this.health) {
      if (health.seen === stamp) continue;
      this.forget(health);
      this.health.delete(id);
    }
  }

  /** The outlier state of endpoint `id` if it has one (read-only; healthOf creates it). */
  peekHealth(id: string): EndpointHealth | undefined {
    return this.health.get(id);
  }

  healthOf(id: string): EndpointHealth {
    let health = this.health.get(id);
    if (health === undefined) {
      health = new EndpointHealth(id, this);
      this.health.set(id, health);
    }
    return health;
  }

  /**
   * Take `health` out of rotation for base × multiplier (capped), unless `ejectedInPool` of the
   * `poolSize` endpoints of its destination are out already and one more would exceed the policy's
   * share. The last endpoint of a destination is only ejected when the share is 100%; otherwise at
   * least one endpoint of a pool of two or more may be ejected, whatever the share (as Envoy does).
   */
  eject(health: EndpointHealth, policy: OutlierPolicy, poolSize: number, ejectedInPool: number): boolean {
    if (health.ejected) return false;
    if (ejectedInPool + 1 > ejectionsAllowed(policy, poolSize)) return false;
    const now = this.now();
    if (health.ejections > 0 && health.returnedAt > 0) {
      health.ejections = Math.max(0, health.ejections - Math.floor((now - health.returnedAt) / policy.baseEjectionMs));
    }
    health.ejections += 1;
    const ms = Math.min(policy.baseEjectionMs * health.ejections, policy.maxEjectionMs);
    health.ejected = true;
    health.ejectedAt = Date.now();
    health.ejectedUntil = health.ejectedAt + ms;
    health.timer = setTimeout(endEjection, ms, health);
    health.timer.unref();
    this.ejectedCount += 1;
    this.metrics.ejected(this.ejectedCount);
    ejectionListener?.({ route: this.name, endpoint: health.id, ejections: health.ejections, ejectedAt: health.ejectedAt, until: health.ejectedUntil });
    return true;
  }

  /**
   * Apply an ejection another worker decided (shared through the primary): out of rotation until
   * the same wall-clock time, with the larger multiplier. The policy's share still holds here (two
   * workers ejecting two endpoints of a pool of two at once each keep their own and refuse the
   * other's). Counted in the ejected-endpoints gauge, not in the ejections counter (the deciding
   * worker counted it). Returns false when refused, already ejected or already over.
   */
  adopt(health: EndpointHealth, shared: SharedEjection, policy: OutlierPolicy, poolSize: number, ejectedInPool: number, now = Date.now()): boolean {
    if (health.ejected || shared.until <= now) return false;
    if (ejectedInPool + 1 > ejectionsAllowed(policy, poolSize)) return false;
    health.ejections = Math.max(health.ejections, shared.ejections);
    health.ejected = true;
    health.ejectedAt = shared.ejectedAt;
    health.ejectedUntil = shared.until;
    health.timer = setTimeout(endEjection, shared.until - now, health);
    health.timer.unref();
    this.ejectedCount += 1;
    this.metrics.ejectedEndpoints(this.ejectedCount);
    return true;
  }

  ejected(): EjectedEndpoint[] {
    const out: EjectedEndpoint[] = [];
    for (const health of this.health.values()) {
      if (!health.ejected) continue;
      out.push({
        route: this.name,
        endpoint: health.id,
        ejections: health.ejections,
        ejectedAt: new Date(health.ejectedAt).toISOString(),
        until: new Date(health.ejectedUntil).toISOString(),
      });
    }
    return out;
  }

  /** The route left the table (or the endpoint left the route): stop its timers, drop its counts. */
  dispose(): void {
    for (const health of this.health.values()) this.forget(health);
    this.health.clear();
  }

  private forget(health: EndpointHealth): void {
    if (health.timer !== undefined) clearTimeout(health.timer);
    health.timer = undefined;
    if (health.ejected) {
      health.ejected = false;
      this.ejectedCount -= 1;
      this.metrics.ejectedEndpoints(this.ejectedCount);
    }
  }
}
