/**
 * Running real HTTP clients (curl, python3, java) from tests: execFile with a bounded timeout, and
 * a check that the binary exists so a test can skip with a clear message when it does not.
 */
import { execFile, execFileSync } from 'node:child_process';

export interface RunResult {
  /** Exit code; null when killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `file` with `args` (no shell), at most `timeoutMs`; never rejects. */
export function run(file: string, args: readonly string[], timeoutMs = 20_000, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'latin1' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

const found = new Map<string, boolean>();

/** Whether `binary` is on the PATH. */
export function have(binary: string): boolean {
  let ok = found.get(binary);
  if (ok === undefined) {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { stdio: 'ignore' });
      ok = true;
    } catch {
      ok = false;
    }
    found.set(binary, ok);
  }
  return ok;
}

/** The skip message for a missing client (node:test's `skip` option takes a string). */
export function missing(binary: string): string | false {
  return have(binary) ? false : `${binary} is not installed (.ci/run installs it); this real-client test cannot run`;
}
