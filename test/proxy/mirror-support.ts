/**
 * Helpers for the mirroring tests (test/proxy/mirror*.test.ts): a mirror server that records what
 * it receives and can answer, fail or hang; a resolved `Route['mirror']` built as the model builds
 * one (the mirror service's endpoints as a destination); a rig of main upstream, mirror server and
 * proxy; a client that sends a chunked body in parts; the mirror metric by result.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before } from 'node:test';
import type { Destination, Endpoint, MirrorTarget, Route } from '../../src/model/types.js';
import type { Metrics } from '../../src/observability/metrics.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, type DestinationSpec, type RouteSpec, type TestProxy } from './harness.js';

export interface MirroredRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The whole body arrived. */
  complete: boolean;
}

export interface MirrorServer {
  readonly port: number;
  readonly origin: string;
  /** Every request, in arrival order (recorded when its head arrives). */
  readonly requests: MirroredRequest[];
  /** 'answer' (200, or `status`), 'hang' (read the request, never answer). */
  mode: 'answer' | 'hang';
  status: number;
  /** TCP connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startMirrorServer(mode: 'answer' | 'hang' = 'answer', status = 200): Promise<MirrorServer> {
  const requests: MirroredRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const state = { mode, status };
  const server: Server = createServer((req, res) => {
    const record: MirroredRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0), complete: false };
    requests.push(record);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => { /* recorded as incomplete */ });
    req.on('end', () => {
      record.body = Buffer.concat(chunks);
      record.complete = true;
      if (state.mode === 'hang') return;
      res.writeHead(state.status, { 'content-type': 'text/plain' });
      res.end('mirror answer, to be discarded');
    });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    get mode() { return state.mode; },
    set mode(value) { state.mode = value; },
    get status() { return state.status; },
    set status(value) { state.status = value; },
    get connections() { return connections; },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

/** The defaults a template's `mirror:` gets when it says only `service` (route-options.ts decides the real ones). */
const TARGET: Omit<MirrorTarget, 'service'> = { percent: 100, keepAuth: false, maxBodyBytes: 65_536, timeoutMs: 10_000, maxInFlight: 100 };

/** A resolved mirror to `ports` (service `service`, one endpoint per port, weight 1), as resolve-route.ts builds one. */
export function mirrorTo(ports: readonly number[], target: Partial<MirrorTarget> = {}, service = 'shadow'): NonNullable<Route['mirror']> {
  const endpoints: Endpoint[] = ports.map((port, i) => Object.freeze({
    id: `${service}/m${i + 1}`,
    instanceId: `m${i + 1}`,
    service,
    address: '127.0.0.1',
    port,
    origin: `http://127.0.0.1:${port}`,
    status: 'passing',
    weight: 1,
    state: 'active',
    tags: Object.freeze([]),
  } satisfies Endpoint));
  const destination: Destination = Object.freeze({
    key: service,
    service,
    tag: undefined,
    weight: endpoints.length === 0 ? 0 : 1,
    configuredWeight: 1,
    endpoints: Object.freeze(endpoints),
    active: Object.freeze(endpoints),
  });
  return Object.freeze({ target: Object.freeze({ ...TARGET, service, ...target }), destination });
}

/** `switchyard_mirror_total` of `route` by result (only the results that have a series). */
export async function mirrorCounts(metrics: Metrics, route: string): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric('switchyard_mirror_total');
  const out: Record<string, number> = {};
  if (metric === undefined) return out;
  for (const value of (await metric.get()).values) {
    const labels = value.labels as Record<string, string>;
    if (labels.route === route) out[labels.result!] = value.value;
  }
  return out;
}

/** One result of `switchyard_mirror_total` (0 when it has no series). */
export function mirrorCount(metrics: Metrics, route: string, result: string): Promise<number> {
  return metricValue(metrics, 'switchyard_mirror_total', { route, result });
}

export interface StreamedReply {
  status: number;
  body: Buffer;
}

export interface ChunkedOptions {
  headers?: Record<string, string>;
  /** Runs after part `index` was written, before the next one (and before the end). */
  between?: (index: number) => Promise<void>;
  /** Each response chunk as it arrives. */
  onData?: (chunk: Buffer) => void;
}

/** A POST whose body goes chunked (no Content-Length), one write per part. */
export function sendChunked(port: number, path: string, parts: readonly (string | Buffer)[], options: ChunkedOptions = {}): Promise<StreamedReply> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, 'transfer-encoding': 'chunked' };
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, agent: false, timeout: 10_000, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        options.onData?.(chunk);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    void (async () => {
      for (let i = 0; i < parts.length; i++) {
        req.write(parts[i]);
        await options.between?.(i);
      }
      req.end();
    })().catch((err: unknown) => req.destroy(err as Error));
  });
}

/** A rig's routes, given the main upstream as a destination list (service `api`) and the mirror server's port. */
export type RigRoutes = (to: DestinationSpec[], mirrorPort: number) => RouteSpec[] | Promise<RouteSpec[]>;

export interface MirrorRig {
  /** The main upstream (test/support/upstream.ts: echo and the x-test-action behaviours). */
  readonly main: TestUpstream;
  readonly mirror: MirrorServer;
  readonly proxy: TestProxy;
  /** A keep-alive client agent (10 sockets). */
  readonly agent: Agent;
  close(): Promise<void>;
}

/**
 * A main upstream, a mirror server (`mode`, `status`) and a proxy whose table is `routes(to,
 * mirrorPort)`, `to` being the main upstream as service `api`.
 */
export async function startRig(routes: RigRoutes, mode: MirrorServer['mode'] = 'answer', status = 200): Promise<MirrorRig> {
  const main = await startUpstream({ name: 'main', websocket: true });
  const mirror = await startMirrorServer(mode, status);
  const proxy = await startProxy(makeTable(await routes([{ service: 'api', endpoints: [{ id: 'a1', port: main.port }] }], mirror.port)));
  const agent = new Agent({ keepAlive: true, maxSockets: 10 });
  return {
    main, mirror, proxy, agent,
    async close() {
      agent.destroy();
      // Copies hanging at a mirror that never answers are cut after a short drain.
      await proxy.close(200);
      await main.close();
      await mirror.close();
    },
  };
}

/** A rig started before the suite's tests and closed after them (node:test hooks of the calling suite). */
export function withRig(routes: RigRoutes, mode: MirrorServer['mode'] = 'answer', status = 200): MirrorRig {
  let rig: MirrorRig | undefined;
  before(async () => { rig = await startRig(routes, mode, status); });
  after(() => rig?.close());
  const started = (): MirrorRig => {
    if (rig === undefined) throw new Error('the rig starts in the suite\'s before hook');
    return rig;
  };
  return {
    get main() { return started().main; },
    get mirror() { return started().mirror; },
    get proxy() { return started().proxy; },
    get agent() { return started().agent; },
    close: () => started().close(),
  };
}

/** `n` requests to `path` on the rig's keep-alive agent, `parallel` at a time; their statuses in order. */
export async function traffic(rig: MirrorRig, path: string, n: number, parallel = 10): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += parallel) {
    const replies = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, () => send(rig.proxy.port, { path, agent: rig.agent })));
    statuses.push(...replies.map((r) => r.status));
  }
  return statuses;
}
