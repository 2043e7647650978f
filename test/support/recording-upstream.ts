/**
 * An upstream that records everything it receives: every request node parsed (completed or
 * aborted mid-body) and every raw byte on every connection, so a test can assert that no smuggled
 * request and no marker string ever reached it. It answers each complete request 200 with JSON
 * `{ upstream, method, url }`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  host: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: string;
  /** True when the whole body arrived; false when the request was aborted mid-body. */
  complete: boolean;
}

export interface RecordingUpstream {
  readonly name: string;
  readonly port: number;
  readonly server: Server;
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Requests whose body arrived whole. */
  completed(): RecordedRequest[];
  /** Every byte received, over all connections, as latin1 text. */
  rawText(): string;
  /** Forget what was recorded so far. */
  reset(): void;
  close(): Promise<void>;
}

export async function startRecordingUpstream(name = 'recorder'): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  let raw: Buffer[] = [];
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: '',
      complete: false,
    };
    requests.push(record);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => { /* recorded as incomplete */ });
    req.on('end', () => {
      record.body = Buffer.concat(chunks).toString('latin1');
      record.complete = true;
      const body = JSON.stringify({ upstream: name, method: record.method, url: record.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => raw.push(chunk));
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    name,
    port,
    server,
    requests,
    completed: () => requests.filter((r) => r.complete),
    rawText: () => Buffer.concat(raw).toString('latin1'),
    reset() {
      requests.length = 0;
      raw = [];
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
