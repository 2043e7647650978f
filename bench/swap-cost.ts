/**
 * Swap cost under load (issue 8 §3): wrk against Switchyard while its services file is rewritten
 * 10 times a second, each rewrite a real change (bench/services-churn.ts), against the same
 * process with no rewrites, in the same round. Swaps are counted from /api/config's tableVersion.
 * Goals: requests/s with swaps ≥ 0.95 × without, 0 errors; the swaps must really happen (≥ 90%
 * of the rewrites, else the run measured coalescing, not swapping).
 */
import { abRounds, pairedRatios, type Arm, type ArmRun } from './ab.js';
import type { BenchContext, Phase, PhaseResult } from './phase.js';
import { sleep } from './procs.js';
import { checksMarkdown, checksText, fmtPct, fmtRps, fmtUs, markdownTable, median, textTable, type Check } from './report.js';
import { startChurn } from './services-churn.js';
import { cliHasFlag, startSwitchyard, switchyardCli, tableVersion } from './switchyard-target.js';
import type { Placement } from './target-start.js';
import { runCpuUs } from './throughput-report.js';

export const SWAPS_PER_SECOND = 10;
export const SWAP_RPS_RATIO = 0.95;

/** Waits until tableVersion has not moved for 500 ms (bounded by 5 s): trailing swaps are over. */
async function settle(admin: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let last = await tableVersion(admin);
  let stableSince = Date.now();
  while (Date.now() < deadline && Date.now() - stableSince < 500) {
    await sleep(100);
    const v = await tableVersion(admin);
    if (v !== last) { last = v; stableSince = Date.now(); }
  }
}

function arms(admin: string, file: string, ctx: BenchContext): Arm[] {
  let v0 = 0;
  let churn: ReturnType<typeof startChurn> | undefined;
  return [
    {
      label: 'steady',
      start: async () => { v0 = await tableVersion(admin); },
      stop: async () => ({ swaps: (await tableVersion(admin)) - v0 }),
    },
    {
      label: 'swapping',
      start: async () => {
        v0 = await tableVersion(admin);
        churn = startChurn(file, ctx.upstreams, SWAPS_PER_SECOND);
      },
      stop: async () => {
        const swaps = (await tableVersion(admin)) - v0;
        const rewrites = churn?.stop() ?? 0;
        churn = undefined;
        await settle(admin);
        return { rewrites, swaps };
      },
    },
  ];
}

interface Variant { readonly name: string; readonly workers: number; readonly placement: (ctx: BenchContext) => Placement; readonly note: string }

const VARIANTS: readonly Variant[] = [
  { name: 'switchyard', workers: 1, placement: (ctx) => ({ proxyCpu: ctx.options.proxyCpu, loadCpu: ctx.options.loadCpu }), note: 'one process (`--workers 1`) pinned to the proxy CPU, wrk and the upstreams on the other (as in the one-core table)' },
  { name: 'switchyard-workers2', workers: 2, placement: () => ({ proxyCpu: undefined, loadCpu: undefined }), note: '`--workers 2`, nothing pinned (as in the every-core table): the primary builds, the workers swap' },
];

interface VariantResult { readonly variant: Variant; readonly runs: ArmRun[]; readonly failures: string[]; readonly unavailable?: string }

export function swapChecks(runs: readonly ArmRun[], seconds: number): Check[] {
  const ratios = pairedRatios(runs, 'steady', 'swapping');
  const swapping = runs.filter((r) => r.arm === 'swapping');
  const errors = swapping.reduce((n, r) => n + r.record.result.non2xx + r.record.result.socketErrors, 0);
  const swaps = swapping.reduce((n, r) => n + (r.extra['swaps'] ?? 0), 0);
  const rewrites = swapping.reduce((n, r) => n + (r.extra['rewrites'] ?? 0), 0);
  const rps = median(ratios.map((r) => r.rps));
  const cpu = ratios.map((r) => r.cpu).filter((c): c is number => c !== undefined);
  const swapRate = swaps / Math.max(1, swapping.length * seconds);
  return [
    { what: 'requests/s with 10 swaps/s / without (median of rounds)', value: ratios.length === 0 ? 'no pair' : `${rps.toFixed(3)} (${ratios.map((r) => r.rps.toFixed(3)).join(', ')})`, limit: `≥ ${SWAP_RPS_RATIO}`, pass: ratios.length === 0 ? undefined : rps >= SWAP_RPS_RATIO },
    { what: 'errors during swapping runs (non-2xx + socket)', value: String(errors), limit: '0', pass: swapping.length === 0 ? undefined : errors === 0 },
    { what: 'swaps performed (tableVersion) / rewrites', value: `${swaps} / ${rewrites} = ${swapRate.toFixed(1)} swaps/s`, limit: `≥ ${(0.9 * SWAPS_PER_SECOND).toFixed(0)} swaps/s`, pass: swapping.length === 0 ? undefined : swapRate >= 0.9 * SWAPS_PER_SECOND },
    { what: 'CPU µs per request with swaps / without (median)', value: cpu.length === 0 ? 'not measured' : median(cpu).toFixed(3), limit: 'no goal', pass: undefined, info: true },
  ];
}

const RUN_HEAD = ['variant', 'round', 'arm', 'req/s', 'p99', 'CPU µs/req', 'proxy CPU', 'errors', 'rewrites', 'swaps', 'other CPU'];

function runRows(results: readonly VariantResult[]): string[][] {
  return results.flatMap((v) => v.runs.map((r) => {
    const cpu = r.record.cpu;
    return [v.variant.name, String(r.round), r.arm, fmtRps(r.record.result.requestsPerSec), `${r.record.result.p99Ms.toFixed(2)} ms`, fmtUs(runCpuUs(r.record)),
      fmtPct(cpu === undefined ? undefined : (cpu.cpuSeconds / cpu.wallSeconds) * 100), String(r.record.result.non2xx + r.record.result.socketErrors),
      r.extra['rewrites'] === undefined ? '—' : String(r.extra['rewrites']), String(r.extra['swaps'] ?? '—'), `${r.record.otherCpuPct.toFixed(0)}%`];
  }));
}

async function runVariant(ctx: BenchContext, variant: Variant): Promise<VariantResult> {
  if (variant.workers > 1 && !cliHasFlag(switchyardCli(ctx.root), '--workers')) {
    return { variant, runs: [], failures: [], unavailable: 'skipped: the built CLI has no --workers flag yet' };
  }
  const placement = variant.placement(ctx);
  ctx.log(`starting swap-cost ${variant.name}`);
  const started = await startSwitchyard(ctx, `swap-cost-${variant.name}`, { policies: false, workers: variant.workers }, placement);
  if (!started.ok) return { variant, runs: [], failures: [], unavailable: started.reason };
  const t = started.target;
  try {
    const { admin, servicesFile } = t.switchyard!;
    const r = await abRounds(ctx, t, arms(admin, servicesFile, ctx), placement.loadCpu);
    return { variant, ...r };
  } finally {
    await t.proc?.stop();
  }
}

export const swapCostPhase: Phase = {
  name: 'swap-cost',
  budgetSeconds: (o) => VARIANTS.length * (o.warmupSeconds + 40 + o.rounds * 2 * (o.seconds + o.idleWaitSeconds + 25)),
  run: async (ctx): Promise<PhaseResult> => {
    const results: VariantResult[] = [];
    for (const v of VARIANTS) results.push(await runVariant(ctx, v));
    const o = ctx.options;
    const con: string[] = ['Swap cost under load'];
    const md: string[] = ['## Swap cost under load', '',
      `- Each round runs wrk (${o.seconds} s) twice against the same Switchyard process, interleaved (the order alternates each round): "steady" with no change, "swapping" while the services file is rewritten ${SWAPS_PER_SECOND} times a second (write a temporary file, rename it over services.yaml).`,
      '- Every rewrite is a real change, cycling: raise the first instance\'s weight, add an instance (a new id on the second upstream\'s port), put the weight back, remove the added instance. Swaps are counted as the change of /api/config\'s tableVersion over the run.',
      `- Goals (issue 8 §3): requests/s with swaps ≥ ${SWAP_RPS_RATIO} × without, 0 errors. The swap count shows the run really swapped about ${SWAPS_PER_SECOND} times a second (the watcher may coalesce rewrites that land close together).`,
      ...VARIANTS.map((v) => `- ${v.name}: ${v.note}.`), ''];
    for (const r of results) {
      if (r.unavailable !== undefined) {
        con.push(`${r.variant.name}: not available — ${r.unavailable.split('\n')[0]}`);
        md.push(`**${r.variant.name}: not available:**`, '', '```text', r.unavailable, '```', '');
        continue;
      }
      const checks = swapChecks(r.runs, o.seconds);
      con.push(`${r.variant.name}:`, checksText(checks));
      md.push(`### ${r.variant.name}`, '', checksMarkdown(checks), '');
      for (const f of r.failures) { con.push(`! ${r.variant.name}: ${f}`); md.push(`- failed: ${f}`); }
    }
    const rows = runRows(results);
    if (rows.length > 0) {
      con.push('', textTable(RUN_HEAD, rows));
      md.push('#### Every run', '', markdownTable(RUN_HEAD, rows), '');
    }
    return { console: con.join('\n'), markdown: md.join('\n') };
  },
};
