/**
 * The Consul state store of the test server: nodes, services, checks and KV under one global
 * raft-like index, the per-resource indexes that blocking queries compare against, and the JSON
 * shapes Consul returns for them.
 *
 * Index rules (after Consul's state store):
 * - Every write takes the next global index; the objects it touches get it as ModifyIndex (and
 *   CreateIndex when new). No-op writes (a check set to the status and output it already has, a
 *   failed CAS, deleting a missing key) take no index, as nothing reaches the tables.
 * - catalog/services: the index of the services table (registrations and deregistrations only;
 *   check changes do not move it).
 * - health/service/:name: the per-service index, raised by any change to an instance of that
 *   service, its checks, or its node's checks (serfHealth, node maintenance). For a service with
 *   no instances: the highest of the nodes, services and checks table indexes. Never below 1.
 * - kv/:key: the entry's ModifyIndex; when the key is missing, the KV table index (which counts
 *   deletes). kv/:prefix?recurse|keys: the highest ModifyIndex under the prefix, counting
 *   tombstones of deleted keys, else the KV table index. Never below 1.
 * - Deleted keys leave tombstones (so a list index does not go backwards) until
 *   reapTombstones(), which is how Consul's tombstone GC can make a list index drop.
 */
import { randomUUID } from 'node:crypto';
import type { CompiledFilter } from './bexpr.js';
import { ConsulHttpError } from './errors.js';
import { IndexedMap } from './indexed-map.js';
import type { NormalizedService } from './registration.js';
import type { CheckStatus } from './types.js';

export { ConsulHttpError } from './errors.js';

export const SERF_CHECK_ID = 'serfHealth';
export const NODE_MAINT_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINT_PREFIX = '_service_maintenance:';
const DEFAULT_SERVICE_MAINT_REASON =
  'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';
const DEFAULT_NODE_MAINT_REASON =
  'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';

interface NodeRecord {
  id: string;
  name: string;
  address: string;
  meta: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

/** A stored service: the normalized registration (without its checks, kept apart) on a node, with indexes. */
interface ServiceRecord extends Omit<NormalizedService, 'checks'> {
  node: string;
  createIndex: number;
  modifyIndex: number;
}

interface CheckRecord {
  node: string;
  checkId: string;
  name: string;
  status: CheckStatus;
  notes: string;
  output: string;
  serviceId: string;
  serviceName: string;
  type: string;
  interval: string;
  timeout: string;
  createIndex: number;
  modifyIndex: number;
}

interface KvRecord {
  key: string;
  value: Buffer | null;
  flags: number;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

export interface HealthQuery {
  tags: string[];
  passing: boolean;
  nodeMeta: Array<[string, string]>;
}

function svcKey(node: string, id: string): string {
  return `${node}\u0000${id}`;
}

/** The HealthCheck string fields a ?filter may select (bexpr.ts), by their JSON names. */
export const CHECK_SELECTORS: ReadonlySet<string> = new Set(['Node', 'CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'ServiceName', 'Type', 'Interval', 'Timeout']);

function checkField(check: CheckRecord, selector: string): string | undefined {
  switch (selector) {
    case 'Node': return check.node;
    case 'CheckID': return check.checkId;
    case 'Name': return check.name;
    case 'Status': return check.status;
    case 'Notes': return check.notes;
    case 'Output': return check.output;
    case 'ServiceID': return check.serviceId;
    case 'ServiceName': return check.serviceName;
    case 'Type': return check.type;
    case 'Interval': return check.interval;
    case 'Timeout': return check.timeout;
    default: return undefined;
  }
}

function sameCheck(a: CheckRecord, b: Omit<CheckRecord, 'createIndex' | 'modifyIndex'>): boolean {
  return a.node === b.node && a.checkId === b.checkId && a.name === b.name && a.status === b.status && a.notes === b.notes
    && a.output === b.output && a.serviceId === b.serviceId && a.serviceName === b.serviceName && a.type === b.type
    && a.interval === b.interval && a.timeout === b.timeout;
}

function byteCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface StateConfig {
  datacenter: string;
  nodeName: string;
  nodeAddress: string;
}

export class ConsulState {
  /** The global raft-like index: the index of the last write. */
  index = 0;
  private readonly nodes = new Map<string, NodeRecord>();
  /** By `name:<service>` and `node:<node>`. */
  private readonly services = new IndexedMap<ServiceRecord>((svc) => [`name:${svc.name}`, `node:${svc.node}`]);
  /** By `node:<node>` (node checks only) and `svc:<node>\0<service id>`. */
  private readonly checks = new IndexedMap<CheckRecord>((check) => [check.serviceId === '' ? `node:${check.node}` : `svc:${svcKey(check.node, check.serviceId)}`]);
  private readonly kv = new Map<string, KvRecord>();
  private readonly checkTexts = new WeakMap<CheckRecord, { key: string; text: string }>();
  private readonly tombstones = new Map<string, number>();
  private readonly serviceIndex = new Map<string, number>();
  private tables = { nodes: 0, services: 0, checks: 0, kv: 0 };

  constructor(
    readonly config: StateConfig,
    private readonly onWrite: () => void,
  ) {
    this.seed();
  }

  // ---------------------------------------------------------------- writes: catalog

  private nextIndex(): number {
    this.index += 1;
    return this.index;
  }

  /** The agent's own node with its serfHealth check and the `consul` service, as on a dev agent. */
  private seed(): void {
    this.upsertNode(this.config.nodeName, this.config.nodeAddress);
    this.registerService(
      {
        id: 'consul',
        name: 'consul',
        tags: [],
        address: '',
        port: 8300,
        meta: { raft_version: '3', serf_protocol_current: '2', serf_protocol_max: '5', serf_protocol_min: '1' },
        weights: { Passing: 1, Warning: 1 },
        enableTagOverride: false,
        taggedAddresses: {},
        checks: [],
      },
      this.config.nodeName,
    );
  }

  hasNode(name: string): boolean {
    return this.nodes.has(name);
  }

  /** Registers or updates a node and (when new) its passing serfHealth check. */
  upsertNode(name: string, address: string, meta: Record<string, string> = {}): void {
    const idx = this.nextIndex();
    const existing = this.nodes.get(name);
    this.nodes.set(name, {
      id: existing?.id ?? randomUUID(),
      name,
      address,
      meta: { 'consul-network-segment': '', ...meta },
      createIndex: existing?.createIndex ?? idx,
      modifyIndex: idx,
    });
    this.tables.nodes = idx;
    if (!this.checks.has(svcKey(name, SERF_CHECK_ID))) {
      this.putCheck(
        {
          node: name,
          checkId: SERF_CHECK_ID,
          name: 'Serf Health Status',
          status: 'passing',
          notes: '',
          output: 'Agent alive and reachable',
          serviceId: '',
          serviceName: '',
          type: '',
          interval: '',
          timeout: '',
        },
        idx,
      );
    }
    this.touchNodeServices(name, idx);
    this.onWrite();
  }

  registerService(svc: NormalizedService, node: string): void {
    if (!this.nodes.has(node)) throw new ConsulHttpError(500, `Unknown node "${node}"`);
    const idx = this.nextIndex();
    const key = svcKey(node, svc.id);
    const existing = this.services.get(key);
    if (existing && existing.name !== svc.name) this.serviceIndex.set(existing.name, idx);
    this.services.set(key, {
      node,
      id: svc.id,
      name: svc.name,
      tags: [...svc.tags],
      address: svc.address,
      port: svc.port,
      meta: svc.meta ? { ...svc.meta } : null,
      weights: { ...svc.weights },
      enableTagOverride: svc.enableTagOverride,
      taggedAddresses: { ...svc.taggedAddresses },
      createIndex: existing?.createIndex ?? idx,
      modifyIndex: idx,
    });
    this.tables.services = idx;
    const sameTags = existing !== undefined && existing.tags.length === svc.tags.length && existing.tags.every((tag, at) => tag === svc.tags[at]);
    for (const check of svc.checks) {
      // Like the agent: a re-registered check keeps its current status and output.
      const previous = this.checks.get(svcKey(node, check.checkId));
      const fields = {
        node,
        checkId: check.checkId,
        name: check.name,
        status: previous ? previous.status : check.status,
        notes: check.notes,
        output: previous ? previous.output : '',
        serviceId: svc.id,
        serviceName: svc.name,
        type: check.type,
        interval: check.interval,
        timeout: check.timeout,
      };
      // state/catalog.go ensureCheckTxn: a check that IsSame (its ServiceTags included) is not
      // written, so its ModifyIndex and the checks table index stay: a port change alone moves
      // only the services table.
      if (previous !== undefined && sameTags && sameCheck(previous, fields)) continue;
      this.putCheck(fields, idx);
    }
    this.serviceIndex.set(svc.name, idx);
    this.onWrite();
  }

  getService(node: string, id: string): { id: string; name: string } | undefined {
    const svc = this.services.get(svcKey(node, id));
    return svc ? { id: svc.id, name: svc.name } : undefined;
  }

  /** Removes a service instance and its checks. False if there was none. */
  deregisterService(node: string, id: string): boolean {
    const svc = this.services.get(svcKey(node, id));
    if (!svc) return false;
    const idx = this.nextIndex();
    this.services.delete(svcKey(node, id));
    this.tables.services = idx;
    for (const check of [...this.checks.group(`svc:${svcKey(node, id)}`)]) {
      this.checks.delete(svcKey(check.node, check.checkId));
      this.tables.checks = idx;
    }
    this.serviceIndex.set(svc.name, idx);
    this.onWrite();
    return true;
  }

  getCheck(node: string, checkId: string): { serviceId: string; serviceName: string; status: CheckStatus } | undefined {
    const check = this.checks.get(svcKey(node, checkId));
    return check ? { serviceId: check.serviceId, serviceName: check.serviceName, status: check.status } : undefined;
  }

  /**
   * Sets a check's status (and output, if given). Returns false when nothing changed: the agent
   * does not sync an unchanged check, so no index is taken.
   */
  updateCheck(node: string, checkId: string, status: CheckStatus, output?: string): boolean {
    const check = this.checks.get(svcKey(node, checkId));
    if (!check) throw new ConsulHttpError(404, `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
    const nextOutput = output ?? check.output;
    if (check.status === status && check.output === nextOutput) return false;
    const idx = this.nextIndex();
    check.status = status;
    check.output = nextOutput;
    check.modifyIndex = idx;
    this.tables.checks = idx;
    this.touchForCheck(check, idx);
    this.onWrite();
    return true;
  }

  private putCheck(fields: Omit<CheckRecord, 'createIndex' | 'modifyIndex'>, idx: number): void {
    const key = svcKey(fields.node, fields.checkId);
    const existing = this.checks.get(key);
    const record: CheckRecord = { ...fields, createIndex: existing?.createIndex ?? idx, modifyIndex: idx };
    this.checks.set(key, record);
    this.tables.checks = idx;
    this.touchForCheck(record, idx);
  }

  /** Removes one check (as /v1/agent/check/deregister/:id syncs it); false if there was none. */
  deregisterCheck(node: string, checkId: string): boolean {
    return this.removeCheck(node, checkId);
  }

  private removeCheck(node: string, checkId: string): boolean {
    const key = svcKey(node, checkId);
    const check = this.checks.get(key);
    if (!check) return false;
    const idx = this.nextIndex();
    this.checks.delete(key);
    this.tables.checks = idx;
    this.touchForCheck(check, idx);
    this.onWrite();
    return true;
  }

  private touchForCheck(check: CheckRecord, idx: number): void {
    if (check.serviceId !== '') this.serviceIndex.set(check.serviceName, idx);
    else this.touchNodeServices(check.node, idx);
  }

  private touchNodeServices(node: string, idx: number): void {
    for (const svc of this.services.group(`node:${node}`)) this.serviceIndex.set(svc.name, idx);
  }

  /** Adds or removes `_service_maintenance:<id>` (critical). Caller checks the service exists. */
  serviceMaintenance(node: string, serviceId: string, enable: boolean, reason: string): void {
    const svc = this.services.get(svcKey(node, serviceId));
    if (!svc) throw new ConsulHttpError(404, `No service registered with ID ${JSON.stringify(serviceId)}`);
    const checkId = SERVICE_MAINT_PREFIX + serviceId;
    if (!enable) {
      this.removeCheck(node, checkId);
      return;
    }
    if (this.checks.has(svcKey(node, checkId))) return;
    const idx = this.nextIndex();
    this.putCheck(
      {
        node,
        checkId,
        name: 'Service Maintenance Mode',
        status: 'critical',
        notes: reason || DEFAULT_SERVICE_MAINT_REASON,
        output: '',
        serviceId: svc.id,
        serviceName: svc.name,
        type: 'maintenance',
        interval: '',
        timeout: '',
      },
      idx,
    );
    this.onWrite();
  }

  /** Adds or removes `_node_maintenance` (critical) on a node. */
  nodeMaintenance(node: string, enable: boolean, reason: string): void {
    if (!enable) {
      this.removeCheck(node, NODE_MAINT_CHECK_ID);
      return;
    }
    if (this.checks.has(svcKey(node, NODE_MAINT_CHECK_ID))) return;
    const idx = this.nextIndex();
    this.putCheck(
      {
        node,
        checkId: NODE_MAINT_CHECK_ID,
        name: 'Node Maintenance Mode',
        status: 'critical',
        notes: reason || DEFAULT_NODE_MAINT_REASON,
        output: '',
        serviceId: '',
        serviceName: '',
        type: 'maintenance',
        interval: '',
        timeout: '',
      },
      idx,
    );
    this.onWrite();
  }

  /** A write that changes nothing visible but raises the service's index (an idempotent write). */
  touchService(name: string): void {
    const idx = this.nextIndex();
    this.serviceIndex.set(name, idx);
    this.tables.services = idx;
    this.onWrite();
  }

  // ---------------------------------------------------------------- writes: KV

  /** PUT /v1/kv/:key. `cas` 0: only if absent; > 0: only if ModifyIndex matches. */
  kvPut(key: string, value: Buffer | null, flags = 0, cas?: number): boolean {
    const existing = this.kv.get(key);
    if (cas !== undefined) {
      if (cas === 0 && existing) return false;
      if (cas > 0 && (!existing || existing.modifyIndex !== cas)) return false;
    }
    const idx = this.nextIndex();
    this.kv.set(key, {
      key,
      value: value && value.length > 0 ? Buffer.from(value) : null,
      flags,
      lockIndex: existing?.lockIndex ?? 0,
      createIndex: existing?.createIndex ?? idx,
      modifyIndex: idx,
    });
    this.tombstones.delete(key);
    this.tables.kv = idx;
    this.onWrite();
    return true;
  }

  /** DELETE /v1/kv/:key (`recurse`: the whole prefix; `cas`: only if ModifyIndex matches). */
  kvDelete(key: string, opts: { recurse?: boolean; cas?: number } = {}): boolean {
    if (opts.cas !== undefined) {
      const existing = this.kv.get(key);
      if (opts.cas === 0 || !existing || existing.modifyIndex !== opts.cas) return false;
    }
    const doomed = opts.recurse ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : this.kv.has(key) ? [key] : [];
    if (doomed.length === 0) return true;
    const idx = this.nextIndex();
    for (const k of doomed) {
      this.kv.delete(k);
      this.tombstones.set(k, idx);
    }
    this.tables.kv = idx;
    this.onWrite();
    return true;
  }

  /** Tombstone GC: a list index can now go backwards (a documented Consul case). */
  reapTombstones(): void {
    this.tombstones.clear();
  }

  kvValue(key: string): Buffer | undefined {
    const rec = this.kv.get(key);
    return rec ? (rec.value ?? Buffer.alloc(0)) : undefined;
  }

  // ---------------------------------------------------------------- indexes

  /**
   * /v1/health/state/:state: the checks table index (state/catalog.go checksInStateTxn →
   * catalogChecksMaxIndex), whatever the state asked.
   */
  healthStateIndex(): number {
    return Math.max(this.tables.checks, 1);
  }

  /**
   * /v1/catalog/nodes: the nodes table index, which current Consul also raises on every service
   * write (catalogInsertService → catalogUpdateNodesIndexes).
   */
  catalogNodesIndex(): number {
    return Math.max(this.tables.nodes, this.tables.services, 1);
  }

  catalogServicesIndex(): number {
    return Math.max(this.tables.services, 1);
  }

  healthServiceIndex(name: string): number {
    const exists = this.services.groupSize(`name:${name}`) > 0;
    if (exists) return Math.max(this.serviceIndex.get(name) ?? 0, 1);
    return Math.max(this.tables.nodes, this.tables.services, this.tables.checks, 1);
  }

  kvGetIndex(key: string): number {
    const rec = this.kv.get(key);
    return rec ? rec.modifyIndex : Math.max(this.tables.kv, 1);
  }

  kvListIndex(prefix: string): number {
    let lindex = 0;
    if (prefix === '') lindex = this.tables.kv;
    else {
      for (const rec of this.kv.values()) if (rec.key.startsWith(prefix)) lindex = Math.max(lindex, rec.modifyIndex);
      for (const [key, idx] of this.tombstones) if (key.startsWith(prefix)) lindex = Math.max(lindex, idx);
    }
    if (lindex === 0) lindex = this.tables.kv;
    return Math.max(lindex, 1);
  }

  // ---------------------------------------------------------------- reads (wire shapes)

  /** GET /v1/catalog/services body: service name → all tags (sorted, deduplicated). */
  catalogServices(visible: (name: string) => boolean): { body: Record<string, string[]>; filtered: boolean } {
    const tags = new Map<string, Set<string>>();
    for (const svc of this.services.values()) {
      const set = tags.get(svc.name) ?? new Set<string>();
      for (const tag of svc.tags) set.add(tag);
      tags.set(svc.name, set);
    }
    const body: Record<string, string[]> = {};
    let filtered = false;
    for (const name of [...tags.keys()].sort(byteCompare)) {
      if (!visible(name)) {
        filtered = true;
        continue;
      }
      body[name] = [...(tags.get(name) ?? [])].sort(byteCompare);
    }
    return { body, filtered };
  }

  /** GET /v1/health/service/:name body (CheckServiceNodes). */
  healthService(
    name: string,
    query: HealthQuery,
    visible: (service: string, node: string) => boolean,
  ): { body: unknown[]; filtered: boolean } {
    const instances = [...this.services.group(`name:${name}`)]
      .sort((a, b) => byteCompare(a.node, b.node) || byteCompare(a.id, b.id));
    const body: unknown[] = [];
    let filtered = false;
    for (const svc of instances) {
      const node = this.nodes.get(svc.node);
      if (!node) continue;
      if (!query.tags.every((t) => svc.tags.includes(t))) continue;
      if (!query.nodeMeta.every(([k, v]) => node.meta[k] === v)) continue;
      if (!visible(svc.name, svc.node)) {
        filtered = true;
        continue;
      }
      const checks = [...this.checks.group(`node:${svc.node}`), ...this.checks.group(`svc:${svcKey(svc.node, svc.id)}`)]
        .sort((a, b) => byteCompare(a.checkId, b.checkId));
      if (query.passing && checks.some((c) => c.status !== 'passing')) continue;
      body.push({
        Node: this.nodeJson(node),
        Service: this.serviceJson(svc),
        Checks: checks.map((c) => this.checkJson(c)),
      });
    }
    return { body, filtered };
  }

  /**
   * GET /v1/health/state/:state body (HealthChecks): `any` is every check, another state the checks
   * in it, an unknown state none (Consul does not validate it). Ordered by node then check ID
   * (the checks table's id index). `visible` is the ACL filter (agent/consul/acl.go
   * filterHealthChecks: node:read, and service:read for a service check).
   */
  healthState(
    state: string,
    visible: (service: string, node: string) => boolean,
    keep: CompiledFilter | undefined = undefined,
  ): { text: string; filtered: boolean } {
    const body: string[] = [];
    let filtered = false;
    for (const check of this.sortedChecks()) {
      if (state !== 'any' && check.status !== state) continue;
      // The ?filter before the ACL filter, as Health.ChecksInState: a check the filter drops
      // never counts as filtered by ACLs.
      if (keep !== undefined && !keep((selector) => checkField(check, selector))) continue;
      if (!visible(check.serviceName, check.node)) {
        filtered = true;
        continue;
      }
      body.push(this.checkText(check));
    }
    return { text: `[${body.join(',')}]`, filtered };
  }

  /**
   * The checks by node then check ID, sorted again only when a check was added, replaced or removed
   * (a status change keeps the record and its place): sorting 10,000 checks on every health-state
   * answer was most of the test server's time per health change, not the client's.
   */
  private sortedChecks(): readonly CheckRecord[] {
    if (this.sorted?.version !== this.checks.version) {
      const list = [...this.checks.values()].sort((a, b) => byteCompare(a.node, b.node) || byteCompare(a.checkId, b.checkId));
      this.sorted = { version: this.checks.version, list };
    }
    return this.sorted.list;
  }

  private sorted: { version: number; list: readonly CheckRecord[] } | undefined;

  /**
   * A check's JSON, kept until the check is written again (its indexes change then): the health
   * state of 20,000 checks is rebuilt on every check write, which took the test server, not the
   * client under test, hundreds of milliseconds.
   */
  private checkText(check: CheckRecord): string {
    const key = `${check.createIndex}:${check.modifyIndex}`;
    const cached = this.checkTexts.get(check);
    if (cached?.key === key) return cached.text;
    const text = JSON.stringify(this.checkJson(check));
    this.checkTexts.set(check, { key, text });
    return text;
  }

  /** GET /v1/catalog/nodes body (Nodes), by node name; `visible` is node:read. */
  catalogNodes(visible: (node: string) => boolean): { body: unknown[]; filtered: boolean } {
    const body: unknown[] = [];
    let filtered = false;
    for (const node of [...this.nodes.values()].sort((a, b) => byteCompare(a.name, b.name))) {
      if (!visible(node.name)) {
        filtered = true;
        continue;
      }
      body.push(this.nodeJson(node));
    }
    return { body, filtered };
  }

  private nodeJson(node: NodeRecord): Record<string, unknown> {
    return {
      ID: node.id,
      Node: node.name,
      Address: node.address,
      Datacenter: this.config.datacenter,
      TaggedAddresses: { lan: node.address, lan_ipv4: node.address, wan: node.address, wan_ipv4: node.address },
      Meta: { ...node.meta },
      CreateIndex: node.createIndex,
      ModifyIndex: node.modifyIndex,
    };
  }

  private serviceJson(svc: ServiceRecord): Record<string, unknown> {
    const out: Record<string, unknown> = {
      ID: svc.id,
      Service: svc.name,
      Tags: [...svc.tags],
      Address: svc.address,
    };
    if (Object.keys(svc.taggedAddresses).length > 0) out.TaggedAddresses = structuredClone(svc.taggedAddresses);
    Object.assign(out, {
      Meta: svc.meta ? { ...svc.meta } : null,
      Port: svc.port,
      Weights: { ...svc.weights },
      EnableTagOverride: svc.enableTagOverride,
      Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
      Connect: {},
      CreateIndex: svc.createIndex,
      ModifyIndex: svc.modifyIndex,
    });
    return out;
  }

  private checkJson(check: CheckRecord): Record<string, unknown> {
    const svc = check.serviceId ? this.services.get(svcKey(check.node, check.serviceId)) : undefined;
    return {
      Node: check.node,
      CheckID: check.checkId,
      Name: check.name,
      Status: check.status,
      Notes: check.notes,
      Output: check.output,
      ServiceID: check.serviceId,
      ServiceName: check.serviceName,
      ServiceTags: svc ? [...svc.tags] : [],
      Type: check.type,
      Interval: check.interval,
      Timeout: check.timeout,
      ExposedPort: 0,
      Definition: {},
      CreateIndex: check.createIndex,
      ModifyIndex: check.modifyIndex,
    };
  }

  kvEntry(key: string): Record<string, unknown> | undefined {
    const rec = this.kv.get(key);
    return rec ? this.kvJson(rec) : undefined;
  }

  kvRaw(key: string): Buffer | undefined {
    return this.kvValue(key);
  }

  /** Entries under a prefix in key order (Consul's radix-tree order is byte order). */
  kvList(prefix: string): Array<Record<string, unknown> & { Key: string }> {
    return [...this.kv.values()]
      .filter((rec) => rec.key.startsWith(prefix))
      .sort((a, b) => byteCompare(a.key, b.key))
      .map((rec) => this.kvJson(rec));
  }

  private kvJson(rec: KvRecord): Record<string, unknown> & { Key: string } {
    return {
      LockIndex: rec.lockIndex,
      Key: rec.key,
      Flags: rec.flags,
      Value: rec.value ? rec.value.toString('base64') : null,
      CreateIndex: rec.createIndex,
      ModifyIndex: rec.modifyIndex,
    };
  }

  // ---------------------------------------------------------------- restart support

  /** Lowers every index, like restoring an older snapshot (see RestartOptions.resetIndex). */
  resetIndexes(to: true | number): void {
    if (to === true) {
      let counter = 0;
      const renumber = (rec: { createIndex: number; modifyIndex: number }): void => {
        counter += 1;
        rec.createIndex = counter;
        rec.modifyIndex = counter;
      };
      for (const node of this.nodes.values()) renumber(node);
      for (const svc of this.services.values()) renumber(svc);
      for (const check of this.checks.values()) renumber(check);
      for (const key of [...this.kv.keys()].sort(byteCompare)) {
        const rec = this.kv.get(key);
        if (rec) renumber(rec);
      }
      this.tombstones.clear();
      this.index = Math.max(counter, 1);
    } else {
      const cap = Math.max(1, Math.floor(to));
      const clamp = (rec: { createIndex: number; modifyIndex: number }): void => {
        rec.createIndex = Math.min(rec.createIndex, cap);
        rec.modifyIndex = Math.min(rec.modifyIndex, cap);
      };
      for (const rec of [...this.nodes.values(), ...this.services.values(), ...this.checks.values(), ...this.kv.values()]) {
        clamp(rec);
      }
      for (const [key, idx] of this.tombstones) this.tombstones.set(key, Math.min(idx, cap));
      this.index = Math.min(this.index, cap);
    }
    this.recomputeTableIndexes();
  }

  private recomputeTableIndexes(): void {
    const maxOf = (recs: Iterable<{ modifyIndex: number }>): number => {
      let max = 0;
      for (const rec of recs) max = Math.max(max, rec.modifyIndex);
      return max;
    };
    // A restored snapshot only knows its objects: deletions before it leave no trace.
    this.tables = {
      nodes: maxOf(this.nodes.values()),
      services: maxOf(this.services.values()),
      checks: maxOf(this.checks.values()),
      kv: Math.max(maxOf(this.kv.values()), ...this.tombstones.values(), 0),
    };
    this.serviceIndex.clear();
    for (const svc of this.services.values()) {
      let idx = svc.modifyIndex;
      for (const check of [...this.checks.group(`node:${svc.node}`), ...this.checks.group(`svc:${svcKey(svc.node, svc.id)}`)]) {
        idx = Math.max(idx, check.modifyIndex);
      }
      const node = this.nodes.get(svc.node);
      if (node) idx = Math.max(idx, node.modifyIndex);
      this.serviceIndex.set(svc.name, Math.max(this.serviceIndex.get(svc.name) ?? 0, idx));
    }
  }

  /** Drops everything and re-seeds the agent node; with `resetIndex` the index restarts from 0. */
  wipe(resetIndex: boolean): void {
    this.nodes.clear();
    this.services.clear();
    this.checks.clear();
    this.kv.clear();
    this.tombstones.clear();
    this.serviceIndex.clear();
    this.tables = { nodes: 0, services: 0, checks: 0, kv: 0 };
    if (resetIndex) this.index = 0;
    this.seed();
  }
}
