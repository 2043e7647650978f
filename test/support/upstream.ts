/**
 * A test upstream: a real node:http server on 127.0.0.1 whose behaviour each request selects with
 * headers (so it works whatever path a proxy forwards):
 *
 * - `x-test-action: echo` (default): read the body, answer 200 JSON {@link EchoReply}.
 * - `x-test-action: stream-echo`: send the head at once, write every request chunk back as it
 *   arrives, end when the request ends.
 * - `x-test-action: count`: consume the body, answer JSON `{ bytes, sha256 }`.
 * - `x-test-action: generate` with `x-test-bytes: N`: stream N bytes (0x61) honouring backpressure.
 * - `x-test-action: early`: answer `early` at once (200, or `x-test-status`), without reading the request body.
 * - `x-test-action: reset`: destroy the connection before any response.
 * - `x-test-action: reset-mid`: send a head announcing 1000 bytes, 10 bytes of body, then destroy.
 * - `x-test-action: slow-body`: send the head at once, then `x-test-chunks` (default 3) chunks of
 *   `chunk\n`, `x-test-chunk-delay-ms` (default 100) apart.
 * - `x-test-action: hang`: read the request, never answer (the connection stays open).
 * - `x-test-action: reset-after-body`: read the whole request body, then destroy the connection.
 * - `x-test-only: a,b`: the action, status and delay headers apply only on upstreams with one of
 *   these names; any other upstream answers a plain echo (faults on chosen upstreams only).
 * - `x-test-delay-ms: N`: wait N ms before answering (any action).
 * - `x-test-status: N`: the status of an echo answer.
 * - `x-test-response-headers: {json}`: extra headers on an echo answer (with `trailer` among
 *   them the answer is chunked).
 *
 * With `websocket: true`, upgrades are accepted by `ws`: the first message is a JSON
 * {@link EchoReply} of the upgrade request (body empty), then every message is echoed back as
 * `<name>:<message>`.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

export interface EchoReply {
  upstream: string;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: string;
  bodyLength: number;
}

export interface TestUpstreamOptions {
  name?: string;
  websocket?: boolean;
  /** node's server.keepAliveTimeout for the upstream. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Port to listen on (e.g. to bring a stopped upstream back on its old port). Default 0 (any). */
  port?: number;
}

export interface TestUpstream {
  readonly name: string;
  readonly port: number;
  readonly origin: string;
  readonly server: Server;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Requests (including upgrades) received so far. */
  readonly requests: number;
  /** Requests whose response has not finished or closed yet. */
  readonly inflight: number;
  /** Connections open right now. */
  readonly openConnections: number;
  close(): Promise<void>;
}

export async function startUpstream(options: TestUpstreamOptions = {}): Promise<TestUpstream> {
  const name = options.name ?? 'upstream';
  const sockets = new Set<Socket>();
  const stats = { connections: 0, requests: 0, inflight: 0 };

  const server = createServer((req, res) => {
    stats.requests += 1;
    stats.inflight += 1;
    res.once('close', () => { stats.inflight -= 1; });
    const only = req.headers['x-test-only'];
    if (typeof only === 'string' && !only.split(',').map((s) => s.trim()).includes(name)) {
      handle(name, req, res, true);
      return;
    }
    const delay = Number(req.headers['x-test-delay-ms'] ?? 0);
    if (delay > 0) {
      const timer = setTimeout(() => handle(name, req, res), delay);
      res.once('close', () => clearTimeout(timer));
    } else {
      handle(name, req, res);
    }
  });
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  server.on('connection', (socket: Socket) => {
    stats.connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  let wss: WebSocketServer | undefined;
  if (options.websocket === true) {
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      stats.requests += 1;
      ws.send(JSON.stringify(echoReply(name, req, Buffer.alloc(0))));
      ws.on('message', (data, isBinary) => {
        ws.send(isBinary ? data : `${name}:${data.toString()}`);
      });
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    name,
    port,
    origin: `http://127.0.0.1:${port}`,
    server,
    get connections() { return stats.connections; },
    get requests() { return stats.requests; },
    get inflight() { return stats.inflight; },
    get openConnections() { return sockets.size; },
    async close() {
      if (wss !== undefined) {
        for (const client of wss.clients) client.terminate();
        wss.close();
      }
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

/** A 127.0.0.1 port with nothing listening (bound, then released). */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function echoReply(name: string, req: IncomingMessage, body: Buffer): EchoReply {
  return {
    upstream: name,
    method: req.method ?? '',
    url: req.url ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body: body.toString('utf8'),
    bodyLength: body.length,
  };
}

function handle(name: string, req: IncomingMessage, res: ServerResponse, plain = false): void {
  const action = plain ? 'echo' : req.headers['x-test-action'] ?? 'echo';
  switch (action) {
    case 'slow-body': {
      req.resume();
      const chunks = Number(req.headers['x-test-chunks'] ?? 3);
      const gap = Number(req.headers['x-test-chunk-delay-ms'] ?? 100);
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.flushHeaders();
      let sent = 0;
      const timer = setInterval(() => {
        res.write('chunk\n');
        sent += 1;
        if (sent >= chunks) {
          clearInterval(timer);
          res.end();
        }
      }, gap);
      res.once('close', () => clearInterval(timer));
      return;
    }
    case 'hang':
      req.resume();
      return;
    case 'reset-after-body':
      req.resume();
      req.on('end', () => req.socket.destroy());
      return;
    case 'reset':
      req.socket.destroy();
      return;
    case 'reset-mid':
      res.writeHead(200, { 'content-length': '1000', 'x-upstream': name });
      res.write('0123456789', () => setImmediate(() => req.socket.destroy()));
      return;
    case 'early':
      // Answer at once without reading the request body (status from x-test-status, default 200).
      res.writeHead(Number(req.headers['x-test-status'] ?? 200), { 'content-type': 'text/plain', 'content-length': '5', 'x-upstream': name });
      res.end('early');
      return;
    case 'stream-echo':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': name });
      res.flushHeaders();
      req.on('data', (chunk: Buffer) => res.write(chunk));
      req.on('end', () => res.end());
      return;
    case 'count': {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk); });
      req.on('end', () => {
        const body = JSON.stringify({ upstream: name, bytes, sha256: hash.digest('hex') });
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
        res.end(body);
      });
      return;
    }
    case 'generate': {
      const total = Number(req.headers['x-test-bytes'] ?? 0);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total), 'x-upstream': name });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    default: {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const reply = JSON.stringify(echoReply(name, req, Buffer.concat(chunks)));
        const raw = req.headers['x-test-response-headers'];
        const extra = typeof raw === 'string' ? JSON.parse(raw) as Record<string, string> : {};
        const headers: Record<string, string> = { 'content-type': 'application/json', 'x-upstream': name, ...extra };
        // A Trailer header needs a chunked body; otherwise announce the length.
        if (!('trailer' in extra)) headers['content-length'] = String(Buffer.byteLength(reply));
        const status = plain ? 200 : Number(req.headers['x-test-status'] ?? 200);
        res.writeHead(status, headers);
        res.end(reply);
      });
    }
  }
}
