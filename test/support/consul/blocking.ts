/**
 * Blocking-query machinery (api-docs/features/blocking): `?index=` / `?wait=` parsing with Go's
 * duration syntax and Consul's 400 messages, and the hold loop of Consul's `blockingQuery`
 * (agent/consul/rpc.go): run the query; while its index is <= the client's index, wait for a
 * write or the deadline, then run it again. A write that does not raise this resource's index
 * wakes the loop but does not end it, so wake-ups are effectively per resource.
 */

export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;
/** Consul's `structs.JitterFraction`. */
export const JITTER_FRACTION = 16;

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/** Parses a Go `time.ParseDuration` string ("10s", "1m30s", "250ms", "0") into milliseconds. */
export function parseGoDuration(input: string): number | undefined {
  let rest = input;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let total = 0;
  while (rest.length > 0) {
    const match = DURATION_PART.exec(rest);
    if (!match) return undefined;
    total += Number.parseFloat(match[1] ?? '0') * (UNIT_MS[match[2] ?? ''] ?? 0);
    rest = rest.slice(match[0].length);
  }
  return sign * total;
}

export type BlockingParams =
  | { ok: true; minIndex: number; waitMs: number }
  | { ok: false; message: string };

/**
 * `?wait` then `?index`, as Consul's parseWait: "Invalid wait time" / "Invalid index" (400).
 * `minIndex` 0 means no blocking. The wait defaults to 5m, is capped at 10m, and a wait <= 0
 * means the default (Consul's DefaultQueryTime).
 */
export function parseBlockingParams(query: URLSearchParams): BlockingParams {
  let waitMs = DEFAULT_WAIT_MS;
  const wait = query.get('wait');
  if (wait !== null && wait !== '') {
    const parsed = parseGoDuration(wait);
    if (parsed === undefined) return { ok: false, message: 'Invalid wait time' };
    waitMs = parsed;
  }
  if (waitMs > MAX_WAIT_MS) waitMs = MAX_WAIT_MS;
  if (waitMs <= 0) waitMs = DEFAULT_WAIT_MS;
  let minIndex = 0;
  const index = query.get('index');
  if (index !== null && index !== '') {
    if (!/^\d+$/.test(index)) return { ok: false, message: 'Invalid index' };
    minIndex = Number(index);
  }
  return { ok: true, minIndex, waitMs };
}

/** Consul's `lib.RandomStagger(wait / 16)`. */
export function jitterFor(waitMs: number): number {
  return Math.random() * (waitMs / JITTER_FRACTION);
}

/** Wakes every waiter on each write. Waiters re-run their query and decide for themselves. */
export class ChangeFeed {
  private waiters = new Set<() => void>();

  notify(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves at the next write, at `deadline` (performance.now() ms) or when `signal` aborts. */
  next(deadline: number, signal: AbortSignal): Promise<'change' | 'timeout' | 'aborted'> {
    if (signal.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const finish = (why: 'change' | 'timeout' | 'aborted'): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiters.delete(onChange);
        resolve(why);
      };
      const onChange = (): void => finish('change');
      const onAbort = (): void => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), Math.max(0, deadline - performance.now()));
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(onChange);
    });
  }
}

export interface HoldOptions<R extends { index: number }> {
  minIndex: number;
  waitMs: number;
  jitter: boolean;
  feed: ChangeFeed;
  signal: AbortSignal;
  /** Runs the query; must return an index >= 1. */
  run: () => R;
  /** A result to return at once whatever its index (an error, as Consul's fn returning err). */
  isFinal?: (result: R) => boolean;
  /**
   * The index `run` would report, computed without building the answer: a write that leaves it at
   * or below minIndex then costs no run (the health state of 20,000 checks is not rebuilt per write).
   */
  peekIndex?: () => number;
  /**
   * Called once if the query is parked (nothing newer than minIndex yet), with the hold chosen:
   * `holdMs` = `waitMs` + the jitter drawn for this query (tests check the jitter's range with it).
   */
  onBlocked?: (hold: { waitMs: number; holdMs: number }) => void;
  /** Called once when a parked query stops waiting. */
  onUnblocked?: () => void;
}

/**
 * Consul's blockingQuery loop. Returns the last result (on timeout: the current state with the
 * same index) or `undefined` when the client went away.
 */
export async function holdQuery<R extends { index: number }>(opts: HoldOptions<R>): Promise<R | undefined> {
  // A query that will park anyway is not built first (its answer may be megabytes).
  const parks = opts.minIndex > 0 && opts.peekIndex !== undefined && opts.peekIndex() <= opts.minIndex;
  let result: R | undefined = parks ? undefined : opts.run();
  if (result !== undefined && (opts.minIndex === 0 || result.index > opts.minIndex || opts.isFinal?.(result))) return result;
  const timeout = opts.waitMs + (opts.jitter ? jitterFor(opts.waitMs) : 0);
  const deadline = performance.now() + timeout;
  opts.onBlocked?.({ waitMs: opts.waitMs, holdMs: timeout });
  try {
    for (;;) {
      const why = await opts.feed.next(deadline, opts.signal);
      if (why === 'aborted') return undefined;
      if (why === 'change' && opts.peekIndex !== undefined && opts.peekIndex() <= opts.minIndex) continue;
      result = opts.run();
      if (why === 'timeout' || result.index > opts.minIndex || opts.isFinal?.(result)) return result;
    }
  } finally {
    opts.onUnblocked?.();
  }
}
