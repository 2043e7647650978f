/**
 * The built CLI with `--workers 2` as a child process (test/compat/cli-process.ts), plus what the
 * cluster tests read from its admin server: /api/workers (each worker's acknowledged table
 * version), /readyz, /metrics. Run `npm run build --silent` first.
 */
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { listening, startCli, type Cli } from '../compat/cli-process.js';
import type { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';

export interface WorkerView {
  slot: number;
  pid: number | null;
  state: string;
  tableVersion: number;
  restarts: number;
}

export interface WorkersView {
  tableVersion: number;
  everyWorkerAt: number;
  workers: WorkerView[];
}

export interface RunningCluster {
  cli: Cli;
  proxy: AddressInfo;
  admin: AddressInfo;
  tls: AddressInfo | undefined;
  /** `http://127.0.0.1:<proxy port>` */
  origin: string;
  workers(): Promise<WorkersView>;
  /** Wait until every worker acknowledged a table newer than `version`; returns that view. */
  everyWorkerPast(version: number, timeoutMs?: number): Promise<WorkersView>;
  adminGet(path: string): Promise<{ status: number; text: string }>;
  /** SIGKILL whatever still runs (the workers it knows of, then the primary); for `after` hooks. */
  kill(): Promise<void>;
}

export async function startCluster(workspace: Workspace, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<RunningCluster> {
  const cli = startCli(['--workers', '2', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
    '--services', workspace.servicesFile, '--drain-timeout', '3s', ...extraArgs], env);
  let started: { proxy: AddressInfo; admin: AddressInfo; tls?: AddressInfo };
  try {
    started = await listening(cli) as typeof started;
  } catch (err) {
    cli.child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; output: ${cli.output()}`);
  }
  const admin = `http://127.0.0.1:${started.admin.port}`;
  const adminGet = async (path: string): Promise<{ status: number; text: string }> => {
    const res = await request(`${admin}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  };
  const workers = async (): Promise<WorkersView> => JSON.parse((await adminGet('/api/workers')).text) as WorkersView;
  return {
    cli,
    proxy: started.proxy,
    admin: started.admin,
    tls: started.tls,
    origin: `http://127.0.0.1:${started.proxy.port}`,
    workers,
    adminGet,
    everyWorkerPast: (version, timeoutMs = 10_000) => waitFor(`every worker past table version ${version}`, async () => {
      const view = await workers();
      return view.workers.every((w) => w.state === 'serving' && w.tableVersion > version) && view;
    }, timeoutMs),
    kill: async () => {
      if (cli.child.exitCode !== null || cli.child.signalCode !== null) return;
      // The workers first: killed alone, the primary's workers would drain for --drain-timeout.
      const view = await Promise.race([workers().catch(() => undefined), new Promise<undefined>((r) => setTimeout(r, 1000, undefined))]);
      for (const w of view?.workers ?? []) {
        try {
          if (w.pid !== null) process.kill(w.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      cli.child.kill('SIGKILL');
    },
  };
}

/**
 * For tests whose proof needs consecutive new connections to alternate over the workers: node's
 * round-robin scheduling (the primary hands each connection to the next worker). Switchyard's
 * default is SCHED_NONE (the kernel picks: src/cluster/worker-pool.ts), which spreads evenly over
 * many connections but does not promise that 8 consecutive ones reach both workers.
 */
export const ROUND_ROBIN = { NODE_CLUSTER_SCHED_POLICY: 'rr' } as const;

/**
 * One request on a connection of its own (`Connection: close`): node:cluster hands each new
 * connection to the next worker in turn, so consecutive calls alternate over the workers.
 */
export async function freshRequest(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(url, { dispatcher: agent, headers: { connection: 'close', ...headers } });
    return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
  } finally {
    await agent.close();
  }
}

/** The value of one Prometheus sample line (`name{labels} value`), 0 when absent. */
export function sample(metrics: string, prefix: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}
