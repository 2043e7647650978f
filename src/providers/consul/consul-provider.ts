import type { ConsulSettings } from '../../config/config.js';
import { compareCodeUnits } from '../../model/compare-code-units.js';
import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../../model/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { DiscoveryProvider, DiscoveryUpdate, ProviderStatus } from '../provider.js';
import { BlockingQuery, type BlockingQueryTimings, type QueryMeta, type Veto, type WatchState } from './blocking-query.js';
import { BudgetedReader } from './budgeted-reader.js';
import { catalogFromServices, listsAnyService } from './catalog.js';
import { ConsulClient, type ConsulReader } from './consul-client.js';
import { EmptyAnswerGuard } from './empty-answer-guard.js';
import { consulMetrics, type ConsulMetrics } from './consul-metrics.js';
import { isUp } from './health.js';
import { changedServices, HealthFloors, healthDigest, indexFloor, type HealthDigest } from './health-state.js';
import { kvFromEntries } from './kv.js';
import { changedNodes, nodeAddresses } from './nodes.js';
import { RequestBudget } from './request-budget.js';
import { ServiceReads } from './service-reads.js';
import type { ConsulWatchError } from './watch-error.js';

/**
 * The Consul provider: the catalog, the health of every service some route needs, and the KV
 * prefix, turned into the same snapshots the services file produces, with a constant number of
 * connections to the agent whatever the number of services.
 *
 * Load on Consul (the agent allows one client 200 connections, agent/config/default.go
 * `limits.http_max_conns_per_client`; past it, 429 and close):
 * - Four blocking queries (blocking-query.ts), whatever the number of services:
 *   `/v1/catalog/services` (names and tags; its index is the services table's, so it moves on any
 *   registration, deregistration or change of any instance), `/v1/health/state/any` filtered to
 *   the non-passing checks (woken by every check write, the checks table index, but its answer
 *   is only what can change routing: health-state.ts), `/v1/catalog/nodes` (node addresses,
 *   nodes.ts) and `/v1/kv/<prefix>?recurse`.
 * - Non-blocking reads of `/v1/health/service/<name>` only for services whose answer may have
 *   changed (service-reads.ts): a service newly wanted; a check of it (or of a node it is on)
 *   added, removed or changed; its catalog tags changed; its node's address changed: `urgent`. Any
 *   other move of the catalog index may hide a port, address, meta or weights change that no list
 *   endpoint shows, so every wanted service is re-read then (`sweep`, at most 2 at once, behind the
 *   urgent reads). At most 4 reads at once; a service changing again while its read runs is read
 *   once more after it.
 * - A request budget (request-budget.ts) caps every request in flight, probes included, at
 *   MAX_CONCURRENT_REQUESTS = 8, and the HTTP agent's sockets likewise: 4 blocking queries plus at
 *   most 4 reads. Idle, only the blocking queries' re-arms reach Consul (4 per `wait`).
 * - First sync: the four watches make their first (non-blocking) reads, then do not re-arm until
 *   the services routes need are known and have had their first read (or START_HOLD_MAX_MS passed,
 *   or a watch failed):
 *   the reads get the whole budget (START_READ_CONCURRENCY = 8) instead of 4. Nothing is missed:
 *   each watch re-arms with the index of the answer it applied, and Consul answers a blocking query
 *   at once when the resource's index has passed it (a change made meanwhile is then seen as a
 *   change, and its services are read again).
 *
 * Snapshots:
 * - Emits `{ discovery }` when the catalog or any wanted service's instances changed (once the
 *   catalog is known; coalesced to one emit per event-loop turn), `{ kv }` when the KV prefix
 *   changed. Whole snapshots, never diffs.
 * - Identity contract (for incremental builds): in consecutive snapshots, `instances[service]` of a
 *   service whose data did not change is the same array object as in the previous snapshot, and so
 *   is `catalog[service]` (its tag array); only a changed service gets new arrays. An answer equal
 *   to the last applied one changes nothing.
 * - A failing watch or read keeps its last data: nothing is emitted for it, so the live table keeps
 *   serving (a failing service read keeps its service's last instances).
 *
 * Guarantees kept from one blocking query per service:
 * - Answers that would drop live endpoints for the wrong reason are refused (not applied, counted,
 *   logged, retried with backoff): an answer emptied by ACL filtering
 *   (`X-Consul-Results-Filtered-By-ACLs: true`) is a permissions problem; an answer that would empty
 *   a pool (or the catalog, or the KV overrides) while the cluster has no leader is not trusted.
 *   Which empty answers are refused, and how "no leader" and "ACLs on without a token" are told (a
 *   streaming answer's `X-Consul-KnownLeader: false` says nothing): empty-answer-guard.ts. Service
 *   reads are index 0, which Consul never answers from the streaming view, so their headers are facts.
 * - Index resets (an index going backwards) reset that watch to 0 (blocking-query.ts); a health
 *   read behind what the health state showed (a lagging server) is read again (service-reads.ts).
 * - Reads start only once the three list watches have answered: a change committed before a list
 *   watch's first answer would otherwise hide in its baseline.
 * - `status().synced` once the catalog, the KV prefix, the health state, the nodes and every
 *   currently wanted service have been read and emitted; `healthy` while nothing is failing.
 * - The token goes to Consul as `X-Consul-Token` and nowhere else: not in messages, errors, status.
 */

/** Requests to the agent in flight at once, at most (blocking queries, reads, probes). */
export const MAX_CONCURRENT_REQUESTS = 8;
/** Non-blocking service reads in flight at once, at most; of which sweep reads: */
export const READ_CONCURRENCY = 4;
export const SWEEP_CONCURRENCY = 2;
/** Reads at once during the first sync, while the watches' re-arms are held (see above). */
export const START_READ_CONCURRENCY = MAX_CONCURRENT_REQUESTS;
/** The longest the re-arms wait for the first reads: KV and list changes are late by at most this. */
export const START_HOLD_MAX_MS = 5_000;

export interface ConsulProviderOptions {
  /** Minimum time between the starts of two calls of one watch. */
  readonly minIntervalMs: number;
  /** First backoff after an error; doubles per consecutive error, with jitter. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Client timeout of a blocking call: wait + wait/16 + this. */
  readonly timeoutMarginMs: number;
  /** Client timeout of a non-blocking call (first read, read after an error). */
  readonly readTimeoutMs: number;
  /** Jitter source (tests may fix it). */
  readonly random: () => number;
  /** Replaces the HTTP client (tests). */
  readonly reader: ConsulReader | undefined;
}

export const DEFAULT_CONSUL_PROVIDER_OPTIONS: ConsulProviderOptions = {
  minIntervalMs: 50,
  backoffBaseMs: 250,
  backoffMaxMs: 15_000,
  timeoutMarginMs: 5_000,
  readTimeoutMs: 10_000,
  random: Math.random,
  reader: undefined,
};

type Catalog = DiscoverySnapshot['catalog'];
type Nodes = Record<string, string>;
/** What the provider does with any of its loops, whatever their value type. */
interface Loop {
  readonly name: string;
  readonly state: WatchState;
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

interface WatchLog {
  /** Last error message logged at error level for this watch, to log a streak once. */
  lastLogged: string | undefined;
  filteredWarned: boolean;
  /** The last answer was a stale read because the cluster had no leader. */
  stale: boolean;
}

export class ConsulProvider implements DiscoveryProvider {
  readonly name = 'consul';
  private readonly options: ConsulProviderOptions;
  private readonly budget = new RequestBudget(MAX_CONCURRENT_REQUESTS);
  private readonly client: ConsulReader;
  private readonly consulMetrics: ConsulMetrics;
  private readonly timings: BlockingQueryTimings;
  private emit: ((update: DiscoveryUpdate) => void) | undefined;
  private catalog: BlockingQuery<unknown, Catalog> | undefined;
  private healthState: BlockingQuery<unknown, HealthDigest> | undefined;
  private nodes: BlockingQuery<unknown, Nodes> | undefined;
  private kv: BlockingQuery<unknown, KvSnapshot> | undefined;
  private readonly reads: ServiceReads;
  /** The catalog index last seen: a move means some instance somewhere changed. */
  private catalogIndex: number | undefined;
  private emitScheduled = false;
  /** A snapshot waits for the first reads of newly wanted services (scheduleEmit). */
  private emitHeld = false;
  private readonly stopping = new Set<Promise<void>>();
  private readonly logs = new Map<string, WatchLog>();
  private wanted: readonly string[] = [];
  private wantedSet: ReadonlySet<string> = new Set();
  private readonly guard: EmptyAnswerGuard;
  private started = false;
  private stopped = false;
  private wasSynced = false;
  private lastSyncAt: number | undefined;
  /** Floors of services whose non-passing checks changed (health-state.ts HealthFloors). */
  private readonly floors = new HealthFloors();
  /** The index of the last applied health-state answer. */
  private healthIndex = 0;
  /** The watches' re-arms wait for this during the first sync (see the header). */
  private holding: { readonly done: Promise<void>; readonly release: () => void; timer: NodeJS.Timeout | undefined } | undefined;

  constructor(
    private readonly settings: ConsulSettings,
    private readonly kvPrefix: string,
    private readonly logger: Logger,
    metrics: Metrics,
    options: Partial<ConsulProviderOptions> = {},
  ) {
    this.options = { ...DEFAULT_CONSUL_PROVIDER_OPTIONS, ...options };
    const inner = this.options.reader ?? new ConsulClient(settings, {
      timeoutMarginMs: this.options.timeoutMarginMs,
      readTimeoutMs: this.options.readTimeoutMs,
      maxSockets: MAX_CONCURRENT_REQUESTS,
    });
    this.client = new BudgetedReader(inner, this.budget);
    this.guard = new EmptyAnswerGuard(this.client, settings.token !== undefined, logger);
    this.consulMetrics = consulMetrics(metrics.registry);
    this.consulMetrics.up.set(0);
    this.timings = {
      waitMs: settings.waitMs,
      minIntervalMs: this.options.minIntervalMs,
      backoffBaseMs: this.options.backoffBaseMs,
      backoffMaxMs: this.options.backoffMaxMs,
    };
    this.reads = this.serviceReads();
  }

  async start(emit: (update: DiscoveryUpdate) => void): Promise<void> {
    if (this.started) return;
    this.emit = emit;
    this.started = true;
    this.startHold();
    this.logger.info({ url: this.settings.url, datacenter: this.settings.datacenter, consistency: this.settings.consistency, kvPrefix: this.kvPrefix, waitMs: this.settings.waitMs, acl: this.settings.token !== undefined, maxConnections: MAX_CONCURRENT_REQUESTS }, 'watching Consul');
    this.catalog = this.catalogLoop();
    this.healthState = this.healthStateLoop();
    this.nodes = this.nodesLoop();
    this.kv = this.kvLoop();
    this.reads.setWanted(this.wanted);
    const firstReads = this.reads.firstAttempts();
    await Promise.all([this.catalog.start(), this.healthState.start(), this.nodes.start(), this.kv.start()]);
    // Reads are enabled once the list watches have answered; if one failed, start() ends here and
    // the reads begin when it recovers (the first attempt is what start() waits for).
    if (this.listsSynced()) await firstReads;
  }

  /** Follows the set of services routes need: new ones are read, dropped ones forgotten. */
  watchServices(names: readonly string[]): void {
    const next = [...new Set(names)].sort(compareCodeUnits);
    const dropped = this.wanted.filter((name) => !next.includes(name));
    this.wanted = next;
    this.wantedSet = new Set(next);
    if (!this.started || this.stopped) return;
    for (const name of dropped) {
      this.logs.delete(`health:${name}`);
      this.floors.forget(name);
      this.logger.debug({ service: name }, 'stopped following the health of a service no route needs');
    }
    this.reads.setWanted(next);
    this.releaseHeldEmit();
    this.updateUp();
    this.checkFirstReads();
  }

  /** SIGHUP: every watch and every wanted service reads afresh now. */
  async reload(): Promise<void> {
    this.guard.forgetAcl();
    await Promise.all([...this.loops().map((loop) => loop.refresh()), this.reads.refreshAll()]);
  }

  status(): ProviderStatus {
    const loops = this.loops();
    const failing = loops.find((loop) => loop.state.lastError !== undefined)?.state.lastError ?? this.reads.failing();
    const watches: Record<string, unknown> = {};
    for (const loop of loops) watches[loop.name] = this.watchDetail(loop.name, loop.state);
    for (const name of this.wanted) {
      const state = this.reads.state(name);
      if (state !== undefined) watches[`health:${name}`] = this.watchDetail(`health:${name}`, state);
    }
    return {
      name: this.name,
      healthy: this.isHealthy(),
      synced: this.isSynced(),
      lastSyncAt: this.lastSyncAt,
      lastError: failing?.message,
      detail: {
        url: this.settings.url,
        datacenter: this.settings.datacenter ?? null,
        consistency: this.settings.consistency,
        kvPrefix: this.kvPrefix,
        waitMs: this.settings.waitMs,
        aclToken: this.settings.token === undefined ? 'none' : 'set',
        // Asked only without a token, when an answer came back empty: null until then.
        ...this.guard.aclStatus(),
        ...(this.settings.namespace === undefined ? {} : { namespace: this.settings.namespace }),
        ...(this.settings.partition === undefined ? {} : { partition: this.settings.partition }),
        lastSyncAgeMs: this.lastSyncAt === undefined ? null : Date.now() - this.lastSyncAt,
        watchedServices: [...this.wanted],
        requests: { max: MAX_CONCURRENT_REQUESTS, inFlight: this.budget.active, peak: this.budget.peak, serviceReads: this.reads.reads, readBacklog: this.reads.backlog },
        watches,
      },
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.endHold();
    for (const loop of this.loops()) this.retire(loop);
    this.reads.stop();
    await Promise.all([...this.stopping]);
    this.client.close();
    this.consulMetrics.up.set(0);
  }

  // ------------------------------------------------------------------ watches

  private catalogLoop(): BlockingQuery<unknown, Catalog> {
    return new BlockingQuery<unknown, Catalog>('catalog', {
      fetch: (request) => this.client.catalogServices(request),
      decode: (body) => {
        const catalog = catalogFromServices(body, this.catalog?.current);
        // `consul` counts as data here although it is not routed (empty-answer-guard.ts).
        if (listsAnyService(body)) this.guard.saw('catalog');
        return catalog;
      },
      veto: async (next, previous, meta, signal) => {
        const empty = Object.keys(next).length === 0;
        return await this.guard.emptied('the catalog', empty, Object.keys(previous ?? {}).length > 0, meta, signal)
          ?? (empty ? this.guard.anonymous('catalog', 'the catalog', signal) : undefined);
      },
      hold: () => this.rearmHold(),

      onChange: (catalog) => {
        // Tags changed (a new tag array): read that service first, before the sweep.
        const previous = this.lastCatalog;
        this.lastCatalog = catalog;
        if (previous !== undefined) for (const name of this.wanted) if (previous[name] !== catalog[name]) this.reads.mark(name, 'urgent');
        this.scheduleEmit();
      },
      onSuccess: (meta, _changed, recovered) => {
        const index = this.catalog?.state.index;
        // Any move of the services table index: some instance changed somewhere (maybe only its
        // port, address, meta or weights, which no list endpoint shows): every wanted service may.
        if (this.catalogIndex !== undefined && index !== this.catalogIndex) this.reads.markAll('sweep');
        this.catalogIndex = index;
        this.succeeded('catalog', meta, recovered);
      },
      onIndexBackwards: (from, to) => this.indexBackwards('catalog', from, to),
      onFailure: (error, failures, retryInMs) => this.failed('catalog', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private healthStateLoop(): BlockingQuery<unknown, HealthDigest> {
    return new BlockingQuery<unknown, HealthDigest>('health', {
      fetch: (request) => this.client.healthState(request),
      decode: (body) => healthDigest(body),
      fingerprint: (digest) => digest.fingerprint,
      hold: () => this.rearmHold(),

      onChange: (digest) => {
        const previous = this.lastDigest;
        this.lastDigest = digest;
        if (previous === undefined) return;
        for (const name of changedServices(previous, digest, this.wantedSet, (node) => this.reads.on(node))) {
          // Written after the last answer: a check that left the list shows no ModifyIndex.
          this.floors.raise(name, this.healthIndex);
          this.reads.mark(name, 'urgent');
        }
      },
      onSuccess: (meta, _changed, recovered) => {
        this.healthIndex = this.healthState?.state.index ?? 0;
        this.succeeded('health', meta, recovered);
      },
      onIndexBackwards: (from, to) => {
        this.floors.clear();
        this.healthIndex = 0;
        this.indexBackwards('health', from, to);
      },
      onFailure: (error, failures, retryInMs) => this.failed('health', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private nodesLoop(): BlockingQuery<unknown, Nodes> {
    return new BlockingQuery<unknown, Nodes>('nodes', {
      fetch: (request) => this.client.catalogNodes(request),
      decode: (body) => nodeAddresses(body),
      hold: () => this.rearmHold(),

      onChange: (nodes) => {
        const previous = this.lastNodes;
        this.lastNodes = nodes;
        if (previous === undefined) return;
        for (const node of changedNodes(previous, nodes)) {
          for (const name of this.reads.on(node)) this.reads.mark(name, 'urgent');
          for (const name of this.lastDigest?.hosts[node] ?? []) this.reads.mark(name, 'urgent');
        }
      },
      onSuccess: (meta, _changed, recovered) => this.succeeded('nodes', meta, recovered),
      onIndexBackwards: (from, to) => this.indexBackwards('nodes', from, to),
      onFailure: (error, failures, retryInMs) => this.failed('nodes', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private kvLoop(): BlockingQuery<unknown, KvSnapshot> {
    return new BlockingQuery<unknown, KvSnapshot>('kv', {
      fetch: (request) => this.client.kvList(this.kvPrefix, request),
      decode: (body) => kvFromEntries(body, this.kvPrefix),
      veto: (next, previous, meta, signal) => this.guard.emptied(`the KV prefix "${this.kvPrefix}"`, Object.keys(next).length === 0, Object.keys(previous ?? {}).length > 0, meta, signal),
      hold: () => this.rearmHold(),

      onChange: (kv) => {
        if (!this.stopped) this.emit?.({ kv });
      },
      onSuccess: (meta, _changed, recovered) => this.succeeded('kv', meta, recovered),
      onIndexBackwards: (from, to) => this.indexBackwards('kv', from, to),
      onFailure: (error, failures, retryInMs) => this.failed('kv', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private serviceReads(): ServiceReads {
    return new ServiceReads({
      read: (name, signal) => this.client.healthService(name, { index: 0, waitMs: this.settings.waitMs, signal }),
      veto: (name, next, previous, meta, signal) => this.serviceVeto(name, next, previous, meta, signal),
      floor: (name, nodes) => indexFloor(this.lastDigest, name, nodes, this.floors.get(name)),
      sawData: (name) => this.guard.saw(`service:${name}`),
      onChange: () => this.scheduleEmit(),
      onSuccess: (name, meta, recovered) => {
        this.releaseHeldEmit();
        this.succeeded(`health:${name}`, meta, recovered);
      },
      onFailure: (name, error, failures, retryInMs) => {
        this.releaseHeldEmit();
        this.failed(`health:${name}`, error, failures, retryInMs);
      },
    }, {
      concurrency: START_READ_CONCURRENCY,
      sweepConcurrency: SWEEP_CONCURRENCY,
      backoffBaseMs: this.options.backoffBaseMs,
      backoffMaxMs: this.options.backoffMaxMs,
      lagRetryMs: Math.max(this.options.minIntervalMs, 10),
      random: this.options.random,
    });
  }

  /** Whether a service's read may be applied (the rules of empty-answer-guard.ts). */
  private async serviceVeto(name: string, next: readonly ServiceInstance[], previous: readonly ServiceInstance[] | undefined, meta: QueryMeta, signal: AbortSignal): Promise<Veto> {
    const what = `service "${name}"`;
    // Filtered to nothing: whatever was there before, this is a permissions problem.
    if (meta.filteredByAcls && next.length === 0) return this.guard.emptied(what, true, true, meta, signal);
    const refused = await this.guard.emptied(what, !next.some(isUp), (previous ?? []).some(isUp), { ...meta, filteredByAcls: false }, signal);
    if (refused !== undefined || next.length > 0) return refused;
    // No instance at all while the catalog lists the service (or is not known yet): hidden
    // (node:read), or the catalog has not caught up with a deregistration (the retry applies it).
    const catalog = this.catalog?.current;
    return catalog !== undefined && catalog[name] === undefined ? undefined : this.guard.anonymous(`service:${name}`, what, signal);
  }

  private lastDigest: HealthDigest | undefined;
  private lastNodes: Nodes | undefined;
  private lastCatalog: Catalog | undefined;

  private listsSynced(): boolean {
    return this.catalog?.state.synced === true && this.healthState?.state.synced === true && this.nodes?.state.synced === true;
  }

  /**
   * One emit per event-loop turn: reads finishing together make one snapshot. While services newly
   * wanted wait for their first read, the snapshot is held: a start with 1,000 services is one
   * snapshot (one table build), not one per read, and a new route appears with its instances.
   */
  private scheduleEmit(): void {
    if (this.emitScheduled || this.stopped) return;
    if (!this.reads.allAttempted()) {
      this.emitHeld = true;
      return;
    }
    this.emitHeld = false;
    this.emitScheduled = true;
    setImmediate(() => {
      this.emitScheduled = false;
      this.emitDiscovery();
      this.checkSynced();
    });
  }

  private releaseHeldEmit(): void {
    if (this.emitHeld && this.reads.allAttempted()) this.scheduleEmit();
  }

  private emitDiscovery(): void {
    const catalog = this.catalog?.current;
    if (catalog === undefined || this.stopped) return;
    const instances: Record<string, readonly ServiceInstance[]> = {};
    for (const name of this.wanted) {
      const list = this.reads.current(name);
      if (list !== undefined) instances[name] = list;
    }
    this.emit?.({ discovery: { catalog, instances } });
  }

  // ------------------------------------------------------------------ status, metrics, logs

  private succeeded(watch: string, meta: QueryMeta, recoveredAfter: number): void {
    this.lastSyncAt = Date.now();
    this.consulMetrics.lastSync.set(this.lastSyncAt / 1000);
    const log = this.watchLog(watch);
    if (recoveredAfter > 0) {
      this.logger.info({ watch, failures: recoveredAfter }, `consul ${watch} watch recovered`);
    }
    log.lastLogged = undefined;
    const stale = meta.staleFallback === true;
    if (stale !== log.stale) {
      log.stale = stale;
      this.consulMetrics.staleFallback.set([...this.logs.values()].some((entry) => entry.stale) ? 1 : 0);
      if (stale) this.logger.warn({ watch, code: 'SY_CONSUL', reason: 'no_leader' }, `consul ${watch}: the cluster has no leader; reading stale data from the agent's server until it has one (answers that would empty a pool are not applied)`);
      else this.logger.info({ watch }, `consul ${watch}: the cluster has a leader again; back to default reads`);
    }
    if (meta.filteredByAcls && !log.filteredWarned) {
      log.filteredWarned = true;
      this.logger.warn({ watch, code: 'SY_CONSUL_ACL' }, `consul ${watch}: some results are hidden by ACLs (X-Consul-Results-Filtered-By-ACLs); the token may lack read permissions`);
    }
    this.updateUp();
    if (this.listsSynced()) this.reads.enable();
    this.checkFirstReads();
    this.checkSynced();
  }

  // ------------------------------------------------------------------ first sync

  private startHold(): void {
    let release = (): void => undefined;
    const done = new Promise<void>((resolve) => { release = resolve; });
    const timer = setTimeout(() => this.endHold(), START_HOLD_MAX_MS);
    timer.unref();
    this.holding = { done, release, timer };
  }

  /** What a watch waits for before a blocking call: the first reads, during the first sync only. */
  private rearmHold(): Promise<void> | undefined {
    return this.holding?.done;
  }

  /**
   * The first sync's reads are over once the lists are known and the services some route needs had
   * one read each. Started by the CLI, the provider learns those services only from the first table,
   * built once the lists are known (no service wanted yet): so the hold lasts until some service is
   * wanted and read, or START_HOLD_MAX_MS (a configuration that routes no Consul service).
   */
  private checkFirstReads(): void {
    if (this.holding !== undefined && this.listsSynced() && this.wanted.length > 0 && this.reads.allAttempted()) this.endHold();
  }

  /** Re-arms the watches and gives the reads their steady share of the budget. */
  private endHold(): void {
    const holding = this.holding;
    if (holding === undefined) return;
    this.holding = undefined;
    clearTimeout(holding.timer);
    this.reads.setConcurrency(READ_CONCURRENCY);
    holding.release();
  }

  private checkSynced(): void {
    if (!this.wasSynced && this.isSynced()) {
      this.wasSynced = true;
      this.logger.info({ services: Object.keys(this.catalog?.current ?? {}).length, kvKeys: Object.keys(this.kv?.current ?? {}).length, watched: this.wanted.length, serviceReads: this.reads.reads, peakRequests: this.budget.peak }, 'consul synced');
    }
  }

  private indexBackwards(watch: string, from: number, to: number): void {
    this.logger.info({ watch, from, to }, `consul ${watch} index went backwards (a restore or a restart with older data): reading afresh`);
  }

  private failed(watch: string, error: ConsulWatchError, failures: number, retryInMs: number): void {
    // A failing watch at start: stop holding the others (KV keeps flowing while it recovers).
    if (watch.startsWith('health:')) this.checkFirstReads();
    else this.endHold();
    this.consulMetrics.errors.inc({ watch: watch.startsWith('health:') ? 'health' : watch, code: error.reason });
    this.updateUp();
    const log = this.watchLog(watch);
    const fields = { watch, code: error.code, reason: error.reason, status: error.status, failures, retryInMs };
    if (log.lastLogged !== error.message) {
      log.lastLogged = error.message;
      this.logger.error(fields, `consul ${watch} watch failed, the last data is kept: ${error.message}`);
    } else {
      this.logger.debug(fields, `consul ${watch} watch still failing: ${error.message}`);
    }
  }

  private watchLog(watch: string): WatchLog {
    let log = this.logs.get(watch);
    if (log === undefined) {
      log = { lastLogged: undefined, filteredWarned: false, stale: false };
      this.logs.set(watch, log);
    }
    return log;
  }

  private updateUp(): void {
    if (!this.stopped) this.consulMetrics.up.set(this.isHealthy() ? 1 : 0);
  }

  private isHealthy(): boolean {
    if (!this.started || this.stopped) return false;
    const loops = this.loops();
    return loops.length === 4 && loops.every((loop) => loop.state.healthy) && this.reads.failing() === undefined;
  }

  private isSynced(): boolean {
    if (!this.started || this.stopped || this.emitScheduled || this.emitHeld || this.kv?.state.synced !== true || !this.listsSynced()) return false;
    return this.wanted.every((name) => this.reads.isSynced(name));
  }

  private loops(): Loop[] {
    const loops: Loop[] = [];
    for (const loop of [this.catalog, this.healthState, this.nodes, this.kv]) if (loop !== undefined) loops.push(loop);
    return loops;
  }

  private watchDetail(name: string, state: WatchState): Record<string, unknown> {
    return { ...watchDetail(state), staleFallback: this.logs.get(name)?.stale === true };
  }

  /** Stops a loop in the background; stop() waits for every retired loop. */
  private retire(loop: { stop(): Promise<void> }): void {
    const done = loop.stop();
    this.stopping.add(done);
    void done.then(() => this.stopping.delete(done));
  }
}

function watchDetail(state: WatchState): Record<string, unknown> {
  return {
    index: state.index,
    synced: state.synced,
    healthy: state.healthy,
    calls: state.calls,
    changes: state.changes,
    rereads: state.rereads,
    failures: state.failures,
    lastSuccessAt: state.lastSuccessAt === undefined ? null : new Date(state.lastSuccessAt).toISOString(),
    lastError: state.lastError?.message ?? null,
    lastErrorCode: state.lastError?.reason ?? null,
  };
}
