/**
 * Every process the benchmark starts goes through here, so that all of them are killed at the end,
 * on error and on SIGINT/SIGTERM. Each child gets its own process group (detached) and is killed by
 * group id, which also takes nginx's and HAProxy's workers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The argv it was started with (for the report). */
  readonly argv: readonly string[];
  /** Resolves with the exit code (or signal name) once it has exited. */
  readonly exited: Promise<string>;
  readonly isRunning: () => boolean;
  /** SIGTERM the group, SIGKILL it after `graceMs`. */
  readonly stop: (graceMs?: number) => Promise<void>;
}

const running = new Set<Managed>();
/** Short-lived children (wrk runs) that are not Managed but must die with the benchmark too. */
const transient = new Set<ChildProcess>();

/** Registers a short-lived child so that stopAll/killAllSync kill it; it unregisters on exit. */
export function track(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  transient.add(child);
  child.once('exit', () => transient.delete(child));
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** CPU pinning: `taskset -c CPU` prefix when taskset exists and the machine has at least 2 cores. */
let pinning: boolean | undefined;
export function canPin(): boolean {
  pinning ??= hasCommand('taskset') && cpus().length >= 2 && process.env['BENCH_NO_PIN'] !== '1';
  return pinning;
}
export function cpuPrefix(cpu: string | undefined): string[] {
  return cpu !== undefined && canPin() ? ['taskset', '-c', cpu] : [];
}

export interface StartOptions {
  /** CPU list to pin to (`0`), when pinning is possible. */
  readonly cpu?: string | undefined;
  /** File that receives stdout (default: /dev/null). */
  readonly stdoutFile?: string;
  /** File that receives stderr (default: /dev/null). */
  readonly stderrFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export function start(name: string, argv: readonly string[], o: StartOptions = {}): Managed {
  const full = [...cpuPrefix(o.cpu), ...argv];
  const out = openSync(o.stdoutFile ?? '/dev/null', 'a');
  const err = openSync(o.stderrFile ?? '/dev/null', 'a');
  const child = spawn(full[0]!, full.slice(1), {
    stdio: ['ignore', out, err],
    detached: true,
    env: o.env ?? process.env,
    cwd: o.cwd,
  });
  closeSync(out);
  closeSync(err);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${full.join(' ')}`);
  let alive = true;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => { alive = false; resolve(signal ?? String(code)); });
    child.once('error', (e) => { alive = false; resolve(`error: ${e.message}`); });
  });
  const pid = child.pid;
  const m: Managed = {
    name, child, pid, argv: full, exited,
    isRunning: () => alive,
    stop: async (graceMs = 3000) => {
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      killGroup(pid, 'SIGKILL'); // leftovers in the group (workers), if any
      running.delete(m);
    },
  };
  running.add(m);
  return m;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

/** Stops every process still running (gracefully, then by force). */
export async function stopAll(): Promise<void> {
  for (const c of transient) c.kill('SIGKILL');
  transient.clear();
  await Promise.all([...running].map((m) => m.stop()));
}

/** Synchronous last resort for process 'exit': SIGKILL every group still registered. */
export function killAllSync(): void {
  for (const c of transient) c.kill('SIGKILL');
  transient.clear();
  for (const m of running) killGroup(m.pid, 'SIGKILL');
  running.clear();
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `url` until it answers `status` (default 200) or `timeoutMs` passes. Fails early when
 * `proc` exits. Returns whether it became ready.
 */
export async function waitForHttp(url: string, timeoutMs: number, proc?: Managed, status = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc !== undefined && !proc.isRunning()) return false;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === status) return true;
    } catch { /* not yet */ }
    await sleep(100);
  }
  return false;
}

/** Every pid in the tree rooted at `pid` (from /proc/PID/task/TID/children). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids !== '') out.push(...kids.split(/\s+/).map(Number));
      }
    } catch { /* gone */ }
  }
  return out;
}

/** Summed VmRSS of the process tree, in bytes (0 when it cannot be read). */
export function treeRssBytes(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m !== null) total += Number(m[1]) * 1024;
    } catch { /* gone */ }
  }
  return total;
}

/** Samples the tree's RSS every `everyMs` until stopped; returns the maximum seen. */
export function sampleRss(pid: number, everyMs = 200): { stop: () => number } {
  let max = treeRssBytes(pid);
  const timer = setInterval(() => { max = Math.max(max, treeRssBytes(pid)); }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(max, treeRssBytes(pid));
    },
  };
}

/**
 * Re-pins every process of the tree rooted at `pid` (all their threads) to `cpus` (`0-1`: every
 * CPU of a 2-core machine). No-op when pinning is off.
 */
export function repin(pid: number, cpus: string): void {
  if (!canPin()) return;
  for (const p of processTree(pid)) spawnSync('taskset', ['-a', '-p', '-c', cpus, String(p)], { stdio: 'ignore' });
}

/** Runs a short command and returns stdout+stderr (trimmed); '' if it fails to run. Bounded to 10 s. */
export function capture(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

/**
 * utime+stime (and cutime+cstime when `withChildren`) from one /proc/PID/stat line, in clock ticks.
 * The fields are counted after the command name's closing parenthesis (the name may hold spaces).
 */
export function statTicks(stat: string, withChildren: boolean): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  const at = (i: number): number => (Number.isFinite(f[i]) ? f[i]! : 0);
  return at(11) + at(12) + (withChildren ? at(13) + at(14) : 0);
}

/** utime+stime (and cutime+cstime when `withChildren`) of one process, in clock ticks. */
export function procTicks(pid: number, withChildren: boolean): number {
  try {
    return statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'), withChildren);
  } catch {
    return 0;
  }
}

interface CpuSnapshot { readonly busy: number; readonly total: number; readonly steal: number; readonly ours: number }

function cpuSnapshot(): CpuSnapshot {
  const line = /^cpu\s+(.*)$/m.exec(safeRead('/proc/stat'))?.[1] ?? '';
  // user nice system idle iowait irq softirq steal ...
  const v = line.split(/\s+/).map(Number);
  const at = (i: number): number => v[i] ?? 0;
  const ours = processTree(process.pid).reduce((n, p) => n + procTicks(p, p === process.pid), 0);
  return { busy: at(0) + at(1) + at(2), total: v.slice(0, 8).reduce((a, b) => a + (b || 0), 0), steal: at(7), ours };
}

function safeRead(file: string): string {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
}

/**
 * Measures CPU used on the machine by processes that are not this benchmark's (other builds and
 * tests on a shared machine) and hypervisor steal, as percent of one core, between start and stop.
 */
export function foreignCpu(): { stop: () => { otherPct: number; stealPct: number } } {
  const a = cpuSnapshot();
  return {
    stop: () => {
      const b = cpuSnapshot();
      const total = b.total - a.total;
      const cores = cpus().length;
      if (total <= 0) return { otherPct: 0, stealPct: 0 };
      const other = Math.max(0, (b.busy - a.busy) - (b.ours - a.ours));
      return { otherPct: (other / total) * cores * 100, stealPct: ((b.steal - a.steal) / total) * cores * 100 };
    },
  };
}
