/**
 * The upstreams: one nginx (one worker, not a daemon) with one server block per upstream port,
 * each answering a fixed 100-byte body that names the upstream (so round-robin can be checked).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, Upstream } from './phase.js';
import { freePort, start, waitForHttp, type Managed } from './procs.js';

export const BODY_BYTES = 100;

/** The fixed body of upstream `id`: `upstream <id>` padded with dots to 100 bytes incl. the newline. */
export function upstreamBody(id: string): string {
  const head = `upstream ${id} `;
  return head.padEnd(BODY_BYTES - 1, '.') + '\n';
}

/** Temp paths every nginx in the benchmark needs so that it never touches /var. */
export function nginxTempPaths(dir: string): string {
  for (const d of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d), { recursive: true });
  return [
    `client_body_temp_path ${join(dir, 'client')};`,
    `proxy_temp_path ${join(dir, 'proxy')};`,
    `fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `scgi_temp_path ${join(dir, 'scgi')};`,
  ].join('\n  ');
}

/** A whole one-worker, foreground nginx config whose `http` block holds `httpBody`; all files in `dir`. */
export function nginxConfig(dir: string, httpBody: string): string {
  return `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  ${nginxTempPaths(dir)}
${httpBody}
}
`;
}

export function upstreamNginxConfig(dir: string, upstreams: readonly Upstream[]): string {
  const servers = upstreams.map((u) => `  server {
    listen ${u.host}:${u.port} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "${upstreamBody(u.id).replace('\n', '\\n')}";
    }
  }`).join('\n');
  return nginxConfig(dir, servers);
}

/** Starts the upstream nginx pinned to the load CPU; resolves once every upstream answers. */
export async function startUpstreams(ctx: Omit<BenchContext, 'upstreams'>, count = 3): Promise<{ upstreams: Upstream[]; proc: Managed }> {
  const dir = join(ctx.dir, 'upstream-nginx');
  mkdirSync(dir, { recursive: true });
  const upstreams: Upstream[] = [];
  for (let i = 1; i <= count; i++) upstreams.push({ id: `bench-${i}`, host: '127.0.0.1', port: await freePort() });
  const conf = join(dir, 'nginx.conf');
  const text = upstreamNginxConfig(dir, upstreams);
  writeFileSync(conf, text);
  const argv = ['nginx', '-e', join(dir, 'error.log'), '-p', dir, '-c', conf];
  const proc = start('upstream nginx', argv, { cpu: ctx.options.loadCpu, stderrFile: join(dir, 'stderr.log') });
  ctx.artifacts.push({ title: 'Upstreams: nginx command', text: proc.argv.join(' '), lang: 'sh' });
  ctx.artifacts.push({ title: 'Upstreams: nginx.conf', text, lang: 'nginx' });
  for (const u of upstreams) {
    if (!(await waitForHttp(`http://${u.host}:${u.port}/`, 10_000, proc))) {
      throw new Error(`upstream nginx did not answer on ${u.host}:${u.port} within 10 s (see ${dir}/error.log)`);
    }
  }
  return { upstreams, proc };
}
