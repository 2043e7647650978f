import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { httpStatusFor, type ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { ERROR_BODIES, sendError } from './error-response.js';
import { clientAddress, removeConnectionNominated, responseHeaders, scanRequestHeaders, type RequestHead } from './headers.js';
import type { RequestIdGenerator } from './request-id.js';
import { NO_ROUTE_LABEL } from './route-metrics.js';
import { stripPath, type RuntimeEndpoint, type RuntimeRoute, type RuntimeStore } from './runtime.js';

/** Shared, per-proxy state an exchange reads. */
export interface ForwardContext {
  readonly runtimes: RuntimeStore;
  /** Access logger; undefined turns the access log off. */
  readonly accessLog: Logger | undefined;
  readonly ids: RequestIdGenerator;
  /** Forward the client's Host header (true) or let undici send the endpoint's host:port. */
  readonly preserveHost: boolean;
  /** Value of X-Forwarded-Proto. */
  readonly proto: string;
  /** Set while the proxy drains: responses ask clients to close their connection. */
  readonly closing: boolean;
  /** Extra attempts, on other endpoints, for body-less requests whose connection could not be established. */
  readonly retries: number;
  /** Called once per exchange when its response closed. */
  requestDone(): void;
}

/** node's ServerResponse with a slot for its exchange, so shared listeners need no closure. */
export class ProxyResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  exchange: Exchange | undefined = undefined;
}

/** Raised into undici to abort an upstream request whose client went away. */
class ClientClosedError extends Error {
  readonly code = 'SY_CLIENT_CLOSED';
}

/** Status logged and counted when the client closed the connection before the response ended (nginx's 499). */
export const CLIENT_CLOSED_STATUS = 499;

function onResponseClose(this: ProxyResponse): void {
  this.exchange?.closed();
}

function onResponseDrain(this: ProxyResponse): void {
  this.exchange?.drained();
}

/**
 * Failures that prove the request never reached the upstream (no connection was established), so
 * sending it elsewhere cannot duplicate it.
 */
export function isConnectFailure(err: Error): boolean {
  switch ((err as { code?: unknown }).code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return true;
    default:
      return false;
  }
}

/** Map an upstream failure to an error code. `started`: the response head was already sent. */
export function classifyUpstreamError(err: Error, started: boolean): ErrorCode {
  switch ((err as { code?: unknown }).code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'SY_UPSTREAM_TIMEOUT';
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      if (!started) return 'SY_BAD_REQUEST';
      break;
    default:
      break;
  }
  return started ? 'SY_UPSTREAM_RESET' : 'SY_UPSTREAM_CONNECT';
}

/**
 * One proxied request: its RequestHead, the undici dispatch handler that streams the upstream
 * response into `res` (legacy handler methods: raw header buffers, no per-request adapters), and
 * the access log line and metrics written when `res` closes. One instance per request, no closures.
 */
export class Exchange implements RequestHead, Dispatcher.DispatchHandler {
  // RequestHead, filled by scanRequestHeaders.
  headers: string[] = [];
  host: string | undefined = undefined;
  forwardedFor: string | undefined = undefined;
  requestId: string | undefined = undefined;
  connection: string | undefined = undefined;
  hasBody = false;

  readonly ctx: ForwardContext;
  readonly req: IncomingMessage;
  readonly res: ProxyResponse;
  readonly start: number;
  route: RuntimeRoute | undefined = undefined;
  endpoint: RuntimeEndpoint | undefined = undefined;
  /** Status sent (or to be logged); 0 until known. */
  status = 0;
  errorCode: ErrorCode | undefined = undefined;
  error: Error | undefined = undefined;
  /** Upstream attempts made (more than 1 after a connect-failure retry). */
  attempts = 0;
  private options: Dispatcher.DispatchOptions | undefined = undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private started = false;
  private settled = false;
  private clientGone = false;

  constructor(ctx: ForwardContext, req: IncomingMessage, res: ProxyResponse, start: number) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.start = start;
  }

  /** Route, pick, rewrite, dispatch. The runtime is read once here and used to the end. */
  run(): void {
    const { req, res, ctx } = this;
    res.exchange = this;
    res.on('close', onResponseClose);
    scanRequestHeaders(req.rawHeaders, this);
    const requestId = this.requestId ?? (this.requestId = ctx.ids.next());
    let url = req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* / */) {
      const absolute = parseAbsoluteForm(url);
      if (absolute === undefined) {
        this.settled = true;
        this.status = sendError(res, 'SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST, requestId, ctx.closing);
        return;
      }
      url = absolute.path;
      this.host = absolute.host;
    }
    const runtime = ctx.runtimes.current;
    const route = runtime?.match(this.host, url);
    if (route === undefined) {
      this.settled = true;
      this.status = sendError(res, 'SY_NO_ROUTE', ERROR_BODIES.SY_NO_ROUTE, requestId, ctx.closing);
      return;
    }
    this.route = route;
    const endpoint = route.pick();
    if (endpoint === undefined) {
      this.settled = true;
      this.status = sendError(res, 'SY_NO_ENDPOINT', route.noEndpointBody, requestId, ctx.closing);
      return;
    }
    this.endpoint = endpoint;

    const headers = this.connection === undefined ? this.headers : removeConnectionNominated(this.headers, this.connection);
    if (ctx.preserveHost && this.host !== undefined) headers.push('host', this.host);
    const client = clientAddress(req.socket.remoteAddress);
    headers.push('x-forwarded-for', this.forwardedFor === undefined ? client : `${this.forwardedFor}, ${client}`);
    headers.push('x-forwarded-proto', ctx.proto);
    if (this.host !== undefined) headers.push('x-forwarded-host', this.host);
    headers.push('x-request-id', requestId);

    const options: Dispatcher.DispatchOptions = {
      method: req.method as Dispatcher.HttpMethod,
      path: stripPath(url, route.strip),
      headers,
      body: this.hasBody ? req : null,
    };
    this.options = options;
    this.attempts = 1;
    endpoint.pool.dispatch(options, this);
  }

  /**
   * After a connect failure of a body-less request, dispatch it to another endpoint of the route
   * (same runtime). Returns false when no retry is allowed or no other endpoint exists.
   */
  private retry(err: Error): boolean {
    const route = this.route;
    const failed = this.endpoint;
    const options = this.options;
    if (this.hasBody || this.started || route === undefined || failed === undefined || options === undefined) return false;
    if (this.attempts > this.ctx.retries || !isConnectFailure(err)) return false;
    const next = route.pickOther(failed);
    if (next === undefined) return false;
    route.metrics.upstreamError(classifyUpstreamError(err, false));
    this.attempts += 1;
    this.endpoint = next;
    this.abortUpstream = null;
    next.pool.dispatch(options, this);
    return true;
  }

  // ---- undici dispatch handler ----

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) {
      abort(new ClientClosedError('client closed the connection'));
      return;
    }
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational responses are not relayed
    const res = this.res;
    this.resumeUpstream = resume;
    const headers = responseHeaders(rawHeaders, this.requestId!);
    // Draining, or an answer before the request body has fully arrived: the rest of that body
    // would have to be read and discarded, so close the client connection after this response.
    if (this.ctx.closing || (this.hasBody && !this.req.complete)) res.shouldKeepAlive = false;
    this.status = statusCode;
    // Throws on a head node refuses to send; undici then aborts the request and onError answers 502.
    res.writeHead(statusCode, statusText === '' ? undefined : statusText, headers);
    this.started = true;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // Backpressure: undici pauses reading the upstream until the client drains.
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onComplete(_trailers: string[] | null): void {
    this.settled = true;
    this.res.end();
  }

  onError(err: Error): void {
    // `req.socket` may be null here: undici detaches it before destroying a request body stream.
    const socket = this.res.socket;
    if (this.clientGone || socket === null || socket.destroyed) {
      this.settled = true;
      this.clientGone = true;
      return;
    }
    if (this.retry(err)) return;
    this.settled = true;
    const code = classifyUpstreamError(err, this.started || this.res.headersSent);
    this.errorCode = code;
    this.error = err;
    this.route?.metrics.upstreamError(code);
    if (!this.res.headersSent) {
      // A request body still arriving would have to be drained first: close the connection instead.
      const close = this.ctx.closing || (this.hasBody && !this.req.complete);
      this.status = sendError(this.res, code, ERROR_BODIES[code as keyof typeof ERROR_BODIES] ?? ERROR_BODIES.SY_UPSTREAM_CONNECT, this.requestId!, close);
    } else {
      // The head is out: the only honest signal left is to cut the client connection.
      this.status = httpStatusFor(code);
      this.res.destroy();
    }
  }

  // ---- response lifecycle ----

  drained(): void {
    const resume = this.resumeUpstream;
    if (resume !== null) resume();
  }

  /** `res` closed: finished normally, destroyed after an upstream error, or the client went away. */
  closed(): void {
    const res = this.res;
    res.exchange = undefined;
    if (!res.writableFinished && this.errorCode === undefined) {
      this.clientGone = true;
      this.status = CLIENT_CLOSED_STATUS;
      if (!this.settled) {
        this.settled = true;
        const abort = this.abortUpstream;
        if (abort !== null) abort(new ClientClosedError('client closed the connection'));
      }
    }
    const ms = performance.now() - this.start;
    const route = this.route;
    (route === undefined ? this.ctx.runtimes.noRouteMetrics : route.metrics).record(this.status, ms / 1000);
    const log = this.ctx.accessLog;
    if (log !== undefined) {
      const endpoint = this.endpoint;
      log.info({
        reqId: this.requestId,
        route: route === undefined ? NO_ROUTE_LABEL : route.name,
        upstream: endpoint?.origin,
        endpoint: endpoint?.id,
        method: this.req.method,
        path: this.req.url,
        status: this.status,
        ms: Math.round(ms * 1000) / 1000,
        error: this.errorCode,
        reason: this.error?.message,
        attempts: this.attempts > 1 ? this.attempts : undefined,
      });
    }
    this.ctx.requestDone();
  }
}

/** `http://host:port/path?q` (absolute-form request target) → host and origin-form path. */
function parseAbsoluteForm(url: string): { host: string; path: string } | undefined {
  if (!url.startsWith('http://') && !url.startsWith('https://')) return undefined;
  try {
    const parsed = new URL(url);
    return { host: parsed.host, path: `${parsed.pathname}${parsed.search}` };
  } catch {
    return undefined;
  }
}
