/**
 * How long a worker's event loop is blocked per received table (--workers > 1), at 1,000 services
 * × 20 instances (20,000 endpoints, 1,000 routes), for a one-instance change:
 *   deserialize (the structured clone node's 'advanced' IPC does: v8.deserialize of the message)
 *   + decode (model/table-wire.ts: unchanged routes reused by identity)
 *   + swap (TableStore.swap with the proxy runtime attached: pools, runtime build).
 * The primary's side (encode; the build itself) is reported apart: it never blocks a worker.
 *
 * Not a test (no assertion on time): `node --import tsx test/cluster/measure-table-ipc.ts [services] [instances]`.
 */
import { fork } from 'node:child_process';
import { serialize, deserialize } from 'node:v8';
import { TableStore } from '../../src/control/table-store.js';
import { TableBuilder } from '../../src/model/table-builder.js';
import { TableDecoder, TableEncoder } from '../../src/model/table-wire.js';
import type { DiscoverySnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { RuntimeStore } from '../../src/proxy/runtime/runtime.js';
import { Upstreams } from '../../src/proxy/runtime/upstreams.js';

const args = process.argv[2] === 'child' ? process.argv.slice(3) : process.argv.slice(2);
const SERVICES = Number(args[0] ?? 1000);
const INSTANCES = Number(args[1] ?? 20);
const CHANGES = Number(args[2] ?? 30);

function discovery(flip: number): DiscoverySnapshot {
  const catalog: Record<string, string[]> = {};
  const instances: Record<string, ServiceInstance[]> = {};
  for (let s = 0; s < SERVICES; s++) {
    const service = `svc-${s}`;
    catalog[service] = ['web'];
    instances[service] = [...Array(INSTANCES).keys()].map((i) => ({
      id: `${service}-${i}`,
      service,
      address: `10.${(s >> 8) & 255}.${s & 255}.${i + 1}`,
      port: 8080,
      tags: ['web'],
      // One instance's health flips per change: the change the issue measures.
      status: s === 0 && i === 0 && flip % 2 === 1 ? 'critical' : 'passing',
      weights: { passing: 1, warning: 1 },
      meta: {},
    }));
  }
  return { catalog, instances };
}

const templates: RouteTemplate[] = [{
  name: '{{service}}', each: { tag: 'web' }, match: { hosts: [], path: '/{{service}}' }, to: [{ service: '{{service}}', weight: 1 }], source: 'bench.yaml',
}];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number): number => Math.round(x * 100) / 100;

if (process.argv[2] === 'child') await child();
else await parent();

/**
 * The worker's side in a process of its own, fed over a real IPC channel ('advanced'): a 1 ms
 * ticker measures the longest gap of the event loop around each table (deserialize + decode +
 * swap + whatever GC they cause), which is what requests in flight would wait.
 */
async function child(): Promise<void> {
  const metrics = new Metrics({ defaultMetrics: false });
  const store = new TableStore();
  const upstreams = new Upstreams({ drainTimeoutMs: 1000 }, createLogger({ level: 'silent' }), metrics);
  new RuntimeStore(metrics).attach(store, upstreams);
  const decoder = new TableDecoder();
  let last = performance.now();
  let maxGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  process.on('message', (m: { type: string; table?: Parameters<TableDecoder['decode']>[0] }) => {
    if (m.type === 'reset') {
      maxGap = 0;
      last = performance.now();
      process.send!({ type: 'reset' });
      return;
    }
    if (m.type === 'probe') {
      process.send!({ type: 'probe', handler: 0, parsed: 0, maxGap });
      return;
    }
    if (m.type === 'done') {
      clearInterval(ticker);
      void upstreams.close(0).then(() => process.exit(0));
      return;
    }
    const t = performance.now();
    store.swap(decoder.decode(m.table!));
    const handler = performance.now() - t;
    // Let the ticker run once more so the gap that contains this message is counted.
    setTimeout(() => process.send!({ type: 'applied', handler, parsed: decoder.lastStats.parsed, maxGap }), 20);
  });
  process.send!({ type: 'ready' });
}

async function parent(): Promise<void> {
  const worker = fork(new URL(import.meta.url).pathname, ['child'], { serialization: 'advanced', execArgv: ['--import', 'tsx'] });
  const next = (type: string): Promise<{ handler: number; parsed: number; maxGap: number }> => new Promise((resolve) => {
    const on = (m: { type: string; handler: number; parsed: number; maxGap: number }): void => {
      if (m.type !== type) return;
      worker.off('message', on);
      resolve(m);
    };
    worker.on('message', on);
  });
  await next('ready');
  const encoder = new TableEncoder();
  const builder = new TableBuilder();
  const handlers: number[] = [];
  const gaps: number[] = [];
  const idle: number[] = [];
  for (let change = 0; change <= CHANGES; change++) {
    const wire = encoder.encode(builder.build(discovery(change), {}, templates));
    const reset = next('reset');
    worker.send({ type: 'reset' });
    await reset;
    // Baseline: the longest gap in 100 ms without a message (the machine's own noise).
    await new Promise((resolve) => setTimeout(resolve, 100));
    const probe = next('probe');
    worker.send({ type: 'probe' });
    idle.push((await probe).maxGap);
    const again = next('reset');
    worker.send({ type: 'reset' });
    await again;
    const applied = next('applied');
    worker.send({ type: 'table', version: change + 1, table: wire });
    const r = await applied;
    if (change === 0) {
      console.log(`separate worker process, first table (all pools new): handler ${round(r.handler)} ms, longest event-loop gap ${round(r.maxGap)} ms`);
      continue;
    }
    handlers.push(r.handler);
    gaps.push(r.maxGap);
  }
  worker.send({ type: 'done' });
  console.log(`separate worker process, one-instance change, median of ${CHANGES}: handler (decode + swap) ${round(median(handlers))} ms (min ${round(Math.min(...handlers))}, max ${round(Math.max(...handlers))}); longest event-loop gap around the message (deserialize + handler + GC) ${round(median(gaps))} ms (min ${round(Math.min(...gaps))}, max ${round(Math.max(...gaps))}); idle baseline (100 ms, no message) ${round(median(idle))} ms`);
  await inProcess();
}

/** The same steps in one process, each timed apart (the build's garbage adds GC to them). */
async function inProcess(): Promise<void> {
const metrics = new Metrics({ defaultMetrics: false });
const logger = createLogger({ level: 'silent' });
const store = new TableStore();
const upstreams = new Upstreams({ drainTimeoutMs: 1000 }, logger, metrics);
new RuntimeStore(metrics).attach(store, upstreams);
const encoder = new TableEncoder();
const decoder = new TableDecoder();
// The watcher's incremental builder: unchanged routes are the same objects, so the encoder's cache hits.
const builder = new TableBuilder();

const rows: Record<string, number[]> = { build: [], encode: [], serialize: [], bytes: [], deserialize: [], decode: [], parsed: [], swap: [], workerBlocked: [] };
for (let change = 0; change <= CHANGES; change++) {
  let t = performance.now();
  const table = builder.build(discovery(change), {}, templates);
  const build = performance.now() - t;
  t = performance.now();
  const wire = encoder.encode(table);
  const encode = performance.now() - t;
  t = performance.now();
  const bytes = serialize({ type: 'sy:table', version: change + 1, table: wire });
  const ser = performance.now() - t;
  // The worker: what node's channel does before 'message', then the handler.
  t = performance.now();
  const message = deserialize(bytes) as { table: typeof wire };
  const deser = performance.now() - t;
  t = performance.now();
  const decoded = decoder.decode(message.table);
  const decode = performance.now() - t;
  t = performance.now();
  store.swap(decoded);
  const swap = performance.now() - t;
  if (change === 0) {
    console.log(`first table: ${table.routes.length} routes, ${SERVICES * INSTANCES} endpoints, ${round(bytes.length / 1e6)} MB on the wire; worker: deserialize ${round(deser)} ms, decode ${round(decode)} ms, swap ${round(swap)} ms (all pools new)`);
    continue;
  }
  rows['build']!.push(build);
  rows['encode']!.push(encode);
  rows['serialize']!.push(ser);
  rows['bytes']!.push(bytes.length);
  rows['deserialize']!.push(deser);
  rows['decode']!.push(decode);
  rows['parsed']!.push(decoder.lastStats.parsed);
  rows['swap']!.push(swap);
  rows['workerBlocked']!.push(deser + decode + swap);
}
console.log(`one-instance change, median of ${CHANGES} (ms; bytes; parsed routes):`);
for (const [name, values] of Object.entries(rows)) console.log(`  ${name.padEnd(14)} ${round(median(values))}  (min ${round(Math.min(...values))}, max ${round(Math.max(...values))})`);
await upstreams.close(0);
}
