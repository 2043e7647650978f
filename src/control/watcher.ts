import { ConfigError, SwitchyardError } from '../errors.js';
import { sameDiscovery, sameKv } from '../model/snapshot-equal.js';
import { TableBuilder } from '../model/table-builder.js';
import type { BuildProblem, DiscoverySnapshot, KvSnapshot, RouteTemplate, RoutingTable } from '../model/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { DiscoveryProvider, DiscoveryUpdate, TemplatesProvider } from '../providers/provider.js';
import { DiscoveryMerger, mergeKv } from './merge.js';
import type { TableStore } from './table-store.js';

/**
 * The time source of the watcher's throttling. `now` is monotonic (milliseconds from an arbitrary
 * origin): the wall clock can step (NTP, a VM resumed, an operator), and a step back by an hour
 * measured with Date.now() delayed the next build by an hour. Injected so tests run the throttle
 * deterministically.
 */
export interface WatcherClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const MONOTONIC_CLOCK: WatcherClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface WatcherOptions {
  /** Wait this long after the first change of a burst before building, so a burst builds once. */
  readonly coalesceMs: number;
  /** Minimum time between two builds: bounds rebuild work under a storm of changes. */
  readonly minIntervalMs: number;
  /** Default MONOTONIC_CLOCK. */
  readonly clock?: WatcherClock;
}

export const DEFAULT_WATCHER_OPTIONS: WatcherOptions = { coalesceMs: 5, minIntervalMs: 20 };

interface ProviderState {
  readonly provider: DiscoveryProvider;
  discovery: DiscoverySnapshot | undefined;
  kv: KvSnapshot | undefined;
  /** Whether an update arrived yet (the first one always counts, even an empty one). */
  updated: boolean;
}

/**
 * What the dedupe of discovery updates did, for tests and benchmarks: counts only.
 * `servicesCompared` counts services whose instances were compared field by field because their
 * array was a new object; with a provider that keeps unchanged services' arrays (Consul), one
 * service's change compares one service, whatever the size of the catalog.
 */
export interface DedupeStats {
  updates: number;
  dropped: number;
  servicesCompared: number;
}

export interface BuildFailure {
  /** Epoch milliseconds (for people; throttling uses the monotonic clock). */
  readonly at: number;
  readonly code: string;
  readonly message: string;
}

/** The last good inputs: templates, and a catalog they built a table with. */
interface LastGood {
  readonly templates: readonly RouteTemplate[];
  readonly catalog: DiscoverySnapshot['catalog'];
}

/**
 * What a build from the current inputs could not take: some template files (their last good
 * versions with the other files' current ones and the newest discovery), the templates (the last
 * good ones with the newest discovery), the catalog (the last good templates and catalog with the
 * newest instances), or both. `others`: the errors of further failing files (per-file step),
 * reported after `err`'s. `alsoLastGood`: the last good templates' own error with the current
 * catalog (added to the reported message). `files` (scope 'files'): each failing file, and whether
 * a last good version of it stays in force (else it adds no routes).
 */
interface HeldBack {
  readonly err: ConfigError;
  readonly scope: 'files' | 'templates' | 'catalog' | 'both';
  readonly others?: readonly string[];
  readonly alsoLastGood?: string;
  readonly files?: readonly HeldFile[];
}

interface HeldFile {
  readonly source: string;
  readonly kept: boolean;
}

/** A table to swap and the inputs it was built from; `heldBack` when they are not the current ones. */
interface Built extends LastGood {
  readonly table: RoutingTable;
  readonly heldBack?: HeldBack;
}

const HELD_BACK: Record<Exclude<HeldBack['scope'], 'files'>, string> = {
  templates: 'template change rejected, the last good templates stay in force (discovery and KV changes keep applying)',
  catalog: 'catalog change rejected for routes, the routes of the last good catalog stay in force (instance, health and KV changes keep applying; services registered since get no routes from templates)',
  both: 'template and catalog change rejected, the last good templates and catalog stay in force (instance, health and KV changes keep applying; services registered since get no routes from templates)',
};

/** The log line's opening for a held-back error: which files' last good versions stay in force (scope 'files'). */
function heldBackText({ scope, files }: HeldBack): string {
  if (scope !== 'files') return HELD_BACK[scope];
  const parts = (files ?? []).map((f) => (f.kept ? `the last good version of ${f.source} stays in force` : `${f.source} adds no routes (no earlier good version)`));
  return `template file rejected at build time, ${parts.join(', ')} (the other files' changes, discovery and KV keep applying)`;
}

/**
 * Control: keeps the newest snapshot of each provider (no queue of stale states), drops snapshots
 * identical to the last, and builds, validates and swaps a new table, coalescing bursts. A failed
 * build or swap is logged, counted and kept as `lastFailure`, and the live table stays; the next
 * change builds again from the newest snapshots, so one failure never blocks later changes.
 *
 * Templates that only fail at build time (a tie between two routes, a `{{service}}` expansion
 * that clashes once a service registers) must not hold back everything else. First, per FILE:
 * the ConfigError names its `source` (the template file; of a tie, the later route's); the table
 * is built again with the current templates, except that that file's are replaced, in place, by
 * its templates of the last good build (none when it has not built yet, e.g. at start-up: the
 * file adds no routes, as a file the provider rejects). A ConfigError from another file adds that
 * one, and so on (at most once per file). So one broken file neither blocks the other files'
 * changes nor, at start-up, the whole first table: every other file serves and readiness follows.
 * The step gives up, and the fallbacks below run, when a file fails again although substituted or
 * has nothing to substitute (its last good version is its current one: a tie where the OTHER file
 * changed, a catalog clash of an unchanged `each` template), when every file fails, or when the
 * result is the last good templates anyway (then it is the next fallback's build; with nothing
 * else changed, nothing is swapped). Then the table is built again from the templates of the last
 * successful build with the newest discovery and KV, and swapped. The broken template change
 * stays out, everything else (a KV weight change, a health change) applies. The error is counted
 * and logged once per distinct message and kept as `lastFailure`; every build tries the current
 * templates first, so a fix (or the clash going away with the catalog) applies at once and clears
 * it. Without last good templates (the first build) and no per-file table, the build is rejected
 * as above.
 *
 * The catalog can make unchanged templates clash too (a service registers with the tag an
 * `each: {tag: ...}` template expands, and its `{{service}}` route ties with another route or
 * takes its name). Then the last good templates are the current ones, or fail as well with the
 * new catalog, and rejecting the build would stop every later KV and health change until the
 * registration goes away. So the last fallback is the last good templates over the LAST GOOD
 * CATALOG (the catalog of the last table built without it), with the newest instances and KV: the
 * routes stay as they were, their endpoints, health and weights follow discovery and KV. A
 * service the new catalog adds gets no routes from `each` templates (nor from `urlprefix-` tags),
 * and tag changes of known services do not reach the routes, until the clash is resolved; a
 * literal route to a new service still gets its instances (a service in `instances` is known).
 * Reported exactly as a template error (once per message, lastFailure); the current inputs are
 * tried first on every build, so the deregistration (or a template fix) applies at once and
 * clears it. A fallback that builds is the new last good pair (templates, catalog). Alternating
 * is safe for the builder's reuse: a build that throws changes nothing.
 */
export class ConfigWatcher {
  private readonly providers: ProviderState[];
  private templates: readonly RouteTemplate[] | undefined;
  private templatesFingerprint = '';
  private timer: unknown;
  /** Monotonic time of the last build; -Infinity before the first. */
  private lastBuildAt = Number.NEGATIVE_INFINITY;
  private readonly clock: WatcherClock;
  private problemKeys = new Set<string>();
  private watchedKey = '';
  /** The services array last followed: the builder hands the same array while the route specs are unchanged. */
  private watchedNames: readonly string[] | undefined;
  private stopped = false;
  /** Builds wait until every provider made its first attempt, so start-up swaps one whole table. */
  private starting = true;
  /**
   * Monotonic time of each source's earliest change not yet in a swapped table, by provider name
   * (`switchyard_change_to_swap_seconds{provider}`). Kept across rejected builds: the change
   * reaches the live table only with the next swap. Snapshots delivered while starting are not
   * changes (start-up waits for every source; its time is not a change's delay).
   */
  private readonly pendingSince = new Map<string, number>();
  /**
   * The last rejected build, or the current inputs' error while the last good templates (and
   * catalog) are in force (holdBack); cleared by the next successful build from the current inputs.
   */
  lastFailure: BuildFailure | undefined;
  /**
   * The templates and catalog the live table's routes were built from (its instances and KV are
   * the newest): the last good templates, and a catalog they build with.
   */
  private lastGood: LastGood | undefined;
  /** The current inputs' error while the last good ones are in force (counted once per message). */
  private heldBack: BuildFailure | undefined;
  /** Reuses the previous table's routes for what did not change (model/table-builder.ts). */
  readonly builder = new TableBuilder();
  /** Keeps unchanged services' merged arrays when several providers feed the table. */
  private readonly merger = new DiscoveryMerger();
  readonly dedupe: DedupeStats = { updates: 0, dropped: 0, servicesCompared: 0 };
  private readonly countCompared = (): void => {
    this.dedupe.servicesCompared += 1;
  };

  constructor(
    discovery: readonly DiscoveryProvider[],
    private readonly templatesProvider: TemplatesProvider,
    private readonly store: TableStore,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: WatcherOptions = DEFAULT_WATCHER_OPTIONS,
  ) {
    this.providers = discovery.map((provider) => ({ provider, discovery: undefined, kv: undefined, updated: false }));
    this.clock = options.clock ?? MONOTONIC_CLOCK;
  }

  /** Start every provider; resolves when each has made its first attempt. */
  async start(): Promise<void> {
    await this.templatesProvider.start((templates) => this.onTemplates(templates));
    await Promise.all(this.providers.map((state) => state.provider.start((update) => this.onDiscovery(state, update))));
    this.starting = false;
    this.schedule();
  }

  /** SIGHUP: every provider reads its source afresh; the rebuild follows as for any change. */
  async reload(): Promise<void> {
    await Promise.all([this.templatesProvider.reload(), ...this.providers.map((s) => s.provider.reload())]);
    this.schedule();
  }

  /**
   * Ready once a table is live and every provider has delivered at least once; then it stays so.
   * A provider's `synced` is its state right now (the Consul provider is not synced while a change
   * is being emitted or a newly wanted service awaits its first read), and readiness must not
   * follow it: /readyz answered 503 for a moment on an ordinary deregistration (seen in CI under
   * load). A source failing later is `healthy: false` in /api/config; the last good table serves.
   */
  get ready(): boolean {
    if (this.wasReady) return true;
    this.wasReady = this.store.current !== undefined && this.templatesProvider.status().synced
      && this.providers.every((s) => s.provider.status().synced);
    return this.wasReady;
  }
  private wasReady = false;

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    await Promise.all([this.templatesProvider.stop(), ...this.providers.map((s) => s.provider.stop())]);
  }

  private onTemplates(templates: readonly RouteTemplate[]): void {
    const fingerprint = JSON.stringify(templates);
    if (fingerprint === this.templatesFingerprint) return;
    this.templatesFingerprint = fingerprint;
    this.templates = templates;
    this.changed(this.templatesProvider.name);
    this.schedule();
  }

  /**
   * Drop an update equal to the provider's previous one (a blocking query that returned with no
   * change). The comparison is by identity first, per service (snapshot-equal.ts), never by
   * serialising the snapshot: its cost follows what changed, not the size of the catalog.
   */
  private onDiscovery(state: ProviderState, update: DiscoveryUpdate): void {
    const discovery = update.discovery ?? state.discovery;
    const kv = update.kv ?? state.kv;
    this.dedupe.updates += 1;
    if (state.updated && sameOrBoth(state.discovery, discovery, (a, b) => sameDiscovery(a, b, this.countCompared)) && sameOrBoth(state.kv, kv, sameKv)) {
      this.dedupe.dropped += 1;
      return;
    }
    state.updated = true;
    state.discovery = discovery;
    state.kv = kv;
    this.changed(state.provider.name);
    this.schedule();
  }

  /** Note when a source's change arrived, unless an earlier one from it is still waiting for a swap. */
  private changed(provider: string): void {
    if (this.starting || this.pendingSince.has(provider)) return;
    this.pendingSince.set(provider, this.clock.now());
  }

  private schedule(): void {
    if (this.timer !== undefined || this.stopped || this.starting) return;
    const delay = Math.max(this.options.coalesceMs, this.lastBuildAt + this.options.minIntervalMs - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      try {
        this.build();
      } catch (err) {
        // A bug, not bad input (bad input is a ConfigError caught in build): never let it kill the process.
        this.metrics.configErrors.inc({ kind: 'build' });
        this.logger.error({ err }, 'unexpected error while building the routing table; the live table keeps serving');
      }
    }, delay);
  }

  /** Build from the newest snapshots and swap; on failure keep the live table. */
  private build(): void {
    if (this.templates === undefined || this.stopped) return;
    const started = this.lastBuildAt = this.clock.now();
    const discovery = this.merger.merge(this.providers.flatMap((s) => (s.discovery === undefined ? [] : [s.discovery])));
    const kv = mergeKv(this.providers.flatMap((s) => (s.kv === undefined ? [] : [s.kv])));
    const templates = this.templates;
    let built: Built;
    try {
      // Timed from `started`: merging the providers' snapshots is part of the build.
      try {
        built = { table: this.builder.build(discovery, kv, templates), templates, catalog: discovery.catalog };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const perFile = this.buildPerFile(err, discovery, kv, templates);
        if ('table' in perFile) built = perFile;
        else {
          const fallback = this.buildFallback(err, discovery, kv, templates, perFile.others);
          if (fallback === undefined) return;
          built = fallback;
        }
      }
    } catch (err) {
      this.reject('build', err, 'configuration rejected, the live table keeps serving');
      return;
    } finally {
      this.metrics.buildDuration.observe((this.clock.now() - started) / 1000);
    }
    const { table, heldBack } = built;
    if (heldBack !== undefined) this.holdBack(heldBack);
    this.followNeededServices(table.services);
    const live = this.store.version;
    try {
      this.store.swap(table);
    } catch (err) {
      if (this.store.version === live) {
        this.reject('swap', err, 'table swap aborted, the live table keeps serving');
        return;
      }
      // Swapped, but releasing the old table failed: the new table serves; say so, keep going.
      this.metrics.configErrors.inc({ kind: 'swap' });
      this.logger.error({ err, version: this.store.version }, 'table swapped, but releasing the previous one failed');
    }
    this.lastGood = { templates: built.templates, catalog: built.catalog };
    if (heldBack === undefined) {
      this.heldBack = undefined;
      this.lastFailure = undefined;
      this.observeSwapped();
    } else {
      // The template change is not in this table: its delay keeps counting until it is.
      this.observeSwapped(this.templatesProvider.name);
    }
    this.reportProblems(table.problems);
    this.metrics.tableSwaps.inc();
    this.metrics.tableVersion.set(this.store.version);
    this.metrics.tableRoutes.set(table.routes.length);
    this.metrics.tableBuiltAt.set(this.store.swappedAt / 1000);
    this.logger.info({ version: this.store.version, routes: table.routes.length, problems: table.problems.length, ...fallbackFields(heldBack) }, 'routing table swapped');
  }

  /** Whether a source other than the templates has a change not yet in the live table. */
  private otherChangePending(): boolean {
    for (const provider of this.pendingSince.keys()) if (provider !== this.templatesProvider.name) return true;
    return false;
  }

  /**
   * After the build from the current inputs threw `err`: the current templates with each failing
   * file's replaced by its templates of the last good build (none before it built), in place,
   * adding each file another such build fails on. A table, or the other files' errors found
   * (`others`, reported with `err`) when the step gives up (see the class comment).
   */
  private buildPerFile(err: ConfigError, discovery: DiscoverySnapshot, kv: KvSnapshot, templates: readonly RouteTemplate[]): Built | { others: string[] } {
    const lastGood = bySource(this.lastGood?.templates ?? []);
    const current = bySource(templates);
    const failing: ConfigError[] = [];
    const sources = new Set<string>();
    const others = (): string[] => failing.slice(1).map((e) => e.message);
    let error = err;
    // Each round adds a file or gives up: at most one round per file.
    for (let round = 0; round < current.size; round += 1) {
      const own = current.get(error.source);
      // Failing again although substituted, not a file of the templates, or unchanged since the last good build.
      if (sources.has(error.source) || own === undefined || JSON.stringify(own) === JSON.stringify(lastGood.get(error.source) ?? [])) return { others: others() };
      failing.push(error);
      sources.add(error.source);
      if (sources.size === current.size) return { others: others() };
      // Each failing file's last good templates where its first current one was.
      const placed = new Set<string>();
      const substituted = templates.flatMap((t) => {
        if (!sources.has(t.source)) return [t];
        if (placed.has(t.source)) return [];
        placed.add(t.source);
        return lastGood.get(t.source) ?? [];
      });
      if (this.lastGood !== undefined && JSON.stringify(substituted) === JSON.stringify(this.lastGood.templates)) return { others: others() };
      try {
        const table = this.builder.build(discovery, kv, substituted);
        const files = failing.map((e) => ({ source: e.source, kept: lastGood.has(e.source) }));
        return { table, templates: substituted, catalog: discovery.catalog, heldBack: { err, scope: 'files', others: others(), files } };
      } catch (next) {
        if (!(next instanceof ConfigError)) throw next;
        error = next;
      }
    }
    return { others: others() };
  }

  /**
   * After the build from the current inputs threw `err`: the last good templates with the newest
   * discovery and KV (when the templates changed), else (or when they clash with the new catalog
   * too) the last good templates over the last good catalog with the newest instances and KV.
   * Undefined when only the templates changed (held back, the live table is that build); throws
   * `err` when there is nothing to fall back to or it is not a ConfigError (a bug).
   */
  private buildFallback(err: ConfigError, discovery: DiscoverySnapshot, kv: KvSnapshot, templates: readonly RouteTemplate[], others: readonly string[]): Built | undefined {
    const good = this.lastGood;
    if (good === undefined) throw err;
    const also = others.length === 0 ? {} : { others };
    const templatesChanged = good.templates !== templates;
    if (!this.otherChangePending()) {
      // Nothing but the templates is new: the live table is what the fallback would build. With
      // nothing new at all (a reload), its error stands as reported (no recount).
      if (templatesChanged || this.heldBack === undefined) this.holdBack({ err, scope: templatesChanged ? 'templates' : 'catalog', ...also });
      else this.lastFailure = this.heldBack;
      return undefined;
    }
    let alsoLastGood: string | undefined;
    if (templatesChanged) {
      try {
        const table = this.builder.build(discovery, kv, good.templates);
        return { table, templates: good.templates, catalog: discovery.catalog, heldBack: { err, scope: 'templates', ...also } };
      } catch (second) {
        if (!(second instanceof ConfigError)) throw second;
        if (second.message !== err.message) alsoLastGood = second.message;
      }
    }
    // The instances stay the newest: health and endpoints apply; a service the old catalog lacks
    // is still known to the builder through them (table-builder.ts serviceEntry).
    const held: DiscoverySnapshot = { catalog: good.catalog, instances: discovery.instances };
    const scope = templatesChanged ? 'both' : 'catalog';
    try {
      const table = this.builder.build(held, kv, good.templates);
      return { table, templates: good.templates, catalog: good.catalog, heldBack: { err, scope, ...also, ...(alsoLastGood === undefined ? {} : { alsoLastGood }) } };
    } catch (third) {
      // Not expected (this pair built before and expansion reads only the catalog): rejected with the current error.
      if ((third as Error).message !== err.message) {
        this.logger.error({ code: err.code, live: this.store.version }, `the last good templates and catalog fail too: ${(third as Error).message}`);
      }
      throw err;
    }
  }

  /**
   * The current inputs' error while the last good ones serve: kept as lastFailure (for
   * /api/status and `switchyard routes`), counted and logged only when the message is new.
   */
  private holdBack(held: HeldBack): void {
    const { err, others, alsoLastGood } = held;
    // Every failing file's error (the per-file step found them) is part of the message; so is the
    // last good templates' own clash: it is why the catalog is held back too, and stays visible in
    // /api/status while the template error hides it.
    const errors = [err.message, ...(others ?? [])].join('; ');
    const message = alsoLastGood === undefined ? errors : `${errors}; the last good templates clash with the current catalog too: ${alsoLastGood}`;
    if (this.heldBack?.code !== err.code || this.heldBack.message !== message) {
      this.heldBack = { at: Date.now(), code: err.code, message };
      this.metrics.configErrors.inc({ kind: 'build' });
      this.logger.error({ code: err.code, live: this.store.version }, `${heldBackText(held)}: ${message}`);
    }
    this.lastFailure = this.heldBack;
  }

  /**
   * The table holding the pending changes is live: each source's delay, from its earliest pending
   * change. `except` (the templates, when the last good ones were built) stays pending.
   */
  private observeSwapped(except?: string): void {
    if (this.pendingSince.size === 0) return;
    const now = this.clock.now();
    for (const [provider, since] of this.pendingSince) {
      if (provider === except) continue;
      this.metrics.changeToSwapDelay.observe({ provider }, (now - since) / 1000);
      this.pendingSince.delete(provider);
    }
  }

  /** A build or swap that did not happen: counted, logged, kept as lastFailure. */
  private reject(kind: 'build' | 'swap', err: unknown, what: string): void {
    const code = err instanceof SwitchyardError ? err.code : 'SY_CONFIG_INVALID';
    const message = (err as Error).message;
    this.lastFailure = { at: Date.now(), code, message };
    this.metrics.configErrors.inc({ kind });
    this.logger.error({ code, live: this.store.version }, `${what}: ${message}`);
  }

  /** Tell discovery providers which services routes need instances of (Consul starts and stops health watches). */
  private followNeededServices(names: readonly string[]): void {
    if (names === this.watchedNames) return;
    this.watchedNames = names;
    const key = names.join('\n');
    if (key === this.watchedKey) return;
    this.watchedKey = key;
    for (const state of this.providers) state.provider.watchServices?.(names);
  }

  /** Log and count each problem once, when it first appears (a rebuild does not count it again). */
  private reportProblems(problems: readonly BuildProblem[]): void {
    const keys = new Set<string>();
    for (const problem of problems) {
      const key = `${problem.kind}\u0000${problem.source}\u0000${problem.message}`;
      keys.add(key);
      if (this.problemKeys.has(key)) continue;
      this.metrics.configErrors.inc({ kind: problem.kind });
      this.logger.warn({ kind: problem.kind, source: problem.source }, `ignored: ${problem.message}`);
    }
    this.problemKeys = keys;
  }
}

/** The swap log line's marks of a fallback build: built from some files' last good templates, from the last good templates, and catalog. */
function fallbackFields(heldBack: HeldBack | undefined): { lastGoodFiles?: string[]; lastGoodTemplates?: true; lastGoodCatalog?: true } {
  if (heldBack === undefined) return {};
  if (heldBack.scope === 'files') return { lastGoodFiles: (heldBack.files ?? []).map((f) => f.source) };
  return heldBack.scope === 'templates' ? { lastGoodTemplates: true } : { lastGoodTemplates: true, lastGoodCatalog: true };
}

/** Templates grouped by file, in order. */
function bySource(templates: readonly RouteTemplate[]): Map<string, RouteTemplate[]> {
  const groups = new Map<string, RouteTemplate[]>();
  for (const t of templates) {
    const group = groups.get(t.source);
    if (group === undefined) groups.set(t.source, [t]);
    else group.push(t);
  }
  return groups;
}

/** Both undefined, or both defined and `same`. */
function sameOrBoth<T>(a: T | undefined, b: T | undefined, same: (a: T, b: T) => boolean): boolean {
  return a === undefined || b === undefined ? a === b : same(a, b);
}
