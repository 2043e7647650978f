/**
 * Switchyard as a benchmark target: started from the built CLI (dist/cli.js) with a template and a
 * services file over the shared upstreams, its pino access log on stdout to a file, metrics on.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BenchContext } from './phase.js';
import { freePort, start } from './procs.js';
import { READY_MS, ready, tail, targetDir, type Placement, type StartResult } from './target-start.js';

/**
 * The resilience policy of the `switchyard-policies` target: every per-request policy on (timeouts
 * including a total-timeout timer per request, retries with their budget, outlier ejection, a rate
 * limit and a concurrency limit set far above what the run reaches), so the run measures their cost.
 */
export const BENCH_POLICY = `    policy:
      timeouts: { connectMs: 1s, headersMs: 10s, bodyIdleMs: 10s, totalMs: 30s }
      retries: { count: 2, on: [connect-failure, reset, 502, 503, 504] }
      outlier: { consecutiveFailures: 5, baseEjectionMs: 30s }
      rateLimit: { requestsPerSecond: 10000000, burst: 10000000 }
      concurrency: { max: 100000 }
`;

export function switchyardTemplate(withPolicies = false): string {
  return `routes:
  - name: bench
    match: { path: / }
    to: [ { service: bench } ]
${withPolicies ? BENCH_POLICY : ''}`;
}

export function switchyardFiles(ctx: Pick<BenchContext, 'upstreams'>, withPolicies = false): { template: string; services: string } {
  const services = `services:
  bench:
${ctx.upstreams.map((u) => `    - { id: ${u.id}, address: ${u.host}, port: ${u.port}, tags: [], status: passing }`).join('\n')}
`;
  return { template: switchyardTemplate(withPolicies), services };
}

/** Counts newlines in a file without reading it into memory. */
async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  }
  return n;
}

/** Sums every sample of metrics whose name ends in `requests_total` in a Prometheus text page. */
export function sumRequestCounters(page: string): number | undefined {
  let sum: number | undefined;
  for (const m of page.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*requests_total)(?:\{[^}]*\})? ([0-9.eE+-]+)$/gm)) {
    sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

export function switchyardCli(root: string): string {
  return resolve(root, process.env['BENCH_SWITCHYARD_CLI'] ?? join('dist', 'cli.js'));
}

const helpTexts = new Map<string, string>();

/** Whether `cli --help` lists `flag` (e.g. `--workers`, which older builds lack). Cached per CLI. */
export function cliHasFlag(cli: string, flag: string): boolean {
  let help = helpTexts.get(cli);
  if (help === undefined) {
    const r = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8', timeout: 10_000 });
    help = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    helpTexts.set(cli, help);
  }
  return new RegExp(`(^|\\s)${flag}(\\s|=|$)`, 'm').test(help);
}

export interface SwitchyardTargetOptions {
  readonly policies: boolean;
  /** `--workers N`; 1 is the single process (passed explicitly once the CLI has the flag). */
  readonly workers: number;
  /** Environment changes (undefined removes a variable), e.g. OTEL_* for the tracing phase. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Another build's cli.js (default: switchyardCli, BENCH_SWITCHYARD_CLI or dist/cli.js). */
  readonly cli?: string;
}

/**
 * Start Switchyard from dist/cli.js as target `name`. The services file sits in its own directory
 * (`config/`) and the access log outside it, so the file watcher sees no log writes here (the
 * file-watch phase measures that cost on its own).
 */
export async function startSwitchyard(ctx: BenchContext, name: string, o: SwitchyardTargetOptions, placement: Placement): Promise<StartResult> {
  const cli = o.cli ?? switchyardCli(ctx.root);
  if (!existsSync(cli)) return { ok: false, reason: `${cli} does not exist (run npm run build)` };
  const hasWorkers = cliHasFlag(cli, '--workers');
  if (!hasWorkers && o.workers !== 1) {
    return { ok: false, reason: `skipped: \`node ${cli} --help\` lists no --workers flag (this build runs one process only), so --workers ${o.workers} cannot run` };
  }
  const dir = targetDir(ctx, name);
  const config = join(dir, 'config');
  const templates = join(config, 'templates');
  mkdirSync(templates, { recursive: true });
  const files = switchyardFiles(ctx, o.policies);
  writeFileSync(join(templates, 'bench.yaml'), files.template);
  const servicesFile = join(config, 'services.yaml');
  writeFileSync(servicesFile, files.services);
  const port = await freePort();
  const adminPort = await freePort();
  const accessLog = join(dir, 'access.log');
  const stderr = join(dir, 'stderr.log');
  const argv = [process.execPath, cli, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--templates', templates, '--services', servicesFile,
    ...(hasWorkers ? ['--workers', String(o.workers)] : [])];
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
  delete env['SWITCHYARD_LOG_LEVEL']; // access logs on: the default level (info)
  delete env['SWITCHYARD_WORKERS']; // the flag (or its absence on an old build) decides
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const proc = start(name, argv, { cpu: placement.proxyCpu, stdoutFile: accessLog, stderrFile: stderr, env, cwd: ctx.root });
  const extra = Object.entries(o.env ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v} `).join('');
  ctx.artifacts.push({ title: `${name}: command (stdout, the pino access log, goes to a file)`, text: `NODE_ENV=production ${extra}${proc.argv.join(' ')} > access.log 2> stderr.log`, lang: 'sh' });
  if (!hasWorkers) ctx.artifacts.push({ title: `${name}: note`, text: 'This build has no --workers flag: it runs one process (what --workers 1 means).', lang: 'text' });
  ctx.artifacts.push({ title: `${name}: config/templates/bench.yaml`, text: files.template, lang: 'yaml' });
  ctx.artifacts.push({ title: `${name}: config/services.yaml`, text: files.services, lang: 'yaml' });

  const admin = `http://127.0.0.1:${adminPort}`;
  // Forking workers on a loaded 2-core machine took 9 s once: a wider bound than other proxies get.
  const readyMs = Number(process.env['BENCH_SWITCHYARD_READY_MS'] ?? 2 * READY_MS);
  const readyz = await ready(name, proc, `${admin}/readyz`, stderr, readyMs);
  if (!readyz.ok) {
    const out = tail(accessLog);
    return { ok: false, reason: readyz.reason + (out === '' ? '' : `\nstdout:\n${out}`) };
  }
  // /readyz turns 200 once every worker serves the first table; the first proxied 200 should follow
  // at once, but forking workers on a loaded machine is slow: the same bound as for /readyz.
  const proxied = await ready(name, proc, `http://127.0.0.1:${port}/`, accessLog, readyMs);
  if (!proxied.ok) return proxied;
  const summary = async (): Promise<string[]> => {
    const lines = [`access log (stdout, to a file): ${await countLines(accessLog)} lines written`];
    try {
      const res = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) });
      const total = sumRequestCounters(await res.text());
      lines.push(`GET /metrics: ${res.status}, *requests_total summed: ${total ?? 'no such metric'}`);
    } catch (e) {
      lines.push(`GET /metrics failed: ${(e as Error).message}`);
    }
    return lines;
  };
  return { ok: true, target: { name, url: `http://127.0.0.1:${port}/`, proc, summary, switchyard: { admin, servicesFile, dir }, logFile: stderr } };
}

/** The live table's version from /api/config (the number of swaps so far). */
export async function tableVersion(admin: string): Promise<number> {
  const res = await fetch(`${admin}/api/config`, { signal: AbortSignal.timeout(5000) });
  const body = await res.json() as { tableVersion?: unknown };
  if (typeof body.tableVersion !== 'number') throw new Error(`${admin}/api/config: no numeric tableVersion (status ${res.status})`);
  return body.tableVersion;
}
