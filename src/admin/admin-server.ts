import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TableStore } from '../control/table-store.js';
import type { ErrorCode } from '../errors.js';
import type { Duplex } from 'node:stream';
import { errorBody, rawErrorResponse, sendError } from '../proxy/http/error-response.js';
import type { MatchRequest } from '../proxy/runtime/explain.js';
import { AdminAuth } from './admin-auth.js';
import { routesView, type EjectionSource } from './routes-view.js';
import { statusView, type StatsSource } from './status-view.js';
import { StatusPage } from './status-page.js';

export interface AdminSources {
  readonly store: TableStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** True once the first table is live and every provider has synced. */
  ready(): boolean;
  /**
   * The process lifecycle (`starting`, `serving`, `draining`) and, when not ready, why: what
   * /readyz shows. Nothing secret or sensitive: /readyz is open to anyone who reaches the admin port.
   */
  readiness?(): { lifecycle: string; reason?: string };
  /** The effective configuration and provider states, already free of secrets. */
  config(): unknown;
  /** Endpoints outlier detection has ejected (the proxy's runtime). */
  readonly ejections?: EjectionSource;
  /** What the proxy would do with a request, and why (the proxy's explainRequest): /api/match. */
  readonly matcher?: MatchSource;
  /**
   * The /metrics exposition, when it is not `metrics.registry` alone: with --workers > 1 the
   * primary's registry merged with every worker's (src/cluster/cluster-metrics.ts).
   */
  readonly exposition?: () => Promise<{ contentType: string; body: string }>;
  /** With --workers > 1: each worker process and the table version it serves (/api/workers). */
  readonly workers?: () => unknown;
  /**
   * Each endpoint's last minute for /api/status (the status page): the runtime in a single
   * process, every worker's windows merged with --workers > 1. Without it the page shows no traffic.
   */
  readonly stats?: StatsSource;
  /** When set, every request but /healthz and /readyz needs `Authorization: Bearer <token>` (401 otherwise). */
  readonly token?: string | undefined;
}

/**
 * Where /api/match asks what the proxy would do with a request (src/proxy/explain.ts): the runtime
 * in a single process; a worker over IPC with --workers > 1 (hence the promise).
 */
export interface MatchSource {
  explain(host: string | undefined, target: string, request: MatchRequest): unknown;
}

/**
 * The admin server: the status page (/, its CSS and JS), /healthz, /readyz, /metrics, /api/status,
 * /api/routes, /api/config, /api/match (and /api/workers with --workers > 1). A separate listener
 * (loopback by default) so that nothing here is reachable through the proxy port.
 */
export class AdminServer {
  readonly server: Server;
  private readonly auth: AdminAuth | undefined;
  private readonly page: StatusPage;

  constructor(private readonly sources: AdminSources) {
    this.auth = sources.token === undefined ? undefined : new AdminAuth(sources.token);
    this.page = StatusPage.load(sources.logger, sources.token !== undefined);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        sources.logger.error({ err }, 'admin request failed');
        if (!res.headersSent) sendAdminError(res, 'SY_INTERNAL', 'admin request failed');
        else res.destroy();
      });
    });
    this.server.on('clientError', answerClientError);
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    // The status page's files hold no data (the page asks /api/status with the token): served
    // without it, so the page can ask for the token. Read-only, like everything here.
    if (this.page.serves(path) && (req.method === 'GET' || req.method === 'HEAD')) {
      this.page.send(path, res);
      return;
    }
    // /healthz and /readyz stay open: orchestrators and cloud load-balancer health checks (AWS ALB,
    // GCP) probe without credentials and cannot send headers, yet must see the draining 503; both
    // tell nothing but the status (the readiness body holds no configuration).
    if (this.auth !== undefined && path !== '/healthz' && path !== '/readyz' && !this.auth.allows(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="switchyard-admin"');
      sendAdminError(res, 'SY_UNAUTHORIZED', 'the admin endpoints need Authorization: Bearer <admin token>');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendAdminError(res, 'SY_METHOD_NOT_ALLOWED', 'admin endpoints are read-only');
      return;
    }
    const { store, metrics } = this.sources;
    switch (path) {
      case '/healthz':
        send(res, 200, { status: 'ok' });
        return;
      case '/readyz': {
        const ready = this.sources.ready();
        const readiness = this.sources.readiness?.();
        send(res, ready ? 200 : 503, {
          status: ready ? 'ready' : 'not ready',
          ...(readiness === undefined ? {} : { lifecycle: readiness.lifecycle }),
          ...(ready || readiness?.reason === undefined ? {} : { reason: readiness.reason }),
        });
        return;
      }
      case '/metrics': {
        const { contentType, body } = this.sources.exposition === undefined
          ? { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }
          : await this.sources.exposition();
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      case '/api/workers':
        if (this.sources.workers === undefined) {
          sendAdminError(res, 'SY_NOT_FOUND', 'no worker processes: this Switchyard runs as one process (--workers 1)');
          return;
        }
        send(res, 200, this.sources.workers());
        return;
      case '/api/routes':
        send(res, 200, routesView(store.current, store.version, store.swappedAt, this.sources.ejections));
        return;
      case '/api/config':
        send(res, 200, this.sources.config());
        return;
      case '/api/status': {
        const stats = this.sources.stats === undefined ? { endpoints: [], routeInflight: {} } : await this.sources.stats.stats();
        sendCompact(res, statusView({
          table: store.current, version: store.version, swappedAt: store.swappedAt, ready: this.sources.ready(),
          control: this.sources.config(), ejections: this.sources.ejections, stats,
        }));
        return;
      }
      case '/api/match': {
        const query = matchQuery((req.url ?? '').slice(path.length + 1));
        if (query === undefined || typeof query === 'string' || this.sources.matcher === undefined) {
          sendAdminError(res, 'SY_BAD_REQUEST', typeof query === 'string' ? `${query}; ${MATCH_USAGE}` : MATCH_USAGE);
          return;
        }
        send(res, 200, await this.sources.matcher.explain(query.host, query.target, query.request));
        return;
      }
      default:
        sendAdminError(res, 'SY_NOT_FOUND', `no admin endpoint ${path}`);
    }
  }
}

const MATCH_USAGE = 'usage: /api/match?[host=example.com&][method=POST&][header=NAME:VALUE&]...path=/some/path?q=1 '
  + '(path last, exactly as a client sends it: not decoded, its own query included; an absolute http(s) URL sets the host; '
  + 'method defaults to GET; header repeatable)';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex -- what a header value cannot carry (HTAB allowed)
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * `[host=H&][method=M&][header=NAME:VALUE&]...path=TARGET`: the target is everything after `path=`,
 * taken raw, so that it is the request target a client would send (percent-encodings and `+`
 * intact, its own `?` and `&` kept). `method` as sent (methods are case-sensitive), GET by default;
 * each `header` is one field, its value trimmed as node trims a received one. A parameter that is
 * not a usable method or header gives the reason (a string).
 */
function matchQuery(query: string): { host: string | undefined; target: string; request: MatchRequest } | string | undefined {
  const at = query.startsWith('path=') ? 0 : query.indexOf('&path=') + 1;
  if (at === 0 && !query.startsWith('path=')) return undefined;
  const target = query.slice(at + 'path='.length);
  if (target === '') return undefined;
  const params = new URLSearchParams(query.slice(0, at));
  const host = params.get('host') ?? undefined;
  const method = params.get('method') ?? 'GET';
  if (!TOKEN.test(method)) return `method=${JSON.stringify(method)} is not an HTTP method`;
  const headers: [string, string][] = [];
  for (const field of params.getAll('header')) {
    const colon = field.indexOf(':');
    const name = colon < 0 ? '' : field.slice(0, colon).trim();
    const value = field.slice(colon + 1).trim();
    if (!TOKEN.test(name)) return `header=${JSON.stringify(field)}: expected NAME:VALUE with NAME an HTTP token`;
    if (BAD_VALUE.test(value)) return `header=${JSON.stringify(field)}: the value has a control character`;
    if (name.toLowerCase() === 'host') return 'header=host:...: give the Host as host=';
    headers.push([name, value]);
  }
  return { host: host === '' ? undefined : host, target, request: { method, headers } };
}

/**
 * Requests node's parser refuses (raw UTF-8 in the target, Content-Length with Transfer-Encoding, a
 * head over the limit, a header timeout) get the admin error shape, not node's bare 400: the one
 * raw serialiser (error-response.ts), then the connection closes.
 */
const CLIENT_ERRORS: Partial<Record<string, Buffer>> = {
  HPE_HEADER_OVERFLOW: rawErrorResponse('SY_HEADERS_TOO_LARGE', errorBody('SY_HEADERS_TOO_LARGE', 'the request head is too large'), undefined),
  ERR_HTTP_REQUEST_TIMEOUT: rawErrorResponse('SY_REQUEST_TIMEOUT', errorBody('SY_REQUEST_TIMEOUT', 'the request was not received in time'), undefined),
};
const MALFORMED = rawErrorResponse('SY_BAD_REQUEST', errorBody('SY_BAD_REQUEST', 'the request is malformed'), undefined);

function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (socket.destroyed || socket.writableEnded) return;
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end((err.code === undefined ? undefined : CLIENT_ERRORS[err.code]) ?? MALFORMED);
}

/** An admin error: the proxy's serialiser (error-response.ts), its status from errors.ts. */
function sendAdminError(res: ServerResponse, code: ErrorCode, message: string): void {
  sendError(res, code, errorBody(code, message), undefined);
}

/** JSON without indentation: /api/status is asked every 1-2 s and is large with many routes. */
function sendCompact(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
