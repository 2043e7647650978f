/**
 * What a benchmark target is (a named way to start a proxy), where it runs (its CPU placement),
 * and the start-up helpers every target shares.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './phase.js';
import { waitForHttp, type Managed } from './procs.js';

/** Where a group of targets runs: taskset CPU lists, undefined = unpinned (every CPU). */
export interface Placement {
  readonly proxyCpu: string | undefined;
  readonly loadCpu: string | undefined;
}

/** Set by Switchyard targets: what phases that change its sources (swaps, file watch) need. */
export interface SwitchyardHandles {
  /** `http://127.0.0.1:PORT` of the admin server. */
  readonly admin: string;
  /** The watched services file (in its own directory, `config/`). */
  readonly servicesFile: string;
  /** The target's own directory (logs). */
  readonly dir: string;
}

export interface RunningTarget {
  readonly name: string;
  readonly url: string;
  /** The process whose tree's RSS and CPU are sampled; undefined for the direct reference. */
  readonly proc: Managed | undefined;
  /** Lines for the report once the runs are over (e.g. Switchyard's access-log count). */
  readonly summary?: () => Promise<string[]>;
  readonly switchyard?: SwitchyardHandles;
  /** Its stderr log: the last lines explain an exit in the middle of the runs. */
  readonly logFile?: string;
}

/** Why a target's process is gone: its exit code and the last lines of its log. */
export async function exitReason(t: RunningTarget): Promise<string> {
  const code = t.proc === undefined ? 'no process' : await t.proc.exited;
  const log = t.logFile === undefined ? '' : tail(t.logFile, 5);
  return `process had exited (${code})${log === '' ? '' : `; last log lines:\n${log}`}`;
}

export type StartResult = { ok: true; target: RunningTarget } | { ok: false; reason: string };

export interface Target {
  readonly name: string;
  /** A reference row: no PASS/FAIL, not a proxy. */
  readonly reference?: boolean;
  readonly start: (ctx: BenchContext, placement: Placement) => Promise<StartResult>;
}

export const READY_MS = 10_000;

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Waits for `url` to answer 200 through the proxy; stops the process and explains if not. */
export async function ready(name: string, proc: Managed, url: string, logFile: string, timeoutMs = READY_MS): Promise<StartResult> {
  if (await waitForHttp(url, timeoutMs, proc)) return { ok: true, target: { name, url, proc } };
  const why = proc.isRunning() ? `did not answer 200 on ${url} within ${timeoutMs / 1000} s` : `exited (${await proc.exited})`;
  await proc.stop();
  const log = tail(logFile);
  return { ok: false, reason: `${name} ${why}${log === '' ? '' : `; last log lines:\n${log}`}` };
}

export function targetDir(ctx: BenchContext, name: string): string {
  const dir = join(ctx.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
