/**
 * `GET /v1/catalog/nodes` → node name → address. A service instance registered without an address
 * uses its node's (health.ts), and a node's address change moves neither the services nor the
 * checks table index (state/catalog.go ensureNodeTxn → catalogInsertNode updates the nodes index
 * and each of the node's service indexes only): this watch is how such a change is seen. Its index
 * also moves on service writes in current Consul (catalogInsertService), so answers are compared
 * by content.
 */
export function nodeAddresses(body: unknown): Record<string, string> {
  if (body === null || body === undefined) return {};
  if (!Array.isArray(body)) throw new Error('catalog nodes: not a list of nodes');
  const entries: Array<[string, string]> = body.map((raw: unknown, at): [string, string] => {
    const entry = raw as Record<string, unknown> | null;
    const node = entry?.['Node'];
    const address = entry?.['Address'];
    if (typeof node !== 'string' || typeof address !== 'string') throw new Error(`catalog nodes entry ${at}: Node and Address must be strings`);
    return [node, address];
  });
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(entries);
}

/** Nodes added, removed or readdressed between two answers. */
export function changedNodes(previous: Readonly<Record<string, string>>, next: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const node of new Set([...Object.keys(previous), ...Object.keys(next)])) {
    if (previous[node] !== next[node]) out.push(node);
  }
  return out;
}
