/**
 * wrk: the exact command line, running it bounded in time, and parsing its `--latency` output.
 */
import { spawn } from 'node:child_process';
import { cpuPrefix, track } from './procs.js';

export interface WrkResult {
  /** `Requests/sec:` — completed requests per second over the whole run. */
  readonly requestsPerSec: number;
  /** Total requests completed (`N requests in Ts`). */
  readonly requests: number;
  /** Run length wrk reports, seconds. */
  readonly seconds: number;
  /** Latency percentiles from the `Latency Distribution` block, in milliseconds. */
  readonly p50Ms: number;
  readonly p75Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** `Non-2xx or 3xx responses:` (0 when the line is absent). */
  readonly non2xx: number;
  /** Sum of `Socket errors:` connect + read + write + timeout (0 when the line is absent). */
  readonly socketErrors: number;
}

export class WrkParseError extends Error {
  override readonly name = 'WrkParseError';
}

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** wrk's duration format: `448.00us`, `1.21ms`, `2.03s`, `1.00m`. Returns milliseconds. */
export function parseWrkTime(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)$/.exec(text.trim());
  if (m === null) throw new WrkParseError(`not a wrk time: ${JSON.stringify(text)}`);
  return Number(m[1]) * TIME_UNITS_MS[m[2]!]!;
}

/** Parses wrk's stdout of a `--latency` run. Throws WrkParseError when a required figure is missing. */
export function parseWrkOutput(output: string): WrkResult {
  const rps = /^Requests\/sec:\s+([0-9.]+)\s*$/m.exec(output);
  if (rps === null) throw new WrkParseError(`no "Requests/sec:" line in wrk output:\n${output}`);
  const total = /^\s*([0-9]+) requests in ([0-9.]+(?:us|ms|s|m|h)),/m.exec(output);
  if (total === null) throw new WrkParseError(`no "N requests in T" line in wrk output:\n${output}`);

  const distIndex = output.indexOf('Latency Distribution');
  if (distIndex < 0) throw new WrkParseError('no "Latency Distribution" block (was wrk run with --latency?)');
  const percentiles = new Map<number, number>();
  const re = /^\s+([0-9]+(?:\.[0-9]+)?)%\s+([0-9.]+(?:us|ms|s|m|h))\s*$/gm;
  re.lastIndex = distIndex;
  for (let m = re.exec(output); m !== null; m = re.exec(output)) {
    percentiles.set(Number(m[1]), parseWrkTime(m[2]!));
  }
  const pct = (p: number): number => {
    const v = percentiles.get(p);
    if (v === undefined) throw new WrkParseError(`no ${p}% line in the latency distribution`);
    return v;
  };

  const non2xx = /^\s*Non-2xx or 3xx responses:\s+([0-9]+)/m.exec(output);
  const sock = /^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/m.exec(output);
  const socketErrors = sock === null ? 0 : sock.slice(1, 5).reduce((sum, n) => sum + Number(n), 0);

  return {
    requestsPerSec: Number(rps[1]),
    requests: Number(total[1]),
    seconds: parseWrkTime(total[2]!) / 1000,
    p50Ms: pct(50),
    p75Ms: pct(75),
    p90Ms: pct(90),
    p99Ms: pct(99),
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
    socketErrors,
  };
}

export interface WrkOptions {
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
  /** CPU list for taskset (`1`), or undefined for no pinning. */
  readonly cpu: string | undefined;
}

/** The argv of one wrk run (with the taskset prefix when pinned). */
export function wrkCommand(o: WrkOptions): string[] {
  return [
    ...cpuPrefix(o.cpu),
    'wrk', `-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '--latency', o.url,
  ];
}

/** Runs wrk and parses its output; killed (and rejected) if it overruns its duration by 15 s. */
export async function runWrk(o: WrkOptions): Promise<{ result: WrkResult; output: string }> {
  const [cmd, ...args] = wrkCommand(o);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const limitMs = (o.seconds + 15) * 1000;
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wrk did not finish within ${limitMs / 1000} s`));
    }, limitMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('exit', (c) => { clearTimeout(timer); resolve(c); });
  });
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${(err + out).trim()}`);
  return { result: parseWrkOutput(out), output: out };
}
