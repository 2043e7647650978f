/**
 * Phase 1: requests/s and latency. Starts every proxy (each pinned to the proxy CPU), checks that
 * each balances over all upstreams, warms each up, then runs wrk against them interleaved for a
 * number of rounds (the order rotates every round) and reports the median per proxy.
 */
import type { BenchContext, Phase, PhaseResult } from './phase.js';
import { canPin, foreignCpu, sampleRss, sleep } from './procs.js';
import { throughputConsole, throughputMarkdown, type Row, type RunRecord } from './report.js';
import { ALL_TARGETS, type RunningTarget, type Target } from './targets.js';
import { runWrk, wrkCommand, type WrkOptions } from './wrk.js';

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

/** Waits (bounded by idleWaitSeconds) for a 1 s window with little CPU used by other processes. */
async function waitForQuiet(ctx: BenchContext): Promise<void> {
  const o = ctx.options;
  if (o.idleWaitSeconds <= 0) return;
  const deadline = Date.now() + o.idleWaitSeconds * 1000;
  let said = false;
  for (;;) {
    const f = foreignCpu();
    await sleep(1000);
    const { otherPct } = f.stop();
    if (otherPct < o.busyThresholdPct) return;
    if (Date.now() >= deadline) {
      ctx.log(`other processes still use ${otherPct.toFixed(0)}% of a core after ${o.idleWaitSeconds} s; measuring anyway`);
      return;
    }
    if (!said) ctx.log(`other processes use ${otherPct.toFixed(0)}% of a core; waiting up to ${o.idleWaitSeconds} s for quiet`);
    said = true;
  }
}

function wrkOptions(ctx: BenchContext, url: string, seconds: number): WrkOptions {
  const o = ctx.options;
  return { url, seconds, connections: o.connections, threads: o.threads, cpu: o.loadCpu };
}

export const throughputPhase: Phase = {
  name: 'throughput',
  run: async (ctx: BenchContext): Promise<PhaseResult> => {
    const o = ctx.options;
    const targets = ALL_TARGETS.filter((t) => o.only === undefined || o.only.includes(t.name));
    const entries: Entry[] = targets.map((target) => ({ target, running: undefined, unavailable: undefined, runs: [], failures: [] }));
    const notes: string[] = [];

    try {
      for (const e of entries) {
        ctx.log(`starting ${e.target.name}`);
        try {
          const r = await e.target.start(ctx);
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

      const live = (): Entry[] => entries.filter((e) => e.running !== undefined);
      for (const e of live()) {
        ctx.log(`warm-up ${e.target.name} (${o.warmupSeconds} s)`);
        try {
          await runWrk(wrkOptions(ctx, e.running!.url, o.warmupSeconds));
        } catch (err) {
          e.failures.push(`warm-up: ${(err as Error).message}`);
        }
      }

      for (let round = 1; round <= o.rounds; round++) {
        const order = live();
        const shift = (round - 1) % Math.max(order.length, 1);
        for (const e of [...order.slice(shift), ...order.slice(0, shift)]) {
          const t = e.running!;
          if (t.proc !== undefined && !t.proc.isRunning()) {
            e.failures.push(`round ${round}: process had exited (${await t.proc.exited})`);
            continue;
          }
          await waitForQuiet(ctx);
          const rss = t.proc === undefined ? undefined : sampleRss(t.proc.pid);
          const foreign = foreignCpu();
          try {
            const { result } = await runWrk(wrkOptions(ctx, t.url, o.seconds));
            const rssBytes = rss?.stop();
            const { otherPct, stealPct } = foreign.stop();
            e.runs.push({ round, result, rssBytes, otherCpuPct: otherPct, stealPct });
            const errs = result.non2xx + result.socketErrors;
            ctx.log(`round ${round}/${o.rounds} ${t.name.padEnd(12)} ${Math.round(result.requestsPerSec).toString().padStart(7)} req/s  p50 ${result.p50Ms.toFixed(3)} ms  p99 ${result.p99Ms.toFixed(3)} ms` +
              `${rssBytes === undefined ? '' : `  rss ${(rssBytes / 1048576).toFixed(1)} MiB`}  other cpu ${otherPct.toFixed(0)}%${errs > 0 ? `  ERRORS ${errs}` : ''}`);
          } catch (err) {
            rss?.stop();
            e.failures.push(`round ${round}: ${(err as Error).message}`);
            ctx.log(`round ${round} ${t.name}: FAILED ${(err as Error).message}`);
          }
        }
      }

      for (const e of entries) {
        if (e.running?.summary === undefined) continue;
        for (const line of await e.running.summary()) notes.push(`${e.target.name} ${line}`);
      }
    } finally {
      await Promise.all(entries.map((e) => e.running?.proc?.stop()));
    }

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
    const pinned = canPin();
    const setup = [
      `${o.rounds} round(s) × ${entries.length} target(s) × ${o.seconds} s, interleaved (the order rotates each round), after one ${o.warmupSeconds} s warm-up run per target; median of the rounds per target.`,
      o.idleWaitSeconds > 0
        ? `Before each measured run the harness waited (up to ${o.idleWaitSeconds} s) for a 1 s window in which other processes on the machine used less than ${o.busyThresholdPct}% of a core.`
        : 'No waiting for the machine to be quiet before runs (BENCH_IDLE_WAIT=0).',
      `wrk: \`${wrkCommand(wrkOptions(ctx, 'http://127.0.0.1:PORT/', o.seconds)).join(' ')}\``,
      pinned
        ? `Pinning (taskset): the proxy under test on CPU ${o.proxyCpu}; wrk **and the upstream nginx** on CPU ${o.loadCpu} (they share that core). The idle proxies also sit on CPU ${o.proxyCpu}.`
        : 'No CPU pinning (taskset missing, fewer than 2 cores, or BENCH_NO_PIN=1).',
      `Upstreams: ${ctx.upstreams.length} server blocks of one nginx (1 worker) answering a fixed 100-byte body, keep-alive on.`,
      'HAProxy and nginx log nothing (HAProxy: no log directive; nginx: access_log off). Switchyard writes its pino access log to a file and keeps its metrics.',
      '"direct" is wrk straight at one upstream, no proxy: the ceiling of the load side.',
      'max RSS: VmRSS of the proxy\'s process tree (master + workers), sampled every 200 ms during each measured run.',
    ];
    return { console: throughputConsole(rows, notes), markdown: throughputMarkdown(rows, notes, setup) };
  },
};
