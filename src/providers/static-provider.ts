import type { DiscoveryProvider, DiscoveryUpdate, ProviderStatus } from './provider.js';
import { StatusTracker } from './provider.js';

/** A provider with one fixed snapshot: the embedded default's demo services. */
export class StaticProvider implements DiscoveryProvider {
  private readonly tracker: StatusTracker;

  constructor(readonly name: string, private readonly update: DiscoveryUpdate) {
    this.tracker = new StatusTracker(name);
  }

  async start(emit: (update: DiscoveryUpdate) => void): Promise<void> {
    this.tracker.succeeded();
    emit(this.update);
  }

  async reload(): Promise<void> {}

  status(): ProviderStatus {
    return this.tracker.snapshot();
  }

  async stop(): Promise<void> {}
}
