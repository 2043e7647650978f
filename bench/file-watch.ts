/**
 * File-watch cost (issue 8 §3): Switchyard watches the directory of its services file; a log file
 * written in that directory (`switchyard --services ./services.yaml > ./switchyard.log`) must cost
 * it nothing. Another process (bench/log-writer.ts, on the load CPU) appends log lines at a fixed
 * rate during each measured run: "beside" writes them into the services file's directory,
 * "elsewhere" into a directory nobody watches. The writer runs in both arms, so the only
 * difference is where its writes land; the phase reports Switchyard's CPU µs per request in each,
 * under load, and its CPU time per second with no traffic at all.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { abRounds, pairedRatios, type Arm, type ArmRun } from './ab.js';
import { sampleCpu } from './cpu.js';
import { LINE_BYTES } from './log-writer.js';
import type { BenchContext, Phase, PhaseResult } from './phase.js';
import { sleep, start, type Managed } from './procs.js';
import { checksMarkdown, checksText, fmtPct, fmtRps, fmtUs, markdownTable, median, textTable, type Check } from './report.js';
import { startSwitchyard } from './switchyard-target.js';
import type { RunningTarget } from './target-start.js';
import { runCpuUs } from './throughput-report.js';

/** Lines per second the writer appends (BENCH_LOG_LINES_PER_S). */
const RATE = Number(process.env['BENCH_LOG_LINES_PER_S'] ?? 2000);
/** CPU per request beside / elsewhere: "costs nothing", within what this measure's noise allows. */
export const WATCH_CPU_RATIO = 1.02;

const size = (file: string): number => {
  try { return statSync(file).size; } catch { return 0; }
};

interface Writer { readonly stop: () => Promise<number> }

/** Starts the writer on the load CPU and waits (up to 5 s) for its first lines; stop returns lines written. */
async function startWriter(ctx: BenchContext, file: string, seconds: number): Promise<Writer> {
  const before = size(file);
  const proc: Managed = start('log-writer', [process.execPath, '--import', 'tsx', join(ctx.root, 'bench', 'log-writer.ts'), '--file', file, '--rate', String(RATE), '--seconds', String(seconds)],
    { cpu: ctx.options.loadCpu, cwd: ctx.root, stderrFile: join(dirname(file), 'log-writer.err') });
  const deadline = Date.now() + 5000;
  while (size(file) === before && Date.now() < deadline && proc.isRunning()) await sleep(20);
  if (size(file) === before) {
    await proc.stop();
    throw new Error(`log-writer wrote nothing to ${file} within 5 s`);
  }
  return { stop: async () => { await proc.stop(); return Math.round((size(file) - before) / LINE_BYTES); } };
}

function writerArm(ctx: BenchContext, label: string, file: string): Arm {
  let writer: Writer | undefined;
  return {
    label,
    start: async () => { writer = await startWriter(ctx, file, ctx.options.seconds + 20); },
    stop: async () => {
      const lines = (await writer?.stop()) ?? 0;
      writer = undefined;
      return { 'log lines': lines };
    },
  };
}

interface IdleRun { readonly arm: string; readonly cpuMsPerS: number; readonly lines: number }

/** With no traffic: the proxy's CPU time while the writer writes beside vs elsewhere. */
async function idleRuns(ctx: BenchContext, t: RunningTarget, files: Record<string, string>): Promise<IdleRun[]> {
  const out: IdleRun[] = [];
  const seconds = ctx.options.quick ? 2 : 5;
  const labels = Object.keys(files);
  for (let round = 1; round <= ctx.options.rounds; round++) {
    for (const arm of round % 2 === 1 ? labels : [...labels].reverse()) {
      const w = await startWriter(ctx, files[arm]!, seconds + 10);
      const cpu = sampleCpu(t.proc!.pid);
      await sleep(seconds * 1000);
      const c = cpu.stop();
      out.push({ arm, cpuMsPerS: (c.cpuSeconds * 1000) / c.wallSeconds, lines: await w.stop() });
    }
  }
  return out;
}

export function fileWatchChecks(runs: readonly ArmRun[], idle: readonly IdleRun[]): Check[] {
  const ratios = pairedRatios(runs, 'elsewhere', 'beside');
  const cpu = ratios.map((r) => r.cpu).filter((c): c is number => c !== undefined);
  const us = (arm: string): number => median(runs.filter((r) => r.arm === arm).map((r) => runCpuUs(r.record)).filter((c): c is number => c !== undefined));
  const idleMs = (arm: string): number => median(idle.filter((r) => r.arm === arm).map((r) => r.cpuMsPerS));
  const cpuRatio = median(cpu);
  return [
    {
      what: 'CPU µs per request, log beside / elsewhere (median of rounds)',
      value: cpu.length === 0 ? 'not measured' : `${cpuRatio.toFixed(3)}: ${fmtUs(us('beside'))} vs ${fmtUs(us('elsewhere'))} (+${fmtUs(us('beside') - us('elsewhere'))})`,
      limit: `≤ ${WATCH_CPU_RATIO}`, pass: cpu.length === 0 ? undefined : cpuRatio <= WATCH_CPU_RATIO,
    },
    { what: 'requests/s, log beside / elsewhere (median)', value: ratios.length === 0 ? 'no pair' : median(ratios.map((r) => r.rps)).toFixed(3), limit: 'no goal', pass: undefined, info: true },
    {
      what: 'idle (no traffic): Switchyard CPU ms per s, beside vs elsewhere',
      value: idle.length === 0 ? 'not measured' : `${idleMs('beside').toFixed(1)} vs ${idleMs('elsewhere').toFixed(1)} ms/s`,
      limit: 'no goal', pass: undefined, info: true,
    },
  ];
}

const RUN_HEAD = ['round', 'log', 'req/s', 'CPU µs/req', 'proxy CPU', 'errors', 'log lines', 'other CPU'];

export const fileWatchPhase: Phase = {
  name: 'file-watch',
  budgetSeconds: (o) => o.warmupSeconds + 60 + o.rounds * 2 * (o.seconds + o.idleWaitSeconds + 30),
  run: async (ctx): Promise<PhaseResult> => {
    const o = ctx.options;
    const placement = { proxyCpu: o.proxyCpu, loadCpu: o.loadCpu };
    ctx.log('starting file-watch switchyard');
    const started = await startSwitchyard(ctx, 'file-watch', { policies: false, workers: 1 }, placement);
    const intro = ['## File-watch cost', '',
      `- Switchyard (\`--workers 1\`, pinned to the proxy CPU) runs with \`--services DIR/services.yaml\`. During each measured run another process (bench/log-writer.ts, on the load CPU) appends ${RATE} log lines a second (${LINE_BYTES} bytes, one write each): "beside" to DIR/switchyard.log, next to the services file; "elsewhere" to a file in a directory nobody watches. The arms alternate within each round.`,
      `- Goal (issue 8 §3): a log written beside the services file costs nothing: CPU µs per request beside ≤ ${WATCH_CPU_RATIO} × elsewhere (2% is about this measure's noise).`,
      `- Idle: with no traffic, Switchyard's CPU time per second while the writer writes (${o.quick ? 2 : 5} s per arm and round).`, ''];
    if (!started.ok) return { console: `file-watch: not available — ${started.reason.split('\n')[0]}`, markdown: [...intro, '```text', started.reason, '```', ''].join('\n') };
    const t = started.target;
    const beside = join(dirname(t.switchyard!.servicesFile), 'switchyard.log');
    const elsewhereDir = join(t.switchyard!.dir, 'elsewhere');
    mkdirSync(elsewhereDir, { recursive: true });
    const files = { beside, elsewhere: join(elsewhereDir, 'switchyard.log') };
    let runs: ArmRun[] = [];
    let failures: string[] = [];
    let idle: IdleRun[] = [];
    try {
      ({ runs, failures } = await abRounds(ctx, t, [writerArm(ctx, 'elsewhere', files.elsewhere), writerArm(ctx, 'beside', files.beside)], placement.loadCpu));
      idle = await idleRuns(ctx, t, files);
    } catch (err) {
      failures.push((err as Error).message);
    } finally {
      await t.proc?.stop();
    }
    const checks = fileWatchChecks(runs, idle);
    const rows = runs.map((r) => {
      const cpu = r.record.cpu;
      return [String(r.round), r.arm, fmtRps(r.record.result.requestsPerSec), fmtUs(runCpuUs(r.record)),
        fmtPct(cpu === undefined ? undefined : (cpu.cpuSeconds / cpu.wallSeconds) * 100), String(r.record.result.non2xx + r.record.result.socketErrors),
        String(r.extra['log lines'] ?? '—'), `${r.record.otherCpuPct.toFixed(0)}%`];
    });
    const idleRows = idle.map((r) => [r.arm, `${r.cpuMsPerS.toFixed(1)} ms/s`, String(r.lines)]);
    const con = ['File-watch cost', checksText(checks), '', textTable(RUN_HEAD, rows), '', textTable(['idle, log', 'Switchyard CPU', 'log lines'], idleRows), ...failures.map((f) => `! ${f}`)];
    const md = [...intro, checksMarkdown(checks), '', '#### Every run', '', markdownTable(RUN_HEAD, rows), '', markdownTable(['idle, log', 'Switchyard CPU', 'log lines'], idleRows), '',
      ...failures.map((f) => `- failed: ${f}`), ''];
    return { console: con.join('\n'), markdown: md.join('\n') };
  },
};
