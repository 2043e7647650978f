import { createHash } from 'node:crypto';

/**
 * `GET /v1/health/state/any` → a digest of every check in the datacenter, small enough to compare
 * answer to answer, that says which services' health answers may have changed.
 *
 * The endpoint (agent/health_endpoint.go HealthChecksInState → Health.ChecksInState) answers every
 * check with its Node, CheckID, Status, ServiceID, ServiceName and raft indexes; node checks
 * (serfHealth, `_node_maintenance`) have ServiceID "". Its index is the checks table's
 * (state/catalog.go checksInStateTxn: catalogChecksMaxIndex), so it moves on every check write and
 * on nothing else. A check's ModifyIndex moves only when the check changed (ensureCheckTxn skips a
 * check that IsSame), and each such write also raises the service's own index (the
 * `X-Consul-Index` of `/v1/health/service/<name>`), or, for a node check, the index of every service
 * on that node (updateAllServiceIndexesOfNode). Hence:
 *
 * - `services[name]`: the service's checks as `node check status modifyIndex` lines. Differs between
 *   two answers when a check of the service was added, removed or changed.
 * - `nodes[node]`: the same for the node's own checks; a difference concerns every service on it.
 * - `hosts[node]`: the services with a check on that node; `placed[name]`: the nodes of a service.
 * - `floor[name]` / `nodeFloor[node]`: the highest check ModifyIndex: a health answer for the service
 *   with a lower index comes from a server behind this one (a stale read), not the current data.
 *
 * Output changes are left out on purpose: they change no instance (Consul also defers syncing
 * output-only changes, agent/local/state.go).
 */
export interface HealthDigest {
  /** A hash of every line below: equal digests, equal fingerprints (cheaper than their JSON). */
  readonly fingerprint: string;
  readonly services: Readonly<Record<string, string>>;
  readonly nodes: Readonly<Record<string, string>>;
  readonly hosts: Readonly<Record<string, readonly string[]>>;
  /** The nodes on which a service has checks (`hosts` read the other way). */
  readonly placed: Readonly<Record<string, readonly string[]>>;
  readonly floor: Readonly<Record<string, number>>;
  readonly nodeFloor: Readonly<Record<string, number>>;
}

interface Check {
  readonly node: string;
  readonly checkId: string;
  readonly status: string;
  readonly serviceId: string;
  readonly serviceName: string;
  readonly modifyIndex: number;
}

function str(value: unknown, field: string, at: number): string {
  if (typeof value !== 'string') throw new Error(`health state entry ${at}: ${field} is not a string`);
  return value;
}

function optionalStr(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Validates by hand: tens of thousands of checks per answer, so no schema library per field. */
function parseChecks(body: unknown): Check[] {
  if (body === null || body === undefined) return [];
  if (!Array.isArray(body)) throw new Error('health state: not a list of checks');
  return body.map((raw: unknown, at): Check => {
    if (typeof raw !== 'object' || raw === null) throw new Error(`health state entry ${at}: not an object`);
    const entry = raw as Record<string, unknown>;
    const modifyIndex = entry['ModifyIndex'];
    return {
      node: str(entry['Node'], 'Node', at),
      checkId: str(entry['CheckID'], 'CheckID', at),
      status: str(entry['Status'], 'Status', at),
      serviceId: optionalStr(entry['ServiceID']),
      serviceName: optionalStr(entry['ServiceName']),
      modifyIndex: typeof modifyIndex === 'number' && Number.isFinite(modifyIndex) ? modifyIndex : 0,
    };
  });
}

export function healthDigest(body: unknown): HealthDigest {
  // Consul lists checks by its id index (node, then check ID), so equal states give equal digests
  // without sorting here; another order would only cost extra reads, never a missed change.
  const checks = parseChecks(body);
  const services: Record<string, string> = {};
  const nodes: Record<string, string> = {};
  const hosts = new Map<string, Set<string>>();
  const placed = new Map<string, Set<string>>();
  const floor: Record<string, number> = {};
  const nodeFloor: Record<string, number> = {};
  const hash = createHash('sha1');
  for (const check of checks) {
    const line = `${check.node} ${check.checkId} ${check.status} ${check.modifyIndex} ${check.serviceName}\n`;
    hash.update(line);
    if (check.serviceId === '') {
      nodes[check.node] = (nodes[check.node] ?? '') + line;
      nodeFloor[check.node] = Math.max(nodeFloor[check.node] ?? 0, check.modifyIndex);
      continue;
    }
    const name = check.serviceName;
    services[name] = (services[name] ?? '') + line;
    floor[name] = Math.max(floor[name] ?? 0, check.modifyIndex);
    addTo(hosts, check.node, name);
    addTo(placed, name, check.node);
  }
  return { fingerprint: hash.digest('hex'), services, nodes, hosts: lists(hosts), placed: lists(placed), floor, nodeFloor };
}

/**
 * The services of `wanted` whose health answer may differ between two digests: a service check
 * added, removed or changed, or a node check changed on a node that hosts it (`hostedOn` adds the
 * nodes the last health answer placed it on: an instance without checks has none in the digest).
 */
export function changedServices(
  previous: HealthDigest,
  next: HealthDigest,
  wanted: ReadonlySet<string>,
  hostedOn: (node: string) => Iterable<string>,
): Set<string> {
  const changed = new Set<string>();
  for (const name of wanted) {
    if (previous.services[name] !== next.services[name]) changed.add(name);
  }
  const nodeNames = new Set([...Object.keys(previous.nodes), ...Object.keys(next.nodes)]);
  for (const node of nodeNames) {
    if (previous.nodes[node] === next.nodes[node]) continue;
    for (const name of [...(previous.hosts[node] ?? []), ...(next.hosts[node] ?? []), ...hostedOn(node)]) {
      if (wanted.has(name)) changed.add(name);
    }
  }
  return changed;
}

/**
 * The lowest `X-Consul-Index` a current health answer for `name` can carry: the highest ModifyIndex
 * of its checks and of the node checks of the nodes it is on.
 */
export function indexFloor(digest: HealthDigest | undefined, name: string, nodes: Iterable<string>): number {
  if (digest === undefined) return 0;
  let floor = digest.floor[name] ?? 0;
  for (const node of nodes) floor = Math.max(floor, digest.nodeFloor[node] ?? 0);
  for (const node of digest.placed[name] ?? []) floor = Math.max(floor, digest.nodeFloor[node] ?? 0);
  return floor;
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function lists(map: Map<string, Set<string>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, set] of map) out[key] = [...set];
  return out;
}
