/**
 * The last minute of one endpoint's traffic, for the status page (/api/status): a ring of 60
 * one-second buckets, each with the requests that ended in that second, how many of them were
 * errors (a 5xx, the proxy's own included, or cut before any response: status 0), the failed
 * attempts on the endpoint (retried ones included), and a latency
 * histogram with fixed log-scale bounds, from which p50 and p99 are read.
 *
 * Recording is on the request path (access-record.ts, once per exchange): no allocation, no
 * clock read of its own (the caller's end time), one Math.log2 and a few typed-array increments.
 * A bucket is cleared when its slot is first written in a new second (each slot carries the second
 * it holds), so an idle endpoint costs nothing and a read ignores slots older than the minute.
 * The arrays (~5 KiB) are made on the first request, so an endpoint that never takes traffic
 * costs one small object.
 *
 * Seconds are monotonic (`performance.now()`), per process: a summary holds sums only, so
 * summaries of several worker processes merge by adding them (mergeSamples).
 */

/** Buckets of one second: the window is one minute. */
export const WINDOW_SECONDS = 60;
/**
 * Latency histogram bins. Bin 0 holds [0, 0.5 ms]; bin i (1 ≤ i < LATENCY_BINS - 1) holds
 * (0.5·2^((i-1)/2), 0.5·2^(i/2)] ms (each bin √2 wider than the last: a percentile read from a bin
 * is within ±19% of the true value); the last bin holds everything above ~23 s.
 */
export const LATENCY_BINS = 32;
const BASE_MS = 0.5;
/** A histogram count saturates here (Uint16): 65,535 requests in one second in one bin of one endpoint. */
const BIN_MAX = 0xffff;
const EMPTY32 = new Uint32Array(0);
const EMPTY16 = new Uint16Array(0);
const EMPTY_STAMPS = new Int32Array(0);

/** Upper bound of bin `i` in ms (Infinity for the last). */
export function binUpperMs(i: number): number {
  return i >= LATENCY_BINS - 1 ? Number.POSITIVE_INFINITY : BASE_MS * 2 ** (i / 2);
}

/** Lower bound of bin `i` in ms. */
function binLowerMs(i: number): number {
  return i === 0 ? 0 : BASE_MS * 2 ** ((i - 1) / 2);
}

/** The bin of a latency in ms. */
export function binOf(ms: number): number {
  if (ms <= BASE_MS) return 0;
  const i = Math.ceil(2 * Math.log2(ms / BASE_MS));
  return i >= LATENCY_BINS ? LATENCY_BINS - 1 : i;
}

/** One endpoint's last minute: sums only (mergeable across processes). */
export interface WindowSummary {
  readonly requests: number;
  readonly errors: number;
  /** Failed attempts (see EndpointWindow.fail). */
  readonly failures: number;
  /** LATENCY_BINS counts (exchanges with a latency: upgrades are counted without one). */
  readonly latency: number[];
}

export class EndpointWindow {
  /** The second of the last record (monotonic); -1 before the first. */
  private second = -1;
  /** Slot of `second`. */
  private slot = 0;
  /** Per slot: the second it holds. */
  private stamps: Int32Array = EMPTY_STAMPS;
  private requests: Uint32Array = EMPTY32;
  private errors: Uint32Array = EMPTY32;
  /** Failed attempts on this endpoint (outlier accounting: connect error, reset, timeout, 5xx), retried ones included. */
  private failures: Uint32Array = EMPTY32;
  /** Slot-major: slot × LATENCY_BINS + bin. */
  private histogram: Uint16Array = EMPTY16;

  /**
   * One finished exchange: `nowMs` its end on the `performance.now()` clock, `latencyMs` its
   * duration (negative: none, e.g. an upgraded connection), `status` what the client received.
   */
  record(nowMs: number, latencyMs: number, status: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.second) this.enter(second);
    const slot = this.slot;
    this.requests[slot]! += 1;
    if (status >= 500 || status === 0) this.errors[slot]! += 1;
    if (latencyMs < 0) return;
    const at = slot * LATENCY_BINS + binOf(latencyMs);
    const h = this.histogram;
    if (h[at] !== BIN_MAX) h[at]! += 1;
  }

  /**
   * One failed attempt on this endpoint (the failure path: RuntimeRoute.failed). An exchange is
   * recorded once, on the endpoint that ended it, so without this a failure retried elsewhere would
   * not show on the endpoint that failed.
   */
  fail(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.second) this.enter(second);
    this.failures[this.slot]! += 1;
  }

  /** The last minute up to `nowMs` (performance.now()); undefined when it holds no request and no failure. */
  summary(nowMs: number): WindowSummary | undefined {
    if (this.second < 0) return undefined;
    const now = Math.floor(nowMs / 1000);
    let requests = 0;
    let errors = 0;
    let failures = 0;
    const latency = new Array<number>(LATENCY_BINS).fill(0);
    for (let slot = 0; slot < WINDOW_SECONDS; slot++) {
      const second = this.stamps[slot]!;
      if (second <= now - WINDOW_SECONDS || second > now) continue;
      requests += this.requests[slot]!;
      errors += this.errors[slot]!;
      failures += this.failures[slot]!;
      const base = slot * LATENCY_BINS;
      for (let i = 0; i < LATENCY_BINS; i++) latency[i]! += this.histogram[base + i]!;
    }
    return requests === 0 && failures === 0 ? undefined : { requests, errors, failures, latency };
  }

  /** A new second: its slot is cleared if it held an older one (arrays made on the first call). */
  private enter(second: number): void {
    if (this.stamps.length === 0) {
      this.stamps = new Int32Array(WINDOW_SECONDS).fill(-1);
      this.requests = new Uint32Array(WINDOW_SECONDS);
      this.errors = new Uint32Array(WINDOW_SECONDS);
      this.failures = new Uint32Array(WINDOW_SECONDS);
      this.histogram = new Uint16Array(WINDOW_SECONDS * LATENCY_BINS);
    }
    this.second = second;
    const slot = second % WINDOW_SECONDS;
    this.slot = slot;
    if (this.stamps[slot] === second) return;
    this.stamps[slot] = second;
    this.requests[slot] = 0;
    this.errors[slot] = 0;
    this.failures[slot] = 0;
    this.histogram.fill(0, slot * LATENCY_BINS, (slot + 1) * LATENCY_BINS);
  }
}

/**
 * The latency at quantile `q` (0..1) of a histogram, in ms: the bin holding the q-th exchange,
 * interpolated geometrically inside it (linearly in the first bin); the last bin's lower bound when
 * it falls there. Undefined for an empty histogram.
 */
export function percentileMs(latency: readonly number[], q: number): number | undefined {
  let total = 0;
  for (const n of latency) total += n;
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < latency.length; i++) {
    const n = latency[i]!;
    if (seen + n < rank) {
      seen += n;
      continue;
    }
    const lower = binLowerMs(i);
    const upper = binUpperMs(i);
    if (!Number.isFinite(upper)) return lower;
    const fraction = (rank - seen) / n;
    return i === 0 ? upper * fraction : lower * (upper / lower) ** fraction;
  }
  return binLowerMs(latency.length - 1);
}

/** One endpoint of one route as a process reports it (IPC and /api/status input). */
export interface EndpointSample {
  readonly route: string;
  readonly endpoint: string;
  readonly requests: number;
  readonly errors: number;
  readonly failures: number;
  /** Requests on the endpoint's upstream pool now (running and queued; the pool is per origin). */
  readonly inflight: number;
  readonly latency: number[] | null;
}

/** What one process knows of the last minute: endpoints with traffic or requests in flight, routes' in-flight counts. */
export interface StatsSample {
  readonly endpoints: EndpointSample[];
  /** Route name → requests admitted and not finished (only routes with some). */
  readonly routeInflight: Record<string, number>;
}

/** Several processes' samples as one: counts, histograms and in-flight counts added. */
export function mergeSamples(samples: readonly StatsSample[]): StatsSample {
  if (samples.length === 1) return samples[0]!;
  const endpoints = new Map<string, { route: string; endpoint: string; requests: number; errors: number; failures: number; inflight: number; latency: number[] | null }>();
  const routeInflight: Record<string, number> = {};
  for (const sample of samples) {
    for (const [route, n] of Object.entries(sample.routeInflight)) routeInflight[route] = (routeInflight[route] ?? 0) + n;
    for (const e of sample.endpoints) {
      const key = `${e.route}\u0000${e.endpoint}`;
      const into = endpoints.get(key);
      if (into === undefined) {
        endpoints.set(key, { ...e, latency: e.latency === null ? null : [...e.latency] });
        continue;
      }
      into.requests += e.requests;
      into.errors += e.errors;
      into.failures += e.failures;
      into.inflight += e.inflight;
      if (e.latency !== null) {
        if (into.latency === null) into.latency = [...e.latency];
        else for (let i = 0; i < e.latency.length; i++) into.latency[i]! += e.latency[i]!;
      }
    }
  }
  return { endpoints: [...endpoints.values()], routeInflight };
}
