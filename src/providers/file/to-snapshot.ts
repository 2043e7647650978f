import type { DiscoverySnapshot, KvSnapshot, ServiceInstance } from '../../model/types.js';
import type { ServicesFile } from './services-schema.js';

/** The discovery part of a services file, shaped as the Consul provider shapes Consul's answers. */
export function servicesToDiscovery(file: ServicesFile): DiscoverySnapshot {
  const catalog: Record<string, readonly string[]> = {};
  const instances: Record<string, readonly ServiceInstance[]> = {};
  for (const [service, list] of Object.entries(file.services)) {
    catalog[service] = [...new Set(list.flatMap((i) => i.tags))].sort();
    instances[service] = list.map((i) => ({ ...i, service }));
  }
  return { catalog, instances };
}

/** Keys under `prefix`, with the prefix removed; other keys are not Switchyard's and are dropped. */
export function kvUnderPrefix(kv: Readonly<Record<string, string>>, prefix: string): KvSnapshot {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(kv)) {
    if (key.startsWith(prefix) && key.length > prefix.length) out[key.slice(prefix.length)] = value;
  }
  return out;
}
