import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../model/types.js';

/**
 * Merge the discovery snapshots of several providers, in order: catalogs are united; instances of
 * one service are concatenated, and an instance id seen again (same service) replaces the earlier
 * one, so a later provider (Consul) wins over an earlier one (the services file).
 */
export function mergeDiscovery(snapshots: readonly DiscoverySnapshot[]): DiscoverySnapshot {
  return new DiscoveryMerger().merge(snapshots);
}

/**
 * mergeDiscovery that remembers its previous result per service: a service whose inputs (the
 * arrays each provider gave for it) are the same objects as last time gets the same output array
 * (and tag array) as last time. The Consul provider keeps an unchanged service's array, so with a
 * services file next to Consul the merged snapshot still hands the table builder identical arrays
 * for unchanged services, and one change stays one service's work downstream.
 */
export class DiscoveryMerger {
  private tags = new Map<string, Merged<string>>();
  private instances = new Map<string, Merged<ServiceInstance>>();

  merge(snapshots: readonly DiscoverySnapshot[]): DiscoverySnapshot {
    if (snapshots.length === 1) return snapshots[0]!;
    const tagInputs = inputsByService(snapshots.map((s) => s.catalog));
    const instanceInputs = inputsByService(snapshots.map((s) => s.instances));
    const tags = new Map<string, Merged<string>>();
    const instances = new Map<string, Merged<ServiceInstance>>();
    const catalog: Record<string, readonly string[]> = {};
    const byService: Record<string, readonly ServiceInstance[]> = {};
    for (const [service, inputs] of tagInputs) {
      const merged = reuse(this.tags.get(service), inputs) ?? { inputs, output: unitedTags(inputs) };
      tags.set(service, merged);
      catalog[service] = merged.output;
    }
    for (const [service, inputs] of instanceInputs) {
      const merged = reuse(this.instances.get(service), inputs) ?? { inputs, output: unitedInstances(inputs) };
      instances.set(service, merged);
      byService[service] = merged.output;
    }
    this.tags = tags;
    this.instances = instances;
    return { catalog, instances: byService };
  }
}

interface Merged<T> {
  readonly inputs: readonly (readonly T[])[];
  readonly output: readonly T[];
}

/** Service → the arrays the snapshots give for it, in snapshot order. */
function inputsByService<T>(records: readonly Readonly<Record<string, readonly T[]>>[]): Map<string, (readonly T[])[]> {
  const out = new Map<string, (readonly T[])[]>();
  for (const record of records) {
    for (const [service, list] of Object.entries(record)) {
      const inputs = out.get(service);
      if (inputs === undefined) out.set(service, [list]);
      else inputs.push(list);
    }
  }
  return out;
}

function reuse<T>(previous: Merged<T> | undefined, inputs: readonly (readonly T[])[]): Merged<T> | undefined {
  if (previous === undefined || previous.inputs.length !== inputs.length) return undefined;
  for (let i = 0; i < inputs.length; i++) if (previous.inputs[i] !== inputs[i]) return undefined;
  return previous;
}

function unitedTags(inputs: readonly (readonly string[])[]): string[] {
  const set = new Set<string>();
  for (const list of inputs) for (const tag of list) set.add(tag);
  return [...set].sort();
}

function unitedInstances(inputs: readonly (readonly ServiceInstance[])[]): ServiceInstance[] {
  const byId = new Map<string, ServiceInstance>();
  for (const list of inputs) for (const instance of list) byId.set(instance.id, instance);
  return [...byId.values()];
}

/** Later snapshots override earlier ones key by key. */
export function mergeKv(snapshots: readonly KvSnapshot[]): KvSnapshot {
  return snapshots.length === 1 ? snapshots[0]! : Object.assign({}, ...snapshots) as KvSnapshot;
}
