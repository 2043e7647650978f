import type { ConsulSettings } from '../../config/config.js';
import { compareCodeUnits } from '../../model/compare-code-units.js';
import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../../model/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { DiscoveryProvider, DiscoveryUpdate, ProviderStatus } from '../provider.js';
import { BlockingQuery, type BlockingQueryTimings, type QueryMeta, type WatchState } from './blocking-query.js';
import { catalogFromServices, listsAnyService } from './catalog.js';
import { ConsulClient, type ConsulReader } from './consul-client.js';
import { EmptyAnswerGuard } from './empty-answer-guard.js';
import { consulMetrics, type ConsulMetrics } from './consul-metrics.js';
import { instancesFromHealth, isUp } from './health.js';
import { kvFromEntries } from './kv.js';
import type { ConsulWatchError } from './watch-error.js';

/**
 * The Consul provider: the catalog, the health of every service some route needs, and the KV
 * prefix, each watched by its own blocking query (blocking-query.ts), turned into the same
 * snapshots the services file produces.
 *
 * - Emits `{ discovery }` when the catalog or any watched service's instances changed (once the
 *   catalog is known), `{ kv }` when the KV prefix changed. Whole snapshots, never diffs.
 * - A failing watch keeps its last data: nothing is emitted for it, so the live table keeps serving
 *   (a failing health watch keeps its service's last instances).
 * - Answers that would drop live endpoints for the wrong reason are refused (not applied, counted,
 *   logged, retried with backoff keeping the old index): an answer emptied by ACL filtering
 *   (`X-Consul-Results-Filtered-By-ACLs: true`) is a permissions problem; an answer that would empty
 *   a pool (or the catalog, or the KV overrides) while the cluster has no leader is not trusted.
 * - Which empty answers are refused, and how "no leader" and "ACLs on without a token" are told
 *   (a streaming answer's `X-Consul-KnownLeader: false` says nothing): empty-answer-guard.ts.
 * - A streaming health answer with no instance at all is confirmed by a fresh (index 0) read
 *   first: the streaming view never says whether ACLs filtered it; a plain read does.
 * - `status().synced` once the catalog, the KV prefix and every currently wanted service have been
 *   read at least once (readiness); `healthy` while no watch is failing.
 * - The token goes to Consul as `X-Consul-Token` and nowhere else: not in messages, errors, status.
 */

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
  private readonly client: ConsulReader;
  private readonly consulMetrics: ConsulMetrics;
  private readonly timings: BlockingQueryTimings;
  private emit: ((update: DiscoveryUpdate) => void) | undefined;
  private catalog: BlockingQuery<unknown, Catalog> | undefined;
  private kv: BlockingQuery<unknown, KvSnapshot> | undefined;
  private readonly health = new Map<string, BlockingQuery<unknown, ServiceInstance[]>>();
  private readonly stopping = new Set<Promise<void>>();
  private readonly logs = new Map<string, WatchLog>();
  private wanted: readonly string[] = [];
  private readonly guard: EmptyAnswerGuard;
  private started = false;
  private stopped = false;
  private wasSynced = false;
  private lastSyncAt: number | undefined;

  constructor(
    private readonly settings: ConsulSettings,
    private readonly kvPrefix: string,
    private readonly logger: Logger,
    metrics: Metrics,
    options: Partial<ConsulProviderOptions> = {},
  ) {
    this.options = { ...DEFAULT_CONSUL_PROVIDER_OPTIONS, ...options };
    this.client = this.options.reader ?? new ConsulClient(settings, {
      timeoutMarginMs: this.options.timeoutMarginMs,
      readTimeoutMs: this.options.readTimeoutMs,
    });
    this.guard = new EmptyAnswerGuard(this.client, settings.token !== undefined, logger);
    this.consulMetrics = consulMetrics(metrics.registry);
    this.consulMetrics.up.set(0);
    this.timings = {
      waitMs: settings.waitMs,
      minIntervalMs: this.options.minIntervalMs,
      backoffBaseMs: this.options.backoffBaseMs,
      backoffMaxMs: this.options.backoffMaxMs,
    };
  }

  async start(emit: (update: DiscoveryUpdate) => void): Promise<void> {
    if (this.started) return;
    this.emit = emit;
    this.started = true;
    this.logger.info({ url: this.settings.url, datacenter: this.settings.datacenter, consistency: this.settings.consistency, kvPrefix: this.kvPrefix, waitMs: this.settings.waitMs, acl: this.settings.token !== undefined }, 'watching Consul');
    this.catalog = this.catalogLoop();
    this.kv = this.kvLoop();
    const first = [this.catalog.start(), this.kv.start()];
    for (const name of this.wanted) first.push(this.startHealth(name));
    await Promise.all(first);
  }

  /** Starts and stops per-service health watches as the set of services routes need changes. */
  watchServices(names: readonly string[]): void {
    const next = [...new Set(names)].sort(compareCodeUnits);
    this.wanted = next;
    if (!this.started || this.stopped) return;
    const keep = new Set(next);
    for (const [name, loop] of this.health) {
      if (keep.has(name)) continue;
      this.health.delete(name);
      this.logs.delete(`health:${name}`);
      this.retire(loop);
      this.logger.debug({ service: name }, 'stopped watching the health of a service no route needs');
    }
    for (const name of next) if (!this.health.has(name)) void this.startHealth(name);
    this.updateUp();
  }

  /** SIGHUP: every watch reads afresh now. */
  async reload(): Promise<void> {
    this.guard.forgetAcl();
    await Promise.all(this.loops().map((loop) => loop.refresh()));
  }

  status(): ProviderStatus {
    const loops = this.loops();
    const failing = loops.find((loop) => loop.state.lastError !== undefined);
    return {
      name: this.name,
      healthy: this.isHealthy(),
      synced: this.isSynced(),
      lastSyncAt: this.lastSyncAt,
      lastError: failing?.state.lastError?.message,
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
        watches: Object.fromEntries(loops.map((loop) => [loop.name, { ...watchDetail(loop.state), staleFallback: this.logs.get(loop.name)?.stale === true }])),
      },
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const loop of this.loops()) this.retire(loop);
    this.health.clear();
    await Promise.all([...this.stopping]);
    this.client.close();
    this.consulMetrics.up.set(0);
  }

  // ------------------------------------------------------------------ watches

  private catalogLoop(): BlockingQuery<unknown, Catalog> {
    return new BlockingQuery<unknown, Catalog>('catalog', {
      fetch: (request) => this.client.catalogServices(request),
      decode: (body) => {
        const catalog = catalogFromServices(body);
        // `consul` counts as data here although it is not routed (empty-answer-guard.ts).
        if (listsAnyService(body)) this.guard.saw('catalog');
        return catalog;
      },
      veto: async (next, previous, meta, signal) => {
        const empty = Object.keys(next).length === 0;
        return await this.guard.emptied('the catalog', empty, Object.keys(previous ?? {}).length > 0, meta, signal)
          ?? (empty ? this.guard.anonymous('catalog', 'the catalog', signal) : undefined);
      },
      onChange: () => this.emitDiscovery(),
      onSuccess: (meta, _changed, recovered) => this.succeeded('catalog', meta, recovered),
      onIndexBackwards: (from, to) => this.indexBackwards('catalog', from, to),
      onFailure: (error, failures, retryInMs) => this.failed('catalog', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private kvLoop(): BlockingQuery<unknown, KvSnapshot> {
    return new BlockingQuery<unknown, KvSnapshot>('kv', {
      fetch: (request) => this.client.kvList(this.kvPrefix, request),
      decode: (body) => kvFromEntries(body, this.kvPrefix),
      veto: (next, previous, meta, signal) => this.guard.emptied(`the KV prefix "${this.kvPrefix}"`, Object.keys(next).length === 0, Object.keys(previous ?? {}).length > 0, meta, signal),
      onChange: (kv) => {
        if (!this.stopped) this.emit?.({ kv });
      },
      onSuccess: (meta, _changed, recovered) => this.succeeded('kv', meta, recovered),
      onIndexBackwards: (from, to) => this.indexBackwards('kv', from, to),
      onFailure: (error, failures, retryInMs) => this.failed('kv', error, failures, retryInMs),
    }, this.timings, this.options.random);
  }

  private startHealth(service: string): Promise<void> {
    const watch = `health:${service}`;
    const loop = new BlockingQuery<unknown, ServiceInstance[]>(watch, {
      fetch: (request) => this.client.healthService(service, request),
      decode: (body) => {
        const instances = instancesFromHealth(body);
        if (instances.length > 0) this.guard.saw(`service:${service}`);
        return instances;
      },
      veto: async (next, previous, meta, signal) => {
        const what = `service "${service}"`;
        // Filtered to nothing: whatever was there before, this is a permissions problem.
        if (meta.filteredByAcls && next.length === 0) return this.guard.emptied(what, true, true, meta, signal);
        // Every instance gone in a streaming answer: the streaming view never says whether ACLs
        // filtered them. A fresh (index 0) read is a plain RPC read that does; it decides.
        if (meta.queryBackend === 'streaming' && next.length === 0 && (previous ?? []).length > 0) return 'reread';
        const refused = await this.guard.emptied(what, !next.some(isUp), (previous ?? []).some(isUp), { ...meta, filteredByAcls: false }, signal);
        if (refused !== undefined || next.length > 0) return refused;
        // No instance at all while the catalog lists the service (or is not known yet): hidden
        // (node:read), or the catalog has not caught up with a deregistration (the retry applies it).
        const catalog = this.catalog?.current;
        return catalog !== undefined && catalog[service] === undefined ? undefined : this.guard.anonymous(`service:${service}`, what, signal);
      },
      onChange: () => {
        if (this.health.get(service) === loop) this.emitDiscovery();
      },
      onSuccess: (meta, _changed, recovered) => this.succeeded(watch, meta, recovered),
      onIndexBackwards: (from, to) => this.indexBackwards(watch, from, to),
      onFailure: (error, failures, retryInMs) => this.failed(watch, error, failures, retryInMs),
    }, this.timings, this.options.random);
    this.health.set(service, loop);
    this.logger.debug({ service }, 'watching the health of a service');
    return loop.start();
  }

  private emitDiscovery(): void {
    const catalog = this.catalog?.current;
    if (catalog === undefined || this.stopped) return;
    const instances: Record<string, readonly ServiceInstance[]> = {};
    for (const name of this.wanted) {
      const list = this.health.get(name)?.current;
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
      this.consulMetrics.staleFallback.set(this.loops().some((loop) => this.logs.get(loop.name)?.stale === true) ? 1 : 0);
      if (stale) this.logger.warn({ watch, code: 'SY_CONSUL', reason: 'no_leader' }, `consul ${watch}: the cluster has no leader; reading stale data from the agent's server until it has one (answers that would empty a pool are not applied)`);
      else this.logger.info({ watch }, `consul ${watch}: the cluster has a leader again; back to default reads`);
    }
    if (meta.filteredByAcls && !log.filteredWarned) {
      log.filteredWarned = true;
      this.logger.warn({ watch, code: 'SY_CONSUL_ACL' }, `consul ${watch}: some results are hidden by ACLs (X-Consul-Results-Filtered-By-ACLs); the token may lack read permissions`);
    }
    this.updateUp();
    if (!this.wasSynced && this.isSynced()) {
      this.wasSynced = true;
      this.logger.info({ services: Object.keys(this.catalog?.current ?? {}).length, kvKeys: Object.keys(this.kv?.current ?? {}).length, watched: this.wanted.length }, 'consul synced');
    }
  }

  private indexBackwards(watch: string, from: number, to: number): void {
    this.logger.info({ watch, from, to }, `consul ${watch} index went backwards (a restore or a restart with older data): reading afresh`);
  }

  private failed(watch: string, error: ConsulWatchError, failures: number, retryInMs: number): void {
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
    if (!this.started || this.stopped || this.catalog === undefined || this.kv === undefined) return false;
    return this.catalog.state.healthy && this.kv.state.healthy && [...this.health.values()].every((loop) => loop.state.lastError === undefined);
  }

  private isSynced(): boolean {
    if (!this.started || this.stopped || this.catalog === undefined || this.kv === undefined) return false;
    return this.catalog.state.synced && this.kv.state.synced && this.wanted.every((name) => this.health.get(name)?.state.synced === true);
  }

  private loops(): Loop[] {
    const loops: Loop[] = [];
    if (this.catalog !== undefined) loops.push(this.catalog);
    if (this.kv !== undefined) loops.push(this.kv);
    for (const loop of this.health.values()) loops.push(loop);
    return loops;
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
