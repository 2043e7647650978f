import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../model/types.js';

/**
 * Merge the discovery snapshots of several providers, in order: catalogs are united; instances of
 * one service are concatenated, and an instance id seen again (same service) replaces the earlier
 * one, so a later provider (Consul) wins over an earlier one (the services file).
 */
export function mergeDiscovery(snapshots: readonly DiscoverySnapshot[]): DiscoverySnapshot {
  if (snapshots.length === 1) return snapshots[0]!;
  const tags = new Map<string, Set<string>>();
  const instances = new Map<string, Map<string, ServiceInstance>>();
  for (const snapshot of snapshots) {
    for (const [service, list] of Object.entries(snapshot.catalog)) {
      const set = tags.get(service) ?? new Set<string>();
      for (const tag of list) set.add(tag);
      tags.set(service, set);
    }
    for (const [service, list] of Object.entries(snapshot.instances)) {
      const byId = instances.get(service) ?? new Map<string, ServiceInstance>();
      for (const instance of list) byId.set(instance.id, instance);
      instances.set(service, byId);
    }
  }
  return {
    catalog: Object.fromEntries([...tags].map(([service, set]) => [service, [...set].sort()])),
    instances: Object.fromEntries([...instances].map(([service, byId]) => [service, [...byId.values()]])),
  };
}

/** Later snapshots override earlier ones key by key. */
export function mergeKv(snapshots: readonly KvSnapshot[]): KvSnapshot {
  return snapshots.length === 1 ? snapshots[0]! : Object.assign({}, ...snapshots) as KvSnapshot;
}
