/**
 * One measured wrk run against one running target, with the noise discipline every phase shares:
 * wait for a quiet machine first, then sample the target's RSS and CPU time and the CPU other
 * processes took while wrk ran.
 */
import { sampleCpu } from './cpu.js';
import type { BenchContext } from './phase.js';
import { foreignCpu, sampleRss, sleep } from './procs.js';
import type { RunRecord } from './throughput-report.js';
import type { RunningTarget } from './targets.js';
import { runWrk, type WrkOptions } from './wrk.js';

/** Waits (bounded by idleWaitSeconds) for a 1 s window with little CPU used by other processes. */
export async function waitForQuiet(ctx: BenchContext): Promise<void> {
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

/** The wrk options of a measured run: the bench's connections and threads, wrk on `cpu`. */
export function wrkOptions(ctx: BenchContext, url: string, seconds: number, cpu: string | undefined): WrkOptions {
  const o = ctx.options;
  return { url, seconds, connections: o.connections, threads: o.threads, cpu };
}

/**
 * Waits for quiet, then runs wrk against `target` while sampling its process tree (RSS, CPU time)
 * and the machine. `beforeLoad` runs after the quiet wait, just before sampling starts (an A/B
 * phase starts its disturbance there). Throws what wrk throws (the caller records the failure).
 */
export async function measuredRun(ctx: BenchContext, target: RunningTarget, wrk: WrkOptions, round: number, beforeLoad?: () => Promise<void>): Promise<RunRecord> {
  await waitForQuiet(ctx);
  await beforeLoad?.();
  const pid = target.proc?.pid;
  const rss = pid === undefined ? undefined : sampleRss(pid);
  const cpu = pid === undefined ? undefined : sampleCpu(pid);
  const foreign = foreignCpu();
  try {
    const { result } = await runWrk(wrk);
    const cpuSample = cpu?.stop();
    const { otherPct, stealPct } = foreign.stop();
    return { round, result, rssBytes: rss?.stop(), cpu: cpuSample, otherCpuPct: otherPct, stealPct };
  } finally {
    rss?.stop();
  }
}
