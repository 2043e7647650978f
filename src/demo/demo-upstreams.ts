import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceInstance } from '../model/types.js';

/** The embedded default's services: started on loopback ephemeral ports when no source is configured. */
const DEMO: readonly { service: string; id: string; tags: readonly string[] }[] = [
  { service: 'users', id: 'users-1', tags: ['v1'] },
  { service: 'users', id: 'users-2', tags: ['v1'] },
  { service: 'users', id: 'users-3', tags: ['v2'] },
  { service: 'hello', id: 'hello-1', tags: ['public'] },
];

export interface DemoUpstreams {
  readonly instances: readonly ServiceInstance[];
  close(): Promise<void>;
}

/** Each demo instance answers every request with JSON naming itself and echoing the request line. */
export async function startDemoUpstreams(host = '127.0.0.1'): Promise<DemoUpstreams> {
  const servers: Server[] = [];
  const instances: ServiceInstance[] = [];
  for (const demo of DEMO) {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ service: demo.service, instance: demo.id, tags: demo.tags, method: req.method, path: req.url }) + '\n';
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    servers.push(server);
    const { port } = server.address() as AddressInfo;
    instances.push({
      id: demo.id, service: demo.service, address: host, port, tags: demo.tags,
      status: 'passing', weights: { passing: 1, warning: 1 }, meta: { demo: 'true' },
    });
  }
  return {
    instances,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
}
