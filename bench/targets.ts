/**
 * The proxies under test: config generation and start-up for HAProxy, nginx, Caddy (when
 * installed), the bare undici proxy and Switchyard, each balancing round-robin over the same upstreams with upstream
 * keep-alive. Plus "direct", wrk straight at one upstream, which shows the ceiling of the load
 * side. Two groups: one core (each proxy pinned to the proxy CPU) and two cores (HAProxy threads
 * and Switchyard workers, unpinned); see throughput.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './phase.js';
import { freePort, hasCommand, start } from './procs.js';
import { startSwitchyard } from './switchyard-target.js';
import { ready, targetDir, type Target } from './target-start.js';
import { nginxConfig } from './upstream.js';

export type { Placement, RunningTarget, StartResult, Target } from './target-start.js';
export { BENCH_POLICY, sumRequestCounters, switchyardFiles } from './switchyard-target.js';

export function haproxyConfig(port: number, ctx: Pick<BenchContext, 'upstreams'>, nbthread = 1): string {
  const servers = ctx.upstreams.map((u) => `  server ${u.id} ${u.host}:${u.port}`).join('\n');
  return `global
  nbthread ${nbthread}
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

/** HAProxy with `nbthread` threads (one process). */
function haproxyTarget(name: string, nbthread: number): Target {
  return {
    name,
    start: async (ctx, placement) => {
      const dir = targetDir(ctx, name);
      const port = await freePort();
      const conf = join(dir, 'haproxy.cfg');
      const text = haproxyConfig(port, ctx, nbthread);
      writeFileSync(conf, text);
      const log = join(dir, 'stderr.log');
      const proc = start(name, ['haproxy', '-db', '-f', conf], { cpu: placement.proxyCpu, stdoutFile: log, stderrFile: log });
      ctx.artifacts.push({ title: `${name}: command`, text: proc.argv.join(' '), lang: 'sh' });
      ctx.artifacts.push({ title: `${name}: haproxy.cfg`, text, lang: 'haproxy' });
      return ready(name, proc, `http://127.0.0.1:${port}/`, log);
    },
  };
}

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

export const haproxy = haproxyTarget('haproxy', 1);

export const nginx: Target = {
  name: 'nginx',
  start: async (ctx, placement) => {
    const dir = targetDir(ctx, 'nginx');
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    const text = nginxProxyConfig(dir, port, ctx);
    writeFileSync(conf, text);
    const log = join(dir, 'error.log');
    const proc = start('nginx', ['nginx', '-e', log, '-p', dir, '-c', conf], { cpu: placement.proxyCpu, stderrFile: join(dir, 'stderr.log') });
    ctx.artifacts.push({ title: 'nginx (proxy): command', text: proc.argv.join(' '), lang: 'sh' });
    ctx.artifacts.push({ title: 'nginx (proxy): nginx.conf', text, lang: 'nginx' });
    return ready('nginx', proc, `http://127.0.0.1:${port}/`, log);
  },
};

export const bareUndici: Target = {
  name: 'bare-undici',
  start: async (ctx, placement) => {
    const dir = targetDir(ctx, 'bare-undici');
    const port = await freePort();
    const log = join(dir, 'stderr.log');
    const ups = ctx.upstreams.map((u) => `${u.host}:${u.port}`).join(',');
    const argv = [process.execPath, '--import', 'tsx', join(ctx.root, 'bench', 'bare-undici.ts'), '--listen', `127.0.0.1:${port}`, '--upstreams', ups];
    const proc = start('bare-undici', argv, { cpu: placement.proxyCpu, stdoutFile: log, stderrFile: log, cwd: ctx.root });
    ctx.artifacts.push({ title: 'bare undici: command', text: proc.argv.join(' '), lang: 'sh' });
    return ready('bare-undici', proc, `http://127.0.0.1:${port}/`, log);
  },
};

export function caddyfile(port: number, ctx: Pick<BenchContext, 'upstreams'>): string {
  return `{
  admin off
  auto_https off
}

http://127.0.0.1:${port} {
  reverse_proxy ${ctx.upstreams.map((u) => `${u.host}:${u.port}`).join(' ')} {
    lb_policy round_robin
  }
}
`;
}

/** Caddy (Go; GOMAXPROCS follows the CPU affinity, so one core when pinned), no access log. */
export const caddy: Target = {
  name: 'caddy',
  start: async (ctx, placement) => {
    if (!hasCommand('caddy')) return { ok: false, reason: 'caddy is not installed (bench/setup.sh installs it from Debian when apt has it)' };
    const dir = targetDir(ctx, 'caddy');
    const port = await freePort();
    const conf = join(dir, 'Caddyfile');
    const text = caddyfile(port, ctx);
    writeFileSync(conf, text);
    const log = join(dir, 'stderr.log');
    // Its data and config dirs in the temp dir, not the user's home.
    const env = { ...process.env, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
    const proc = start('caddy', ['caddy', 'run', '--config', conf, '--adapter', 'caddyfile'], { cpu: placement.proxyCpu, stdoutFile: log, stderrFile: log, env });
    ctx.artifacts.push({ title: 'caddy: command', text: proc.argv.join(' '), lang: 'sh' });
    ctx.artifacts.push({ title: 'caddy: Caddyfile', text, lang: 'text' });
    return ready('caddy', proc, `http://127.0.0.1:${port}/`, log);
  },
};

function switchyardTarget(name: string, workers: number, policies = false): Target {
  return { name, start: (ctx, placement) => startSwitchyard(ctx, name, { policies, workers }, placement) };
}

/** One Switchyard process (`--workers 1`), access log to a file. */
export const switchyard = switchyardTarget('switchyard', 1);
/** The same with every resilience policy on (BENCH_POLICY): their cost, measured. */
export const switchyardPolicies = switchyardTarget('switchyard-policies', 1, true);

/** wrk straight at the first upstream: what the load side can do with no proxy in the way. */
function directTarget(name: string): Target {
  return {
    name,
    reference: true,
    start: async (ctx) => {
      const u = ctx.upstreams[0]!;
      return { ok: true, target: { name, url: `http://${u.host}:${u.port}/`, proc: undefined } };
    },
  };
}

/** One core: each proxy pinned to the proxy CPU, wrk and the upstreams on the other. */
export const ONE_CORE_TARGETS: readonly Target[] = [haproxy, nginx, caddy, bareUndici, switchyard, switchyardPolicies, directTarget('direct')];

/** Two cores, nothing pinned: one thread/process against two, HAProxy and Switchyard alike. */
export const TWO_CORE_TARGETS: readonly Target[] = [
  haproxyTarget('haproxy-nbthread1', 1),
  haproxyTarget('haproxy-nbthread2', 2),
  switchyardTarget('switchyard-workers1', 1),
  switchyardTarget('switchyard-workers2', 2),
  directTarget('direct-unpinned'),
];

export const ALL_TARGETS: readonly Target[] = [...ONE_CORE_TARGETS, ...TWO_CORE_TARGETS];
