import { z } from 'zod';
import { compareCodeUnits } from '../../model/compare-code-units.js';
import type { KvSnapshot } from '../../model/types.js';

/** Entries of `GET /v1/kv/<prefix>?recurse` as the `consul` package returns them (Value decoded). */
const entriesSchema = z.array(z.object({ Key: z.string(), Value: z.string().nullable().optional() }));

/**
 * KV entries → KvSnapshot: keys relative to `prefix` (the prefix's own folder key dropped), a null
 * value as "". An undefined body is Consul's 404: no key under the prefix.
 */
export function kvFromEntries(body: unknown, prefix: string): KvSnapshot {
  if (body === undefined || body === null) return {};
  const entries = entriesSchema.parse(Array.isArray(body) ? body : [body]);
  const out: Record<string, string> = {};
  for (const entry of [...entries].sort((a, b) => compareCodeUnits(a.Key, b.Key))) {
    if (!entry.Key.startsWith(prefix) || entry.Key.length === prefix.length) continue;
    out[entry.Key.slice(prefix.length)] = entry.Value ?? '';
  }
  return out;
}
