/**
 * `npm run bench` — the benchmark orchestrator.
 *
 *   npm run bench                      3 rounds × 10 s per proxy, writes docs/benchmarks.md
 *   npm run bench -- --quick           smoke run (1 round × 2 s), writes bench/out/benchmarks-quick.md
 *   npm run bench -- --only haproxy,switchyard --out /tmp/b.md
 *   npm run bench -- --quick --only swap-cost        (a phase by name: every target of it)
 *   npm run bench -- --only tracing --out /tmp/t.md  (tracing off vs OTLP export at ratio 0.1 and 1.0)
 *   npm run bench -- --only route-match --out /tmp/r.md  (ns per route lookup, 1,000 routes with conditions)
 *
 * Environment: BENCH_DURATION (s per run), BENCH_ROUNDS, BENCH_WARMUP (s), BENCH_CONNECTIONS,
 * BENCH_PROXY_CPU / BENCH_LOAD_CPU (taskset lists, default 0 / 1), BENCH_NO_PIN=1,
 * BENCH_KEEP=1 (keep the temp dir with configs and logs), BENCH_SWITCHYARD_CLI (default dist/cli.js),
 * BENCH_SWITCHYARD_READY_MS (default 20000), BENCH_IDLE_WAIT (s to wait before each run for other
 * processes to quiet down; default 30, 0 with --quick), BENCH_BUSY_PCT (what counts as quiet: other
 * processes under this % of a core; default 20), BENCH_LOG_LINES_PER_S (the file-watch phase's log
 * writer, default 2000).
 *
 * Phases run in order against the same upstreams; to add one (e.g. bench/propagation.ts), export a
 * `Phase` from its module and append it to PHASES below. `--only` takes target names (haproxy,
 * switchyard-workers2, ...) and phase names (throughput, two-core, swap-cost, file-watch, ...): a
 * phase runs when it is named or measures a named target.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Artifact, BenchContext, BenchOptions, Phase, PhaseResult } from './phase.js';
import { canPin, hasCommand, killAllSync, stopAll } from './procs.js';
import { artifactsMarkdown, machineMarkdown } from './report.js';
import { ALL_TARGETS } from './targets.js';
import { consulScalePhase } from './consul-scale.js';
import { costCurvePhase } from './cost-curve.js';
import { fileWatchPhase } from './file-watch.js';
import { propagationPhase } from './propagation.js';
import { routeMatchPhase } from './route-match.js';
import { swapCostPhase } from './swap-cost.js';
import { throughputPhase, tracingPhase, twoCorePhase } from './throughput.js';
import { startUpstreams } from './upstream.js';

const PHASES: readonly Phase[] = [throughputPhase, twoCorePhase, tracingPhase, swapCostPhase, fileWatchPhase, propagationPhase, consulScalePhase, costCurvePhase, routeMatchPhase];

/** Whether `--only` selects the phase: unset, its name, or one of its targets. */
function phaseSelected(phase: Phase, only: readonly string[] | undefined): boolean {
  return only === undefined || only.includes(phase.name) || (phase.targetNames ?? []).some((n) => only.includes(n));
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REQUIRED = ['haproxy', 'nginx', 'wrk'];

function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function envNumber(name: string, fallback: number, zeroOk = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) throw new Error(`${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number, got ${JSON.stringify(raw)}`);
  return n;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench -- [--quick] [--only NAME,...] [--out FILE]\n` +
      `  --only: targets ${ALL_TARGETS.map((t) => t.name).join(',')}\n` +
      `          or phases ${PHASES.map((p) => p.name).join(',')}\n` +
      'env: BENCH_DURATION BENCH_ROUNDS BENCH_WARMUP BENCH_CONNECTIONS BENCH_PROXY_CPU BENCH_LOAD_CPU BENCH_NO_PIN BENCH_KEEP\n' +
      '     BENCH_SWITCHYARD_CLI BENCH_SWITCHYARD_READY_MS BENCH_IDLE_WAIT BENCH_BUSY_PCT BENCH_LOG_LINES_PER_S (see bench/run.ts)\n');
    process.exit(0);
  }
  const only = values.only?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = only?.filter((n) => !ALL_TARGETS.some((t) => t.name === n) && !PHASES.some((p) => p.name === n)) ?? [];
  if (unknown.length > 0) throw new Error(`--only: unknown target(s) or phase(s) ${unknown.join(', ')}`);
  const quick = values.quick;
  return {
    quick,
    seconds: Math.round(envNumber('BENCH_DURATION', quick ? 2 : 10)),
    rounds: Math.round(envNumber('BENCH_ROUNDS', quick ? 1 : 3)),
    warmupSeconds: Math.round(envNumber('BENCH_WARMUP', quick ? 1 : 3)),
    connections: Math.round(envNumber('BENCH_CONNECTIONS', 50)),
    threads: 1,
    idleWaitSeconds: envNumber('BENCH_IDLE_WAIT', quick ? 0 : 30, true),
    busyThresholdPct: envNumber('BENCH_BUSY_PCT', 20),
    proxyCpu: process.env['BENCH_PROXY_CPU'] ?? '0',
    loadCpu: process.env['BENCH_LOAD_CPU'] ?? '1',
    only,
    outFile: resolve(values.out ?? (quick ? join(ROOT, 'bench', 'out', 'benchmarks-quick.md') : join(ROOT, 'docs', 'benchmarks.md'))),
  };
}

/** haproxy, nginx and wrk on PATH, installing them with bench/setup.sh when missing. */
function ensureTools(): void {
  const missing = (): string[] => REQUIRED.filter((c) => !hasCommand(c));
  if (missing().length === 0) return;
  log(`missing ${missing().join(', ')}: running bench/setup.sh`);
  const r = spawnSync('bash', [join(ROOT, 'bench', 'setup.sh')], { stdio: 'inherit', timeout: 15 * 60_000 });
  const still = missing();
  if (r.status !== 0 || still.length > 0) {
    throw new Error(`bench needs ${REQUIRED.join(', ')} on PATH; still missing: ${still.join(', ') || '(none)'} ` +
      `(bench/setup.sh exited ${r.status ?? r.signal}). Install them as root: apt-get install -y haproxy nginx wrk`);
  }
}

function documentHeader(o: BenchOptions): string {
  return [
    '# Benchmarks', '',
    `Generated by \`npm run bench${o.quick ? ' -- --quick' : ''}\` (bench/run.ts) on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}.` +
      (o.quick ? ' **This was a quick smoke run: too short for the numbers to mean much.**' : ''), '',
    'How to run: `npm run bench` (full: 3 interleaved rounds × 10 s per proxy; BENCH_DURATION and BENCH_ROUNDS change that),',
    '`npm run bench -- --quick` (smoke run), `npm run bench -- --only haproxy,switchyard` (targets) or `--only swap-cost` (a phase).',
    'bench/setup.sh installs haproxy, nginx and wrk (and caddy, optional) from Debian when they are missing. Other processes on the',
    'machine (a test suite, a build) skew the numbers: compare ratios from one run, not absolute numbers across runs. CPU µs per request',
    '(the CPU time of the proxy\'s process tree over the requests it served) moves less than requests/s when the machine is shared.', '',
    'Sections: throughput on one core (every proxy pinned to one CPU) and on every core (HAProxy `nbthread 2`, Switchyard',
    '`--workers 2`, unpinned); tracing cost (tracing off against OTLP export at ratio 0.1 and 1.0); swap cost under load (10 swaps/s);',
    'file-watch cost (a log written beside the services file);',
    'Consul propagation (one process and the slowest of two workers); Consul scale (connections to the agent, time to ready and',
    'propagation at 1,000 services); the cost curve (build ms and RSS against the number of endpoints, churn RSS); the routing cost',
    '(ns per route lookup over 1,000 routes, 200 of them with header conditions).', '',
  ].join('\n');
}

let tempDir: string | undefined;

/** Stops every process and removes the temp dir (unless BENCH_KEEP=1). Safe to call twice. */
async function cleanup(): Promise<void> {
  await stopAll();
  removeTempDir();
}

function removeTempDir(): void {
  if (tempDir === undefined) return;
  if (process.env['BENCH_KEEP'] === '1') log(`kept ${tempDir}`);
  else rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

async function main(options: BenchOptions): Promise<number> {
  ensureTools();

  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-'));
  tempDir = dir;
  const artifacts: Artifact[] = [];
  const base = { options, root: ROOT, dir, artifacts, log };
  log(`temp dir ${dir}; ${options.rounds} round(s) × ${options.seconds} s; pinning ${canPin() ? `proxy→CPU ${options.proxyCpu}, wrk+upstreams→CPU ${options.loadCpu}` : 'off'}`);
  // Keep this orchestrator off the proxy's core too.
  if (canPin()) spawnSync('taskset', ['-a', '-p', '-c', options.loadCpu, String(process.pid)], { stdio: 'ignore' });

  try {
    const { upstreams, proc } = await startUpstreams(base);
    const ctx: BenchContext = { ...base, upstreams, upstreamPid: proc.pid };
    const results: PhaseResult[] = [];
    for (const phase of PHASES.filter((p) => phaseSelected(p, options.only))) {
      log(`phase ${phase.name}`);
      const r = await phase.run(ctx);
      results.push(r);
      process.stdout.write(`\n${r.console}\n\n`);
    }
    const doc = [documentHeader(options), machineMarkdown(ctx), ...results.map((r) => r.markdown), artifactsMarkdown(artifacts)].join('\n');
    mkdirSync(dirname(options.outFile), { recursive: true });
    writeFileSync(options.outFile, doc.trimEnd() + '\n');
    for (const f of results.flatMap((r) => r.files ?? [])) {
      if (basename(f.name) !== f.name) throw new Error(`phase file ${JSON.stringify(f.name)}: a bare file name, written beside the report`);
      writeFileSync(join(dirname(options.outFile), f.name), f.content);
      log(`wrote ${f.name} beside the report`);
    }
    log(`wrote ${relative(process.cwd(), options.outFile) || options.outFile}`);
    return 0;
  } finally {
    await cleanup();
  }
}

process.on('exit', () => {
  killAllSync();
  removeTempDir();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
    setTimeout(() => process.exit(130), 5000).unref();
  });
}

// Every run is bounded: each phase's planned time plus generous slack for start-up and shutdown.
const watchdog = (o: BenchOptions): NodeJS.Timeout => {
  const limitS = PHASES.filter((p) => phaseSelected(p, o.only)).reduce((sum, p) => sum + (p.budgetSeconds?.(o) ?? 900), 120);
  return setTimeout(() => {
    log(`watchdog: still running after ${limitS} s; giving up`);
    void cleanup().finally(() => process.exit(124));
  }, limitS * 1000).unref();
};

try {
  const options = parseOptions(process.argv.slice(2));
  watchdog(options);
  process.exitCode = await main(options);
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  await cleanup();
  process.exitCode = 1;
}
