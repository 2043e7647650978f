import { createHash } from 'node:crypto';

/**
 * The go-bexpr filter the health watch sends (a `HealthCheck` selector; `!=` on a string).
 * Maintenance checks are critical, so they are in it (see below).
 */
export const NON_PASSING_FILTER = 'Status != "passing"';

/**
 * `GET /v1/health/state/any?filter=Status != "passing"` → a digest of every check that is not
 * passing, small enough to compare answer to answer, that says which services' health answers may
 * have changed in a way that matters for routing.
 *
 * The endpoint (agent/health_endpoint.go HealthChecksInState → agent/consul/health_endpoint.go
 * Health.ChecksInState) answers checks with their Node, CheckID, Status, ServiceID, ServiceName and
 * raft indexes; node checks (serfHealth, `_node_maintenance`) have ServiceID "". Its index is the
 * checks table's (state/catalog.go checksInStateTxn: catalogChecksMaxIndex), so it moves on every
 * check write, whatever the filter: ChecksInState reads the checks and the index, then applies the
 * go-bexpr `filter` (bexpr.CreateFilter / filter.Execute), then the ACL filter. So the watch still
 * wakes on every check write, but the answer lists only the non-passing checks: with 10,000
 * passing checks, a few bytes instead of ~3 MB per wake-up.
 *
 * Why the non-passing checks are enough (an instance's routing status, health.ts aggregateStatus,
 * depends only on its checks' statuses; a passing check adds nothing to it):
 * - passing → warning/critical: the check appears in the list; back to passing: it disappears.
 *   Either way the service's lines differ between two answers.
 * - maintenance: Consul registers `_service_maintenance:<id>` / `_node_maintenance` as critical
 *   checks (agent/agent.go EnableServiceMaintenance / EnableNodeMaintenance), so they appear.
 * - a check registered critical: appears; a critical check deregistered: disappears (the service
 *   is re-read, whether or not the services table index moved).
 * - a passing check added, removed or changed (output, name): the status of no instance changes;
 *   the answer is unchanged and nothing is read. New instances and deregistrations move the catalog
 *   index, which the catalog watch follows.
 * - node checks (serfHealth critical): appear in `nodes`; a difference concerns every service there.
 *
 * A check's ModifyIndex moves only when the check changed (ensureCheckTxn skips a check that
 * IsSame), and each check write also raises the service's own index (the `X-Consul-Index` of
 * `/v1/health/service/<name>`), or, for a node check, the index of every service on that node
 * (updateAllServiceIndexesOfNode). Hence:
 *
 * - `services[name]`: the service's non-passing checks as `node check status modifyIndex` lines.
 * - `nodes[node]`: the same for the node's own checks.
 * - `hosts[node]`: the services with a listed check on that node; `placed[name]`: the other way.
 * - `floor[name]` / `nodeFloor[node]`: the highest ModifyIndex of the listed checks: a health
 *   answer for the service with a lower index comes from a server behind this one (a stale read).
 *   A check that left the list has no ModifyIndex to show: HealthFloors keeps, for each service
 *   whose lines changed, the index of the answer before the change + 1 (the change was written
 *   after that answer, and raised the service's index to its own).
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
 * Floors that a digest of non-passing checks cannot show: a service whose lines changed between two
 * answers was written after the first of them (index `before`), so a current health answer for it
 * carries an index above `before`. Raised only (indexes grow); cleared when the health state's
 * index goes backwards (a restore: older indexes again).
 */
export class HealthFloors {
  private readonly floors = new Map<string, number>();

  raise(name: string, before: number): void {
    if (before > 0) this.floors.set(name, Math.max(this.floors.get(name) ?? 0, before + 1));
  }

  get(name: string): number {
    return this.floors.get(name) ?? 0;
  }

  forget(name: string): void {
    this.floors.delete(name);
  }

  clear(): void {
    this.floors.clear();
  }
}

/**
 * The lowest `X-Consul-Index` a current health answer for `name` can carry: the highest ModifyIndex
 * of its listed checks and of the node checks of the nodes it is on, and its HealthFloors floor.
 */
export function indexFloor(digest: HealthDigest | undefined, name: string, nodes: Iterable<string>, carried = 0): number {
  if (digest === undefined) return carried;
  let floor = Math.max(carried, digest.floor[name] ?? 0);
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
