import { SwitchyardError } from '../errors.js';
import { buildTable } from '../model/index.js';
import type { BuildProblem, DiscoverySnapshot, KvSnapshot, RouteTemplate, RoutingTable } from '../model/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { DiscoveryProvider, DiscoveryUpdate, TemplatesProvider } from '../providers/provider.js';
import { mergeDiscovery, mergeKv } from './merge.js';
import type { TableStore } from './table-store.js';

export interface WatcherOptions {
  /** Wait this long after the first change of a burst before building, so a burst builds once. */
  readonly coalesceMs: number;
  /** Minimum time between two builds: bounds rebuild work under a storm of changes. */
  readonly minIntervalMs: number;
}

export const DEFAULT_WATCHER_OPTIONS: WatcherOptions = { coalesceMs: 5, minIntervalMs: 20 };

interface ProviderState {
  readonly provider: DiscoveryProvider;
  discovery: DiscoverySnapshot | undefined;
  kv: KvSnapshot | undefined;
  /** Serialised last update, to drop snapshots identical to the previous one. */
  fingerprint: string;
}

export interface BuildFailure {
  readonly at: number;
  readonly code: string;
  readonly message: string;
}

/**
 * Control: keeps the newest snapshot of each provider (no queue of stale states), drops snapshots
 * identical to the last, and builds, validates and swaps a new table, coalescing bursts. A failed
 * build is logged and counted, and the live table stays.
 */
export class ConfigWatcher {
  private readonly providers: ProviderState[];
  private templates: readonly RouteTemplate[] | undefined;
  private templatesFingerprint = '';
  private timer: NodeJS.Timeout | undefined;
  private lastBuildAt = 0;
  private problemKeys = new Set<string>();
  private watchedKey = '';
  private stopped = false;
  /** Builds wait until every provider made its first attempt, so start-up swaps one whole table. */
  private starting = true;
  /** The last rejected build, cleared by the next successful one. */
  lastFailure: BuildFailure | undefined;
  builds = 0;

  constructor(
    discovery: readonly DiscoveryProvider[],
    private readonly templatesProvider: TemplatesProvider,
    private readonly store: TableStore,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: WatcherOptions = DEFAULT_WATCHER_OPTIONS,
  ) {
    this.providers = discovery.map((provider) => ({ provider, discovery: undefined, kv: undefined, fingerprint: '' }));
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

  /** Ready once a table is live and every provider has delivered at least once. */
  get ready(): boolean {
    return this.store.current !== undefined && this.templatesProvider.status().synced
      && this.providers.every((s) => s.provider.status().synced);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await Promise.all([this.templatesProvider.stop(), ...this.providers.map((s) => s.provider.stop())]);
  }

  private onTemplates(templates: readonly RouteTemplate[]): void {
    const fingerprint = JSON.stringify(templates);
    if (fingerprint === this.templatesFingerprint) return;
    this.templatesFingerprint = fingerprint;
    this.templates = templates;
    this.schedule();
  }

  private onDiscovery(state: ProviderState, update: DiscoveryUpdate): void {
    const discovery = update.discovery ?? state.discovery;
    const kv = update.kv ?? state.kv;
    const fingerprint = JSON.stringify([discovery, kv]);
    if (fingerprint === state.fingerprint) return;
    state.fingerprint = fingerprint;
    state.discovery = discovery;
    state.kv = kv;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.stopped || this.starting) return;
    const delay = Math.max(this.options.coalesceMs, this.lastBuildAt + this.options.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
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
    this.lastBuildAt = Date.now();
    const discovery = mergeDiscovery(this.providers.flatMap((s) => (s.discovery === undefined ? [] : [s.discovery])));
    const kv = mergeKv(this.providers.flatMap((s) => (s.kv === undefined ? [] : [s.kv])));
    let table: RoutingTable;
    try {
      table = buildTable(discovery, kv, this.templates);
    } catch (err) {
      const code = err instanceof SwitchyardError ? err.code : 'SY_CONFIG_INVALID';
      const message = (err as Error).message;
      this.lastFailure = { at: Date.now(), code, message };
      this.metrics.configErrors.inc({ kind: 'build' });
      this.logger.error({ code, live: this.store.version }, `configuration rejected, the live table keeps serving: ${message}`);
      return;
    }
    this.lastFailure = undefined;
    this.followNeededServices(table.services);
    this.reportProblems(table.problems);
    this.store.swap(table);
    this.builds += 1;
    this.metrics.tableSwaps.inc();
    this.metrics.tableRoutes.set(table.routes.length);
    this.metrics.tableBuiltAt.set(this.store.swappedAt / 1000);
    this.logger.info({ version: this.store.version, routes: table.routes.length, problems: table.problems.length }, 'routing table swapped');
  }

  /** Tell discovery providers which services routes need instances of (Consul starts and stops health watches). */
  private followNeededServices(names: readonly string[]): void {
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
