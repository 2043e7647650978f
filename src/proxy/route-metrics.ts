import type { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../observability/metrics.js';

/** Route label for requests that matched no route. */
export const NO_ROUTE_LABEL = '(none)';

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
}
