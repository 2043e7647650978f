/**
 * Requests/s, latency and CPU per request. A throughput phase starts a group of targets (placed
 * on CPUs as the group says), checks that each balances over all upstreams, warms each up, then
 * runs wrk against them interleaved for a number of rounds (the order rotates every round) and
 * reports the median per target. Two groups: one core (pinned) and two cores (unpinned).
 */
import { cpus } from 'node:os';
import { measuredRun, wrkOptions } from './measure.js';
import type { BenchContext, Phase, PhaseResult } from './phase.js';
import { canPin, repin } from './procs.js';
import {
  cpuRatioCheck, perCoreChecks, policiesCheck, rpsRatioCheck, switchyardChecks, throughputConsole, throughputMarkdown,
  type Row, type RunRecord, type Summary, type TableSpec,
} from './throughput-report.js';
import type { Check } from './report.js';
import { exitReason } from './target-start.js';
import { ONE_CORE_TARGETS, TWO_CORE_TARGETS, type Placement, type RunningTarget, type Target } from './targets.js';
import { closeTraceSink, TRACING_RATIO_GOAL, TRACING_TARGETS } from './tracing.js';
import { runWrk, wrkCommand } from './wrk.js';

interface Entry {
  readonly target: Target;
  running: RunningTarget | undefined;
  unavailable: string | undefined;
  readonly runs: RunRecord[];
  readonly failures: string[];
}

/** Sends a few requests and returns which upstreams answered (the body names the upstream). */
async function upstreamsSeen(url: string, count: number): Promise<{ seen: Set<string>; statuses: number[] }> {
  const seen = new Set<string>();
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = await res.text();
    statuses.push(res.status);
    const id = /^upstream (\S+) /.exec(body)?.[1];
    if (id !== undefined) seen.add(id);
  }
  return { seen, statuses };
}

/** Whether `--only` selects `name` (a target or a phase). */
export function selected(ctx: BenchContext, ...names: string[]): boolean {
  const only = ctx.options.only;
  return only === undefined || names.some((n) => only.includes(n));
}

interface Group {
  readonly name: string;
  readonly targets: readonly Target[];
  readonly spec: TableSpec;
  readonly placement: (ctx: BenchContext) => Placement;
  /** Report lines on where things ran. */
  readonly layout: (ctx: BenchContext, placement: Placement) => string[];
  /** Runs before the group's targets start (re-pinning the upstreams); returns the undo. */
  readonly prepare?: (ctx: BenchContext) => () => void;
  /** Runs once the group's targets stopped; returns report notes. */
  readonly finish?: (ctx: BenchContext) => Promise<string[]>;
}

async function startAll(ctx: BenchContext, entries: Entry[], placement: Placement, notes: string[]): Promise<void> {
  for (const e of entries) {
    ctx.log(`starting ${e.target.name}`);
    try {
      const r = await e.target.start(ctx, placement);
      if (r.ok) e.running = r.target;
      else e.unavailable = r.reason;
    } catch (err) {
      e.unavailable = `failed to start: ${(err as Error).message}`;
    }
    if (e.unavailable !== undefined) ctx.log(`${e.target.name}: not available — ${e.unavailable}`);
  }
  for (const e of entries) {
    if (e.running === undefined || e.target.reference === true) continue;
    try {
      const { seen, statuses } = await upstreamsSeen(e.running.url, 3 * ctx.upstreams.length);
      const bad = statuses.filter((s) => s !== 200).length;
      const msg = `${e.target.name}: ${statuses.length - bad}/${statuses.length} sanity requests answered 200, upstreams seen: ${[...seen].sort().join(', ') || 'none'}`;
      ctx.log(msg);
      if (bad > 0 || seen.size !== ctx.upstreams.length) notes.push(`Sanity check off — ${msg}`);
    } catch (err) {
      notes.push(`Sanity check failed for ${e.target.name}: ${(err as Error).message}`);
    }
  }
}

async function measureRounds(ctx: BenchContext, entries: Entry[], placement: Placement): Promise<void> {
  const o = ctx.options;
  const live = entries.filter((e) => e.running !== undefined);
  for (const e of live) {
    ctx.log(`warm-up ${e.target.name} (${o.warmupSeconds} s)`);
    try {
      await runWrk(wrkOptions(ctx, e.running!.url, o.warmupSeconds, placement.loadCpu));
    } catch (err) {
      const gone = e.running!.proc !== undefined && !e.running!.proc.isRunning();
      e.failures.push(`warm-up: ${(err as Error).message}${gone ? `; ${await exitReason(e.running!)}` : ''}`);
    }
  }
  for (let round = 1; round <= o.rounds; round++) {
    const shift = (round - 1) % Math.max(live.length, 1);
    for (const e of [...live.slice(shift), ...live.slice(0, shift)]) {
      const t = e.running!;
      if (t.proc !== undefined && !t.proc.isRunning()) {
        e.failures.push(`round ${round}: ${await exitReason(t)}`);
        continue;
      }
      try {
        const run = await measuredRun(ctx, t, wrkOptions(ctx, t.url, o.seconds, placement.loadCpu), round);
        e.runs.push(run);
        const r = run.result;
        const errs = r.non2xx + r.socketErrors;
        const cpuUs = run.cpu === undefined ? '' : `  cpu ${(run.cpu.cpuSeconds * 1e6 / Math.max(1, r.requests)).toFixed(1)} µs/req`;
        ctx.log(`round ${round}/${o.rounds} ${t.name.padEnd(20)} ${Math.round(r.requestsPerSec).toString().padStart(7)} req/s  p50 ${r.p50Ms.toFixed(3)} ms  p99 ${r.p99Ms.toFixed(3)} ms${cpuUs}` +
          `${run.rssBytes === undefined ? '' : `  rss ${(run.rssBytes / 1048576).toFixed(1)} MiB`}  other cpu ${run.otherCpuPct.toFixed(0)}%${errs > 0 ? `  ERRORS ${errs}` : ''}`);
      } catch (err) {
        e.failures.push(`round ${round}: ${(err as Error).message}`);
        ctx.log(`round ${round} ${t.name}: FAILED ${(err as Error).message}`);
      }
    }
  }
}

function runGroup(group: Group): Phase {
  return {
    name: group.name,
    targetNames: group.targets.map((t) => t.name),
    budgetSeconds: (o) => group.targets.length * (o.warmupSeconds + 30 + o.rounds * (o.seconds + o.idleWaitSeconds + 20)),
    run: async (ctx: BenchContext): Promise<PhaseResult> => {
      const o = ctx.options;
      const targets = group.targets.filter((t) => selected(ctx, group.name, t.name));
      const entries: Entry[] = targets.map((target) => ({ target, running: undefined, unavailable: undefined, runs: [], failures: [] }));
      const notes: string[] = [];
      const placement = group.placement(ctx);
      const undo = group.prepare?.(ctx);
      try {
        await startAll(ctx, entries, placement, notes);
        await measureRounds(ctx, entries, placement);
        for (const e of entries) {
          if (e.running?.summary === undefined) continue;
          for (const line of await e.running.summary()) notes.push(`${e.target.name} ${line}`);
        }
      } finally {
        await Promise.all(entries.map((e) => e.running?.proc?.stop()));
        undo?.();
      }
      if (group.finish !== undefined) notes.push(...await group.finish(ctx));

      const noisy = entries.flatMap((e) => e.runs.filter((r) => r.otherCpuPct >= o.busyThresholdPct).map((r) => `${e.target.name} round ${r.round} (${r.otherCpuPct.toFixed(0)}%)`));
      if (noisy.length > 0) {
        notes.push(`Other processes used ≥ ${o.busyThresholdPct}% of a core during ${noisy.length} run(s): ${noisy.join(', ')}. Those numbers are low; the machine was shared.`);
      }
      for (const e of entries) {
        if (e.runs.some((r) => r.result.non2xx + r.result.socketErrors > 0)) {
          notes.push(`${e.target.name} had non-2xx responses or socket errors in some runs: its numbers are suspect.`);
        }
      }
      const rows: Row[] = entries.map((e) => ({
        name: e.target.name, reference: e.target.reference === true, unavailable: e.unavailable, runs: e.runs, failures: e.failures,
      }));
      const setup = [
        `${o.rounds} round(s) × ${entries.length} target(s) × ${o.seconds} s, interleaved (the order rotates each round), after one ${o.warmupSeconds} s warm-up run per target; median of the rounds per target.`,
        o.idleWaitSeconds > 0
          ? `Before each measured run the harness waited (up to ${o.idleWaitSeconds} s) for a 1 s window in which other processes on the machine used less than ${o.busyThresholdPct}% of a core.`
          : 'No waiting for the machine to be quiet before runs (BENCH_IDLE_WAIT=0).',
        `wrk: \`${wrkCommand(wrkOptions(ctx, 'http://127.0.0.1:PORT/', o.seconds, placement.loadCpu)).join(' ')}\``,
        ...group.layout(ctx, placement),
        `Upstreams: ${ctx.upstreams.length} server blocks of one nginx (1 worker) answering a fixed 100-byte body, keep-alive on.`,
        'HAProxy and nginx log nothing (HAProxy: no log directive; nginx: access_log off). Switchyard writes its pino access log to a file and keeps its metrics.',
        'CPU µs/req: the CPU time (user + system) of the proxy\'s whole process tree (HAProxy\'s threads, nginx\'s master and workers, Switchyard\'s primary, workers and threads), read from /proc/PID/stat before and after each measured run, divided by the requests wrk completed. Time another process takes from the proxy lowers its requests/s but not this, so it is the steadier number on a shared machine; it is not immune: a proxy starved of its core serves fewer requests per wake-up and pays more per request, so compare it within one run.',
        'max RSS: VmRSS of the proxy\'s process tree (master + workers), sampled every 200 ms during each measured run.',
      ];
      return { console: throughputConsole(group.spec, rows, notes), markdown: throughputMarkdown(group.spec, rows, notes, setup) };
    },
  };
}

const ONE_CORE_SPEC: TableSpec = {
  title: '## Throughput and latency: one core',
  baselines: ['haproxy', 'nginx'],
  checksTitle: 'Switchyard targets (access logs and metrics on)',
  checks: (s) => {
    const sy = s.get('switchyard');
    if (sy === undefined) return [];
    const checks = switchyardChecks(sy, s.get('haproxy'));
    const policies = s.get('switchyard-policies');
    if (policies !== undefined) checks.push(policiesCheck(sy, policies));
    const bare = s.get('bare-undici');
    if (bare !== undefined) checks.push(...perCoreChecks(sy, bare));
    return checks;
  },
};

export const throughputPhase: Phase = runGroup({
  name: 'throughput',
  targets: ONE_CORE_TARGETS,
  spec: ONE_CORE_SPEC,
  placement: (ctx) => ({ proxyCpu: ctx.options.proxyCpu, loadCpu: ctx.options.loadCpu }),
  layout: (ctx) => [canPin()
    ? `Pinning (taskset): the proxy under test on CPU ${ctx.options.proxyCpu}; wrk **and the upstream nginx** on CPU ${ctx.options.loadCpu} (they share that core). The idle proxies also sit on CPU ${ctx.options.proxyCpu}. Switchyard runs one process (\`--workers 1\`).`
    : 'No CPU pinning (taskset missing, fewer than 2 cores, or BENCH_NO_PIN=1).',
  '"direct" is wrk straight at one upstream, no proxy: the ceiling of the load side.'],
});

const TWO_CORE_SPEC: TableSpec = {
  title: '## Throughput and latency: every core (workers and threads)',
  baselines: ['haproxy-nbthread2', 'switchyard-workers1'],
  checksTitle: 'Workers and threads (ratios from this table)',
  checks: (s) => {
    const checks = [];
    const [w1, w2, h1, h2] = ['switchyard-workers1', 'switchyard-workers2', 'haproxy-nbthread1', 'haproxy-nbthread2'].map((n) => s.get(n));
    checks.push(...ratioChecks('switchyard --workers 2 / --workers 1', w2, w1));
    if (h1 !== undefined && h2 !== undefined) checks.push(rpsRatioCheck('haproxy nbthread 2 / nbthread 1, requests/s', h2, h1, undefined));
    checks.push(...ratioChecks('switchyard --workers 2 / haproxy nbthread 2', w2, h2));
    return checks;
  },
};

export const twoCorePhase: Phase = runGroup({
  name: 'two-core',
  targets: TWO_CORE_TARGETS,
  spec: TWO_CORE_SPEC,
  placement: () => ({ proxyCpu: undefined, loadCpu: undefined }),
  // The upstream nginx was pinned to the load CPU for the one-core table; here it may run anywhere.
  prepare: (ctx) => {
    if (ctx.upstreamPid === undefined || !canPin()) return () => undefined;
    repin(ctx.upstreamPid, allCpus());
    return () => repin(ctx.upstreamPid!, ctx.options.loadCpu);
  },
  layout: () => [
    'Nothing pinned: the proxy, wrk and the upstream nginx all share every core, as they would on a real two-core host. ' +
    'Pinning a two-thread or two-worker proxy to one core would measure nothing, and giving it both would leave wrk no core; so every target of this table, ' +
    'the one-thread and one-worker ones included, runs under the same contention, and the ratios compare like with like. ' +
    'wrk and the upstreams take part of the machine here, so requests/s are lower than "every core the proxy\'s" would give; CPU µs per request is fair either way.',
    'switchyard-workers1 and -workers2 run `--workers 1` and `--workers 2`; haproxy-nbthread1 and -nbthread2 run `nbthread 1` and `nbthread 2`. "direct-unpinned" is wrk straight at one upstream under the same layout.',
  ],
});

/** requests/s and CPU µs per request of `a` against `b` (none when either did not run); `rpsGoal`: the minimum req/s ratio. */
function ratioChecks(what: string, a: Summary | undefined, b: Summary | undefined, rpsGoal?: number): Check[] {
  if (a === undefined || b === undefined) return [];
  return [rpsRatioCheck(`${what}, requests/s`, a, b, rpsGoal), cpuRatioCheck(`${what}, CPU µs per request`, a, b, undefined)];
}

function allCpus(): string {
  return `0-${Math.max(0, cpus().length - 1)}`;
}

const TRACING_SPEC: TableSpec = {
  title: '## Tracing cost (OTLP export to a local sink)',
  baselines: ['switchyard-trace-off'],
  checksTitle: 'Tracing on against tracing off (ratios from this table)',
  checks: (s) => {
    const off = s.get('switchyard-trace-off');
    return [
      ...ratioChecks('ratio 0.1 / tracing off', s.get('switchyard-trace-0.1'), off, TRACING_RATIO_GOAL),
      ...ratioChecks('ratio 1.0 / tracing off', s.get('switchyard-trace-1.0'), off),
      ...ratioChecks('tracing off (propagation only) / build before tracing', off, s.get('switchyard-before')),
    ];
  },
};

export const tracingPhase: Phase = runGroup({
  name: 'tracing',
  targets: TRACING_TARGETS,
  spec: TRACING_SPEC,
  placement: (ctx) => ({ proxyCpu: ctx.options.proxyCpu, loadCpu: ctx.options.loadCpu }),
  layout: (ctx) => [
    canPin()
      ? `Pinning as in the one-core table: Switchyard (one process) on CPU ${ctx.options.proxyCpu}; wrk, the upstream nginx and the span sink on CPU ${ctx.options.loadCpu}.`
      : 'No CPU pinning (taskset missing, fewer than 2 cores, or BENCH_NO_PIN=1).',
    'switchyard-trace-off: no OTEL_* variables (traceparent is still propagated: a new trace id and span id per request). ' +
    'switchyard-trace-0.1 and -1.0: OTEL_EXPORTER_OTLP_ENDPOINT at a local sink (a node server answering 200 to /v1/traces), ' +
    'OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG 0.1 and 1.0; wrk sends no traceparent, so the ratio decides each request. ' +
    'Spans leave in batches (BatchSpanProcessor defaults: every 5 s or 512 spans, queue of 2,048).',
    'switchyard-before (only with BENCH_TRACING_BEFORE_CLI): a build from before tracing, the same configuration: what propagation alone costs.',
  ],
  finish: async () => [`The span sink received ${await closeTraceSink()} spans over the phase.`],
});
