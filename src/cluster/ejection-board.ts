import type { EjectedEndpointView, EjectionSource } from '../admin/routes-view.js';
import type { RoutingTable } from '../model/types.js';
import type { SharedEjection } from '../proxy/runtime/route-state.js';

/**
 * The machine's ejections, in the primary: every ejection a worker decided, until it ends. The
 * primary forwards each to the other workers (and replays the live ones to a replacement worker),
 * and /api/routes shows them. One entry per route and endpoint: a later ejection replaces an
 * earlier one (it ends later, with a larger multiplier). Entries end by their wall-clock time,
 * as the workers' timers do; nothing here runs a timer: reads drop what has ended.
 */
export class EjectionBoard implements EjectionSource {
  private readonly entries = new Map<string, SharedEjection>();

  constructor(private readonly table: () => RoutingTable | undefined, private readonly clock: () => number = Date.now) {}

  /** Record an ejection; false when an entry ending as late or later is already there (a duplicate). */
  record(ejection: SharedEjection): boolean {
    const key = `${ejection.route}\u0000${ejection.endpoint}`;
    const known = this.entries.get(key);
    if (known !== undefined && known.until >= ejection.until) return false;
    this.entries.set(key, ejection);
    return true;
  }

  /** Ejections not over yet, oldest first. */
  live(): SharedEjection[] {
    const now = this.clock();
    for (const [key, e] of this.entries) if (e.until <= now) this.entries.delete(key);
    return [...this.entries.values()].sort((a, b) => a.ejectedAt - b.ejectedAt);
  }

  /** /api/routes: the live ejections of endpoints the live table still has. */
  ejectedEndpoints(): EjectedEndpointView[] {
    const present = new Set<string>();
    for (const route of this.table()?.routes ?? []) {
      for (const d of route.destinations) for (const e of d.endpoints) present.add(`${route.name}\u0000${e.id}`);
    }
    return this.live()
      .filter((e) => present.has(`${e.route}\u0000${e.endpoint}`))
      .map((e) => ({
        route: e.route,
        endpoint: e.endpoint,
        ejections: e.ejections,
        ejectedAt: new Date(e.ejectedAt).toISOString(),
        until: new Date(e.until).toISOString(),
      }));
  }
}
