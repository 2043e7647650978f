/**
 * The proxies under test: config generation and start-up for HAProxy, nginx, the bare undici
 * proxy and Switchyard, each balancing round-robin over the same upstreams with upstream
 * keep-alive, each pinned to the proxy CPU. Plus "direct", wrk straight at one upstream, which
 * shows the ceiling of the load side (wrk + upstream nginx sharing the load CPU).
 */
import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BenchContext } from './phase.js';
import { freePort, start, waitForHttp, type Managed } from './procs.js';
import { nginxConfig } from './upstream.js';

export interface RunningTarget {
  readonly name: string;
  readonly url: string;
  /** The process whose tree's RSS is sampled; undefined for the direct reference. */
  readonly proc: Managed | undefined;
  /** Lines for the report once the runs are over (e.g. Switchyard's access-log count). */
  readonly summary?: () => Promise<string[]>;
}

export type StartResult = { ok: true; target: RunningTarget } | { ok: false; reason: string };

export interface Target {
  readonly name: string;
  /** A reference row: no PASS/FAIL, not a proxy. */
  readonly reference?: boolean;
  readonly start: (ctx: BenchContext) => Promise<StartResult>;
}

const READY_MS = 10_000;

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Waits for `url` to answer 200 through the proxy; stops the process and explains if not. */
async function ready(name: string, proc: Managed, url: string, logFile: string, timeoutMs = READY_MS): Promise<StartResult> {
  if (await waitForHttp(url, timeoutMs, proc)) return { ok: true, target: { name, url, proc } };
  const why = proc.isRunning() ? `did not answer 200 on ${url} within ${timeoutMs / 1000} s` : `exited (${await proc.exited})`;
  await proc.stop();
  const log = tail(logFile);
  return { ok: false, reason: `${name} ${why}${log === '' ? '' : `; last log lines:\n${log}`}` };
}

function targetDir(ctx: BenchContext, name: string): string {
  const dir = join(ctx.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function haproxyConfig(port: number, ctx: Pick<BenchContext, 'upstreams'>): string {
  const servers = ctx.upstreams.map((u) => `  server ${u.id} ${u.host}:${u.port}`).join('\n');
  return `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s

frontend bench
  bind 127.0.0.1:${port}
  default_backend upstreams

backend upstreams
  balance roundrobin
  http-reuse always
${servers}
`;
}

export const haproxy: Target = {
  name: 'haproxy',
  start: async (ctx) => {
    const dir = targetDir(ctx, 'haproxy');
    const port = await freePort();
    const conf = join(dir, 'haproxy.cfg');
    const text = haproxyConfig(port, ctx);
    writeFileSync(conf, text);
    const log = join(dir, 'stderr.log');
    const proc = start('haproxy', ['haproxy', '-db', '-f', conf], { cpu: ctx.options.proxyCpu, stdoutFile: log, stderrFile: log });
    ctx.artifacts.push({ title: 'HAProxy: command', text: proc.argv.join(' '), lang: 'sh' });
    ctx.artifacts.push({ title: 'HAProxy: haproxy.cfg', text, lang: 'haproxy' });
    return ready('haproxy', proc, `http://127.0.0.1:${port}/`, log);
  },
};

export function nginxProxyConfig(dir: string, port: number, ctx: Pick<BenchContext, 'upstreams'>): string {
  const servers = ctx.upstreams.map((u) => `    server ${u.host}:${u.port};`).join('\n');
  return nginxConfig(dir, `  upstream upstreams {
${servers}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://upstreams;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`);
}

export const nginx: Target = {
  name: 'nginx',
  start: async (ctx) => {
    const dir = targetDir(ctx, 'nginx');
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    const text = nginxProxyConfig(dir, port, ctx);
    writeFileSync(conf, text);
    const log = join(dir, 'error.log');
    const proc = start('nginx', ['nginx', '-e', log, '-p', dir, '-c', conf], { cpu: ctx.options.proxyCpu, stderrFile: join(dir, 'stderr.log') });
    ctx.artifacts.push({ title: 'nginx (proxy): command', text: proc.argv.join(' '), lang: 'sh' });
    ctx.artifacts.push({ title: 'nginx (proxy): nginx.conf', text, lang: 'nginx' });
    return ready('nginx', proc, `http://127.0.0.1:${port}/`, log);
  },
};

export const bareUndici: Target = {
  name: 'bare-undici',
  start: async (ctx) => {
    const dir = targetDir(ctx, 'bare-undici');
    const port = await freePort();
    const log = join(dir, 'stderr.log');
    const ups = ctx.upstreams.map((u) => `${u.host}:${u.port}`).join(',');
    const argv = [process.execPath, '--import', 'tsx', join(ctx.root, 'bench', 'bare-undici.ts'), '--listen', `127.0.0.1:${port}`, '--upstreams', ups];
    const proc = start('bare-undici', argv, { cpu: ctx.options.proxyCpu, stdoutFile: log, stderrFile: log, cwd: ctx.root });
    ctx.artifacts.push({ title: 'bare undici: command', text: proc.argv.join(' '), lang: 'sh' });
    return ready('bare-undici', proc, `http://127.0.0.1:${port}/`, log);
  },
};

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

export function switchyardFiles(ctx: Pick<BenchContext, 'upstreams'>, withPolicies = false): { template: string; services: string } {
  const template = `routes:
  - name: bench
    match: { path: / }
    to: [ { service: bench } ]
${withPolicies ? BENCH_POLICY : ''}`;
  const services = `services:
  bench:
${ctx.upstreams.map((u) => `    - { id: ${u.id}, address: ${u.host}, port: ${u.port}, tags: [], status: passing }`).join('\n')}
`;
  return { template, services };
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

/** Start Switchyard from dist/cli.js as target `name`, with or without the resilience policies. */
async function startSwitchyardTarget(ctx: BenchContext, name: string, withPolicies: boolean): Promise<StartResult> {
  const cli = resolve(ctx.root, process.env['BENCH_SWITCHYARD_CLI'] ?? join('dist', 'cli.js'));
  if (!existsSync(cli)) return { ok: false, reason: `${cli} does not exist (run npm run build)` };
  const dir = targetDir(ctx, name);
  const templates = join(dir, 'templates');
  mkdirSync(templates, { recursive: true });
  const files = switchyardFiles(ctx, withPolicies);
  writeFileSync(join(templates, 'bench.yaml'), files.template);
  const servicesFile = join(dir, 'services.yaml');
  writeFileSync(servicesFile, files.services);
  const port = await freePort();
  const adminPort = await freePort();
  const accessLog = join(dir, 'access.log');
  const stderr = join(dir, 'stderr.log');
  const argv = [process.execPath, cli, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--templates', templates, '--services', servicesFile];
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
  delete env['SWITCHYARD_LOG_LEVEL']; // access logs on: the default level (info)
  const proc = start(name, argv, { cpu: ctx.options.proxyCpu, stdoutFile: accessLog, stderrFile: stderr, env, cwd: ctx.root });
  ctx.artifacts.push({ title: `${name}: command (stdout, the pino access log, goes to a file)`, text: `NODE_ENV=production ${proc.argv.join(' ')} > access.log 2> stderr.log`, lang: 'sh' });
  ctx.artifacts.push({ title: `${name}: templates/bench.yaml`, text: files.template, lang: 'yaml' });
  ctx.artifacts.push({ title: `${name}: services.yaml`, text: files.services, lang: 'yaml' });

  const admin = `http://127.0.0.1:${adminPort}`;
  const readyMs = Number(process.env['BENCH_SWITCHYARD_READY_MS'] ?? READY_MS);
  const readyz = await ready(name, proc, `${admin}/readyz`, stderr, readyMs);
  if (!readyz.ok) {
    const out = tail(accessLog);
    return { ok: false, reason: readyz.reason + (out === '' ? '' : `\nstdout:\n${out}`) };
  }
  const proxied = await ready(name, proc, `http://127.0.0.1:${port}/`, accessLog, 5000);
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
  return { ok: true, target: { name, url: `http://127.0.0.1:${port}/`, proc, summary } };
}

export const switchyard: Target = {
  name: 'switchyard',
  start: (ctx) => startSwitchyardTarget(ctx, 'switchyard', false),
};

/** The same Switchyard run with every resilience policy on (BENCH_POLICY): their cost, measured. */
export const switchyardPolicies: Target = {
  name: 'switchyard-policies',
  start: (ctx) => startSwitchyardTarget(ctx, 'switchyard-policies', true),
};

/** wrk straight at the first upstream: what the load CPU can do with no proxy in the way. */
export const direct: Target = {
  name: 'direct',
  reference: true,
  start: async (ctx) => {
    const u = ctx.upstreams[0]!;
    return { ok: true, target: { name: 'direct', url: `http://${u.host}:${u.port}/`, proc: undefined } };
  },
};

export const ALL_TARGETS: readonly Target[] = [haproxy, nginx, bareUndici, switchyard, switchyardPolicies, direct];
