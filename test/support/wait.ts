/**
 * Poll `probe` until it returns a value other than undefined/false, or fail after `timeoutMs`.
 * Tests wait for conditions with deadlines, never with fixed sleeps. Wait for something only the
 * new state can make true (a table version, a count, a new value), never for a condition the old
 * state already meets.
 *
 * A probe that never settles (a request to a server that accepted and went quiet) would hold the
 * wait past any deadline, and node's test runner has no default timeout: the run would hang
 * instead of failing. Each probe is therefore bounded too: it may run until the wait's deadline,
 * and at least `timeoutMs` from its own start (so a slow but finishing probe behaves as before).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
  intervalMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await bounded(probe(), Math.max(deadline - Date.now(), timeoutMs), what);
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof ProbeStuck) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const suffix = lastError === undefined ? '' : ` (last error: ${(lastError as Error).message})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

class ProbeStuck extends Error {}

function bounded<T>(value: T | Promise<T>, ms: number, what: string): Promise<T> {
  if (!(value instanceof Promise)) return Promise.resolve(value);
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeStuck(`timed out: a probe for ${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([value, stuck]).finally(() => clearTimeout(timer));
}
