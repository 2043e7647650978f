import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Span } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import { admission, httpsLocation, REDIRECT, refusalCode } from '../policy/admission.js';
import { isIdempotent, retryTarget, statusCondition } from '../policy/retry-decision.js';
import type { RouteState } from '../runtime/route-state.js';
import type { RuntimeEndpoint, RuntimeRoute } from '../runtime/runtime.js';
import { CLIENT_CLOSED_STATUS, recordExchange, type ExchangeEnd, type ExchangeOutcome } from './access-record.js';
import { BodyTap } from './body-tap.js';
import { bodyWithIds, ERROR_BODIES, errorBodyOf, sendError } from './error-response.js';
import type { ForwardContext } from './forward-context.js';
import { appendForwarded } from './forwarded-headers.js';
import { contentLengthOf, editRequestHeaders, removeConnectionNominated, responseHeaders, scanRequestHeaders, trailerPairs, type RequestHead } from './headers.js';
import { lingerAfterAnswer } from './lingering-close.js';
import { startMirror, type MirrorCopy } from './mirror.js';
import type { ProxyResponse } from './proxy-response.js';
import type { RedirectTemplate } from './redirect.js';
import { failedOn, retryEvent } from './trace-span.js';
import { FAILURE_CODE, failureOf, isUpstreamFault, ProxyAbort, retryCondition, timeoutKind, type Failure } from './upstream-failure.js';

/** setTimeout callback of the total timeout; the exchange is the timer's argument, so no closure. */
function onTotalTimeout(exchange: Exchange): void {
  exchange.expire();
}

/** setTimeout callback of the queue timeout (`upstream.queueTimeoutMs`). */
function onQueueTimeout(exchange: Exchange): void {
  exchange.queueExpired();
}

function onResponseClose(this: ProxyResponse): void {
  this.exchange?.closed();
}

function onResponseDrain(this: ProxyResponse): void {
  this.exchange?.drained();
}

/** A body stream nothing has been read from yet (undici reads it only once a connection is up). */
function bodyUntouched(body: Dispatcher.DispatchOptions['body']): boolean {
  if (body === null || body === undefined) return true;
  const stream = body as Readable;
  return typeof stream.readableDidRead === 'boolean' && !stream.readableDidRead && !stream.destroyed;
}

/** The end of an exchange whose response head was relayed and that `failure` cut. */
function endAfterHead(failure: Failure): ExchangeEnd {
  switch (failure) {
    case 'headers-timeout':
    case 'body-timeout':
    case 'total-timeout':
      return 'upstream_timeout';
    case 'body-too-large':
      return 'body_too_large';
    case 'client-closed':
      return 'client_closed';
    default:
      return 'upstream_reset';
  }
}

/**
 * One proxied request: its RequestHead, the undici dispatch handler that streams the upstream
 * response into `res` (legacy handler methods: raw header buffers, no per-request adapters), and
 * the access log line and metrics written when `res` closes. One instance per request, no closures.
 *
 * Invariants: `settled` is set once the exchange's outcome is decided (an answer sent or the
 * response complete, or the client gone); after it no callback answers again. `status` is what the
 * client received (0 until a head is sent). An answer sent while the request body is still
 * arriving closes the connection with a lingering close (lingering-close.ts).
 */
export class Exchange implements RequestHead, Dispatcher.DispatchHandler, ExchangeOutcome {
  // RequestHead, filled by scanRequestHeaders.
  headers: string[] = [];
  host: string | undefined = undefined;
  forwardedFor: string | undefined = undefined;
  requestId: string | undefined = undefined;
  connection: string | undefined = undefined;
  hasBody = false;
  trailers = false;
  traceparent: string | undefined = undefined;
  tracestate: string | undefined = undefined;

  // Tracing (observability/tracing.ts `begin`).
  traceId = '';
  upstreamTraceparent = '';
  span: Span | undefined = undefined;

  readonly ctx: ForwardContext;
  readonly req: IncomingMessage;
  readonly res: ProxyResponse;
  readonly start: number;
  route: RuntimeRoute | undefined = undefined;
  endpoint: RuntimeEndpoint | undefined = undefined;
  /** Status the client received (or is receiving); 0 until a head is sent. */
  status = 0;
  errorCode: ErrorCode | undefined = undefined;
  reason: string | undefined = undefined;
  end: ExchangeEnd | undefined = undefined;
  /** Upstream attempts made (more than 1 after retries). */
  attempts = 0;
  /** The client sent `Expect: 100-continue` and node left the interim answer to us. */
  private readonly expectContinue: boolean;
  private options: Dispatcher.DispatchOptions | undefined = undefined;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  /** undici gave the current attempt a connection (onConnect). */
  private connected = false;
  /** performance.now() when the current attempt got its connection: the request is being sent. */
  private sentAt = 0;
  /** node refused the upstream's response head (writeHead threw): a bad response. */
  private badHead = false;
  private settled = false;
  private clientGone = false;
  /** The route state this exchange was admitted into (counted in its `inflight`) until it closes. */
  private state: RouteState | undefined = undefined;
  /**
   * The listener answered on this exchange's socket itself (listener-guard.ts: node's request
   * timeout, or a parser error in the body): the code of the answer the client received.
   */
  private listenerAnswer: ErrorCode | undefined = undefined;
  /** The total-timeout timer, when the route has one. */
  private timer: NodeJS.Timeout | undefined = undefined;
  private timedOut = false;
  /** The queue-timeout timer while the request waits for an upstream connection (capped routes). */
  private queueTimer: NodeJS.Timeout | undefined = undefined;
  /** Endpoints already attempted; allocated by the first retry decision. */
  private tried: RuntimeEndpoint[] | undefined = undefined;
  /** Set while a retryable 5xx response is being discarded: the endpoint it will be retried on. */
  private retryTo: RuntimeEndpoint | undefined = undefined;
  private retryReason = '';
  /** A chunked body on a route with a body limit gets counted (BodyTap); -1 = not counted. */
  private bodyLimit = -1;
  /** The body on its way upstream. */
  private tap: BodyTap | undefined = undefined;
  /** Sticky routes: the endpoint the request's cookie named and that took it (no Set-Cookie then). */
  private stickyTo: RuntimeEndpoint | undefined = undefined;

  constructor(ctx: ForwardContext, req: IncomingMessage, res: ProxyResponse, start: number, expectContinue = false) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.start = start;
    this.expectContinue = expectContinue;
  }

  /** Route, admit, pick, rewrite, dispatch. The runtime is read once here and used to the end. */
  run(): void {
    const { req, res, ctx } = this;
    res.exchange = this;
    res.on('close', onResponseClose);
    scanRequestHeaders(req.rawHeaders, this);
    const requestId = this.requestId ?? (this.requestId = ctx.ids.next());
    ctx.tracing.begin(this, req.method ?? 'GET', this.start);
    // The request guard turned every target into origin-form (absolute-form included).
    const url = req.url ?? '/';
    const runtime = ctx.runtimes.current;
    const route = runtime?.match(this.host, url, req);
    if (route === undefined) {
      this.answer('SY_NO_ROUTE', ERROR_BODIES.SY_NO_ROUTE);
      return;
    }
    this.route = route;
    if (route.guarded && this.refuse(route, url, requestId)) return;
    if (route.redirect !== undefined) {
      this.redirect(route.redirect, url, requestId);
      return;
    }
    const state = route.state;
    state.inflight += 1;
    this.state = state;
    if (route.retryCount > 0) state.budget.deposit(this.start);
    const sticky = route.sticky;
    const endpoint = sticky === undefined ? route.pick() : (this.stickyTo = sticky.find(this.headers)) ?? route.pick();
    if (endpoint === undefined) {
      this.answer('SY_NO_ENDPOINT', route.noEndpointBody);
      return;
    }
    this.endpoint = endpoint;

    const headers = this.connection === undefined ? this.headers : removeConnectionNominated(this.headers, this.connection);
    if (route.requestEdits !== undefined) editRequestHeaders(headers, route.requestEdits);
    const upstreamHost = route.upstreamHost ?? (ctx.preserveHost ? this.host : undefined);
    if (upstreamHost !== undefined) headers.push('host', upstreamHost);
    // The proxy relays trailers for a client that accepts them, so it accepts them itself.
    if (this.trailers) headers.push('te', 'trailers');
    const rewrite = route.pathRewrite;
    const path = rewrite === undefined ? url : rewrite.apply(url);
    appendForwarded(headers, this, req.socket, ctx.proto, path !== url ? rewrite : undefined, url, requestId, this.upstreamTraceparent);

    // The client waits for our go before sending its body: nothing refused it, so it may come.
    if (this.expectContinue) res.writeContinue();
    // Mirroring (mirror.ts): the copy is decided here, with the final path and headers.
    const copy = route.mirror === undefined ? undefined : startMirror(route.mirror, req.method, path, headers, this.hasBody ? contentLengthOf(req.rawHeaders) : 0);
    const options: Dispatcher.DispatchOptions = {
      method: req.method as Dispatcher.HttpMethod,
      path,
      headers,
      body: this.hasBody ? this.body(route, copy) : null,
      headersTimeout: route.headersTimeout,
      bodyTimeout: route.bodyTimeout,
    };
    this.options = options;
    this.attempts = 1;
    if (route.totalMs > 0) this.timer = setTimeout(onTotalTimeout, route.totalMs, this);
    this.dispatch(endpoint, route);
    // The main request is on its way: a copy without a body follows (one with a body goes when it is complete).
    if (copy !== undefined && !this.hasBody) copy.send(null);
  }

  /** Hand the request to `endpoint`'s pool; on a capped route, start waiting for a connection. */
  private dispatch(endpoint: RuntimeEndpoint, route: RuntimeRoute): void {
    this.connected = false;
    // route.queueTimeout > 0 only on routes that cap their upstream connections (a queue can form).
    const queueMs = route.queueTimeout;
    if (queueMs > 0 && this.queueTimer === undefined) {
      route.metrics.queued(1);
      this.queueTimer = setTimeout(onQueueTimeout, queueMs, this);
    }
    endpoint.pool.dispatch(this.options!, this);
  }

  /** The request got a connection (or gave up waiting): it no longer counts as queued. */
  private leaveQueue(): void {
    const timer = this.queueTimer;
    if (timer === undefined) return;
    clearTimeout(timer);
    this.queueTimer = undefined;
    this.route?.metrics.queued(-1);
  }

  /**
   * Answer with a proxy error (no upstream response reached the client). A body still arriving
   * is discarded by a lingering close, so that the client reads this answer.
   */
  private answer(code: ErrorCode, body: Buffer, retryAfter?: string): void {
    this.settled = true;
    if (code !== 'SY_NO_ROUTE') this.errorCode = code;
    const close = this.closeAfterAnswer();
    const full = bodyWithIds(body, this.requestId, this.traceId);
    this.status = retryAfter === undefined
      ? sendError(this.res, code, full, this.requestId, close)
      : sendError(this.res, code, full, this.requestId, close, 'retry-after', retryAfter);
  }

  /**
   * Whether the connection must close after the answer: while draining, or when the request body
   * has not fully arrived (it would have to be read first: done by a lingering close).
   */
  private closeAfterAnswer(): boolean {
    if (this.hasBody && !this.req.complete) {
      lingerAfterAnswer(this.req);
      return true;
    }
    return this.ctx.closing;
  }

  /**
   * The route's admission checks (admission.ts): redirect to HTTPS (308), rate limit (429), body
   * size by Content-Length (413), concurrency (503). Answers and returns true when the request
   * stops here. Only called for routes that have at least one of them (`route.guarded`).
   */
  private refuse(route: RuntimeRoute, url: string, requestId: string): boolean {
    const req = this.req;
    const length = this.hasBody ? contentLengthOf(req.rawHeaders) : -1;
    const verdict = admission(route, req.socket, this.forwardedFor, this.ctx.httpsPort, this.start, length);
    if (verdict === REDIRECT) {
      const location = httpsLocation(this.host, this.ctx.httpsPort!, url);
      if (location === undefined) {
        this.answer('SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST);
        return true;
      }
      this.sendRedirect(308, ['location', location, 'content-length', '0', 'cache-control', 'no-store', 'x-request-id', requestId]);
      return true;
    }
    if (verdict !== 0) {
      const code = refusalCode(verdict);
      this.answer(code, errorBodyOf(code), verdict > 0 ? String(verdict) : undefined);
      return true;
    }
    // No Content-Length: a chunked body, counted as it streams.
    if (route.maxBody >= 0 && this.hasBody && length < 0) this.bodyLimit = route.maxBody;
    return false;
  }

  /** Answer with a redirect whose head is `headers` (no body): the HTTPS redirect and redirect routes. */
  private sendRedirect(status: number, headers: string[]): void {
    const res = this.res;
    this.settled = true;
    if (this.closeAfterAnswer()) res.shouldKeepAlive = false;
    res.writeHead(status, headers);
    res.end();
    this.status = status;
  }

  /** A redirect route (redirect.ts): answered here, no upstream; 400 when no Location can be made. */
  private redirect(redirect: RedirectTemplate, url: string, requestId: string): void {
    const location = redirect.location(url, this.host);
    if (location === undefined) this.answer('SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST);
    else this.sendRedirect(redirect.status, ['location', location, 'content-length', '0', 'x-request-id', requestId]);
  }

  /** The retry decision (retry-decision.ts) for the attempt that just failed with `condition`. */
  private retryTarget(condition: number): RuntimeEndpoint | undefined {
    const route = this.route;
    const failed = this.endpoint;
    if (route === undefined || failed === undefined || this.options === undefined || this.timedOut || this.clientGone) return undefined;
    // After a connect failure a body nothing was read from can go again as it is.
    const resendable = !this.hasBody || this.tap?.replay() !== undefined
      || (condition === retryCondition('refused') && bodyUntouched(this.options.body));
    return retryTarget(route, condition, this.attempts, this.req.method, resendable, this.tried ??= [], failed);
  }

  /**
   * The request body as undici gets it: always through a BodyTap, so that undici's clean-up after
   * a failure destroys the tap, never the client's request (and with it the client's socket, before
   * an answer could be written). The tap also counts a chunked body against the route's limit and
   * keeps an idempotent request's body for a retry (`route.replayBytes`) and for a mirror `copy`.
   */
  private body(route: RuntimeRoute, copy: MirrorCopy | undefined): BodyTap {
    // A Content-Length already over the size cannot be kept: no copy is started.
    const keep = route.replayBytes > 0 && isIdempotent(this.req.method) && contentLengthOf(this.req.rawHeaders) <= route.replayBytes ? route.replayBytes : 0;
    const tap = new BodyTap(this.bodyLimit, keep, copy);
    this.tap = tap;
    return this.req.pipe(tap);
  }

  /** Send the request again, to `next`. */
  private redispatch(next: RuntimeEndpoint, reason: string): void {
    const route = this.route!;
    route.metrics.retry(reason);
    this.attempts += 1;
    if (this.span !== undefined) retryEvent(this.span, reason, this.endpoint, next, this.attempts);
    this.endpoint = next;
    this.abortUpstream = null;
    this.resumeUpstream = null;
    const options = this.options!;
    // A body already (partly) sent goes again from the copy retryTarget made sure exists.
    if (this.tap !== undefined && !bodyUntouched(options.body)) options.body = this.tap.replay()!;
    this.dispatch(next, route);
  }

  /** The route's total timeout elapsed: abort the attempt in flight and answer 504 (or cut a started response). */
  expire(): void {
    this.timer = undefined;
    if (this.settled) return;
    this.timedOut = true;
    const err = new ProxyAbort('total-timeout', `the exchange exceeded the route's total timeout of ${this.route?.totalMs ?? 0} ms`);
    const abort = this.abortUpstream;
    // undici reports the abort to onError synchronously.
    if (abort !== null) abort(err);
    // Not on a connection yet (queued or connecting): answer now; onConnect aborts it later.
    if (!this.settled) this.onError(err);
  }

  /**
   * No upstream connection became free within the route's queue timeout: answer 503
   * SY_QUEUE_TIMEOUT (HAProxy's `timeout queue`); the request leaves undici's queue when it
   * reaches a connection (onConnect aborts it before anything is written).
   */
  queueExpired(): void {
    if (this.queueTimer === undefined) return;
    this.leaveQueue();
    if (this.settled) return;
    const ms = this.route!.queueTimeout;
    this.onError(new ProxyAbort('queue-timeout', `no upstream connection became free within ${ms} ms`));
  }

  // ---- undici dispatch handler ----

  onConnect(abort: (err?: Error) => void): void {
    this.leaveQueue();
    if (this.settled || this.clientGone || this.timedOut) {
      abort(this.timedOut ? new ProxyAbort('total-timeout', 'total timeout') : new ProxyAbort('client-closed', 'the exchange is over'));
      return;
    }
    this.connected = true;
    this.sentAt = performance.now();
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational responses are not relayed
    const route = this.route;
    const endpoint = this.endpoint;
    let upstreamMs = 0;
    if (route !== undefined && endpoint !== undefined) {
      upstreamMs = performance.now() - this.sentAt;
      route.metrics.firstByte(upstreamMs / 1000);
      if (statusCode >= 500) {
        failedOn(route, endpoint, this.span);
        const condition = statusCondition(statusCode);
        const next = condition === 0 ? undefined : this.retryTarget(condition);
        if (next !== undefined) {
          // Read and drop this response (the upstream connection stays reusable), then retry.
          this.retryTo = next;
          this.retryReason = String(statusCode);
          return true;
        }
      } else endpoint.health.consecutive = 0;
    }
    // The response goes to the client: no retry can follow, so the kept body copy can go.
    this.tap?.forgetCopy();
    const res = this.res;
    this.resumeUpstream = resume;
    const headers = responseHeaders(rawHeaders, this.requestId!, this.trailers && willChunk(res, statusCode, this.req.method), route?.responseEdits);
    if (route?.debugRoute !== undefined && endpoint !== undefined) appendDebugHeaders(headers, route.debugRoute, endpoint, upstreamMs);
    if (route?.sticky !== undefined && endpoint !== undefined && endpoint !== this.stickyTo) this.setStickyCookie(headers, route, endpoint);
    // Draining, or an answer before the request body has fully arrived: close the client
    // connection after this response (lingering, so the client reads it).
    if (this.closeAfterAnswer()) res.shouldKeepAlive = false;
    try {
      res.writeHead(statusCode, statusText === '' ? undefined : statusText, headers);
    } catch (err) {
      // A head node refuses to send (invalid characters): undici aborts the request, onError answers 502.
      this.badHead = true;
      forgetRefusedHead(res, this.req.method);
      throw err;
    }
    this.status = statusCode;
    return true;
  }

  /**
   * A sticky route's answer from an endpoint the request's cookie did not name (a new session, a
   * cookie naming an endpoint that cannot take it, or a retry that moved it): the cookie names the
   * endpoint that answered, appended to the upstream's own Set-Cookie fields. Secure on TLS.
   */
  private setStickyCookie(headers: string[], route: RuntimeRoute, endpoint: RuntimeEndpoint): void {
    const socket = this.req.socket as { encrypted?: boolean } | null;
    const cookie = route.sticky!.setCookie(endpoint, socket?.encrypted === true || this.ctx.proto === 'https');
    if (cookie !== undefined) headers.push('set-cookie', cookie);
  }

  onData(chunk: Buffer): boolean {
    if (this.retryTo !== undefined) return true; // a response being discarded for a retry
    if (this.res.write(chunk)) return true;
    // Backpressure: undici pauses reading the upstream until the client drains.
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    const next = this.retryTo;
    if (next !== undefined) {
      this.retryTo = undefined;
      this.redispatch(next, this.retryReason);
      return;
    }
    this.settled = true;
    const res = this.res;
    // Trailers exist only in a chunked response; node sends them after the last chunk.
    if (trailers !== null && trailers.length > 0 && this.trailers && res.chunkedEncoding) res.addTrailers(trailerPairs(trailers));
    res.end();
  }

  onError(err: Error): void {
    // Already answered (e.g. by the total timeout before the request reached a connection).
    if (this.settled) return;
    this.leaveQueue();
    // `req.socket` may be null here: undici detaches it before destroying a request body stream.
    const socket = this.res.socket;
    if (this.clientGone || socket === null || socket.destroyed) {
      this.settled = true;
      this.clientGone = true;
      return;
    }
    const failure: Failure = this.badHead ? 'bad-response' : failureOf(err, this.connected);
    const route = this.route;
    const headSent = this.res.headersSent;
    if (!this.timedOut && route !== undefined && failure !== 'body-too-large' && failure !== 'queue-timeout') {
      const pending = this.retryTo;
      if (pending !== undefined) {
        // The response being discarded broke off: the retry goes ahead anyway.
        this.retryTo = undefined;
        this.redispatch(pending, this.retryReason);
        return;
      }
      if (this.endpoint !== undefined && isUpstreamFault(failure)) failedOn(route, this.endpoint, this.span);
      if (!headSent) {
        const condition = retryCondition(failure);
        const next = condition === 0 ? undefined : this.retryTarget(condition);
        if (next !== undefined) {
          countFailure(route, failure);
          this.redispatch(next, condition === retryCondition('refused') ? 'connect-failure' : 'reset');
          return;
        }
      }
    }
    this.settled = true;
    const code = FAILURE_CODE[failure];
    this.errorCode = code;
    this.reason = err.message;
    if (route !== undefined) countFailure(route, failure);
    if (!headSent) {
      this.answer(code, errorBodyOf(code));
      if (failure === 'queue-timeout') this.end = 'queue_timeout';
    } else {
      // The head is out: the status stays what the client received; the only honest signal
      // left is to cut the client connection.
      this.end = endAfterHead(failure);
      this.res.destroy();
    }
  }

  // ---- response lifecycle ----

  /**
   * The listener guard is about to answer `code` on this exchange's socket (before the proxy sent
   * a head): the access record then says what the client got, instead of a client close.
   */
  answeredByListener(code: ErrorCode): void {
    this.listenerAnswer = code;
  }

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
    this.leaveQueue();
    const state = this.state;
    if (state !== undefined) {
      state.inflight -= 1;
      this.state = undefined;
    }
    const res = this.res;
    res.exchange = undefined;
    if (!res.writableFinished && this.end === undefined) this.cut();
    recordExchange(this.ctx, this, false);
    this.ctx.requestDone();
  }

  /** The response closed before it ended, without the exchange cutting it: who ended it? */
  private cut(): void {
    const { res, ctx } = this;
    if (!this.settled) {
      this.settled = true;
      this.clientGone = true;
      const abort = this.abortUpstream;
      if (abort !== null) abort(new ProxyAbort('client-closed', 'client closed the connection'));
    }
    const listenerAnswer = this.listenerAnswer;
    if (listenerAnswer !== undefined && !res.headersSent) {
      // The listener answered on the socket itself while the body was still arriving and told
      // us which answer: its request timeout (408) or a framing error in the body (400).
      this.status = httpStatusFor(listenerAnswer);
      this.errorCode = listenerAnswer;
      this.end = listenerAnswer === 'SY_REQUEST_TIMEOUT' ? 'request_timeout' : undefined;
    } else if (ctx.cutting) {
      this.end = 'drain_cut';
      if (!res.headersSent) this.status = 0;
    } else {
      this.end = 'client_closed';
      if (!res.headersSent) this.status = CLIENT_CLOSED_STATUS;
    }
  }
}

/**
 * Whether node will send the response chunked, the only framing that can carry trailers: not for
 * HEAD, 204 or 304 (no body), nor for an HTTP/1.0 client (node sends the body to the close unless
 * the client's TE lists chunked: `useChunkedEncodingByDefault`). An upstream Content-Length also
 * rules it out; responseHeaders checks that one.
 */
function willChunk(res: ProxyResponse, status: number, method: string | undefined): boolean {
  return res.useChunkedEncodingByDefault && status !== 204 && status !== 304 && method !== 'HEAD';
}

/**
 * The route's debug headers (policy `debugHeaders`), as Envoy's `x-envoy-upstream-service-time`:
 * the route, the endpoint id, and the upstream's time to the response head in whole milliseconds.
 */
function appendDebugHeaders(headers: string[], route: string, endpoint: RuntimeEndpoint, upstreamMs: number): void {
  headers.push('x-switchyard-route', route, 'x-switchyard-endpoint', endpoint.debugId, 'x-switchyard-upstream-ms', String(Math.round(upstreamMs)));
}

/** The body-less mark node's writeHead sets before it builds (and may refuse) the head. */
interface BodyMark { _hasBody: boolean }

/**
 * writeHead threw on the upstream's head, and the error answer is written on the same response:
 * undo what the refused writeHead left behind. Its reason phrase would otherwise label the 502
 * (`502 Not Modified`), and for a 204/304 node's body-less mark would drop the error body its
 * Content-Length announces, leaving the client waiting. When node no longer has that mark (an
 * internal field), the connection closes after the answer instead: a cut, never a hang.
 */
function forgetRefusedHead(res: ProxyResponse, method: string | undefined): void {
  res.statusMessage = '';
  const mark = res as unknown as BodyMark;
  if (typeof mark._hasBody === 'boolean') mark._hasBody = method !== 'HEAD';
  else res.shouldKeepAlive = false;
}

/** Count an upstream failure, and its timeout kind when it is a timeout. */
function countFailure(route: RuntimeRoute, failure: Failure): void {
  if (failure === 'client-closed') return;
  if (failure === 'body-too-large') {
    route.metrics.bodyTooLarge();
    return;
  }
  route.metrics.upstreamError(FAILURE_CODE[failure]);
  const kind = timeoutKind(failure);
  if (kind !== undefined) route.metrics.timeout(kind);
}
