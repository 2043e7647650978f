import { SwitchyardError } from '../errors.js';
import type { RoutingTable } from '../model/types.js';

/**
 * Holds the live routing table. `swap` is the only writer: it runs the `prepare` hooks (make:
 * create what the new table needs, e.g. upstream pools), assigns the new table with one reference
 * assignment, then runs the `swapped` hooks (break: release what only the old table used).
 * Readers take `current` once and use that object to the end of their work.
 *
 * Invariant: a swap is all or nothing. Prepare hooks are written not to throw (a bad pool leaves
 * one endpoint out, it does not stop the table); should one throw anyway (a bug), the `aborted`
 * hooks undo what the prepare hooks made, the live table and version stay, and `swap` throws a
 * SwitchyardError the caller records as a rejected build. Without this a throwing prepare hook
 * froze the table for good: every later swap hit the same error.
 */
export type PrepareHook = (next: RoutingTable) => void;
export type SwappedHook = (next: RoutingTable, previous: RoutingTable | undefined) => void;
/** Undo a prepare that did not complete: `live` is the table that stays (undefined before the first). */
export type AbortedHook = (next: RoutingTable, live: RoutingTable | undefined) => void;

export class TableStore {
  private table: RoutingTable | undefined;
  private readonly prepareHooks: PrepareHook[] = [];
  private readonly swappedHooks: SwappedHook[] = [];
  private readonly abortedHooks: AbortedHook[] = [];
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

  onAborted(hook: AbortedHook): void {
    this.abortedHooks.push(hook);
  }

  /**
   * Make `next` live. Throws (SY_CONFIG_INVALID) when a prepare hook failed: nothing changed. A
   * swapped hook that throws cannot undo the swap (the table is live): every swapped hook still
   * runs, then the first error is thrown so the caller logs it.
   */
  swap(next: RoutingTable): void {
    try {
      for (const hook of this.prepareHooks) hook(next);
    } catch (err) {
      for (const hook of this.abortedHooks) {
        try {
          hook(next, this.table);
        } catch {
          // Undo is best effort; the original error is the one to report.
        }
      }
      throw new SwitchyardError('SY_CONFIG_INVALID', `table swap aborted while preparing: ${(err as Error).message}`, { cause: err });
    }
    const previous = this.table;
    this.table = next;
    this.version += 1;
    this.swappedAt = Date.now();
    let failure: unknown;
    for (const hook of this.swappedHooks) {
      try {
        hook(next, previous);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) {
      throw new SwitchyardError('SY_CONFIG_INVALID', `table ${this.version} is live, but releasing the old one failed: ${(failure as Error).message}`, { cause: failure });
    }
  }
}
