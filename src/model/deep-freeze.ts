/**
 * Freeze a tree of plain objects and arrays in place and return it. The routing table is shared by
 * every request in flight and swapped whole; freezing makes an accidental write throw (ESM code is
 * strict) instead of silently changing what other requests see. Shared sub-objects (an endpoint in
 * several destinations) are visited once.
 *
 * `seen` may be kept across calls (the incremental TableBuilder does): everything in it was frozen
 * deeply already, so a table that reuses most of the previous one's routes only walks its new parts.
 */
export function deepFreeze<T>(value: T, seen: WeakSet<object> = new WeakSet()): T {
  freeze(value, seen);
  return value;
}

function freeze(value: unknown, seen: WeakSet<object>): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  for (const key of Object.keys(value)) freeze((value as Record<string, unknown>)[key], seen);
  Object.freeze(value);
}
