/**
 * Structural equality of discovery and KV data, for the watcher's dedupe and the incremental table
 * builder. Every function tries identity first: the Consul provider keeps the same array object for
 * an unchanged service (and the same catalog tag arrays) from one snapshot to the next, so the
 * common case costs one comparison per service, and only arrays that are new objects are walked.
 * Field by field, no serialisation: comparing two equal arrays allocates nothing.
 */
import type { DiscoverySnapshot, InstanceWeights, KvSnapshot, ServiceInstance } from './types.js';

export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same keys (in any order) with `same` values. */
export function sameRecord<T>(a: Readonly<Record<string, T>>, b: Readonly<Record<string, T>>, same: (x: T, y: T, key: string) => boolean): boolean {
  if (a === b) return true;
  let count = 0;
  for (const key in a) {
    if (!Object.hasOwn(a, key)) continue;
    count += 1;
    if (!Object.hasOwn(b, key) || !same(a[key] as T, b[key] as T, key)) return false;
  }
  for (const key in b) if (Object.hasOwn(b, key)) count -= 1;
  return count === 0;
}

const sameString = (x: string, y: string): boolean => x === y;

function sameWeightsOf(a: InstanceWeights | undefined, b: InstanceWeights | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.passing === b.passing && a.warning === b.warning);
}

export function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  return a === b || (
    a.id === b.id && a.service === b.service && a.address === b.address && a.port === b.port && a.status === b.status
    && sameWeightsOf(a.weights, b.weights) && sameStrings(a.tags, b.tags) && sameRecord(a.meta, b.meta, sameString)
  );
}

/** Same instances in the same order (order decides which of two duplicate ids is kept). */
export function sameInstances(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameInstance(a[i]!, b[i]!)) return false;
  return true;
}

export function sameCatalog(a: DiscoverySnapshot['catalog'], b: DiscoverySnapshot['catalog']): boolean {
  return sameRecord(a, b, sameStrings);
}

export function sameKv(a: KvSnapshot, b: KvSnapshot): boolean {
  return sameRecord(a, b, sameString);
}

/** Map equality with `===` values (KV weight maps: name → number). */
export function sameMap<K, V>(a: ReadonlyMap<K, V> | undefined, b: ReadonlyMap<K, V> | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value || !b.has(key)) return false;
  return true;
}

/**
 * Two discovery snapshots that would build the same table. `compared` is called with the name of
 * each service whose instances had to be compared field by field (its array was a new object): the
 * watcher counts them, so a test can tell that one change did not walk the whole snapshot.
 */
export function sameDiscovery(a: DiscoverySnapshot, b: DiscoverySnapshot, compared?: (service: string) => void): boolean {
  if (a === b) return true;
  if (!sameCatalog(a.catalog, b.catalog)) return false;
  return sameRecord(a.instances, b.instances, (x, y, service) => {
    if (x === y) return true;
    compared?.(service);
    return sameInstances(x, y);
  });
}
