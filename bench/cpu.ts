/**
 * CPU time of a proxy's process tree, the basis of "CPU µs per request": less noisy than
 * requests/s on a shared machine, because time another process takes from the proxy's core lowers
 * its requests/s but not the CPU the proxy spends on each request.
 */
import { capture, processTree, procTicks } from './procs.js';

let ticksPerSecond: number | undefined;

/** The kernel's USER_HZ (clock ticks per second of /proc/PID/stat times); 100 on Linux. */
export function clockTicksPerSecond(): number {
  ticksPerSecond ??= Number(capture('getconf', ['CLK_TCK'])) || 100;
  return ticksPerSecond;
}

/**
 * CPU seconds used so far by the tree rooted at `pid`: utime+stime of every live process (every
 * thread included) plus cutime+cstime, the time of children already reaped (a cluster worker that
 * died and was replaced, nginx's exited helpers), so the sum never goes backwards.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += procTicks(p, true);
  return ticks / clockTicksPerSecond();
}

export interface CpuSample {
  /** CPU seconds of the tree between start and stop. */
  readonly cpuSeconds: number;
  /** Wall-clock seconds between start and stop. */
  readonly wallSeconds: number;
}

/** Starts measuring the tree's CPU time; `stop` returns what it used since. */
export function sampleCpu(pid: number): { stop: () => CpuSample } {
  const cpu0 = treeCpuSeconds(pid);
  const t0 = performance.now();
  return {
    stop: () => ({ cpuSeconds: Math.max(0, treeCpuSeconds(pid) - cpu0), wallSeconds: (performance.now() - t0) / 1000 }),
  };
}

/** CPU microseconds per completed request (NaN without requests). */
export function cpuUsPerRequest(cpuSeconds: number, requests: number): number {
  return requests > 0 ? (cpuSeconds * 1e6) / requests : Number.NaN;
}
