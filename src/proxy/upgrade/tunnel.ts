import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Span } from '@opentelemetry/api';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import { CLIENT_CLOSED_STATUS, recordExchange, type ExchangeEnd, type ExchangeOutcome } from '../http/access-record.js';
import { bodyWithIds, ERROR_BODIES, errorBodyOf, rawErrorResponse, rawRedirect } from '../http/error-response.js';
import type { ForwardContext } from '../http/forward-context.js';
import { appendForwarded } from '../http/forwarded-headers.js';
import { editRequestHeaders, removeConnectionNominated, scanRequestHeaders, type RequestHead } from '../http/headers.js';
import { rawRedirectAnswer } from '../http/redirect.js';
import { failedOn, retryEvent } from '../http/trace-span.js';
import { FAILURE_CODE, failureOf, retryCondition, timeoutKind, type Failure } from '../http/upstream-failure.js';
import { admission, httpsLocation, REDIRECT, refusalCode } from '../policy/admission.js';
import { retryTarget, statusCondition } from '../policy/retry-decision.js';
import type { RouteState } from '../runtime/route-state.js';
import type { RuntimeEndpoint, RuntimeRoute } from '../runtime/runtime.js';
import { upgradeProtocols } from './h2c-offer.js';
import { refusalHead, UPSTREAM_HEAD_LIMIT } from './refusal-head.js';

/** Client bytes kept before the upstream answers; past it the client is paused until then. */
const EARLY_BYTES_CAP = 64 * 1024;

const EMPTY = Buffer.alloc(0);

/**
 * How long an open tunnel may stay half-closed: after one side's FIN is passed on, the other side
 * has this long to finish and close before both are destroyed (HAProxy's `timeout client-fin` /
 * `timeout server-fin`; nginx ends an upgraded connection at either side's EOF at once). Without
 * it an upstream that ignores the FIN keeps the tunnel, and its concurrency slot, until the tunnel
 * idle timeout (1 h by default). Not a policy: long enough for a WebSocket close handshake or the
 * last bytes of an answer to pass, short enough that a departed client frees its slot promptly.
 */
export const HALF_CLOSE_GRACE_MS = 5_000;

/**
 * One upgrade request (WebSocket and any other `Connection: upgrade`): the same lookup, admission
 * policy (admission.ts), pick, retry decision (retry-decision.ts), failure classification
 * (upstream-failure.ts), forwarding headers and access record (access-record.ts) as a plain
 * exchange, then a raw TCP tunnel to the endpoint. The route's policy applies up to the
 * upstream's answer: redirect to HTTPS (308), rate limit (429), concurrency (503; an open tunnel
 * counts as a request in flight until it closes), connect and response-headers timeouts (504),
 * retries of a connect failure, of a connection closed before any answer or of a 502/503/504
 * answer, and outlier detection. After a 101 the tunnel has the route's tunnel idle timeout only.
 * A 101 is relayed byte for byte; a refusal's head gets `connection: close` and the request id (refusal-head.ts), its body is relayed byte for byte. Either side closing or
 * failing tears both down. Tunnels are long-lived and few, so closures here are fine.
 */
export class Tunnel implements RequestHead, ExchangeOutcome {
  headers: string[] = [];
  host: string | undefined = undefined;
  forwardedFor: string | undefined = undefined;
  requestId: string | undefined = undefined;
  connection: string | undefined = undefined;
  hasBody = false;
  trailers = false;
  traceparent: string | undefined = undefined;
  tracestate: string | undefined = undefined;
  traceId = '';
  upstreamTraceparent = '';
  span: Span | undefined = undefined;

  readonly req: IncomingMessage;
  readonly start: number;
  route: RuntimeRoute | undefined;
  endpoint: RuntimeEndpoint | undefined;
  attempts = 0;
  /** What the client received: the upstream's answer, the proxy's error, 499, or 0 (cut). */
  status = 0;
  errorCode: ErrorCode | undefined;
  reason: string | undefined;
  end: ExchangeEnd | undefined;

  private readonly ctx: ForwardContext;
  private readonly client: Socket;
  private readonly registry: Set<Tunnel>;
  private upstream: Socket | undefined;
  /** The route state this tunnel is counted in (concurrency) until it closes. */
  private state: RouteState | undefined;
  private tried: RuntimeEndpoint[] | undefined;
  /** The request target as received, and as the upstream gets it (prefix stripped). */
  private url = '/';
  private path = '/';
  private head: Buffer = EMPTY;
  /** The upstream's answer has started to reach the client (or was refused): no retry, no error page. */
  private answered = false;
  private responding = false;
  private done = false;
  /** Set once a tunnel is half-closed: destroys both sides after HALF_CLOSE_GRACE_MS. */
  private halfClosed: NodeJS.Timeout | undefined;

  constructor(ctx: ForwardContext, req: IncomingMessage, client: Socket, start: number, registry: Set<Tunnel>) {
    this.ctx = ctx;
    this.req = req;
    this.client = client;
    this.start = start;
    this.registry = registry;
  }

  run(head: Buffer): void {
    const { req, client, ctx } = this;
    this.registry.add(this);
    client.on('error', (err) => this.clientFailed(err));
    client.on('close', () => this.finish());
    scanRequestHeaders(req.rawHeaders, this);
    if (this.requestId === undefined) this.requestId = ctx.ids.next();
    ctx.tracing.begin(this, req.method ?? 'GET', this.start);
    const url = req.url ?? '/';
    const route = url.charCodeAt(0) === 47 ? ctx.runtimes.current?.match(this.host, url, this.req) : undefined;
    if (route === undefined) return this.refuse('SY_NO_ROUTE', ERROR_BODIES.SY_NO_ROUTE);
    this.route = route;
    if (route.guarded && this.refusedByPolicy(route, url)) return;
    const redirect = route.redirect;
    if (redirect !== undefined) {
      // A redirect route answers an upgrade request with its redirect too.
      const location = redirect.location(url, this.host);
      if (location === undefined) return this.refuse('SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST);
      this.status = redirect.status;
      return this.respond(rawRedirectAnswer(redirect.status, location, this.requestId));
    }
    const state = route.state;
    state.inflight += 1;
    this.state = state;
    if (route.retryCount > 0) state.budget.deposit(this.start);
    // Sticky routes: the cookie's endpoint when it can take the tunnel (no Set-Cookie on upgrades).
    const endpoint = (route.sticky === undefined ? undefined : route.sticky.find(this.headers)) ?? route.pick();
    if (endpoint === undefined) return this.refuse('SY_NO_ENDPOINT', route.noEndpointBody);
    this.url = url;
    this.path = route.forwardPath(url);
    this.head = head;
    // Read the client until the answer: bytes it sends early are kept for after a 101 (never sent
    // before it), and its FIN is seen, so a client that leaves frees its slot at once.
    client.on('data', this.early);
    client.on('end', () => this.clientEnded());
    this.connectTo(endpoint);
  }

  /** Client bytes before the upstream's answer: kept (up to a cap, then the client is paused). */
  private readonly early = (chunk: Buffer): void => {
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (this.head.length > EARLY_BYTES_CAP) this.client.pause();
  };

  /** The client half-closed. */
  private clientEnded(): void {
    if (this.done) return;
    if (!this.answered) {
      // Gone before the answer (unless it is waiting for our own error answer, which closes it).
      if (!this.responding) this.destroy();
      return;
    }
    if (this.status !== 101) {
      // A relayed refusal: the client has what it wanted. Flush what is written, then close, even
      // if the upstream keeps its connection open.
      const upstream = this.upstream;
      if (upstream !== undefined) {
        upstream.unpipe(this.client);
        upstream.destroy();
      }
      this.client.end();
      return;
    }
    // After a 101 the pipe passes the FIN on to the upstream (client.pipe ends it); the upstream
    // gets a bounded time to send its last bytes and close.
    this.boundHalfClose('the client');
  }

  /** One side of an open tunnel sent its FIN (passed on): destroy both if it is still open later. */
  private boundHalfClose(side: string): void {
    if (this.halfClosed !== undefined || this.done) return;
    this.halfClosed = setTimeout(() => {
      if (this.done) return;
      if (this.reason === undefined) this.reason = `half-closed by ${side}; the other side did not close within ${HALF_CLOSE_GRACE_MS} ms`;
      this.destroy();
    }, HALF_CLOSE_GRACE_MS);
    this.halfClosed.unref();
  }

  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** The route's admission checks (admission.ts), answered on the raw socket. */
  private refusedByPolicy(route: RuntimeRoute, url: string): boolean {
    const verdict = admission(route, this.req.socket, this.forwardedFor, this.ctx.httpsPort, this.start, -1);
    if (verdict === REDIRECT) {
      const location = httpsLocation(this.host, this.ctx.httpsPort!, url);
      if (location === undefined) this.refuse('SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST);
      else {
        this.status = 308;
        this.respond(rawRedirect(location, this.requestId!));
      }
      return true;
    }
    if (verdict === 0) return false;
    const code = refusalCode(verdict);
    this.refuse(code, errorBodyOf(code), verdict > 0 ? String(verdict) : undefined);
    return true;
  }

  /** The upgrade request as the upstream `endpoint` gets it. */
  private requestText(endpoint: RuntimeEndpoint): string {
    const { req, ctx } = this;
    const route = this.route!;
    const headers = this.connection === undefined ? [...this.headers] : removeConnectionNominated([...this.headers], this.connection);
    if (route.requestEdits !== undefined) editRequestHeaders(headers, route.requestEdits);
    headers.push('host', route.upstreamHost ?? (ctx.preserveHost && this.host !== undefined ? this.host : endpointHost(endpoint)));
    headers.push('connection', 'upgrade');
    const upgrade = upgradeProtocols(req);
    if (upgrade !== undefined) headers.push('upgrade', upgrade);
    appendForwarded(headers, this, req.socket, ctx.proto, this.path !== this.url ? route.pathRewrite : undefined, this.url, this.requestId!, this.upstreamTraceparent);
    let text = `${req.method ?? 'GET'} ${this.path} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    return `${text}\r\n`;
  }

  /** One attempt: connect to `endpoint`, send the request head, wait for the answer's status line. */
  private connectTo(endpoint: RuntimeEndpoint): void {
    const route = this.route!;
    const client = this.client;
    this.endpoint = endpoint;
    this.attempts += 1;
    let connected = false;
    // Connect time and time to the answer's status line, as for plain requests (route-metrics.ts).
    let sentAt = performance.now();
    const upstream = connect({ host: endpoint.endpoint.address, port: endpoint.endpoint.port });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    // Before the connection: the connect timeout; after it, until the status line: the route's
    // response-headers timeout (0 = none); after a 101: the tunnel idle timeout (every byte either
    // way passes through this socket, so its inactivity is the tunnel's); after a refusal: the
    // body idle timeout.
    upstream.setTimeout(route.connectMs, () => {
      if (this.status === 101) this.tunnelIdle(upstream);
      else if (connected) this.upstreamFailed(upstream, 'headers-timeout', new Error(`no answer to the upgrade within ${route.headersTimeout} ms`));
      else this.upstreamFailed(upstream, 'connect-timeout', new Error(`connect timed out after ${route.connectMs} ms`));
    });
    upstream.on('error', (err) => this.upstreamFailed(upstream, failureOf(err, connected), err));
    upstream.on('close', () => {
      if (upstream !== this.upstream) return; // an abandoned attempt
      if (!this.answered) {
        this.upstreamFailed(upstream, 'reset', new Error('the upstream closed the connection before answering'));
        if (upstream !== this.upstream) return; // retried on another endpoint
      }
      this.finish();
    });
    upstream.on('connect', () => {
      connected = true;
      const now = performance.now();
      route.metrics.connected((now - sentAt) / 1000);
      sentAt = now;
      upstream.setTimeout(route.headersTimeout);
      upstream.write(this.requestText(endpoint), 'latin1');
      upstream.on('data', onUpstreamAnswer);
    });
    // Client bytes flow to the upstream only once it has switched protocols: until the 101, the
    // connection is still HTTP, and whatever the client sends after a refused upgrade must not
    // reach the upstream unrouted (upgrade smuggling). Any other answer is relayed and both sides
    // are closed after it.
    let pending: Buffer | undefined;
    const onUpstreamAnswer = (chunk: Buffer): void => {
      pending = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
      const lineEnd = pending.indexOf(10);
      if (lineEnd === -1 && pending.length < 64) return; // the status line is not complete yet
      // `HTTP/1.1 101 Switching Protocols`: the status code is the second token.
      const status = Number.parseInt(pending.toString('latin1', 9, 12), 10);
      const http = pending.toString('latin1', 0, 5) === 'HTTP/' && status >= 100 && status <= 599;
      // A refusal's head is rewritten (refusalHead), so it must be complete first, and within the
      // plain path's limit (the response-headers timeout still bounds the wait).
      const headEnd = !http || status === 101 ? -1 : pending.indexOf('\r\n\r\n');
      const overLimit = headEnd === -1 ? pending.length > UPSTREAM_HEAD_LIMIT : headEnd + 4 > UPSTREAM_HEAD_LIMIT;
      if (http && status !== 101 && headEnd === -1 && !overLimit) return;
      upstream.off('data', onUpstreamAnswer);
      route.metrics.firstByte((performance.now() - sentAt) / 1000);
      upstream.setTimeout(0);
      const answer = pending;
      pending = undefined;
      if (!http) {
        this.upstreamFailed(upstream, 'bad-response', new Error('the upstream did not answer the upgrade with HTTP'));
        return;
      }
      if (status !== 101 && overLimit) {
        this.upstreamFailed(upstream, 'bad-response', new Error(`the upstream's answer head is over ${UPSTREAM_HEAD_LIMIT} bytes`));
        return;
      }
      if (status >= 500) {
        failedOn(route, endpoint, this.span);
        // Nothing of this answer reached the client yet: a 502/503/504 the route retries goes to
        // another endpoint, as for a plain request.
        const condition = statusCondition(status);
        const next = condition === 0 ? undefined : retryTarget(route, condition, this.attempts, this.req.method, true, this.tried ??= [], endpoint);
        if (next !== undefined) {
          this.retryOn(upstream, next, String(status));
          return;
        }
      } else endpoint.health.consecutive = 0;
      this.answered = true;
      this.status = status;
      client.off('data', this.early);
      if (status === 101) client.write(answer);
      else {
        // The head with `connection: close` and the request id; what follows it, byte for byte.
        client.write(refusalHead(answer.subarray(0, headEnd + 4), this.requestId!));
        if (answer.length > headEnd + 4) client.write(answer.subarray(headEnd + 4));
      }
      upstream.pipe(client);
      if (status === 101) {
        upstream.setTimeout(route.tunnelIdleMs);
        if (this.head.length > 0) upstream.write(this.head);
        client.pipe(upstream);
      } else {
        // Relay the refusal, then close: half-close the upstream so it ends after its answer, and
        // drop the client connection once everything is flushed to it. Client bytes are read and
        // dropped (so its FIN is seen); the route's body idle timeout bounds a silent upstream.
        this.responding = true;
        client.resume();
        upstream.setTimeout(route.bodyTimeout);
        upstream.end();
        client.once('finish', () => client.destroy());
      }
    };
  }

  /** Abandon the attempt on `upstream` and make the next one on `next`. */
  private retryOn(upstream: Socket, next: RuntimeEndpoint, reason: string): void {
    this.route!.metrics.retry(reason);
    if (this.span !== undefined) retryEvent(this.span, reason, this.endpoint, next, this.attempts + 1);
    this.upstream = undefined;
    upstream.destroy();
    this.connectTo(next);
  }

  /**
   * The attempt on `upstream` failed before its answer reached the client (or, after a 101, the
   * tunnel broke). Counted against the endpoint; a connect failure, or a close before any answer
   * (nothing but the head was sent), goes to another endpoint when the route retries it;
   * otherwise the client gets the failure's error (502/504).
   */
  private upstreamFailed(upstream: Socket, failure: Failure, err: Error): void {
    if (this.done || upstream !== this.upstream) return;
    // Our own error answer is on its way; the client socket closes once it is written.
    if (this.responding && !this.answered) return;
    const route = this.route!;
    if (this.answered || this.client.destroyed) {
      // The tunnel was open (or the client is gone): tear both sides down.
      if (this.answered && this.errorCode === undefined && !this.client.destroyed) {
        this.errorCode = 'SY_UPSTREAM_RESET';
        this.reason = err.message;
        this.end = 'upstream_reset';
        route.metrics.upstreamError('SY_UPSTREAM_RESET');
      }
      this.destroy();
      return;
    }
    const endpoint = this.endpoint!;
    failedOn(route, endpoint, this.span);
    const code = FAILURE_CODE[failure];
    route.metrics.upstreamError(code);
    const kind = timeoutKind(failure);
    if (kind !== undefined) route.metrics.timeout(kind);
    const condition = retryCondition(failure);
    const next = condition === 0 ? undefined : retryTarget(route, condition, this.attempts, this.req.method, true, this.tried ??= [], endpoint);
    if (next !== undefined) {
      this.retryOn(upstream, next, condition === retryCondition('refused') ? 'connect-failure' : 'reset');
      return;
    }
    this.reason = err.message;
    this.refuse(code, errorBodyOf(code));
    upstream.destroy();
  }

  /** No byte either way for the route's tunnel idle timeout: close the tunnel (counted, logged). */
  private tunnelIdle(upstream: Socket): void {
    if (this.done || upstream !== this.upstream) return;
    const route = this.route!;
    route.metrics.timeout('tunnel');
    this.reason = `tunnel idle for ${route.tunnelIdleMs} ms`;
    this.end = 'tunnel_idle';
    this.destroy();
  }

  private clientFailed(err: Error): void {
    if (this.done) return;
    if (this.reason === undefined) this.reason = err.message;
    this.destroy();
  }

  /** Answer the upgrade request with an error (the tunnel never opened). */
  private refuse(code: ErrorCode, body: Buffer, retryAfter?: string): void {
    if (code !== 'SY_NO_ROUTE') this.errorCode = code;
    this.status = httpStatusFor(code);
    const full = bodyWithIds(body, this.requestId, this.traceId);
    this.respond(retryAfter === undefined
      ? rawErrorResponse(code, full, this.requestId!)
      : rawErrorResponse(code, full, this.requestId!, 'retry-after', retryAfter));
  }

  /** Write a complete response to the client, then close its socket. */
  private respond(response: Buffer): void {
    this.responding = true;
    const client = this.client;
    if (client.destroyed) return;
    client.end(response, () => client.destroy());
  }

  /** Either socket closed: close the other one; record once both are closed. */
  private finish(): void {
    if (this.done) return;
    if (!this.client.destroyed) {
      // The upstream closed first. An answer or error being written closes the client itself.
      if (this.responding) return;
      const client = this.client;
      if (this.status === 101 && !client.writableFinished) {
        // An open tunnel whose upstream ended: the pipe passes its FIN on (client.end()); let the
        // bytes still queued for the client flush, then close, within the half-close grace.
        if (!client.writableEnded) client.end();
        client.once('finish', () => client.destroy());
        this.boundHalfClose('the upstream');
        return;
      }
      client.destroy();
      return;
    }
    const upstream = this.upstream;
    if (upstream !== undefined && !upstream.destroyed) {
      upstream.destroy();
      return;
    }
    this.done = true;
    clearTimeout(this.halfClosed);
    this.registry.delete(this);
    const state = this.state;
    if (state !== undefined) {
      state.inflight -= 1;
      this.state = undefined;
    }
    if (this.ctx.cutting && this.end === undefined) this.end = 'drain_cut';
    else if (this.status === 0 && this.route !== undefined) {
      // The client left before any answer.
      this.status = CLIENT_CLOSED_STATUS;
      this.end = 'client_closed';
    }
    recordExchange(this.ctx, this, true);
  }
}

function endpointHost(endpoint: RuntimeEndpoint): string {
  const { address, port } = endpoint.endpoint;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
