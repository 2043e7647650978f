import type { DiscoverySnapshot, KvSnapshot, RouteTemplate } from '../model/types.js';

/**
 * Providers emit whole snapshots, never diffs. A discovery provider may fill either part; a part it
 * leaves undefined keeps the provider's previous value of that part.
 */
export interface DiscoveryUpdate {
  readonly discovery?: DiscoverySnapshot;
  readonly kv?: KvSnapshot;
}

export interface ProviderStatus {
  readonly name: string;
  /** The last attempt to read the source succeeded. */
  readonly healthy: boolean;
  /** At least one snapshot was delivered. */
  readonly synced: boolean;
  /** Epoch ms of the last successful read, or undefined. */
  readonly lastSyncAt: number | undefined;
  /** The last error's message (never containing secrets), or undefined after a success. */
  readonly lastError: string | undefined;
  /** Provider-specific facts for /api/config (never secrets). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface Provider<T> {
  readonly name: string;
  /** Start reading and watching; `emit` receives every new snapshot. Resolves after the first attempt. */
  start(emit: (snapshot: T) => void): Promise<void>;
  /** Read everything afresh (SIGHUP). */
  reload(): Promise<void>;
  status(): ProviderStatus;
  stop(): Promise<void>;
}

export type DiscoveryProvider = Provider<DiscoveryUpdate> & {
  /** The services some route needs instance data for; a provider that watches per service follows it. */
  watchServices?(names: readonly string[]): void;
};

export type TemplatesProvider = Provider<readonly RouteTemplate[]>;

/** Mutable status record shared by providers' implementations. */
export class StatusTracker {
  private state: { healthy: boolean; synced: boolean; lastSyncAt: number | undefined; lastError: string | undefined } =
    { healthy: false, synced: false, lastSyncAt: undefined, lastError: undefined };

  constructor(private readonly name: string) {}

  succeeded(): void {
    this.state = { healthy: true, synced: true, lastSyncAt: Date.now(), lastError: undefined };
  }

  failed(message: string): void {
    this.state = { ...this.state, healthy: false, lastError: message };
  }

  snapshot(detail?: Readonly<Record<string, unknown>>): ProviderStatus {
    return { name: this.name, ...this.state, ...(detail === undefined ? {} : { detail }) };
  }
}
