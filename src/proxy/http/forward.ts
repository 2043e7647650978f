import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import type { AccessLog } from '../../observability/access-log.js';
import { admission, httpsLocation, REDIRECT } from '../policy/admission.js';
import { BodyTap } from './body-tap.js';
import { ERROR_BODIES, sendError } from './error-response.js';
import { clientAddress, contentLengthOf, removeConnectionNominated, responseHeaders, scanRequestHeaders, type RequestHead } from './headers.js';
import type { RequestIdGenerator } from './request-id.js';
import { NO_ROUTE_JSON } from '../runtime/route-metrics.js';
import type { RouteState } from '../runtime/route-state.js';
import {
  RETRY_ON_502, RETRY_ON_503, RETRY_ON_504, RETRY_ON_CONNECT_FAILURE, RETRY_ON_RESET,
  stripPath, type RuntimeEndpoint, type RuntimeRoute, type RuntimeStore,
} from '../runtime/runtime.js';

/** Shared, per-proxy state an exchange reads. */
export interface ForwardContext {
  readonly runtimes: RuntimeStore;
  /** Access logger; undefined turns the access log off. */
  readonly accessLog: AccessLog | undefined;
  readonly ids: RequestIdGenerator;
  /** Forward the client's Host header (true) or let undici send the endpoint's host:port. */
  readonly preserveHost: boolean;
  /** Value of X-Forwarded-Proto. */
  readonly proto: string;
  /** Set while the proxy drains: responses ask clients to close their connection. */
  readonly closing: boolean;
  /** Port of the TLS listener, for routes whose policy redirects plain HTTP; undefined = no redirects. */
  readonly httpsPort: number | undefined;
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

/** Raised into undici when the route's total timeout expires. */
class TotalTimeoutError extends Error {
  readonly code = 'SY_TOTAL_TIMEOUT';
  constructor(ms: number) {
    super(`the exchange exceeded the route's total timeout of ${ms} ms`);
  }
}

/** Status logged and counted when the client closed the connection before the response ended (nginx's 499). */
export const CLIENT_CLOSED_STATUS = 499;

/** setTimeout callback of the total timeout; the exchange is the timer's argument, so no closure. */
function onTotalTimeout(exchange: Exchange): void {
  exchange.expire();
}

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

/** The connection broke after the request was (partly) sent and before a response head arrived. */
export function isResetBeforeResponse(err: Error): boolean {
  switch ((err as { code?: unknown }).code) {
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return true;
    default:
      return false;
  }
}

/**
 * Failures that count against the endpoint for outlier detection: everything the upstream (or the
 * path to it) caused. Not: the client leaving, the body limit, the total timeout (it spans every
 * attempt), requests undici refused to send, pools closed by a swap.
 */
export function isUpstreamFault(err: Error): boolean {
  switch ((err as { code?: unknown }).code) {
    case 'SY_CLIENT_CLOSED':
    case 'SY_BODY_TOO_LARGE':
    case 'SY_TOTAL_TIMEOUT':
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_ABORTED':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return false;
    default:
      return true;
  }
}

/** Which timeout an SY_UPSTREAM_TIMEOUT was: the `kind` label of switchyard_upstream_timeouts_total. */
export function timeoutKind(err: Error): string {
  switch ((err as { code?: unknown }).code) {
    case 'UND_ERR_HEADERS_TIMEOUT': return 'headers';
    case 'UND_ERR_BODY_TIMEOUT': return 'body';
    case 'SY_TOTAL_TIMEOUT': return 'total';
    default: return 'connect';
  }
}

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
export function isIdempotent(method: string | undefined): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'PUT':
    case 'DELETE':
    case 'TRACE':
      return true;
    default:
      return false;
  }
}

/** A body stream nothing has been read from yet (undici reads it only once a connection is up). */
function bodyUntouched(body: Dispatcher.DispatchOptions['body']): boolean {
  if (body === null || body === undefined) return true;
  const stream = body as Readable;
  return typeof stream.readableDidRead === 'boolean' && !stream.readableDidRead && !stream.destroyed;
}

/** Map an upstream failure to an error code. `started`: the response head was already sent. */
export function classifyUpstreamError(err: Error, started: boolean): ErrorCode {
  switch ((err as { code?: unknown }).code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
    case 'SY_TOTAL_TIMEOUT':
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
  /** Upstream attempts made (more than 1 after retries). */
  attempts = 0;
  private options: Dispatcher.DispatchOptions | undefined = undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private started = false;
  private settled = false;
  private clientGone = false;
  /** The route state this exchange was admitted into (counted in its `inflight`) until it closes. */
  private state: RouteState | undefined = undefined;
  /** The total-timeout timer, when the route has one. */
  private timer: NodeJS.Timeout | undefined = undefined;
  private timedOut = false;
  /** Endpoints already attempted; allocated by the first retry decision. */
  private tried: RuntimeEndpoint[] | undefined = undefined;
  /** Set while a retryable 5xx response is being discarded: the endpoint it will be retried on. */
  private retryTo: RuntimeEndpoint | undefined = undefined;
  private retryReason = '';
  /** A chunked body on a route with a body limit gets counted (BodyTap); -1 = not counted. */
  private bodyLimit = -1;
  /** The body on its way upstream, when it is counted or kept for a retry. */
  private tap: BodyTap | undefined = undefined;

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
    if (route.guarded && this.refuse(route, url, requestId)) return;
    const state = route.state;
    state.inflight += 1;
    this.state = state;
    if (route.retryCount > 0) state.budget.deposit(this.start);
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
    // Per connection: the same handler serves the plain and the TLS listener.
    headers.push('x-forwarded-proto', (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : ctx.proto);
    if (this.host !== undefined) headers.push('x-forwarded-host', this.host);
    const path = stripPath(url, route.strip);
    // The prefix taken off, so the upstream can build its public URLs (Traefik's StripPrefix does the same).
    if (path !== url) headers.push('x-forwarded-prefix', route.strip!);
    headers.push('x-request-id', requestId);

    const options: Dispatcher.DispatchOptions = {
      method: req.method as Dispatcher.HttpMethod,
      path,
      headers,
      body: this.hasBody ? this.body(route) : null,
      headersTimeout: route.headersTimeout,
      bodyTimeout: route.bodyTimeout,
    };
    this.options = options;
    this.attempts = 1;
    if (route.totalMs > 0) this.timer = setTimeout(onTotalTimeout, route.totalMs, this);
    endpoint.pool.dispatch(options, this);
  }

  /**
   * The route's admission checks, in order: redirect to HTTPS, rate limit (429), body size by
   * Content-Length (413), concurrency (503). Answers and returns true when the request stops here.
   * Only called for routes that have at least one of them (`route.guarded`).
   */
  private refuse(route: RuntimeRoute, url: string, requestId: string): boolean {
    const { req, res, ctx } = this;
    // An unread request body would have to be drained before the connection could be reused.
    const close = ctx.closing || (this.hasBody && !req.complete);
    const verdict = admission(route, req.socket, this.forwardedFor, ctx.httpsPort, this.start);
    if (verdict === REDIRECT) {
      this.settled = true;
      const location = httpsLocation(this.host, ctx.httpsPort!, url);
      if (location === undefined) {
        this.status = sendError(res, 'SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST, requestId, close);
        return true;
      }
      if (close) res.shouldKeepAlive = false;
      res.writeHead(308, ['location', location, 'content-length', '0', 'cache-control', 'no-store', 'x-request-id', requestId]);
      res.end();
      this.status = 308;
      return true;
    }
    if (verdict > 0) {
      this.settled = true;
      this.errorCode = 'SY_RATE_LIMITED';
      this.status = sendError(res, 'SY_RATE_LIMITED', ERROR_BODIES.SY_RATE_LIMITED, requestId, close, 'retry-after', String(verdict));
      return true;
    }
    if (route.maxBody >= 0 && this.hasBody) {
      const length = contentLengthOf(req.rawHeaders);
      if (length > route.maxBody) {
        this.settled = true;
        this.errorCode = 'SY_BODY_TOO_LARGE';
        route.metrics.bodyTooLarge();
        this.status = sendError(res, 'SY_BODY_TOO_LARGE', ERROR_BODIES.SY_BODY_TOO_LARGE, requestId, close);
        return true;
      }
      // No Content-Length: a chunked body, counted as it streams.
      if (length < 0) this.bodyLimit = route.maxBody;
    }
    if (route.state.inflight >= route.maxConcurrent) {
      this.settled = true;
      this.errorCode = 'SY_OVERLOADED';
      route.metrics.overloaded();
      this.status = sendError(res, 'SY_OVERLOADED', ERROR_BODIES.SY_OVERLOADED, requestId, close);
      return true;
    }
    return false;
  }

  /**
   * Whether the attempt that just failed with `condition` (a RETRY_ON_* bit) may be retried, and
   * where: the route's policy must list the condition and have attempts left; after a connect
   * failure any method may go again as long as no byte of its body was read (nothing was sent) or
   * its kept copy is whole; after a reset or a 502/503/504 only an idempotent request, and one with
   * a body only when the whole body was kept (BodyTap, `retries.bufferBytes`). The endpoint is
   * another one, not ejected; the retry budget must allow it.
   */
  private retryTarget(condition: number): RuntimeEndpoint | undefined {
    const route = this.route;
    const failed = this.endpoint;
    if (route === undefined || failed === undefined || this.options === undefined) return undefined;
    if ((route.retryOn & condition) === 0 || this.attempts > route.retryCount || this.timedOut || this.clientGone) return undefined;
    if (condition === RETRY_ON_CONNECT_FAILURE) {
      if (this.hasBody && !bodyUntouched(this.options.body) && this.tap?.replay() === undefined) return undefined;
    } else if (!isIdempotent(this.req.method) || (this.hasBody && this.tap?.replay() === undefined)) return undefined;
    return route.retryEndpoint(this.tried ?? (this.tried = []), failed, performance.now());
  }

  /**
   * The request body as undici gets it: the client request itself, or piped through a BodyTap when
   * a chunked body is counted against the route's limit or an idempotent request's body is kept
   * for a retry (`route.replayBytes`).
   */
  private body(route: RuntimeRoute): IncomingMessage | BodyTap {
    // A Content-Length already over the size cannot be kept: no copy is started.
    const keep = route.replayBytes > 0 && isIdempotent(this.req.method) && contentLengthOf(this.req.rawHeaders) <= route.replayBytes ? route.replayBytes : 0;
    if (this.bodyLimit < 0 && keep === 0) return this.req;
    const tap = new BodyTap(this.bodyLimit, keep);
    this.tap = tap;
    return this.req.pipe(tap);
  }

  /** Send the request again, to `next`. */
  private redispatch(next: RuntimeEndpoint, reason: string): void {
    this.route?.metrics.retry(reason);
    this.attempts += 1;
    this.endpoint = next;
    this.abortUpstream = null;
    this.resumeUpstream = null;
    const options = this.options!;
    // A body already (partly) sent goes again from the copy retryTarget made sure exists.
    if (this.tap !== undefined && !bodyUntouched(options.body)) options.body = this.tap.replay()!;
    next.pool.dispatch(options, this);
  }

  /** The route's total timeout elapsed: abort the attempt in flight and answer 504 (or cut a started response). */
  expire(): void {
    this.timer = undefined;
    if (this.settled) return;
    this.timedOut = true;
    const err = new TotalTimeoutError(this.route?.totalMs ?? 0);
    const abort = this.abortUpstream;
    // undici reports the abort to onError synchronously.
    if (abort !== null) abort(err);
    // Not on a connection yet (queued or connecting): answer now; onConnect aborts it later.
    if (!this.settled) this.onError(err);
  }

  // ---- undici dispatch handler ----

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone || this.timedOut) {
      abort(this.timedOut ? new TotalTimeoutError(this.route?.totalMs ?? 0) : new ClientClosedError('client closed the connection'));
      return;
    }
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational responses are not relayed
    const route = this.route;
    const endpoint = this.endpoint;
    if (route !== undefined && endpoint !== undefined) {
      if (statusCode >= 500) {
        route.failed(endpoint);
        if (statusCode <= 504 && statusCode >= 502) {
          const next = this.retryTarget(statusCode === 502 ? RETRY_ON_502 : statusCode === 503 ? RETRY_ON_503 : RETRY_ON_504);
          if (next !== undefined) {
            // Read and drop this response (the upstream connection stays reusable), then retry.
            this.retryTo = next;
            this.retryReason = String(statusCode);
            return true;
          }
        }
      } else endpoint.health.consecutive = 0;
    }
    // The response goes to the client: no retry can follow, so the kept body copy can go.
    this.tap?.forgetCopy();
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
    if (this.retryTo !== undefined) return true; // a response being discarded for a retry
    if (this.res.write(chunk)) return true;
    // Backpressure: undici pauses reading the upstream until the client drains.
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onComplete(_trailers: string[] | null): void {
    const next = this.retryTo;
    if (next !== undefined) {
      this.retryTo = undefined;
      this.redispatch(next, this.retryReason);
      return;
    }
    this.settled = true;
    this.res.end();
  }

  onError(err: Error): void {
    // Already answered (e.g. by the total timeout before the request reached a connection).
    if (this.settled) return;
    // `req.socket` may be null here: undici detaches it before destroying a request body stream.
    const socket = this.res.socket;
    if (this.clientGone || socket === null || socket.destroyed) {
      this.settled = true;
      this.clientGone = true;
      return;
    }
    const route = this.route;
    if ((err as { code?: unknown }).code === 'SY_BODY_TOO_LARGE') {
      this.settled = true;
      this.errorCode = 'SY_BODY_TOO_LARGE';
      this.error = err;
      route?.metrics.bodyTooLarge();
      if (!this.res.headersSent) {
        this.status = sendError(this.res, 'SY_BODY_TOO_LARGE', ERROR_BODIES.SY_BODY_TOO_LARGE, this.requestId!, true);
      } else {
        this.status = httpStatusFor('SY_BODY_TOO_LARGE');
        this.res.destroy();
      }
      return;
    }
    const started = this.started || this.res.headersSent;
    if (!this.timedOut && route !== undefined) {
      const pending = this.retryTo;
      if (pending !== undefined) {
        // The response being discarded broke off: the retry goes ahead anyway.
        this.retryTo = undefined;
        this.redispatch(pending, this.retryReason);
        return;
      }
      if (this.endpoint !== undefined && isUpstreamFault(err)) route.failed(this.endpoint);
      if (!started) {
        const condition = isConnectFailure(err) ? RETRY_ON_CONNECT_FAILURE : isResetBeforeResponse(err) ? RETRY_ON_RESET : 0;
        const next = condition === 0 ? undefined : this.retryTarget(condition);
        if (next !== undefined) {
          countUpstreamError(route, err, classifyUpstreamError(err, false));
          this.redispatch(next, condition === RETRY_ON_CONNECT_FAILURE ? 'connect-failure' : 'reset');
          return;
        }
      }
    }
    this.settled = true;
    const code = classifyUpstreamError(err, started);
    this.errorCode = code;
    this.error = err;
    if (route !== undefined) countUpstreamError(route, err, code);
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
    const timer = this.timer;
    if (timer !== undefined) {
      clearTimeout(timer);
      this.timer = undefined;
    }
    const state = this.state;
    if (state !== undefined) {
      state.inflight -= 1;
      this.state = undefined;
    }
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
      log.write({
        reqId: this.requestId!,
        routeJson: route === undefined ? NO_ROUTE_JSON : route.nameJson,
        upstream: endpoint?.origin,
        endpoint: endpoint?.id,
        method: this.req.method ?? '',
        path: this.req.url ?? '',
        status: this.status,
        ms,
        error: this.errorCode,
        reason: this.error?.message,
        attempts: this.attempts > 1 ? this.attempts : undefined,
      });
    }
    this.ctx.requestDone();
  }
}

/** Count an upstream error, and its timeout kind when it is a timeout. */
function countUpstreamError(route: RuntimeRoute, err: Error, code: ErrorCode): void {
  route.metrics.upstreamError(code);
  if (code === 'SY_UPSTREAM_TIMEOUT') route.metrics.timeout(timeoutKind(err));
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
