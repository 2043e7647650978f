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

/** The clients .ci/install-clients installs: under CI a missing one is a failure, never a skip. */
const INSTALLED_BY_CI = new Set(['curl', 'python3']);

/**
 * The skip message for a missing client (node:test's `skip` option takes a string). Under CI
 * (CI=true) the clients .ci/run installs are never skipped: the test runs and fails loudly.
 */
export function missing(binary: string): string | false {
  if (have(binary)) return false;
  if (process.env['CI'] === 'true' && INSTALLED_BY_CI.has(binary)) return false;
  return `${binary} is not installed (.ci/run installs it); this real-client test cannot run`;
}
