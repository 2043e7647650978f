/**
 * A large catalog for the Consul scale test and bench: `services` services of `instances`
 * instances each, spread over `nodes` nodes (each with its serfHealth check), every instance with
 * a passing TTL check `service:<id>`. Written through the in-process helpers (no HTTP): 10,000
 * registrations take well under a second.
 */
import type { ConsulTestServer } from './server.js';

export interface LargeCatalog {
  /** Service names, `svc-0000` … */
  readonly names: readonly string[];
  /** The node an instance is on. */
  nodeOf(instance: number): string;
}

export function serviceName(at: number): string {
  return `svc-${String(at).padStart(4, '0')}`;
}

export function populateLargeCatalog(server: ConsulTestServer, opts: { services: number; instances: number; nodes: number; tags?: readonly string[] }): LargeCatalog {
  const nodeOf = (instance: number): string => `node-${instance % opts.nodes}`;
  for (let n = 0; n < opts.nodes; n++) server.addNode(`node-${n}`, `10.0.${n >> 8}.${n & 255}`);
  const names: string[] = [];
  for (let s = 0; s < opts.services; s++) {
    const name = serviceName(s);
    names.push(name);
    for (let i = 0; i < opts.instances; i++) {
      server.registerService({
        ID: `${name}-${i}`,
        Name: name,
        Address: `10.1.${s >> 8}.${s & 255}`,
        Port: 20_000 + i,
        Tags: [...(opts.tags ?? ['public'])],
        Check: { TTL: '30s', Status: 'passing' },
      }, { node: nodeOf(i) });
    }
  }
  return { names, nodeOf };
}
