/**
 * Consul scale benchmark (issue 8 §2): Switchyard against a Consul holding 1,000 services × 10
 * instances, compared with 10 services in the same run.
 *
 *   node --import tsx bench/consul-scale.ts [--services 1000] [--instances 10] [--changes 50]
 *
 * Set-up, all on 127.0.0.1: the Consul API test server (test/support/consul, which enforces the
 * agent's per-client connection limit), in a child process of its own (bench/consul-scale-server.ts:
 * its answers, megabytes of JSON for the health state, must not stall the probes, as a real agent's
 * would not), filled with N services of M instances (every one tagged
 * `public`, so that an `each` template routes, hence watches, all of them) plus three probe
 * instances with real upstreams; Switchyard as a child process (the built dist/cli.js in `npm run
 * bench`; `node --import tsx src/cli.ts` standalone, or BENCH_SWITCHYARD_CLI) with
 * `--consul-wait 5s`. Consul changes are made by the server process itself (over IPC, no HTTP), so
 * Switchyard is the server's only HTTP client and its per-client connection peak is Switchyard's;
 * a change's latency runs from the server's acknowledgement (sent after the write) to the probe.
 *
 * Reports, per catalog size:
 * - the most connections Switchyard held to the agent at once (the server's per-client peak) and
 *   connections refused by the 200 limit;
 * - time from spawn to the first `/readyz` 200 (polled every 5 ms; goal < 3 s at 1,000 × 10);
 * - propagation of KV weight flips and health check flips to traffic, p50 / p99 / max over
 *   `--changes` changes (as bench/propagation.ts: the time from the write to the first request the
 *   new table routes; goal p99 < 100 ms, the same as with 10 services);
 * - idle load: requests Switchyard sent Consul over three blocking waits with nothing changing,
 *   per minute, against what the four blocking watches require (4 per wait).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, request } from 'undici';
import type { ScaleServerMessage, ScaleServerStats } from './consul-scale-server.js';
import type { Phase } from './phase.js';
import { freePort, start, stopAll, type Managed } from './procs.js';
import { PROPAGATION_ROUTES } from './propagation.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WAIT_S = 5;
const CHANGE_TIMEOUT_MS = 5_000;
const READY_TIMEOUT_MS = 60_000;

const TEMPLATES = `${PROPAGATION_ROUTES}  - name: "{{service}}"
    each: { tag: public }
    match: { host: "{{service}}.localhost" }
    to: [ { service: "{{service}}" } ]
`;

export interface Percentiles { readonly n: number; readonly p50: number; readonly p99: number; readonly max: number }

export interface ScaleRun {
  readonly services: number;
  readonly instances: number;
  readonly readyMs: number;
  readonly peakConnections: number;
  readonly refusedConnections: number;
  readonly kv: Percentiles;
  readonly health: Percentiles;
  readonly timedOut: number;
  /** Requests per minute while idle, and what the blocking waits require (4 watches per wait). */
  readonly idlePerMinute: number;
  readonly idleRequiredPerMinute: number;
  /** Idle requests that were not a blocking re-arm of a watch (service reads, probes). */
  readonly idleOther: number;
  /** /v1/health/service reads from start to ready. */
  readonly readsToReady: number;
}

export interface ScaleOptions {
  readonly services: number;
  readonly instances: number;
  readonly changes: number;
  readonly dir: string;
  readonly cli: readonly string[];
  readonly log: (message: string) => void;
}

function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
  return { n: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

async function namedUpstream(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'x-upstream': name, 'content-length': String(name.length) }).end(name));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** The test server process and a request/acknowledge call over IPC. */
async function consulProcess(): Promise<{ child: ChildProcess; call: <T>(message: ScaleServerMessage) => Promise<T> }> {
  const child = fork(join(ROOT, 'bench', 'consul-scale-server.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, (reply: unknown) => void>();
  child.on('message', (m: { id: number; reply: unknown }) => {
    waiting.get(m.id)?.(m.reply);
    waiting.delete(m.id);
  });
  let next = 1;
  await new Promise<void>((ready, failed) => {
    waiting.set(0, () => ready());
    child.once('exit', (code) => failed(new Error(`the Consul test server process exited (${code})`)));
  });
  const call = <T>(message: ScaleServerMessage): Promise<T> => new Promise((resolveCall) => {
    const id = next++;
    waiting.set(id, (reply) => resolveCall(reply as T));
    child.send({ ...message, id });
  });
  return { child, call };
}

export async function measureScale(o: ScaleOptions): Promise<ScaleRun> {
  const consul = await consulProcess();
  const upstreams: Server[] = [];
  let child: Managed | undefined;
  let probe: Client | undefined;
  let client: Client | undefined;
  try {
    const probes: Array<{ service: string; tag: string; port: number }> = [];
    for (const [service, tag] of [['kv', 'a'], ['kv', 'b'], ['health', 'a']] as const) {
      const u = await namedUpstream(`${service}-${tag}`);
      upstreams.push(u.server);
      probes.push({ service, tag, port: u.port });
    }
    const address = await consul.call<string>({ op: 'setup', services: o.services, instances: o.instances, probes });
    await consul.call({ op: 'kvPut', key: 'switchyard/routes/kv/weights', value: '{"kv:a":1,"kv:b":0}' });
    const dir = join(o.dir, `consul-${o.services}`);
    mkdirSync(join(dir, 'templates'), { recursive: true });
    writeFileSync(join(dir, 'templates', 'routes.yaml'), TEMPLATES);
    const [listen, admin] = [await freePort(), await freePort()];
    const argv = [...o.cli, '--listen', `127.0.0.1:${listen}`, '--admin', `127.0.0.1:${admin}`, '--templates', join(dir, 'templates'),
      '--consul', address, '--consul-wait', `${WAIT_S}s`,
      // BENCH_LOG_LEVEL=info (with BENCH_KEEP=1) keeps the timestamps of start-up's steps in switchyard.log.
      '--log-level', process.env['BENCH_LOG_LEVEL'] ?? 'warn'];
    o.log(`${o.services} services × ${o.instances}: starting ${argv.join(' ')}`);
    probe = new Client(`http://127.0.0.1:${admin}`, { keepAliveTimeout: 30_000 });
    const spawned = performance.now();
    child = start('switchyard', argv, { cwd: ROOT, stdoutFile: join(dir, 'switchyard.log'), stderrFile: join(dir, 'switchyard.err'), env: { ...process.env, CONSUL_HTTP_TOKEN: '' } });
    let readyMs = Number.NaN;
    while (performance.now() - spawned < READY_TIMEOUT_MS && child.isRunning()) {
      try {
        const res = await request(`http://127.0.0.1:${admin}/readyz`, { dispatcher: probe, headersTimeout: 2_000, bodyTimeout: 2_000 });
        await res.body.text();
        if (res.statusCode === 200) {
          readyMs = performance.now() - spawned;
          break;
        }
      } catch { /* not listening yet */ }
      await sleep(5);
    }
    if (!Number.isFinite(readyMs)) throw new Error(`switchyard not ready within ${READY_TIMEOUT_MS} ms; see ${dir}/switchyard.err`);
    const readsToReady = (await consul.call<ScaleServerStats>({ op: 'stats' })).serviceReads;
    o.log(`ready in ${readyMs.toFixed(0)} ms after ${readsToReady} service reads`);

    client = new Client(`http://127.0.0.1:${listen}`, { keepAliveTimeout: 30_000 });
    const c = client;
    const answer = async (path: string): Promise<string> => {
      const res = await request(`http://127.0.0.1:${listen}${path}`, { dispatcher: c });
      await res.body.text();
      const name = res.headers['x-upstream'];
      return res.statusCode === 200 && typeof name === 'string' ? name : `status ${res.statusCode}`;
    };
    const until = async (path: string, expected: string, deadline: number): Promise<number | undefined> => {
      while (performance.now() < deadline) if (await answer(path) === expected) return performance.now();
      return undefined;
    };
    for (const [path, expected] of [['/kv', 'kv-a'], ['/health', 'health-a']] as const) {
      if (await until(path, expected, performance.now() + 20_000) === undefined) throw new Error(`${path} never answered from ${expected}`);
    }

    const state = { kv: 'a', health: 'a' };
    const latencies = { kv: [] as number[], health: [] as number[] };
    let timedOut = 0;
    let seed = 20_261_202;
    for (let i = 0; i < o.changes + 4; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      await sleep(20 + Math.floor((seed / 2 ** 31) * 60));
      const kind = i % 2 === 0 ? 'kv' : 'health';
      const next = state[kind] === 'a' ? 'b' : 'a';
      if (kind === 'kv') await consul.call({ op: 'kvPut', key: 'switchyard/routes/kv/weights', value: next === 'a' ? '{"kv:a":1,"kv:b":0}' : '{"kv:a":0,"kv:b":1}' });
      else await consul.call({ op: 'setCheck', check: 'service:health-a', status: next === 'a' ? 'passing' : 'critical' });
      const written = performance.now();
      const expected = kind === 'kv' ? `kv-${next}` : next === 'a' ? 'health-a' : 'status 503';
      const seen = await until(`/${kind}`, expected, written + CHANGE_TIMEOUT_MS);
      state[kind] = next;
      if (i < 4) continue;
      if (seen === undefined) timedOut += 1;
      else latencies[kind].push(seen - written);
    }

    // Idle: three whole waits with nothing changing; every request counted.
    await sleep(500);
    await consul.call({ op: 'mark' });
    const windowMs = 3 * WAIT_S * 1000;
    await sleep(windowMs);
    const stats = await consul.call<ScaleServerStats>({ op: 'stats' });
    const idle = stats.sinceMark;
    const watches = new Set(['/v1/catalog/services', '/v1/health/state/any', '/v1/catalog/nodes', '/v1/kv/switchyard/']);
    return {
      services: o.services,
      instances: o.instances,
      readyMs,
      peakConnections: stats.peakConnections,
      refusedConnections: stats.refusedConnections,
      kv: percentiles(latencies.kv),
      health: percentiles(latencies.health),
      timedOut,
      idlePerMinute: (idle.length * 60_000) / windowMs,
      idleRequiredPerMinute: (watches.size * 60) / WAIT_S,
      idleOther: idle.filter((path) => !watches.has(path)).length,
      readsToReady,
    };
  } finally {
    await child?.stop();
    await client?.close();
    await probe?.close();
    for (const s of upstreams) {
      s.closeAllConnections();
      await new Promise<void>((done) => s.close(() => done()));
    }
    consul.child.disconnect();
    await new Promise((done) => (consul.child.exitCode === null ? consul.child.once('exit', done) : done(undefined)));
  }
}

const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : 'n/a');

export function scaleMarkdown(runs: readonly ScaleRun[], cli: string): string {
  const big = runs[runs.length - 1];
  const small = runs[0];
  const lines = [
    '## Consul scale',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}: \`${cli}\` against the Consul API test`,
    `server (per-client limit 200), \`--consul-wait ${WAIT_S}s\`; changes written in-process, propagation seen through the proxy.`,
    '',
    '| catalog | ready | max connections | refused | service reads to ready | KV p50 / p99 / max | health p50 / p99 / max | idle requests/min (required) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map((r) => `| ${r.services} × ${r.instances} | ${ms(r.readyMs)} | ${r.peakConnections} | ${r.refusedConnections} | ${r.readsToReady} | ${ms(r.kv.p50)} / ${ms(r.kv.p99)} / ${ms(r.kv.max)} | ${ms(r.health.p50)} / ${ms(r.health.p99)} / ${ms(r.health.max)} | ${r.idlePerMinute.toFixed(1)} (${r.idleRequiredPerMinute}) |`),
    '',
  ];
  if (big !== undefined && small !== undefined) {
    const p99 = Math.max(big.kv.p99, big.health.p99);
    lines.push(
      `Goals at ${big.services} × ${big.instances}: ready < 3 s **${big.readyMs < 3_000 ? 'met' : 'not met'}** (${ms(big.readyMs)}); ` +
      `≤ 8 connections **${big.peakConnections <= 8 ? 'met' : 'not met'}** (${big.peakConnections}); ` +
      `change p99 < 100 ms **${p99 < 100 && big.timedOut === 0 ? 'met' : 'not met'}** (${ms(p99)}; ${small.services} services: ${ms(Math.max(small.kv.p99, small.health.p99))}); ` +
      `idle requests only the blocking re-arms **${big.idleOther === 0 ? 'met' : 'not met'}** (${big.idleOther} others).`,
    );
  }
  return lines.join('\n');
}

export function scaleConsole(runs: readonly ScaleRun[]): string {
  return runs.map((r) => `consul ${r.services}×${r.instances}: ready ${ms(r.readyMs)}, ${r.peakConnections} connections max (${r.refusedConnections} refused), ` +
    `kv p50 ${ms(r.kv.p50)} p99 ${ms(r.kv.p99)}, health p50 ${ms(r.health.p50)} p99 ${ms(r.health.p99)} (${r.timedOut} timed out), ` +
    `idle ${r.idlePerMinute.toFixed(1)}/min (required ${r.idleRequiredPerMinute}, ${r.idleOther} other)`).join('\n');
}

export async function runScale(o: Omit<ScaleOptions, 'services'> & { readonly sizes: readonly number[] }): Promise<ScaleRun[]> {
  const runs: ScaleRun[] = [];
  for (const services of o.sizes) runs.push(await measureScale({ ...o, services }));
  return runs;
}

export const consulScalePhase: Phase = {
  name: 'consul-scale',
  run: async (ctx) => {
    const cliEnv = process.env['BENCH_SWITCHYARD_CLI'];
    const cli = [process.execPath, resolve(ctx.root, cliEnv ?? join('dist', 'cli.js'))];
    const runs = await runScale({ sizes: [10, 1_000], instances: 10, changes: ctx.options.quick ? 20 : 50, dir: ctx.dir, cli, log: ctx.log });
    return { console: scaleConsole(runs), markdown: scaleMarkdown(runs, cli.map((p) => p.replace(ctx.root, '.').replace(process.execPath, 'node')).join(' ')) };
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '1000' },
      instances: { type: 'string', default: '10' },
      changes: { type: 'string', default: '50' },
      // Passed to switchyard as --workers (its default is auto: one per core, forked at start).
      workers: { type: 'string' },
    },
  });
  const cliEnv = process.env['BENCH_SWITCHYARD_CLI'];
  const base = cliEnv === undefined ? [process.execPath, '--import', 'tsx', join(ROOT, 'src', 'cli.ts')] : [process.execPath, resolve(ROOT, cliEnv)];
  const cli = values.workers === undefined ? base : [...base, '--workers', values.workers];
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-consul-scale-'));
  try {
    const runs = await runScale({ sizes: [10, Number(values.services)], instances: Number(values.instances), changes: Number(values.changes), dir, cli, log: (m) => console.error(m) });
    console.log(scaleConsole(runs));
    console.log(`\n${scaleMarkdown(runs, cli.map((p) => p.replace(ROOT, '.').replace(process.execPath, 'node')).join(' '))}`);
  } finally {
    await stopAll();
    if (process.env['BENCH_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
