import type { RoutingTable } from '../model/types.js';

/**
 * Holds the live routing table. `swap` is the only writer: it runs the `prepare` hooks (make:
 * create what the new table needs, e.g. upstream pools), assigns the new table with one reference
 * assignment, then runs the `swapped` hooks (break: release what only the old table used).
 * Readers take `current` once and use that object to the end of their work.
 */
export type PrepareHook = (next: RoutingTable) => void;
export type SwappedHook = (next: RoutingTable, previous: RoutingTable | undefined) => void;

export class TableStore {
  private table: RoutingTable | undefined;
  private readonly prepareHooks: PrepareHook[] = [];
  private readonly swappedHooks: SwappedHook[] = [];
  /** Number of swaps so far; the live table's version. */
  version = 0;
  /** Epoch milliseconds of the last swap, 0 before the first. */
  swappedAt = 0;

  get current(): RoutingTable | undefined {
    return this.table;
  }

  onPrepare(hook: PrepareHook): void {
    this.prepareHooks.push(hook);
  }

  onSwapped(hook: SwappedHook): void {
    this.swappedHooks.push(hook);
  }

  swap(next: RoutingTable): void {
    for (const hook of this.prepareHooks) hook(next);
    const previous = this.table;
    this.table = next;
    this.version += 1;
    this.swappedAt = Date.now();
    for (const hook of this.swappedHooks) hook(next, previous);
  }
}
