/**
 * Cost curve: what one change costs as the catalog grows, in-process, through the real pipeline
 * (ConfigWatcher → buildTable → TableStore → RuntimeStore/Upstreams of a real createProxy), wired
 * as app.ts wires them, with a discovery provider the benchmark drives by hand.
 *
 *   node --expose-gc --import tsx bench/cost-curve.ts            every size + the churn run, writes bench/out/
 *   node --expose-gc --import tsx bench/cost-curve.ts --quick    fewer sizes and swaps
 *   node --expose-gc --import tsx bench/cost-curve.ts --size 20000   one size, JSON on stdout (what the parent runs)
 *   node --expose-gc --import tsx bench/cost-curve.ts --churn 1000   the churn run alone, JSON on stdout
 *
 * Each size and the churn run go in a child process of their own, so RSS and heap belong to that
 * measurement alone. The world: S services (1,000, or fewer for small sizes) × I instances, tags
 * `public`, `v1`/`v2`; templates: `{{service}}` on `/<service>` for every `public` service, a
 * 90/10 canary, a root route and `/live` (a real upstream) = S + 3 routes (1,003 at 1,000
 * services, as issue 8 measured). The watcher's clock is replaced by one that runs its timer when
 * the benchmark says so, so "whole change" is exactly: the provider's emit (dedupe) + build + swap
 * (prepare and swapped hooks), with no coalescing wait.
 *
 * Measured per size (median of several runs where the step can repeat):
 * - build:      `buildTable` one-shot (pure, no reuse).
 * - first:      the first table into an empty proxy (every pool new), emit → swapped.
 * - full:       `buildTable` one-shot + `store.swap` into the live proxy (every Route object new,
 *               pools exist): the cost of a change that invalidates everything (templates).
 * - templates:  the `{{service}}` template's policy changes (headers timeout), through the watcher:
 *               every Route new, but the watcher's TableBuilder keeps every service's endpoints
 *               (the same Endpoint objects): a full build + swap as a template edit makes it.
 * - flip:       (after 20 unmeasured warm-up changes) one instance's health flips (its service's array is new, every other the same
 *               object, as the Consul provider guarantees): whole change, emit → swapped.
 * - reparse:    one flip, but every instances array a new, structurally equal object (the file
 *               provider re-parsing its file): whole change.
 * - all-new:    every instance replaced (new ids and ports: every origin new): whole change.
 * - RSS / heap after the first table (after GC).
 *
 * Churn (1,000 services × 10): `--churn` swaps, each rolling 20 services to new ids and ports plus
 * the `live` service to another of four real upstreams (new id), while a bounded request loop (4
 * sequential clients) goes through the proxy to `/live`. RSS before (after the first table, GC),
 * peak (sampled every swap), after (GC, a settle period, GC), heap after GC; failed requests.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent, request } from 'undici';
import { TableStore } from '../src/control/table-store.js';
import { ConfigWatcher, type WatcherClock } from '../src/control/watcher.js';
import { buildTable } from '../src/model/build-table.js';
import type { DiscoverySnapshot, KvSnapshot, RouteTemplate, ServiceInstance } from '../src/model/types.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import type { DiscoveryProvider, DiscoveryUpdate, TemplatesProvider } from '../src/providers/provider.js';
import { createProxy, type Proxy } from '../src/proxy/server.js';
import { Upstreams } from '../src/proxy/runtime/upstreams.js';
import { HandProvider } from '../test/control/fakes.js';
import type { Phase } from './phase.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SIZES = [100, 1_000, 10_000, 20_000, 50_000] as const;
const QUICK_SIZES = [100, 1_000, 10_000, 20_000] as const;
const MIB = 1024 * 1024;
const WARMUP_CHANGES = 20;

// ---------------------------------------------------------------------------------------------
// The world

const TEMPLATES: readonly RouteTemplate[] = [
  { name: '{{service}}', each: { tag: 'public' }, match: { hosts: [], path: '/{{service}}' }, strip: '/{{service}}', to: [{ service: '{{service}}', weight: 1 }], source: 'bench' },
  { name: 'canary', match: { hosts: [], path: '/canary' }, to: [{ service: 'svc-0000', tag: 'v1', weight: 90 }, { service: 'svc-0000', tag: 'v2', weight: 10 }], source: 'bench' },
  { name: 'home', match: { hosts: [], path: '/' }, to: [{ service: 'svc-0001', weight: 1 }], source: 'bench' },
  { name: 'live', match: { hosts: [], path: '/live' }, to: [{ service: 'live', weight: 1 }], source: 'bench' },
];

/** TEMPLATES with another headers timeout on the `{{service}}` template: every route changes, no pool key does. */
function withHeadersTimeout(headersMs: number): RouteTemplate[] {
  const [each, ...rest] = TEMPLATES;
  return [{ ...each!, policy: { timeouts: { headersMs } } }, ...rest];
}

const serviceName = (i: number): string => `svc-${String(i).padStart(4, '0')}`;

/** Instances get distinct origins: 10.a.b.c:port, the port moving on with every generation. */
let originCounter = 0;
function instance(service: string, generation: number, i: number): ServiceInstance {
  const n = originCounter++;
  return {
    id: `${service}-g${generation}-${i}`,
    service,
    address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    port: 1024 + ((n * 7 + generation) % 60_000),
    tags: ['public', i % 2 === 0 ? 'v1' : 'v2'],
    status: 'passing',
    weights: { passing: 1, warning: 1 },
    meta: {},
  };
}

interface World {
  services: string[];
  perService: number;
  catalog: Record<string, readonly string[]>;
  instances: Record<string, readonly ServiceInstance[]>;
  generation: number;
}

function makeWorld(endpoints: number, liveInstances: readonly ServiceInstance[]): World {
  const count = Math.min(1_000, endpoints);
  const perService = Math.max(1, Math.round(endpoints / count));
  const services = Array.from({ length: count }, (_, i) => serviceName(i));
  const catalog: Record<string, readonly string[]> = { live: [] };
  const instances: Record<string, readonly ServiceInstance[]> = { live: liveInstances };
  for (const s of services) {
    catalog[s] = ['public', 'v1', 'v2'];
    instances[s] = Array.from({ length: perService }, (_, i) => instance(s, 0, i));
  }
  return { services, perService, catalog, instances, generation: 0 };
}

const snapshot = (w: World): DiscoverySnapshot => ({ catalog: w.catalog, instances: w.instances });

/** A new instances record in which only `service`'s array is new (the Consul provider's contract). */
function withService(w: World, service: string, list: readonly ServiceInstance[]): void {
  w.instances = { ...w.instances, [service]: list };
}

function flipOne(w: World, service: string): void {
  const list = w.instances[service] ?? [];
  const [first, ...rest] = list;
  if (first === undefined) return;
  withService(w, service, [{ ...first, status: first.status === 'passing' ? 'critical' : 'passing' }, ...rest]);
}

function reparseAll(w: World): void {
  w.catalog = Object.fromEntries(Object.entries(w.catalog).map(([k, v]) => [k, [...v]]));
  w.instances = Object.fromEntries(Object.entries(w.instances).map(([k, v]) => [k, v.map((i) => ({ ...i, tags: [...i.tags], weights: { ...i.weights }, meta: { ...i.meta } }))]));
}

function rollService(w: World, service: string): void {
  w.generation += 1;
  withService(w, service, Array.from({ length: w.perService }, (_, i) => instance(service, w.generation, i)));
}

function rollAll(w: World): void {
  w.generation += 1;
  const next: Record<string, readonly ServiceInstance[]> = { live: w.instances['live'] ?? [] };
  for (const s of w.services) next[s] = Array.from({ length: w.perService }, (_, i) => instance(s, w.generation, i));
  w.instances = next;
}

// ---------------------------------------------------------------------------------------------
// The pipeline, as app.ts wires it, with a hand-driven provider and clock

/** Runs the watcher's timer only when `flush` is called: no coalescing wait in the measurement. */
class StepClock implements WatcherClock {
  private pending: (() => void) | undefined;
  now(): number {
    return performance.now();
  }
  setTimeout(callback: () => void): unknown {
    this.pending = callback;
    return callback;
  }
  clearTimeout(): void {
    this.pending = undefined;
  }
  flush(): void {
    const callback = this.pending;
    this.pending = undefined;
    callback?.();
  }
}

interface Pipeline {
  readonly store: TableStore;
  readonly proxy: Proxy;
  readonly watcher: ConfigWatcher;
  readonly discovery: HandProvider<DiscoveryUpdate> & DiscoveryProvider;
  /** emit → swapped, in ms (wall and CPU); `split` = [dedupe, build, swap] (wall). */
  change(update: DiscoveryUpdate): Measured;
  /** New templates through the watcher: emit → swapped. */
  retemplate(templates: readonly RouteTemplate[]): Measured;
  close(): Promise<void>;
}

interface Measured {
  readonly ms: number;
  readonly cpuMs: number;
  readonly split: [number, number, number];
}

const cpuSince = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

async function pipeline(first: DiscoverySnapshot): Promise<{ p: Pipeline; first: Measured }> {
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = createLogger({ level: 'error' });
  const store = new TableStore();
  const clock = new StepClock();
  let t = { start: 0, emitted: 0, flushed: 0, prepared: 0, swapped: 0 };
  // Registered before createProxy's hooks, so it runs first: the build is done, the swap starts.
  store.onPrepare(() => {
    t.prepared = performance.now();
  });
  const upstreams = new Upstreams({ drainTimeoutMs: 2_000 }, logger, metrics);
  const proxy = createProxy({ store, upstreams, logger, metrics, options: { drainTimeoutMs: 1_000 } });
  store.onSwapped(() => {
    t.swapped = performance.now();
  });
  const discovery = new HandProvider<DiscoveryUpdate>('bench', { discovery: first, kv: {} satisfies KvSnapshot });
  const templates = new HandProvider<readonly RouteTemplate[]>('templates', TEMPLATES) as HandProvider<readonly RouteTemplate[]> & TemplatesProvider;
  const watcher = new ConfigWatcher([discovery], templates, store, logger, metrics, { coalesceMs: 0, minIntervalMs: 0, clock });
  const measure = (emit: () => void): Measured => {
    const cpu = process.cpuUsage();
    t = { start: performance.now(), emitted: 0, flushed: 0, prepared: 0, swapped: 0 };
    emit();
    t.emitted = performance.now();
    clock.flush();
    if (t.swapped === 0) throw new Error('the change did not swap a table');
    return { ms: t.swapped - t.start, cpuMs: cpuSince(cpu), split: [t.emitted - t.start, t.prepared - t.emitted, t.swapped - t.prepared] };
  };
  const firstRun = await (async (): Promise<Measured> => {
    const cpu = process.cpuUsage();
    t = { start: performance.now(), emitted: 0, flushed: 0, prepared: 0, swapped: 0 };
    await watcher.start();
    t.emitted = performance.now();
    clock.flush();
    if (t.swapped === 0) throw new Error('the first table did not swap');
    return { ms: t.swapped - t.start, cpuMs: cpuSince(cpu), split: [t.emitted - t.start, t.prepared - t.emitted, t.swapped - t.prepared] };
  })();
  const p: Pipeline = {
    store, proxy, watcher, discovery,
    change: (update) => measure(() => discovery.emit(update)),
    retemplate: (next) => measure(() => templates.emit(next)),
    close: async () => {
      await watcher.stop();
      await proxy.close(500);
    },
  };
  return { p, first: firstRun };
}

// ---------------------------------------------------------------------------------------------
// Memory helpers

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
const gc = gcFunction();
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

async function settledMemory(settleMs: number): Promise<{ rss: number; heap: number }> {
  gc();
  await sleep(settleMs);
  gc();
  await sleep(50);
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

// ---------------------------------------------------------------------------------------------
// One size

export interface SizeResult {
  readonly endpoints: number;
  readonly services: number;
  readonly perService: number;
  readonly routes: number;
  /** Wall ms, then CPU ms (process user + system: less sensitive to a loaded machine). */
  readonly build: Cost;
  readonly first: Cost;
  readonly firstSplit: readonly number[];
  readonly full: Cost;
  readonly templates: Cost;
  readonly flip: Cost;
  readonly flipSplit: readonly number[];
  readonly reparse: Cost;
  readonly allNew: Cost;
  readonly allNewSplit: readonly number[];
  readonly rssMiB: number;
  readonly heapMiB: number;
}

export interface Cost {
  readonly ms: number;
  readonly cpuMs: number;
}

const debug = (what: string, value: unknown): void => {
  if (process.env['COST_CURVE_DEBUG'] === '1') process.stderr.write(`${what} ${JSON.stringify(value)}\n`);
};

/** Medians of wall and CPU time (separately), and the split of the run with the median wall time. */
function mid(xs: readonly Measured[]): Cost & { split: number[] } {
  const sorted = [...xs].sort((a, b) => a.ms - b.ms);
  const m = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { ms: m.ms, cpuMs: median(xs.map((x) => x.cpuMs)), split: m.split };
}

/** Run `step` `n` times, each measured; GC first so garbage of earlier phases is not billed here. */
function repeat(n: number, step: (i: number) => Measured): Measured[] {
  gc();
  return Array.from({ length: n }, (_, i) => step(i));
}

function timed(run: () => void): Measured {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  run();
  const ms = performance.now() - t0;
  return { ms, cpuMs: cpuSince(cpu), split: [0, ms, 0] };
}

export async function measureSize(endpoints: number, repeats: number): Promise<SizeResult> {
  const world = makeWorld(endpoints, [instance('live', 0, 0)]);
  const few = Math.max(3, Math.min(repeats, 7));
  const builds = repeat(few, () => timed(() => buildTable(snapshot(world), {}, TEMPLATES)));
  gc();
  const { p, first } = await pipeline(snapshot(world));
  const routes = p.store.current?.routes.length ?? 0;
  const memory = await settledMemory(200);
  try {
    const fulls = repeat(few, () => timed(() => p.store.swap(buildTable(snapshot(world), {}, TEMPLATES))));
    // Warm-up changes through the watcher, not measured (as bench/propagation.ts does): its builder
    // and the runtime agree on the live table, and the JIT has seen the change path (a long-running
    // proxy's steady state; the first few changes after start-up run colder).
    for (let i = 0; i < WARMUP_CHANGES; i++) {
      flipOne(world, world.services[(i * 11) % world.services.length]!);
      p.change({ discovery: snapshot(world) });
    }
    const retemplates = repeat(few, (i) => p.retemplate(withHeadersTimeout(i % 2 === 0 ? 59_000 : 60_000)));
    const flips = repeat(repeats, (i) => {
      flipOne(world, world.services[(i * 37) % world.services.length]!);
      const m = p.change({ discovery: snapshot(world) });
      // `builder` exists from issue 8 on; the baseline's watcher has none.
      debug('flip', { ...m, stats: (p.watcher as { builder?: { stats: unknown } }).builder?.stats });
      return m;
    });
    const reparses = repeat(few, (i) => {
      reparseAll(world);
      flipOne(world, world.services[(i * 53) % world.services.length]!);
      return p.change({ discovery: snapshot(world) });
    });
    const allNew = repeat(3, () => {
      rollAll(world);
      return p.change({ discovery: snapshot(world) });
    });
    const flip = mid(flips);
    const all = mid(allNew);
    return {
      endpoints: world.services.length * world.perService,
      services: world.services.length,
      perService: world.perService,
      routes,
      build: mid(builds),
      first,
      firstSplit: first.split,
      full: mid(fulls),
      templates: mid(retemplates),
      flip,
      flipSplit: flip.split,
      reparse: mid(reparses),
      allNew: all,
      allNewSplit: all.split,
      rssMiB: memory.rss / MIB,
      heapMiB: memory.heap / MIB,
    };
  } finally {
    await p.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Churn

export interface ChurnResult {
  readonly endpoints: number;
  readonly swaps: number;
  readonly servicesRolledPerSwap: number;
  readonly requests: number;
  readonly failed: number;
  readonly rssBeforeMiB: number;
  readonly rssPeakMiB: number;
  readonly rssAfterMiB: number;
  readonly heapBeforeMiB: number;
  readonly heapAfterMiB: number;
  readonly swapMedianMs: number;
  readonly poolsAfter: number;
  readonly settleMs: number;
}

async function upstreamServer(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': String(name.length) });
      res.end(name);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, port: (server.address() as AddressInfo).port };
}

export async function measureChurn(swaps: number, endpoints = 10_000, rolledPerSwap = 20, settleMs = 5_000): Promise<ChurnResult> {
  const servers = await Promise.all([0, 1, 2, 3].map((i) => upstreamServer(`live-${i}`)));
  let liveGeneration = 0;
  const liveInstance = (): ServiceInstance => {
    liveGeneration += 1;
    const port = servers[liveGeneration % servers.length]!.port;
    return { id: `live-${liveGeneration}`, service: 'live', address: '127.0.0.1', port, tags: [], status: 'passing', weights: { passing: 1, warning: 1 }, meta: {} };
  };
  const world = makeWorld(endpoints, [liveInstance()]);
  const { p } = await pipeline(snapshot(world));
  const address = await p.proxy.listen('127.0.0.1', 0);
  const agent = new Agent({ connections: 4, keepAliveTimeout: 10_000 });
  let requests = 0;
  let failed = 0;
  let running = true;
  const client = async (): Promise<void> => {
    // Bounded: stops with the churn, and at most 200,000 requests per client whatever happens.
    for (let i = 0; running && i < 200_000; i++) {
      try {
        const res = await request(`http://127.0.0.1:${address.port}/live`, { dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.text();
        requests += 1;
        if (res.statusCode !== 200) failed += 1;
      } catch {
        requests += 1;
        failed += 1;
      }
      // Light traffic: a request per client every few ms, not a flood.
      await sleep(2);
    }
  };
  try {
    // Warm up: traffic and a few swaps before "before", so lazily made things are counted there.
    const clients = [client(), client(), client(), client()];
    await sleep(300);
    const before = await settledMemory(500);
    let peak = before.rss;
    const times: number[] = [];
    let next = 0;
    for (let i = 0; i < swaps; i++) {
      for (let k = 0; k < rolledPerSwap; k++) rollService(world, world.services[next++ % world.services.length]!);
      withService(world, 'live', [liveInstance()]);
      times.push(p.change({ discovery: snapshot(world) }).ms);
      peak = Math.max(peak, process.memoryUsage().rss);
      // Let the traffic and the retired pools' closes run between swaps (a swap every ~5 ms at most).
      await sleep(1);
    }
    running = false;
    await Promise.all(clients);
    const after = await settledMemory(settleMs);
    return {
      endpoints: world.services.length * world.perService,
      swaps,
      servicesRolledPerSwap: rolledPerSwap,
      requests,
      failed,
      rssBeforeMiB: before.rss / MIB,
      rssPeakMiB: peak / MIB,
      rssAfterMiB: after.rss / MIB,
      heapBeforeMiB: before.heap / MIB,
      heapAfterMiB: after.heap / MIB,
      swapMedianMs: median(times),
      poolsAfter: poolCount(p),
      settleMs,
    };
  } finally {
    running = false;
    await agent.close();
    await p.close();
    for (const { server } of servers) {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  }
}

function poolCount(p: Pipeline): number {
  const current = p.proxy.runtimes.current;
  if (current === undefined) return 0;
  const origins = new Set<string>();
  for (const route of current.routes.values()) for (const d of route.destinations.values()) for (const e of d.balancer.items) origins.add(e.origin);
  return origins.size;
}

// ---------------------------------------------------------------------------------------------
// Report

export interface CostCurveResult {
  readonly sizes: readonly SizeResult[];
  readonly churn: ChurnResult | undefined;
  readonly startedAt: string;
  readonly label: string;
}

const f = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0));
/** `wall (cpu)` in ms. */
const c = (cost: Cost): string => `${f(cost.ms)} (${f(cost.cpuMs)})`;

export function markdownTableOf(r: CostCurveResult): string {
  const lines = [
    '| endpoints | services × inst. | routes | build (one-shot) | first table (all pools new) | full build + swap | one health flip (whole change) | flip: dedupe / build / swap | re-parsed snapshot, one flip | every origin new | RSS | heap |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const s of r.sizes) {
    lines.push(`| ${s.endpoints.toLocaleString('en-US')} | ${s.services} × ${s.perService} | ${s.routes} | ${c(s.build)} | ${c(s.first)} | ${c(s.full)} | **${c(s.flip)}** | ${s.flipSplit.map(f).join(' / ')} | ${c(s.reparse)} | ${c(s.allNew)} | ${s.rssMiB.toFixed(0)} MiB | ${s.heapMiB.toFixed(0)} MiB |`);
  }
  lines.push('', 'Times in ms: wall (CPU of the process, user + system, which a loaded machine inflates less).');
  return lines.join('\n');
}

export function churnMarkdown(c: ChurnResult): string {
  return [
    `Churn: ${c.swaps} swaps at ${c.endpoints.toLocaleString('en-US')} endpoints, each rolling ${c.servicesRolledPerSwap} services to new ids and ports`,
    `(and \`/live\` to another real upstream), under light traffic (4 sequential clients): ${c.requests} requests, ${c.failed} failed;`,
    `median whole change ${f(c.swapMedianMs)} ms.`,
    '',
    '| RSS before | RSS peak | RSS after (GC + settle) | after / before | heap before | heap after (GC) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${c.rssBeforeMiB.toFixed(0)} MiB | ${c.rssPeakMiB.toFixed(0)} MiB | ${c.rssAfterMiB.toFixed(0)} MiB | ${(c.rssAfterMiB / c.rssBeforeMiB).toFixed(2)}× | ${c.heapBeforeMiB.toFixed(1)} MiB | ${c.heapAfterMiB.toFixed(1)} MiB |`,
  ].join('\n');
}

/** A log-log ASCII plot of whole-change and first-table ms against endpoints, for a code fence. */
export function asciiPlot(sizes: readonly SizeResult[]): string {
  const width = 60;
  const height = 16;
  const series: [string, (s: SizeResult) => number][] = [['F', (s) => s.first.cpuMs], ['U', (s) => s.full.cpuMs], ['c', (s) => s.flip.cpuMs]];
  const xs = sizes.map((s) => Math.log10(s.endpoints));
  const ys = sizes.flatMap((s) => series.map(([, get]) => Math.log10(Math.max(0.01, get(s)))));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.floor(Math.min(...ys)), Math.ceil(Math.max(...ys))];
  const grid = Array.from({ length: height }, () => Array.from({ length: width }, () => ' '));
  sizes.forEach((s, i) => {
    for (const [mark, get] of series) {
      const col = Math.round(((xs[i]! - x0) / Math.max(1e-9, x1 - x0)) * (width - 1));
      const row = height - 1 - Math.round(((Math.log10(Math.max(0.01, get(s))) - y0) / Math.max(1e-9, y1 - y0)) * (height - 1));
      grid[row]![col] = grid[row]![col] === ' ' ? mark : '*';
    }
  });
  const lines = grid.map((row, r) => {
    const value = 10 ** (y1 - (r / (height - 1)) * (y1 - y0));
    const label = r % 3 === 0 ? `${f(value)} ms`.padStart(10) : ''.padStart(10);
    return `${label} |${row.join('')}`;
  });
  lines.push(`${''.padStart(10)} +${'-'.repeat(width)}`);
  const axis = Array.from({ length: width }, () => ' ');
  sizes.forEach((s, i) => {
    const col = Math.round(((xs[i]! - x0) / Math.max(1e-9, x1 - x0)) * (width - 1));
    const text = s.endpoints >= 1000 ? `${s.endpoints / 1000}k` : String(s.endpoints);
    const start = Math.min(width - text.length, col);
    for (let k = 0; k < text.length; k++) axis[start + k] = text[k]!;
  });
  lines.push(`${''.padStart(11)}${axis.join('')}  endpoints (log)`);
  lines.push(`${''.padStart(11)}F first table   U full build + swap   c one health flip   * overlap   (CPU ms, log)`);
  return lines.join('\n');
}

/** The same plot as SVG (log-log), for bench/out/. */
export function svgPlot(sizes: readonly SizeResult[]): string {
  const W = 640;
  const H = 360;
  const pad = 50;
  const series: [string, string, (s: SizeResult) => number][] = [
    ['first table', '#c0392b', (s) => s.first.cpuMs], ['full build + swap', '#2980b9', (s) => s.full.cpuMs], ['one health flip', '#27ae60', (s) => s.flip.cpuMs], ['RSS MiB', '#7f8c8d', (s) => s.rssMiB],
  ];
  const xs = sizes.map((s) => Math.log10(s.endpoints));
  const all = sizes.flatMap((s) => series.map(([, , get]) => Math.log10(Math.max(0.01, get(s)))));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.floor(Math.min(...all)), Math.ceil(Math.max(...all))];
  const px = (x: number): number => pad + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - 2 * pad);
  const py = (y: number): number => H - pad - ((y - y0) / Math.max(1e-9, y1 - y0)) * (H - 2 * pad);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  for (let y = y0; y <= y1; y++) parts.push(`<line x1="${pad}" x2="${W - pad}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/><text x="4" y="${py(y) + 4}">${10 ** y}</text>`);
  sizes.forEach((s, i) => parts.push(`<text x="${px(xs[i]!) - 10}" y="${H - pad + 16}">${s.endpoints}</text>`));
  series.forEach(([name, color, get], k) => {
    const points = sizes.map((s, i) => `${px(xs[i]!).toFixed(1)},${py(Math.log10(Math.max(0.01, get(s)))).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`);
    parts.push(`<text x="${pad + 10 + k * 140}" y="20" fill="${color}">${name}</text>`);
  });
  parts.push(`<text x="${W / 2 - 60}" y="${H - 8}">endpoints (log); CPU ms or MiB (log)</text>`, '</svg>');
  return parts.join('\n');
}

export function markdownReport(r: CostCurveResult): string {
  return [
    `Measured ${r.startedAt.slice(0, 10)} (${r.label}) with \`node --expose-gc --import tsx bench/cost-curve.ts\` on ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version};`,
    'in-process: ConfigWatcher → buildTable → TableStore → a real proxy runtime and upstream pools, one child process per size.',
    'Whole change = the provider\'s emit (dedupe) + build + swap (prepare and swapped hooks), no coalescing wait; medians.',
    '',
    markdownTableOf(r),
    '',
    '```text',
    asciiPlot(r.sizes),
    '```',
    '',
    ...(r.churn === undefined ? [] : [churnMarkdown(r.churn)]),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Orchestration: one child per measurement

function child(args: readonly string[]): unknown {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 16 * MIB,
  });
  if (r.status !== 0) throw new Error(`cost-curve ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as unknown;
}

export async function measureCostCurve(o: { quick: boolean; log: (m: string) => void; label?: string }): Promise<CostCurveResult> {
  const sizes: SizeResult[] = [];
  for (const n of o.quick ? QUICK_SIZES : SIZES) {
    o.log(`cost curve: ${n} endpoints`);
    sizes.push(child(['--size', String(n), '--repeats', o.quick ? '5' : '15']) as SizeResult);
  }
  o.log(`cost curve: churn`);
  const churn = child(['--churn', o.quick ? '200' : '1000']) as ChurnResult;
  return { sizes, churn, startedAt: new Date().toISOString(), label: o.label ?? 'cost curve' };
}

export function writeOutputs(r: CostCurveResult, dir = join(ROOT, 'bench', 'out')): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'cost-curve.md'), join(dir, 'cost-curve.svg'), join(dir, 'cost-curve.json')];
  writeFileSync(files[0]!, `## Cost curve\n\n${markdownReport(r)}\n`);
  writeFileSync(files[1]!, svgPlot(r.sizes));
  writeFileSync(files[2]!, JSON.stringify(r, null, 2));
  return files;
}

/** As a phase of `npm run bench`. */
export const costCurvePhase: Phase = {
  name: 'cost-curve',
  run: async (ctx) => {
    const result = await measureCostCurve({ quick: ctx.options.quick, log: ctx.log });
    writeOutputs(result);
    return {
      console: `${markdownTableOf(result)}\n\n${asciiPlot(result.sizes)}\n\n${result.churn === undefined ? '' : churnMarkdown(result.churn)}`,
      markdown: `## Cost curve\n\n${markdownReport(result)}\n`,
    };
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string' },
      repeats: { type: 'string', default: '15' },
      churn: { type: 'string' },
      quick: { type: 'boolean', default: false },
      label: { type: 'string' },
      out: { type: 'string' },
    },
  });
  if (values.size !== undefined) {
    process.stdout.write(`${JSON.stringify(await measureSize(Number(values.size), Number(values.repeats)))}\n`);
    return;
  }
  if (values.churn !== undefined) {
    process.stdout.write(`${JSON.stringify(await measureChurn(Number(values.churn)))}\n`);
    return;
  }
  const log = (m: string): void => {
    process.stdout.write(`[cost-curve ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
  };
  const result = await measureCostCurve({ quick: values.quick, log, ...(values.label === undefined ? {} : { label: values.label }) });
  const files = writeOutputs(result, values.out ?? join(ROOT, 'bench', 'out'));
  process.stdout.write(`${markdownReport(result)}\n`);
  log(`wrote ${files.join(', ')}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(() => process.exit(process.exitCode ?? 0), (err: unknown) => {
    process.stderr.write(`cost-curve: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
