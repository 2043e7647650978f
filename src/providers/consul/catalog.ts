import { z } from 'zod';
import { compareCodeUnits } from '../../model/compare-code-units.js';
import type { DiscoverySnapshot } from '../../model/types.js';

/** Consul's own service, present in every catalog; never a routing target. */
export const CONSUL_SERVICE = 'consul';

const catalogSchema = z.record(z.string(), z.array(z.string()).nullable());

/**
 * `GET /v1/catalog/services` → `{name: [tags]}`, without Consul's own `consul` service, names and
 * tags sorted and deduplicated so that equal catalogs serialise equally. A service whose tags equal
 * those in `previous` keeps `previous`'s array (the same object): consumers tell unchanged services
 * by identity.
 */
export function catalogFromServices(body: unknown, previous?: DiscoverySnapshot['catalog']): DiscoverySnapshot['catalog'] {
  const parsed = catalogSchema.parse(body ?? {});
  const out: Record<string, readonly string[]> = {};
  for (const name of Object.keys(parsed).sort(compareCodeUnits)) {
    if (name === CONSUL_SERVICE) continue;
    const tags = [...new Set(parsed[name] ?? [])].sort(compareCodeUnits);
    const before = previous?.[name];
    out[name] = before !== undefined && sameList(before, tags) ? before : tags;
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, at) => value === b[at]);
}

/**
 * Whether a `/v1/catalog/services` body (already accepted by catalogFromServices) lists any
 * service, Consul's own `consul` included: what the reads that gave it may see.
 */
export function listsAnyService(body: unknown): boolean {
  return typeof body === 'object' && body !== null && Object.keys(body).length > 0;
}
