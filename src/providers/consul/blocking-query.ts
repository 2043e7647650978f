import { ConsulWatchError } from './watch-error.js';

/**
 * One Consul blocking query loop, done the way Consul's docs ask (api-docs/features/blocking), and
 * generic over the request so that catalog, health and KV watches share it (and tests can drive it
 * with a fake request):
 *
 * - Each call sends the last `X-Consul-Index` as `index` with `wait`; the request function sets a
 *   client timeout above wait + wait/16 (the server's jitter).
 * - An index below 1 is taken as 1 (index 0 means "do not block" and would busy-loop).
 * - An index that goes backwards (snapshot restore, tombstone GC) resets to 0: the next call reads
 *   afresh without blocking, and the one after blocks on the new index.
 * - After a failed call the next one also reads afresh (index 0): an outage may hide a restart that
 *   lowered the index, and blocking on an index the server no longer has would sit out the whole wait.
 * - A return is no proof of change: the decoded value is compared with the last applied one and only
 *   a different value reaches `onChange`.
 * - A veto (an answer that must not be applied, e.g. one that would empty a pool while Consul has no
 *   leader) counts as a failure: back off, keep the old index, and ask again.
 * - Rate limit: at least `minIntervalMs` between the starts of two calls, so a call that blocked
 *   for long re-arms at once while a storm of changes cannot spin the loop.
 * - Errors back off exponentially (base × 2^(n−1), capped) with jitter, reset by a success.
 * - `stop()` cancels the call in flight and any pause, and resolves when the loop has ended.
 */

export interface QueryMeta {
  /** `X-Consul-Index` (0 when absent or not a number). */
  readonly index: number;
  /** `X-Consul-KnownLeader`; undefined when absent (streaming backend). */
  readonly knownLeader: boolean | undefined;
  /** `X-Consul-LastContact` in ms; undefined when absent. */
  readonly lastContactMs: number | undefined;
  /** `X-Consul-Results-Filtered-By-ACLs: true`. */
  readonly filteredByAcls: boolean;
  /** A stale read made because the cluster has no leader (see ConsulClient's fallback). */
  readonly staleFallback?: boolean;
  /**
   * `X-Consul-Query-Backend`: `streaming` or `blocking-query` (absent before Consul 1.10). A
   * streaming answer's KnownLeader/LastContact are zero values, not facts (hashicorp/consul#9776).
   */
  readonly queryBackend?: string;
}

/** What a veto hook decides: apply (undefined), refuse (an error), or confirm by a fresh read. */
export type Veto = ConsulWatchError | undefined | 'reread';

export interface Answer<R> {
  readonly body: R;
  readonly meta: QueryMeta;
}

export interface QueryRequest {
  /** 0: answer at once; otherwise block until the resource's index passes it or `waitMs` elapses. */
  readonly index: number;
  readonly waitMs: number;
  /** Aborted by stop() and reload(); the request must then reject promptly. */
  readonly signal: AbortSignal;
}

export interface BlockingQueryTimings {
  /** Blocking `wait`. */
  readonly waitMs: number;
  /** Minimum time between the starts of two calls. */
  readonly minIntervalMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface BlockingQueryHooks<R, T> {
  /** One call. Rejects with a ConsulWatchError (anything else is reported as `invalid`). */
  fetch(request: QueryRequest): Promise<Answer<R>>;
  /** The body as the value kept and compared (stable: equal data, equal JSON). Throws if unusable. */
  decode(body: R): T;
  /** What equal values share (default: their JSON); a large value may bring a cheaper one. */
  fingerprint?(value: T): string;
  /**
   * Why a changed value must not be applied, if it must not. `previous` is the last applied value.
   * May ask Consul something first (a promise; `signal` aborts on stop() and refresh()): the loop
   * waits for it before the next call. `'reread'`: not applied, not a failure: the next call reads
   * afresh (index 0) and that answer decides (only for an answer to a blocking call).
   */
  veto?(next: T, previous: T | undefined, meta: QueryMeta, signal: AbortSignal): Veto | Promise<Veto>;
  /**
   * Before a blocking call (one that sends an index): a promise to wait for first, or undefined.
   * The provider holds its watches' re-arms while the first reads of every service run (they then
   * get the whole request budget); the re-arm sends the index of the answer already applied, so a
   * change made meanwhile returns at once and nothing is missed.
   */
  hold?(): Promise<void> | undefined;
  /** A new value was applied. */
  onChange(value: T, meta: QueryMeta): void;
  /** Every applied answer, changed or not. */
  onSuccess?(meta: QueryMeta, changed: boolean, recoveredAfter: number): void;
  /** The index went backwards (snapshot restore, restart with older data): `from` → `to`. */
  onIndexBackwards?(from: number, to: number): void;
  /** A failed or vetoed call; the loop pauses `retryInMs` before the next. */
  onFailure(error: ConsulWatchError, failures: number, retryInMs: number): void;
}

/** What status() and the admin API show of one loop. */
export interface WatchState {
  /** The index the last applied answer carried (0 before the first). */
  readonly index: number;
  readonly calls: number;
  readonly changes: number;
  /** Answers not applied but confirmed by a fresh read first (a veto's `'reread'`). */
  readonly rereads: number;
  /** At least one answer was applied. */
  readonly synced: boolean;
  /** The last attempt succeeded (false before the first attempt ends). */
  readonly healthy: boolean;
  readonly lastSuccessAt: number | undefined;
  readonly lastError: ConsulWatchError | undefined;
  /** Consecutive failures. */
  readonly failures: number;
}

/** Exponential backoff with "equal jitter": half fixed, half random, never above the cap. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Any failure as a ConsulWatchError (an unexpected one is `invalid`). */
export function asWatchError(err: unknown): ConsulWatchError {
  if (err instanceof ConsulWatchError) return err;
  return new ConsulWatchError(`unexpected answer from Consul: ${(err as Error)?.message ?? String(err)}`, 'invalid', { cause: err });
}

export class BlockingQuery<R, T> {
  private index = 0;
  /** Index to send next: `index`, or 0 to read afresh. */
  private sendIndex = 0;
  private fingerprint: string | undefined;
  private value: T | undefined;
  private lastStart = Number.NEGATIVE_INFINITY;
  private call: AbortController | undefined;
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** Resolved when the next attempt that starts after their registration ends. */
  private pendingWaiters: (() => void)[] = [];
  private attemptWaiters: (() => void)[] = [];
  private cut = false;
  private stats = { calls: 0, changes: 0, rereads: 0, synced: false, healthy: false, failures: 0, lastSuccessAt: undefined as number | undefined, lastError: undefined as ConsulWatchError | undefined };

  constructor(
    readonly name: string,
    private readonly hooks: BlockingQueryHooks<R, T>,
    private readonly timings: BlockingQueryTimings,
    private readonly random: () => number = Math.random,
  ) {}

  /** Starts the loop; resolves when the first attempt has ended (success or failure). */
  start(): Promise<void> {
    if (this.running !== undefined) return Promise.resolve();
    const first = this.nextAttempt();
    this.running = this.run();
    return first;
  }

  /** Reads afresh now (SIGHUP): cuts a blocked call or a pause; resolves when that read has ended. */
  refresh(): Promise<void> {
    if (this.stopped || this.running === undefined) return Promise.resolve();
    const done = this.nextAttempt();
    this.sendIndex = 0;
    this.lastStart = Number.NEGATIVE_INFINITY;
    if (this.call !== undefined) {
      this.cut = true;
      this.call.abort();
    }
    this.wakeUp?.();
    return done;
  }

  /** Ends the loop: the call in flight is cancelled. Resolves when the loop has returned. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.call?.abort();
    this.wakeUp?.();
    await this.running;
    this.release(this.pendingWaiters);
    this.release(this.attemptWaiters);
  }

  get state(): WatchState {
    return { index: this.index, ...this.stats };
  }

  /** The last applied value. */
  get current(): T | undefined {
    return this.value;
  }

  private nextAttempt(): Promise<void> {
    return new Promise((resolve) => this.pendingWaiters.push(resolve));
  }

  private release(waiters: (() => void)[]): void {
    const list = waiters.splice(0);
    for (const resolve of list) resolve();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.pauseUntil(this.lastStart + this.timings.minIntervalMs);
      if (this.stopped) break;
      const held = this.sendIndex > 0 ? this.hooks.hold?.() : undefined;
      if (held !== undefined) await held;
      if (this.stopped) break;
      this.attemptWaiters.push(...this.pendingWaiters.splice(0));
      this.lastStart = performance.now();
      const sent = this.sendIndex;
      const controller = new AbortController();
      this.call = controller;
      this.cut = false;
      this.stats.calls += 1;
      let retryInMs = 0;
      try {
        const answer = await this.hooks.fetch({ index: sent, waitMs: this.timings.waitMs, signal: controller.signal });
        if (this.stopped) break;
        retryInMs = await this.apply(answer, sent, controller.signal);
        if (this.stopped) break;
      } catch (err) {
        if (this.stopped) break;
        if (this.cut) {
          // refresh() cut this call on purpose: not a failure; the fresh read follows at once.
          this.call = undefined;
          continue;
        }
        this.sendIndex = 0;
        retryInMs = this.fail(asWatchError(err));
      } finally {
        this.call = undefined;
      }
      this.release(this.attemptWaiters);
      if (retryInMs > 0) await this.pauseUntil(performance.now() + retryInMs);
    }
    this.release(this.attemptWaiters);
  }

  /** Applies one answer; returns the pause before the next call (0, or a backoff after a veto). */
  private async apply(answer: Answer<R>, sent: number, signal: AbortSignal): Promise<number> {
    if (answer.meta.staleFallback === true && answer.meta.index < this.index) {
      // A stale read (the cluster has no leader) from a server behind what the leader already
      // gave us: older data, not a restore. Keep what we have and block on our own index again.
      this.sendIndex = this.index;
      this.hooks.onSuccess?.(answer.meta, false, this.succeeded());
      return 0;
    }
    let value: T;
    try {
      value = this.hooks.decode(answer.body);
    } catch (err) {
      this.sendIndex = 0;
      return this.fail(asWatchError(err));
    }
    const fingerprint = this.hooks.fingerprint?.(value) ?? JSON.stringify(value);
    const changed = fingerprint !== this.fingerprint;
    if (changed) {
      let veto: Veto;
      try {
        veto = await this.hooks.veto?.(value, this.value, answer.meta, signal);
      } catch (err) {
        veto = asWatchError(err);
      }
      // Cut by stop() or refresh() while the veto asked Consul: drop this answer, the loop goes on.
      if (signal.aborted) return 0;
      if (veto === 'reread') {
        if (sent > 0) {
          this.sendIndex = 0;
          this.stats.rereads += 1;
          return 0;
        }
        // A fresh read is the confirmation itself: it is applied.
        veto = undefined;
      }
      // Keep the old index: the next call returns at once with whatever Consul has then.
      if (veto !== undefined) return this.fail(veto);
    }
    const received = answer.meta.index >= 1 ? Math.floor(answer.meta.index) : 1;
    if (received < this.index) this.hooks.onIndexBackwards?.(this.index, received);
    // Backwards after a blocking call: read afresh next. After a fresh read the answer is current.
    this.sendIndex = sent > 0 && received < sent ? 0 : received;
    this.index = received;
    const recoveredAfter = this.succeeded();
    if (changed) {
      this.value = value;
      this.stats.changes += 1;
      // Remembered as delivered only once onChange returned: if it throws, the next answer retries it.
      this.hooks.onChange(value, answer.meta);
      this.fingerprint = fingerprint;
    }
    this.hooks.onSuccess?.(answer.meta, changed, recoveredAfter);
    return 0;
  }

  /** Records a successful answer; returns how many failures it ended (0 if none). */
  private succeeded(): number {
    const recoveredAfter = this.stats.failures;
    this.stats = { ...this.stats, synced: true, healthy: true, failures: 0, lastSuccessAt: Date.now(), lastError: undefined };
    return recoveredAfter;
  }

  private fail(error: ConsulWatchError): number {
    const failures = this.stats.failures + 1;
    this.stats = { ...this.stats, healthy: false, failures, lastError: error };
    const retryInMs = backoffDelay(failures, this.timings.backoffBaseMs, this.timings.backoffMaxMs, this.random);
    this.hooks.onFailure(error, failures, retryInMs);
    return retryInMs;
  }

  /**
   * Sleeps until `deadline` (performance.now() ms) unless stop() or refresh() wakes it first. Timers
   * run on the event loop's cached clock and may fire a little early: sleep again for the rest.
   */
  private async pauseUntil(deadline: number): Promise<void> {
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0 || this.stopped) return;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.wakeUp = undefined;
          resolve(false);
        }, Math.ceil(left));
        this.wakeUp = () => {
          clearTimeout(timer);
          this.wakeUp = undefined;
          resolve(true);
        };
      });
      if (woken) return;
    }
  }
}
