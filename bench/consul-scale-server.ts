/**
 * The Consul API test server of bench/consul-scale.ts in a process of its own (as a real agent
 * is), so that building its answers (the health state of 10,000 checks is megabytes of JSON)
 * does not stall the benchmark's probes. Driven over IPC: the parent sends a setup message, then
 * changes; every message is acknowledged after it took effect.
 */
import { populateLargeCatalog } from '../test/support/consul/large-catalog.js';
import { ConsulTestServer } from '../test/support/consul/server.js';

export type ScaleServerMessage =
  | { op: 'setup'; services: number; instances: number; probes: Array<{ service: string; tag: string; port: number }> }
  | { op: 'kvPut'; key: string; value: string }
  | { op: 'setCheck'; check: string; status: 'passing' | 'critical' }
  | { op: 'mark' }
  | { op: 'stats' };

export interface ScaleServerStats {
  readonly peakConnections: number;
  readonly refusedConnections: number;
  /** Paths of the requests since the last mark. */
  readonly sinceMark: readonly string[];
  readonly serviceReads: number;
}

const server = await ConsulTestServer.start();
let mark = 0;
process.on('message', (raw: ScaleServerMessage & { id: number }) => {
  let reply: unknown = true;
  switch (raw.op) {
    case 'setup':
      populateLargeCatalog(server, { services: raw.services, instances: raw.instances, nodes: raw.instances });
      for (const p of raw.probes) {
        server.registerService({ ID: `${p.service}-${p.tag}`, Name: p.service, Tags: [p.tag], Address: '127.0.0.1', Port: p.port, Check: { TTL: '1h', Status: 'passing' } });
      }
      reply = server.address;
      break;
    case 'kvPut':
      server.kvPut(raw.key, raw.value);
      break;
    case 'setCheck':
      server.setCheck(raw.check, raw.status);
      break;
    case 'mark':
      mark = server.requestCount;
      break;
    case 'stats':
      reply = {
        peakConnections: server.peakConnections(),
        refusedConnections: server.refusedConnections,
        sinceMark: server.requests.filter((r) => r.seq > mark).map((r) => r.path),
        serviceReads: server.requests.filter((r) => r.path.startsWith('/v1/health/service/')).length,
      } satisfies ScaleServerStats;
      break;
  }
  process.send?.({ id: raw.id, reply });
});
process.on('disconnect', () => {
  void server.stop().then(() => process.exit(0));
});
process.send?.({ id: 0, reply: 'listening' });
