/**
 * The "bare undici" reference proxy: node:http in front, one undici Pool per upstream behind,
 * plain round-robin, streamed bodies, hop-by-hop headers dropped. No routing table, no logs, no
 * metrics: the ceiling a Node.js proxy on undici can reach on this machine.
 *
 *   node --import tsx bench/bare-undici.ts --listen 127.0.0.1:8000 --upstreams 127.0.0.1:9101,127.0.0.1:9102
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'expect',
]);

function requestHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function responseHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`expected HOST:PORT, got ${s}`);
  return { host: s.slice(0, i), port };
}

const { values } = parseArgs({
  options: { listen: { type: 'string' }, upstreams: { type: 'string' } },
});
if (values.listen === undefined || values.upstreams === undefined) {
  process.stderr.write('usage: bare-undici.ts --listen HOST:PORT --upstreams HOST:PORT[,HOST:PORT...]\n');
  process.exit(2);
}
const listen = hostPort(values.listen);
const pools = values.upstreams.split(',').map((u) => {
  const { host, port } = hostPort(u);
  return new Pool(`http://${host}:${port}`, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });
});
let next = 0;

const server = createServer((req, res) => {
  const pool = pools[next]!;
  next = (next + 1) % pools.length;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.request({
    path: req.url ?? '/',
    method: req.method as 'GET',
    headers: requestHeaders(req.headers),
    body: hasBody ? req : null,
  }).then((up) => {
    res.writeHead(up.statusCode, responseHeaders(up.headers));
    // pipe, not stream.pipeline: measurably cheaper per request; errors just end both sides.
    up.body.once('error', () => res.destroy());
    res.once('close', () => { if (!up.body.readableEnded) up.body.destroy(); });
    up.body.pipe(res);
  }, () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(listen.port, listen.host);

const shutdown = (): void => {
  server.close();
  server.closeAllConnections();
  void Promise.all(pools.map((p) => p.close())).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
