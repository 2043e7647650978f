/**
 * A/B runs against one running target: each round runs every arm once (the order rotates each
 * round, so neither arm always runs first), each arm with its own disturbance around the wrk run
 * (rewriting the services file, writing a log next to it). Ratios are taken within a round.
 */
import { measuredRun, wrkOptions } from './measure.js';
import type { BenchContext } from './phase.js';
import type { RunRecord } from './throughput-report.js';
import { runCpuUs } from './throughput-report.js';
import { exitReason, type RunningTarget } from './target-start.js';
import { runWrk } from './wrk.js';

const MIN_WARMUP_S = 3;

export interface Arm {
  readonly label: string;
  /** Starts the arm's disturbance, just before the measured run. */
  readonly start?: () => Promise<void>;
  /** Right after wrk: stops the disturbance and returns what it counted (rewrites, swaps...). */
  readonly stop?: () => Promise<Record<string, number>>;
}

export interface ArmRun {
  readonly arm: string;
  readonly round: number;
  readonly record: RunRecord;
  readonly extra: Record<string, number>;
}

export interface AbResult {
  readonly runs: ArmRun[];
  readonly failures: string[];
}

/** Warms `target` up, then runs `rounds` rounds of every arm. */
export async function abRounds(ctx: BenchContext, target: RunningTarget, arms: readonly Arm[], loadCpu: string | undefined): Promise<AbResult> {
  const o = ctx.options;
  const runs: ArmRun[] = [];
  const failures: string[] = [];
  // At least 3 s even in a quick run: the first arm must not pay for the JIT's warm-up.
  const warmup = Math.max(o.warmupSeconds, MIN_WARMUP_S);
  ctx.log(`warm-up ${target.name} (${warmup} s)`);
  await runWrk(wrkOptions(ctx, target.url, warmup, loadCpu));
  for (let round = 1; round <= o.rounds; round++) {
    const shift = (round - 1) % arms.length;
    for (const arm of [...arms.slice(shift), ...arms.slice(0, shift)]) {
      if (target.proc !== undefined && !target.proc.isRunning()) {
        failures.push(`round ${round} ${arm.label}: ${await exitReason(target)}`);
        continue;
      }
      try {
        const record = await measuredRun(ctx, target, wrkOptions(ctx, target.url, o.seconds, loadCpu), round, arm.start);
        const extra = (await arm.stop?.()) ?? {};
        runs.push({ arm: arm.label, round, record, extra });
        const r = record.result;
        ctx.log(`round ${round}/${o.rounds} ${target.name} ${arm.label.padEnd(12)} ${Math.round(r.requestsPerSec).toString().padStart(7)} req/s` +
          `  cpu ${(runCpuUs(record) ?? NaN).toFixed(1)} µs/req  errors ${r.non2xx + r.socketErrors}` +
          `${Object.entries(extra).map(([k, v]) => `  ${k} ${v}`).join('')}  other cpu ${record.otherCpuPct.toFixed(0)}%`);
      } catch (err) {
        await arm.stop?.().catch(() => undefined);
        failures.push(`round ${round} ${arm.label}: ${(err as Error).message}`);
        ctx.log(`round ${round} ${target.name} ${arm.label}: FAILED ${(err as Error).message}`);
      }
    }
  }
  return { runs, failures };
}

/** Per round, arm `b` against arm `a`: requests/s ratio and CPU per request ratio. */
export function pairedRatios(runs: readonly ArmRun[], a: string, b: string): { round: number; rps: number; cpu: number | undefined }[] {
  const out: { round: number; rps: number; cpu: number | undefined }[] = [];
  for (const rb of runs.filter((r) => r.arm === b)) {
    const ra = runs.find((r) => r.arm === a && r.round === rb.round);
    if (ra === undefined) continue;
    const ca = runCpuUs(ra.record);
    const cb = runCpuUs(rb.record);
    out.push({ round: rb.round, rps: rb.record.result.requestsPerSec / ra.record.result.requestsPerSec, cpu: ca === undefined || cb === undefined ? undefined : cb / ca });
  }
  return out;
}
