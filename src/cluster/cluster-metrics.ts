import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** Longest wait for one worker's metrics; a worker that does not answer is left out of that scrape. */
export const WORKER_METRICS_TIMEOUT_MS = 3_000;

// prom-client's cluster protocol (lib/cluster.js): workers that built an AggregatorRegistry answer
// these with `registry.getMetricsAsJSON()` of their registries (src/cluster/worker.ts sets them).
const GET_METRICS_REQ = 'prom-client:getMetricsReq';
const GET_METRICS_RES = 'prom-client:getMetricsRes';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

let nextRequestId = 1;

/**
 * /metrics with --workers > 1: every worker's registry plus the primary's own (control, Consul,
 * worker restarts), merged by AggregatorRegistry.aggregate (each metric's `aggregator`: counters
 * and histograms summed; gauges the workers share, such as ejected endpoints, by max).
 *
 * Not `AggregatorRegistry#clusterMetrics()`: it answers text for the workers alone (the primary's
 * registry cannot join), and one worker that does not answer fails the whole scrape after 5 s.
 * This asks with the same protocol, so the workers need nothing else, and leaves a worker that is
 * being replaced out of that one scrape (its counters restart at 0 anyway, as any process's do).
 */
export async function clusterExposition(primary: Registry, workers: readonly Worker[]): Promise<{ contentType: string; body: string }> {
  const requestId = nextRequestId++;
  const answers = await Promise.all(workers.map((worker) => workerMetrics(worker, requestId)));
  const all: MetricsJson[] = [await primary.getMetricsAsJSON(), ...answers.flat()];
  const registry = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
  return { contentType: primary.contentType, body: await registry.metrics() };
}

function workerMetrics(worker: Worker, requestId: number): Promise<MetricsJson[]> {
  return new Promise((resolve) => {
    const done = (result: MetricsJson[]): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(result);
    };
    const onMessage = (message: { type?: unknown; requestId?: unknown; metrics?: MetricsJson[]; error?: string }): void => {
      if (message?.type !== GET_METRICS_RES || message.requestId !== requestId) return;
      done(message.error === undefined && Array.isArray(message.metrics) ? message.metrics : []);
    };
    const onExit = (): void => done([]);
    const timer = setTimeout(() => done([]), WORKER_METRICS_TIMEOUT_MS);
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    try {
      worker.send({ type: GET_METRICS_REQ, requestId });
    } catch {
      done([]);
    }
  });
}
