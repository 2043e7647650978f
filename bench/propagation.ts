/**
 * Propagation benchmark: the time from a change accepted by Consul (the PUT returned) to the first
 * request routed by the new table, measured from outside, through the proxy.
 *
 *   node --import tsx bench/propagation.ts [--changes 200] [--workers 1] [--no-write] [--out docs/consul.md]
 *
 * Set-up, all on 127.0.0.1: the Consul API test server (test/support/consul) and four upstream HTTP
 * servers in this process; Switchyard as a child process (`node --import tsx src/cli.ts`, or
 * BENCH_SWITCHYARD_CLI=dist/cli.js for the built one) with `--consul` pointing at the test server.
 * Two routes, each answered by exactly one upstream at a time, so that one response says which
 * table routed it:
 *
 * - KV flips:     /kv     → {kv:a, kv:b}; `switchyard/routes/kv/weights` alternates {"kv:a":1,"kv:b":0}
 *                 and {"kv:a":0,"kv:b":1}: the answering upstream switches between kv-a and kv-b.
 * - Health flips: /health → service `health`, one instance whose TTL check alternates critical and
 *                 passing (`PUT /v1/agent/check/fail|pass/service:health-a`): the answer switches
 *                 between the upstream health-a and Switchyard's own 503 (no endpoint).
 *
 * Changes alternate between the two kinds, one at a time, with a random 20–80 ms pause between
 * them (changes in real clusters are not back to back; a watch re-arms at most every 50 ms). After
 * each PUT returns, a probe sends sequential keep-alive requests through the proxy until one is
 * answered by the expected upstream; the latency is the arrival of that response minus the PUT's
 * return (an upper bound: the table swapped at or before that request was routed). Each change is
 * bounded (5 s); one that does not show is counted as timed out.
 *
 * The result (p50, p99, max, per kind and overall) is printed and written between the markers
 * `<!-- propagation:start -->` and `<!-- propagation:end -->` of docs/consul.md.
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Socket } from 'node:net';
import { Agent, Client, buildConnector, request } from 'undici';
import { ConsulTestServer } from '../test/support/consul/server.js';
import type { Phase } from './phase.js';
import { freePort, processTree, start, stopAll, waitForHttp, type Managed } from './procs.js';
import { acceptingPid } from './socket-owner.js';
import { cliHasFlag, switchyardCli } from './switchyard-target.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHANGE_TIMEOUT_MS = 5_000;
const WARMUP_CHANGES = 10;

/** The kv and health routes whose changes the propagation probes watch (consul-scale.ts adds to them). */
export const PROPAGATION_ROUTES = `routes:
  - name: kv
    match: { path: /kv }
    to:
      - { service: kv, tag: a, weight: 1 }
      - { service: kv, tag: b, weight: 1 }
  - name: health
    match: { path: /health }
    to: [ { service: health } ]
`;

type Kind = 'kv' | 'health';

export interface PropagationResult {
  readonly changes: number;
  readonly timedOut: number;
  readonly probes: number;
  readonly byKind: Readonly<Record<Kind | 'all', Stats>>;
  readonly cli: string;
  readonly startedAt: string;
  /** `--workers N` (1: one process). */
  readonly workers: number;
  /** With several workers: how many distinct processes the probe connections reached. */
  readonly workersProbed: number;
}

interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return {
    n: sorted.length,
    p50: at(0.5),
    p99: at(0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length),
  };
}

/** An upstream that names itself in `x-upstream`. */
async function upstream(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'x-upstream': name, 'content-length': String(name.length) });
      res.end(name);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

export interface PropagationOptions {
  readonly changes: number;
  readonly log: (message: string) => void;
  /** Temp dir for templates and the child's log. */
  readonly dir: string;
  /** Switchyard command (argv prefix); default `node --import tsx src/cli.ts`. */
  readonly cli?: readonly string[];
  /**
   * `--workers N` (default 1; omitted when the CLI has no such flag and N is 1). With N > 1 the
   * probes go over N connections opened one after another, which node:cluster's round-robin
   * hands to N different workers (checked from /proc): a change counts as arrived when every
   * connection has seen it, so the latency is the slowest worker's.
   */
  readonly workers?: number;
  readonly workersFlag?: boolean;
}

/** A one-connection client that remembers its local port (to find which worker accepted it). */
function probeClient(origin: string): { client: Client; localPort: () => number | undefined } {
  const connect = buildConnector({});
  let port: number | undefined;
  const client = new Client(origin, {
    keepAliveTimeout: 30_000,
    // undici passes an undefined socket with a connect error, whatever its types say.
    connect: (opts, callback) => connect(opts, (err, socket) => {
      if (err !== null && err !== undefined) return callback(err, null);
      port = (socket as Socket).localPort;
      return callback(null, socket!);
    }),
  });
  return { client, localPort: () => port };
}

export async function measurePropagation(options: PropagationOptions): Promise<PropagationResult> {
  const { log } = options;
  const consul = await ConsulTestServer.start();
  const servers: Server[] = [];
  let child: Managed | undefined;
  const agent = new Agent({ connections: 2, keepAliveTimeout: 30_000 });
  const workers = options.workers ?? 1;
  const probers: ReturnType<typeof probeClient>[] = [];
  try {
    const put = async (path: string, body?: string): Promise<void> => {
      const res = await request(`${consul.url}${path}`, { method: 'PUT', body, dispatcher: agent });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`PUT ${path}: ${res.statusCode}`);
    };
    for (const [service, tag] of [['kv', 'a'], ['kv', 'b'], ['health', 'a']] as const) {
      const u = await upstream(`${service}-${tag}`);
      servers.push(u.server);
      await put('/v1/agent/service/register', JSON.stringify({
        ID: `${service}-${tag}`, Name: service, Tags: [tag], Address: '127.0.0.1', Port: u.port,
        Check: { TTL: '1h', Status: 'passing' },
      }));
    }
    await put('/v1/kv/switchyard/routes/kv/weights', '{"kv:a":1,"kv:b":0}');

    mkdirSync(join(options.dir, 'templates'), { recursive: true });
    writeFileSync(join(options.dir, 'templates', 'routes.yaml'), PROPAGATION_ROUTES);
    const [listen, admin] = [await freePort(), await freePort()];
    const cli = options.cli ?? [process.execPath, '--import', 'tsx', join(ROOT, 'src', 'cli.ts')];
    const argv = [...cli, '--listen', `127.0.0.1:${listen}`, '--admin', `127.0.0.1:${admin}`,
      '--templates', join(options.dir, 'templates'), '--consul', consul.address, '--log-level', 'warn',
      ...(options.workersFlag === false ? [] : ['--workers', String(workers)])];
    log(`starting ${argv.join(' ')}`);
    child = start('switchyard', argv, { cwd: ROOT, stdoutFile: join(options.dir, 'switchyard.log'), stderrFile: join(options.dir, 'switchyard.err'), env: { ...process.env, CONSUL_HTTP_TOKEN: '' } });
    if (!await waitForHttp(`http://127.0.0.1:${admin}/readyz`, 20_000, child)) {
      throw new Error(`switchyard did not become ready; see ${options.dir}/switchyard.err`);
    }

    let probes = 0;
    const probe = async (client: Client, path: string): Promise<string> => {
      probes += 1;
      const res = await request(`http://127.0.0.1:${listen}${path}`, { dispatcher: client });
      await res.body.text();
      const name = res.headers['x-upstream'];
      return res.statusCode === 200 && typeof name === 'string' ? name : `status ${res.statusCode}`;
    };
    /** Probe over one connection until `expected` answers; the arrival time, or undefined after the bound. */
    const untilOn = async (client: Client, path: string, expected: string, deadline: number): Promise<number | undefined> => {
      while (performance.now() < deadline) {
        if (await probe(client, path) === expected) return performance.now();
      }
      return undefined;
    };
    /** Every connection (every worker) has seen it: the latest arrival, or undefined if one never did. */
    const until = async (path: string, expected: string, deadline: number): Promise<number | undefined> => {
      const times = await Promise.all(probers.map((p) => untilOn(p.client, path, expected, deadline)));
      return times.some((t) => t === undefined) ? undefined : Math.max(...(times as number[]));
    };
    // One connection per worker, opened one after another (round-robin hands each to the next worker).
    for (let w = 0; w < workers; w++) {
      const p = probeClient(`http://127.0.0.1:${listen}`);
      probers.push(p);
      if (await untilOn(p.client, '/kv', 'kv-a', performance.now() + 10_000) === undefined) throw new Error('/kv never answered from kv-a');
    }
    const tree = processTree(child.pid);
    const owners = new Set(probers.map((p) => acceptingPid(listen, p.localPort() ?? -1, tree)).filter((pid) => pid !== undefined));
    if (workers > 1) log(`probe connections reach ${owners.size} of ${workers} workers (pids ${[...owners].join(', ')})`);
    for (const [path, expected] of [['/kv', 'kv-a'], ['/health', 'health-a']] as const) {
      if (await until(path, expected, performance.now() + 10_000) === undefined) throw new Error(`${path} never answered from ${expected}`);
    }

    const state = { kv: 'a' as 'a' | 'b', health: 'a' as 'a' | 'b' };
    const latencies: Record<Kind, number[]> = { kv: [], health: [] };
    let timedOut = 0;
    let seed = 20_240_611;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const total = options.changes + WARMUP_CHANGES;
    for (let i = 0; i < total; i++) {
      const kind: Kind = i % 2 === 0 ? 'kv' : 'health';
      const next = state[kind] === 'a' ? 'b' : 'a';
      // Pace the changes (see the top comment); a fixed, seeded sequence so runs compare.
      await new Promise((done) => setTimeout(done, 20 + Math.floor(random() * 60)));
      if (kind === 'kv') await put('/v1/kv/switchyard/routes/kv/weights', next === 'a' ? '{"kv:a":1,"kv:b":0}' : '{"kv:a":0,"kv:b":1}');
      else await put(`/v1/agent/check/${next === 'a' ? 'pass' : 'fail'}/service:health-a`);
      const accepted = performance.now();
      const expected = kind === 'kv' ? `kv-${next}` : next === 'a' ? 'health-a' : 'status 503';
      const seen = await until(`/${kind}`, expected, accepted + CHANGE_TIMEOUT_MS);
      state[kind] = next;
      if (i < WARMUP_CHANGES) continue;
      if (seen === undefined) timedOut += 1;
      else latencies[kind].push(seen - accepted);
      if ((i - WARMUP_CHANGES + 1) % 50 === 0) log(`${i - WARMUP_CHANGES + 1}/${options.changes} changes`);
      if (!child.isRunning()) throw new Error('switchyard exited during the run');
    }
    return {
      changes: options.changes,
      timedOut,
      probes,
      byKind: { kv: stats(latencies.kv), health: stats(latencies.health), all: stats([...latencies.kv, ...latencies.health]) },
      cli: [...cli, ...(options.workersFlag === false ? [] : ['--workers', String(workers)])]
        .map((part) => part.replace(ROOT, '.').replace(process.execPath, 'node')).join(' '),
      startedAt: new Date().toISOString(),
      workers,
      workersProbed: owners.size,
    };
  } finally {
    await child?.stop();
    await agent.close();
    await Promise.all(probers.map((p) => p.client.close()));
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((done) => s.close(() => done()));
    }
    await consul.stop();
  }
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');

export function consoleReport(r: PropagationResult): string {
  const lines = [`propagation over ${r.changes} changes (${r.timedOut} timed out, ${r.probes} probe requests)${workersNote(r)}:`];
  for (const kind of ['kv', 'health', 'all'] as const) {
    const s = r.byKind[kind];
    lines.push(`  ${kind.padEnd(7)} n=${String(s.n).padStart(4)}  p50 ${ms(s.p50).padStart(6)} ms  p99 ${ms(s.p99).padStart(6)} ms  max ${ms(s.max).padStart(6)} ms`);
  }
  return lines.join('\n');
}

/** With several workers: whose answer the latency is (the slowest of those the probes reached). */
function workersNote(r: PropagationResult): string {
  return r.workers <= 1 ? '' : `, --workers ${r.workers}: the slowest of ${r.workersProbed} workers reached by the probes`;
}

export function markdownReport(r: PropagationResult): string {
  const row = (label: string, s: Stats): string => `| ${label} | ${s.n} | ${ms(s.p50)} ms | ${ms(s.p99)} ms | ${ms(s.max)} ms |`;
  const all = r.byKind.all;
  return [
    `Measured ${r.startedAt.slice(0, 10)} with \`node --import tsx bench/propagation.ts\` on ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'},`,
    `Node ${process.version}, Switchyard as a child process (\`${r.cli}\`), the Consul API test server and the`,
    `upstreams on loopback. ${r.changes} changes (half KV weight flips, half health check flips), ${r.timedOut} timed out.`,
    ...(r.workers <= 1 ? [] : [`With \`--workers ${r.workers}\`: the probes go over ${r.workers} connections opened one after another, which node:cluster's round-robin hands to different workers (they reached ${r.workersProbed} distinct workers, checked from /proc); a change counts when every connection has seen it: the slowest worker's latency.`]),
    '',
    '| change | n | p50 | p99 | max |',
    '| --- | --- | --- | --- | --- |',
    row('KV weight flip', r.byKind.kv),
    row('health check flip', r.byKind.health),
    row('**all**', all),
    '',
    `Target p99 < 100 ms: **${all.p99 < 100 && r.timedOut === 0 ? 'met' : 'not met'}** (p99 ${ms(all.p99)} ms).`,
  ].join('\n');
}

const START = '<!-- propagation:start -->';
const END = '<!-- propagation:end -->';

/** Replaces the marked section of `file` with `markdown`. */
export function writeIntoDoc(file: string, markdown: string): void {
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${file}: markers ${START} … ${END} not found`);
  writeFileSync(file, `${text.slice(0, a + START.length)}\n${markdown}\n${text.slice(b)}`);
}

/** As a phase of `npm run bench` (append to PHASES in bench/run.ts). */
export const propagationPhase: Phase = {
  name: 'propagation',
  run: async (ctx) => {
    const cli = switchyardCli(ctx.root);
    const workersFlag = cliHasFlag(cli, '--workers');
    const con: string[] = [];
    const md: string[] = ['## Consul propagation', ''];
    // One process, then two workers (the slowest worker's latency) when the build has --workers.
    for (const workers of workersFlag ? [1, 2] : [1]) {
      const dir = join(ctx.dir, `propagation-workers${workers}`);
      mkdirSync(dir, { recursive: true });
      const result = await measurePropagation({
        changes: ctx.options.quick ? 40 : 200,
        log: ctx.log,
        dir,
        // `npm run bench` builds first: measure the built CLI, as users run it.
        cli: [process.execPath, cli],
        workers,
        workersFlag,
      });
      con.push(consoleReport(result));
      md.push(`### --workers ${workers}${workersFlag ? '' : ' (this build has no --workers flag: one process)'}`, '', markdownReport(result), '');
    }
    if (!workersFlag) md.push('The built CLI has no --workers flag: the two-worker run was skipped.', '');
    return { console: con.join('\n'), markdown: md.join('\n') };
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      changes: { type: 'string', default: '200' },
      out: { type: 'string', default: join(ROOT, 'docs', 'consul.md') },
      'no-write': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1' },
    },
  });
  const changes = Number(values.changes);
  if (!Number.isInteger(changes) || changes < 2) throw new Error('--changes: an integer >= 2');
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) throw new Error('--workers: an integer >= 1');
  const log = (m: string): void => {
    process.stdout.write(`[propagation ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-propagation-'));
  const cliEnv = process.env['BENCH_SWITCHYARD_CLI'];
  const cleanup = (): void => {
    void stopAll();
  };
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  try {
    const result = await measurePropagation({
      changes,
      log,
      dir,
      workers,
      ...(cliEnv === undefined ? {} : { cli: [process.execPath, resolve(ROOT, cliEnv)] }),
    });
    process.stdout.write(`${consoleReport(result)}\n`);
    if (!values['no-write']) {
      writeIntoDoc(values.out, markdownReport(result));
      log(`written into ${values.out}`);
    }
    if (result.timedOut > 0) process.exitCode = 1;
  } finally {
    await stopAll();
    if (process.env['BENCH_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`propagation: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
