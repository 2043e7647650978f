import type { ServiceInstance } from '../../model/types.js';
import { asWatchError, backoffDelay, type Answer, type QueryMeta, type Veto, type WatchState } from './blocking-query.js';
import { serviceFromHealth } from './health.js';
import { ConsulWatchError } from './watch-error.js';

/**
 * Non-blocking reads of `/v1/health/service/<name>` for the services some route needs, made only
 * when something says a service's answer may have changed (a new service, the health-state digest,
 * a catalog or node change), with bounded concurrency. This replaces one held blocking query per
 * service (one connection each: past ~200 services the agent's per-client limit answers 429).
 *
 * - Priorities: `urgent` (never read, a check changed, tags changed, a node changed, a failure to
 *   retry) before `sweep` (a catalog change that may hide a port, address, meta or weights change:
 *   Consul's list endpoints do not say which service it was). At most `concurrency` reads at once,
 *   of which at most `sweepConcurrency` sweep reads, so a long sweep never delays a health change.
 * - Coalescing: a service marked while its read runs is read once more after it, whatever the
 *   number of marks; a service marked twice while queued is read once.
 * - Each read is index 0: answered by a plain RPC, never by the streaming view, so its
 *   `X-Consul-KnownLeader` and `X-Consul-Results-Filtered-By-ACLs` are facts (agent/health_endpoint.go:
 *   streaming only serves blocking reads).
 * - A read whose index is below `floor(name)` (the highest ModifyIndex the health state showed for
 *   its checks) comes from a server behind the one that answered the health state (a stale read):
 *   not applied, read again after a pause (counted in `rereads`), at most LAG_RETRIES times in a row.
 * - A decoded answer equal to the last applied one changes nothing: the instances array keeps its
 *   identity (the provider's snapshot contract). A veto refuses an answer (backoff, last data kept).
 * - Failures back off per service (exponential with jitter), keeping the service's last instances.
 */

export type ReadPriority = 'urgent' | 'sweep';

export interface ServiceReadsHooks {
  /** One non-blocking read (the budgeted client's healthService with index 0). */
  read(name: string, signal: AbortSignal): Promise<Answer<unknown>>;
  veto(name: string, next: readonly ServiceInstance[], previous: readonly ServiceInstance[] | undefined, meta: QueryMeta, signal: AbortSignal): Promise<Veto>;
  /** The lowest index a current answer may carry (see above); 0 when unknown. */
  floor(name: string, nodes: readonly string[]): number;
  /** Saw instances (for the anonymous ACL rule). */
  sawData(name: string): void;
  onChange(name: string): void;
  onSuccess(name: string, meta: QueryMeta, recoveredAfter: number): void;
  onFailure(name: string, error: ConsulWatchError, failures: number, retryInMs: number): void;
}

export interface ServiceReadsOptions {
  /** Reads at once (setConcurrency changes it: the whole budget during the first sync). */
  readonly concurrency: number;
  readonly sweepConcurrency: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Pause before reading again a lagging answer (first time; doubles). */
  readonly lagRetryMs: number;
  readonly random: () => number;
}

/** A lagging server normally catches up within milliseconds; past this, the answer is applied. */
const LAG_RETRIES = 5;

interface ServiceState {
  readonly name: string;
  value: ServiceInstance[] | undefined;
  fingerprint: string | undefined;
  nodes: readonly string[];
  index: number;
  pending: ReadPriority | undefined;
  running: AbortController | undefined;
  runningSweep: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  lagged: number;
  /** Resolved at the end of the next read that starts after they were added. */
  waiters: Array<() => void>;
  stats: {
    calls: number; changes: number; rereads: number; synced: boolean; healthy: boolean; failures: number;
    lastSuccessAt: number | undefined; lastError: ConsulWatchError | undefined;
  };
}

export class ServiceReads {
  private readonly states = new Map<string, ServiceState>();
  private readonly urgent = new Set<string>();
  private readonly sweep = new Set<string>();
  private running = 0;
  private runningSweeps = 0;
  private concurrency: number;
  private enabled = false;
  private stopped = false;
  /** Reads made since start (tests and the bench count them). */
  reads = 0;

  constructor(
    private readonly hooks: ServiceReadsHooks,
    private readonly options: ServiceReadsOptions,
  ) {
    this.concurrency = options.concurrency;
  }

  /** Reads at once from now on (reads already running above it finish). */
  setConcurrency(concurrency: number): void {
    this.concurrency = concurrency;
    this.pump();
  }

  /**
   * Reads start only once the list watches have their first answers: a change committed between a
   * read and the first answer of a list watch would otherwise be in that answer's baseline and never
   * be seen as a change.
   */
  enable(): void {
    if (this.enabled) return;
    this.enabled = true;
    this.pump();
  }

  /** Follows the set of wanted services: new ones are read (urgent), dropped ones forgotten. */
  setWanted(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const [name, state] of this.states) {
      if (keep.has(name)) continue;
      this.forget(state);
    }
    for (const name of keep) {
      if (this.states.has(name)) continue;
      this.states.set(name, {
        name, value: undefined, fingerprint: undefined, nodes: [], index: 0, pending: undefined, running: undefined,
        runningSweep: false, retryTimer: undefined, lagged: 0, waiters: [],
        stats: { calls: 0, changes: 0, rereads: 0, synced: false, healthy: false, failures: 0, lastSuccessAt: undefined, lastError: undefined },
      });
      this.mark(name, 'urgent');
    }
  }

  /** Asks for a read of `name` (ignored if not wanted). */
  mark(name: string, priority: ReadPriority): void {
    const state = this.states.get(name);
    if (state === undefined || this.stopped) return;
    if (state.pending !== 'urgent') state.pending = priority;
    this.enqueue(state);
    this.pump();
  }

  /** Asks for a read of every wanted service. */
  markAll(priority: ReadPriority): void {
    for (const name of this.states.keys()) this.mark(name, priority);
  }

  /** Resolves when every wanted service has ended one read started after this call. */
  refreshAll(): Promise<void> {
    if (!this.enabled || this.stopped) return Promise.resolve();
    const done = [...this.states.values()].map((state) => this.nextRead(state));
    this.markAll('urgent');
    return Promise.all(done).then(() => undefined);
  }

  /** Resolves when every wanted service has ended its first read attempt (or is no longer wanted). */
  firstAttempts(): Promise<void> {
    // Before enable() no read has started: each waits for its first.
    return Promise.all([...this.states.values()].filter((s) => s.stats.calls === 0).map((s) => this.nextRead(s))).then(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) this.forget(state);
  }

  /** Names of the services whose last read placed an instance on `node`. */
  *on(node: string): Iterable<string> {
    for (const state of this.states.values()) if (state.nodes.includes(node)) yield state.name;
  }

  current(name: string): ServiceInstance[] | undefined {
    return this.states.get(name)?.value;
  }

  names(): IterableIterator<string> {
    return this.states.keys();
  }

  get size(): number {
    return this.states.size;
  }

  isSynced(name: string): boolean {
    return this.states.get(name)?.stats.synced === true;
  }

  /** Every wanted service's first read has ended (applied, refused or failed). */
  allAttempted(): boolean {
    for (const state of this.states.values()) if (!state.stats.synced && state.stats.failures === 0) return false;
    return true;
  }

  /** Every wanted service has been read at least once. */
  allSynced(): boolean {
    for (const state of this.states.values()) if (!state.stats.synced) return false;
    return true;
  }

  failing(): ConsulWatchError | undefined {
    for (const state of this.states.values()) if (state.stats.lastError !== undefined) return state.stats.lastError;
    return undefined;
  }

  /** Reads queued or running (0 when idle). */
  get backlog(): number {
    return this.urgent.size + this.sweep.size + this.running;
  }

  state(name: string): WatchState | undefined {
    const state = this.states.get(name);
    return state === undefined ? undefined : { index: state.index, ...state.stats };
  }

  // ------------------------------------------------------------------ scheduling

  private nextRead(state: ServiceState): Promise<void> {
    return new Promise((resolve) => state.waiters.push(resolve));
  }

  private enqueue(state: ServiceState): void {
    if (state.pending === undefined || state.running !== undefined || state.retryTimer !== undefined) return;
    if (state.pending === 'urgent') {
      this.sweep.delete(state.name);
      this.urgent.add(state.name);
    } else if (!this.urgent.has(state.name)) {
      this.sweep.add(state.name);
    }
  }

  private pump(): void {
    if (!this.enabled || this.stopped) return;
    while (this.running < this.concurrency) {
      let name = first(this.urgent);
      let sweep = false;
      if (name !== undefined) this.urgent.delete(name);
      else if (this.runningSweeps < this.options.sweepConcurrency && (name = first(this.sweep)) !== undefined) {
        this.sweep.delete(name);
        sweep = true;
      } else {
        return;
      }
      const state = this.states.get(name);
      if (state === undefined) continue;
      void this.run(state, sweep);
    }
  }

  private async run(state: ServiceState, sweep: boolean): Promise<void> {
    state.pending = undefined;
    const controller = new AbortController();
    state.running = controller;
    state.runningSweep = sweep;
    const waiters = state.waiters.splice(0);
    this.running += 1;
    if (sweep) this.runningSweeps += 1;
    state.stats.calls += 1;
    this.reads += 1;
    let retryInMs = 0;
    try {
      const answer = await this.hooks.read(state.name, controller.signal);
      if (!controller.signal.aborted) retryInMs = await this.apply(state, answer, controller.signal);
    } catch (err) {
      if (!controller.signal.aborted) retryInMs = this.fail(state, asWatchError(err));
    } finally {
      this.running -= 1;
      if (sweep) this.runningSweeps -= 1;
      if (state.running === controller) state.running = undefined;
      for (const resolve of waiters) resolve();
    }
    if (!controller.signal.aborted && this.states.get(state.name) === state) {
      if (retryInMs > 0) this.retryAfter(state, retryInMs);
      else this.enqueue(state);
    }
    this.pump();
  }

  private retryAfter(state: ServiceState, ms: number): void {
    state.pending = 'urgent';
    state.retryTimer = setTimeout(() => {
      state.retryTimer = undefined;
      this.enqueue(state);
      this.pump();
    }, ms);
  }

  /** Applies one answer; returns the pause before reading again (0: only if marked again). */
  private async apply(state: ServiceState, answer: Answer<unknown>, signal: AbortSignal): Promise<number> {
    let decoded: { instances: ServiceInstance[]; nodes: string[] };
    try {
      decoded = serviceFromHealth(answer.body);
    } catch (err) {
      return this.fail(state, asWatchError(err));
    }
    const floor = this.hooks.floor(state.name, decoded.nodes);
    if (answer.meta.index < floor && state.lagged < LAG_RETRIES) {
      // Behind what the health state already showed: a lagging server's stale copy.
      state.lagged += 1;
      state.stats.rereads += 1;
      return backoffDelay(state.lagged, this.options.lagRetryMs, this.options.backoffMaxMs, this.options.random);
    }
    state.lagged = 0;
    if (decoded.instances.length > 0) this.hooks.sawData(state.name);
    const fingerprint = JSON.stringify(decoded.instances);
    const changed = fingerprint !== state.fingerprint;
    if (changed) {
      let veto: Veto;
      try {
        veto = await this.hooks.veto(state.name, decoded.instances, state.value, answer.meta, signal);
      } catch (err) {
        veto = asWatchError(err);
      }
      if (signal.aborted) return 0;
      // A fresh read is its own confirmation: 'reread' (asked of blocking answers) applies it.
      if (veto instanceof ConsulWatchError) return this.fail(state, veto);
    }
    const recoveredAfter = state.stats.failures;
    state.index = answer.meta.index;
    state.nodes = decoded.nodes;
    state.stats = { ...state.stats, synced: true, healthy: true, failures: 0, lastSuccessAt: Date.now(), lastError: undefined };
    if (changed) {
      state.value = decoded.instances;
      state.fingerprint = fingerprint;
      state.stats.changes += 1;
      this.hooks.onChange(state.name);
    }
    this.hooks.onSuccess(state.name, answer.meta, recoveredAfter);
    return 0;
  }

  private fail(state: ServiceState, error: ConsulWatchError): number {
    const failures = state.stats.failures + 1;
    state.stats = { ...state.stats, healthy: false, failures, lastError: error };
    const retryInMs = backoffDelay(failures, this.options.backoffBaseMs, this.options.backoffMaxMs, this.options.random);
    this.hooks.onFailure(state.name, error, failures, retryInMs);
    return retryInMs;
  }

  private forget(state: ServiceState): void {
    this.states.delete(state.name);
    this.urgent.delete(state.name);
    this.sweep.delete(state.name);
    state.running?.abort();
    if (state.retryTimer !== undefined) clearTimeout(state.retryTimer);
    state.retryTimer = undefined;
    for (const resolve of state.waiters.splice(0)) resolve();
  }
}

function first(set: Set<string>): string | undefined {
  for (const value of set) return value;
  return undefined;
}
