/** Test doubles for the control layer: providers the test drives by hand, and a manual clock. */
import type { DiscoveryUpdate, DiscoveryProvider, ProviderStatus, TemplatesProvider } from '../../src/providers/provider.js';
import type { RouteTemplate } from '../../src/model/types.js';
import type { WatcherClock } from '../../src/control/watcher.js';

/** A provider whose snapshots the test emits with `emit`; synced after the first one. */
export class HandProvider<T> {
  private sink: ((snapshot: T) => void) | undefined;
  private synced = false;
  readonly watched: (readonly string[])[] = [];

  constructor(readonly name: string, private readonly first?: T) {}

  async start(emit: (snapshot: T) => void): Promise<void> {
    this.sink = emit;
    if (this.first !== undefined) this.emit(this.first);
  }

  emit(snapshot: T): void {
    this.synced = true;
    this.sink?.(snapshot);
  }

  /** As the Consul provider while it processes a change (an emit pending, a new service's first read): not synced right now. */
  processing(): void {
    this.synced = false;
  }

  async reload(): Promise<void> {}

  status(): ProviderStatus {
    return { name: this.name, healthy: true, synced: this.synced, lastSyncAt: undefined, lastError: undefined };
  }

  async stop(): Promise<void> {}

  watchServices(names: readonly string[]): void {
    this.watched.push(names);
  }
}

export const discoveryProvider = (name: string, first?: DiscoveryUpdate): HandProvider<DiscoveryUpdate> & DiscoveryProvider =>
  new HandProvider<DiscoveryUpdate>(name, first);
export const templatesProvider = (first?: readonly RouteTemplate[]): HandProvider<readonly RouteTemplate[]> & TemplatesProvider =>
  new HandProvider<readonly RouteTemplate[]>('templates', first);

/**
 * A clock that moves only when the test says so: `advance(ms)` runs, in time order, every timer
 * due by then. Monotonic by construction.
 */
export class ManualClock implements WatcherClock {
  private time = 1_000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers waiting. */
  get pending(): number {
    return this.timers.size;
  }

  /** The delay of the earliest pending timer from now, or undefined. */
  get nextDelay(): number | undefined {
    let at: number | undefined;
    for (const t of this.timers.values()) if (at === undefined || t.at < at) at = t.at;
    return at === undefined ? undefined : at - this.time;
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= until && (due === undefined || entry[1].at < due[1].at)) due = entry;
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = until;
  }
}
