import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';

/**
 * How long a scrape waits for a worker's answer before it uses the worker's last one. All workers
 * are asked at once, so a scrape takes at most this (plus the aggregation), far inside
 * Prometheus' default scrape_timeout of 10 s. A worker that answers late still refreshes its
 * cached answer for the next scrape.
 */
export const WORKER_METRICS_TIMEOUT_MS = 1_000;
/** A request unanswered this long is given up (a lost message), so the next scrape asks again. */
const REQUEST_GIVE_UP_MS = 30_000;

// prom-client's cluster protocol (lib/cluster.js): workers that built an AggregatorRegistry answer
// these with `registry.getMetricsAsJSON()` of their registries (src/cluster/worker.ts sets them).
const GET_METRICS_REQ = 'prom-client:getMetricsReq';
const GET_METRICS_RES = 'prom-client:getMetricsRes';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type MetricJson = MetricsJson[number];
type ValueJson = MetricJson['values'][number] & { metricName?: string };

/** A worker /metrics asks, with the slot it serves in (the stale gauge's label). */
export interface MetricsTarget {
  readonly slot: number;
  readonly worker: Worker;
}

interface Entry {
  readonly slot: number;
  readonly worker: Worker;
  /** Its last answer (one JSON per registry), kept for the scrapes it does not answer in time. */
  last: MetricsJson[] | undefined;
  lastAt: number;
  /** The request sent and not yet answered (at most one per worker): true when answered. */
  pending: Promise<boolean> | undefined;
  /** The last scrape used `last` because the worker did not answer in time. */
  stale: boolean;
}

let nextRequestId = 1;

/**
 * /metrics with --workers > 1: the primary's registry (control, Consul, worker restarts) plus
 * every worker's, merged by AggregatorRegistry.aggregate (each metric's `aggregator`: counters and
 * histograms summed; gauges the workers share, such as ejected endpoints, by max).
 *
 * The machine's counters never go down while it runs (Prometheus reads a drop as a counter reset:
 * rate() and increase() would jump by the other workers' whole totals):
 * - A worker that does not answer within WORKER_METRICS_TIMEOUT_MS (stopped, its event loop
 *   blocked) counts with its last answer; `switchyard_worker_metrics_stale{slot}` is 1 meanwhile
 *   and a warning is logged once when it starts.
 * - A worker that exits: its last answer's counters and histograms are folded into the `retired`
 *   totals, added to every later scrape (its replacement starts from 0 beside them). Its gauges
 *   (in-flight requests, pools, memory) go with it. What it counted after its last answered scrape
 *   is lost, as a single process loses it when it restarts; nothing shown before is taken back.
 *
 * Not `AggregatorRegistry#clusterMetrics()`: it answers text for the workers alone (the primary's
 * registry cannot join), and one worker that does not answer fails the whole scrape after 5 s.
 * This asks with the same protocol, so the workers need nothing else.
 */
export class ClusterMetrics {
  private readonly entries = new Map<Worker, Entry>();
  /** Counters and histograms of the workers that exited, by metric name, then by series. */
  private readonly retired = new Map<string, { metric: MetricJson; series: Map<string, ValueJson> }>();

  constructor(
    private readonly primary: Registry,
    private readonly staleGauge: Gauge<'slot'>,
    private readonly logger: Logger,
    private readonly timeoutMs = WORKER_METRICS_TIMEOUT_MS,
  ) {}

  async exposition(targets: readonly MetricsTarget[]): Promise<{ contentType: string; body: string }> {
    await Promise.all(targets.map((target) => this.refresh(this.entry(target))));
    // Synchronous from here: each worker's last answer is either in `entries` or in `retired`.
    const own = await this.primary.getMetricsAsJSON();
    const workers = [...this.entries.values()].flatMap((e) => e.last ?? []);
    const all: MetricsJson[] = [own, this.retiredJson(), ...workers];
    const registry = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
    return { contentType: this.primary.contentType, body: await registry.metrics() };
  }

  private entry({ slot, worker }: MetricsTarget): Entry {
    let entry = this.entries.get(worker);
    if (entry === undefined) {
      const created: Entry = { slot, worker, last: undefined, lastAt: 0, pending: undefined, stale: false };
      entry = created;
      this.entries.set(worker, created);
      worker.once('exit', () => this.retire(created));
    }
    return entry;
  }

  /** Ask `entry`'s worker (unless a request is out already); wait at most the timeout for the answer. */
  private async refresh(entry: Entry): Promise<void> {
    entry.pending ??= this.request(entry);
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      entry.pending,
      new Promise<false>((resolve) => { timer = setTimeout(resolve, this.timeoutMs, false); }),
    ]);
    clearTimeout(timer);
    if (!this.entries.has(entry.worker)) return;
    const wasStale = entry.stale;
    entry.stale = !answered;
    this.staleGauge.set({ slot: entry.slot }, entry.stale ? 1 : 0);
    const context = { slot: entry.slot, pid: entry.worker.process.pid };
    if (entry.stale && !wasStale) {
      const lastAnswer = entry.last === undefined ? 'none' : `${Date.now() - entry.lastAt} ms old`;
      this.logger.warn({ ...context, timeoutMs: this.timeoutMs, lastAnswer }, 'a worker did not answer the metrics request in time: /metrics uses its last answer');
    } else if (!entry.stale && wasStale) {
      this.logger.info(context, 'the worker answers metrics requests again');
    }
  }

  private request(entry: Entry): Promise<boolean> {
    const { worker } = entry;
    const requestId = nextRequestId++;
    return new Promise((resolve) => {
      let settled = false;
      const done = (answered: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(giveUp);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        entry.pending = undefined;
        resolve(answered);
      };
      const onMessage = (message: { type?: unknown; requestId?: unknown; metrics?: MetricsJson[]; error?: string }): void => {
        if (message?.type !== GET_METRICS_RES || message.requestId !== requestId) return;
        const answered = message.error === undefined && Array.isArray(message.metrics);
        if (answered) {
          entry.last = message.metrics;
          entry.lastAt = Date.now();
        } else {
          this.logger.warn({ slot: entry.slot, error: message.error }, 'a worker could not collect its metrics: /metrics uses its last answer');
        }
        done(answered);
      };
      const onExit = (): void => done(false);
      const giveUp = setTimeout(done, REQUEST_GIVE_UP_MS, false);
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      // With a callback: a channel that broke under us (the worker was just killed, its exit not
      // seen yet) is reported here, not as an 'error' event.
      worker.send({ type: GET_METRICS_REQ, requestId }, undefined, (err) => {
        if (err !== null) done(false);
      });
    });
  }

  /** The worker exited: its last counters and histograms stay in the machine's totals, its gauges go. */
  private retire(entry: Entry): void {
    this.entries.delete(entry.worker);
    this.staleGauge.set({ slot: entry.slot }, 0);
    for (const metric of (entry.last ?? []).flat()) {
      const type = String(metric.type);
      if ((type !== 'counter' && type !== 'histogram') || metric.aggregator === 'omit') continue;
      let kept = this.retired.get(metric.name);
      if (kept === undefined) {
        kept = { metric: { ...metric, values: [] }, series: new Map() };
        this.retired.set(metric.name, kept);
      }
      for (const value of metric.values as ValueJson[]) {
        const key = seriesKey(value);
        const before = kept.series.get(key);
        // As the live workers are merged: `max` for counters every worker counts alike (TLS
        // reloads), otherwise summed.
        const merged = before === undefined ? value.value : metric.aggregator === 'max' ? Math.max(before.value, value.value) : before.value + value.value;
        kept.series.set(key, { ...value, value: merged });
      }
    }
    this.logger.debug({ slot: entry.slot, pid: entry.worker.process.pid, answered: entry.last !== undefined }, 'a worker exited: its last counters stay in /metrics');
  }

  private retiredJson(): MetricsJson {
    return [...this.retired.values()].map(({ metric, series }) => ({ ...metric, values: [...series.values()] }));
  }
}

function seriesKey(value: ValueJson): string {
  const labels = Object.entries(value.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([value.metricName ?? '', labels]);
}
