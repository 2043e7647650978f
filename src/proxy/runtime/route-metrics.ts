import type { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '../../observability/metrics.js';

/** Route label for requests that matched no route. */
export const NO_ROUTE_LABEL = '(none)';
/** NO_ROUTE_LABEL as a JSON string literal, for the access log line. */
export const NO_ROUTE_JSON = JSON.stringify(NO_ROUTE_LABEL);

/**
 * The prom-client children of one route, resolved once (at runtime build) so that the hot path
 * never hashes label values: `requests(status)` indexes an array by status code, `upstreamError`
 * a small object by error code.
 */
export class RouteMetrics {
  readonly route: string;
  readonly duration: Histogram.Internal<'route'>;
  private readonly metrics: Metrics;
  private readonly byStatus: (Counter.Internal | undefined)[] = [];
  private readonly errors: Record<string, Counter.Internal | undefined> = Object.create(null) as Record<string, Counter.Internal | undefined>;
  // Policy metrics: children created on first use, so routes without policies add no series.
  private readonly retryReasons: Record<string, Counter.Internal | undefined> = Object.create(null) as Record<string, Counter.Internal | undefined>;
  private readonly timeoutKinds: Record<string, Counter.Internal | undefined> = Object.create(null) as Record<string, Counter.Internal | undefined>;
  private budgetExhausted: Counter.Internal | undefined;
  private ejectionCounter: Counter.Internal | undefined;
  private ejectedGauge: Gauge.Internal<'route'> | undefined;
  private rateLimitedCounter: Counter.Internal | undefined;
  private overloadedCounter: Counter.Internal | undefined;
  private bodyTooLargeCounter: Counter.Internal | undefined;
  private queuedGauge: Gauge.Internal<'route'> | undefined;
  private firstByteHistogram: Histogram.Internal<'route'> | undefined;
  private connectHistogram: Histogram.Internal<'route'> | undefined;

  constructor(metrics: Metrics, route: string) {
    this.metrics = metrics;
    this.route = route;
    this.duration = metrics.requestDuration.labels(route);
  }

  /** Count one finished request and observe its duration. */
  record(status: number, seconds: number): void {
    this.count(status);
    this.duration.observe(seconds);
  }

  /** Count one finished request without observing a duration (WebSocket tunnels: their lifetime is no latency). */
  count(status: number): void {
    let counter = this.byStatus[status];
    if (counter === undefined) {
      counter = this.metrics.requests.labels(this.route, String(status));
      this.byStatus[status] = counter;
    }
    counter.inc();
  }

  upstreamError(code: string): void {
    let counter = this.errors[code];
    if (counter === undefined) {
      counter = this.metrics.upstreamErrors.labels(this.route, code);
      this.errors[code] = counter;
    }
    counter.inc();
  }

  /** One retry, by reason (`connect-failure`, `reset`, `502`, `503`, `504`). */
  retry(reason: string): void {
    let counter = this.retryReasons[reason];
    if (counter === undefined) {
      counter = this.metrics.retries.labels(this.route, reason);
      this.retryReasons[reason] = counter;
    }
    counter.inc();
  }

  /** One upstream timeout, by kind (`connect`, `headers`, `body`, `total`). */
  timeout(kind: string): void {
    let counter = this.timeoutKinds[kind];
    if (counter === undefined) {
      counter = this.metrics.upstreamTimeouts.labels(this.route, kind);
      this.timeoutKinds[kind] = counter;
    }
    counter.inc();
  }

  retryBudgetExhausted(): void {
    (this.budgetExhausted ??= this.metrics.retryBudgetExhausted.labels(this.route)).inc();
  }

  ejected(ejectedNow: number): void {
    (this.ejectionCounter ??= this.metrics.ejections.labels(this.route)).inc();
    this.ejectedEndpoints(ejectedNow);
  }

  ejectedEndpoints(count: number): void {
    (this.ejectedGauge ??= this.metrics.ejectedEndpoints.labels(this.route)).set(count);
  }

  rateLimited(): void {
    (this.rateLimitedCounter ??= this.metrics.rateLimited.labels(this.route)).inc();
  }

  overloaded(): void {
    (this.overloadedCounter ??= this.metrics.overloaded.labels(this.route)).inc();
  }

  /** One more (+1) or one less (-1) request waiting for an upstream connection. */
  queued(delta: number): void {
    (this.queuedGauge ??= this.metrics.upstreamQueued.labels(this.route)).inc(delta);
  }

  /** Time from the request sent upstream (the attempt got its connection) to the response head. */
  firstByte(seconds: number): void {
    (this.firstByteHistogram ??= this.metrics.upstreamFirstByteDuration.labels(this.route)).observe(seconds);
  }

  /** Time to open a new upstream connection (upstreams.ts: the route whose request opened it). */
  connected(seconds: number): void {
    (this.connectHistogram ??= this.metrics.upstreamConnectDuration.labels(this.route)).observe(seconds);
  }

  bodyTooLarge(): void {
    (this.bodyTooLargeCounter ??= this.metrics.bodyTooLarge.labels(this.route)).inc();
  }
}
