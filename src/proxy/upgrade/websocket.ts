import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import { admission, httpsLocation, REDIRECT } from '../policy/admission.js';
import { ERROR_BODIES, rawErrorResponse, rawRedirect } from '../http/error-response.js';
import { CLIENT_CLOSED_STATUS, isIdempotent, type ForwardContext } from '../http/forward.js';
import { clientAddress, removeConnectionNominated, scanRequestHeaders, type RequestHead } from '../http/headers.js';
import { NO_ROUTE_JSON } from '../runtime/route-metrics.js';
import type { RouteState } from '../runtime/route-state.js';
import { RETRY_ON_502, RETRY_ON_503, RETRY_ON_504, RETRY_ON_CONNECT_FAILURE, RETRY_ON_RESET, stripPath, type RuntimeEndpoint, type RuntimeRoute } from '../runtime/runtime.js';

/**
 * Upgrade requests (WebSocket and any other `Connection: upgrade`): the same lookup, admission
 * policy and pick as a plain request, then a raw TCP tunnel to the endpoint. The route's policy
 * applies up to the upstream's answer: redirect to HTTPS (308), rate limit (429), concurrency (503;
 * an open tunnel counts as a request in flight until it closes), connect and response-headers
 * timeouts (504), retries of a connect failure, of a connection closed before any answer or of a
 * 502/503/504 answer (to another endpoint, within the retry budget, as the route's policy says), and outlier detection (connect failures, timeouts,
 * early closes and 5xx answers count against the endpoint). After a 101 the tunnel has no timeout.
 * The request head is rewritten like a plain request's (X-Forwarded-*, X-Request-Id, stripped path)
 * but keeps `Connection: upgrade` and `Upgrade`; the upstream's answer (101 or a refusal) is relayed
 * byte for byte. Either side closing or failing tears both down. Tunnels are long-lived and few, so
 * closures here are fine.
 */
export class UpgradeProxy {
  private readonly ctx: ForwardContext;
  private readonly tunnels = new Set<Tunnel>();

  constructor(ctx: ForwardContext) {
    this.ctx = ctx;
  }

  /** Open tunnels. */
  get size(): number {
    return this.tunnels.size;
  }

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const tunnel = new Tunnel(this.ctx, req, socket as Socket, performance.now(), this.tunnels);
    tunnel.run(head);
  };

  /** Tear down every open tunnel (shutdown). */
  destroyAll(): void {
    for (const tunnel of this.tunnels) tunnel.destroy();
  }
}

/** What went wrong on the way to the upstream's answer. */
type UpstreamFailure = 'connect' | 'connect-timeout' | 'headers-timeout' | 'closed' | 'invalid';

/** Client bytes kept before the upstream answers; past it the client is paused until then. */
const EARLY_BYTES_CAP = 64 * 1024;

class Tunnel implements RequestHead {
  headers: string[] = [];
  host: string | undefined = undefined;
  forwardedFor: string | undefined = undefined;
  requestId: string | undefined = undefined;
  connection: string | undefined = undefined;
  hasBody = false;

  private readonly ctx: ForwardContext;
  private readonly req: IncomingMessage;
  private readonly client: Socket;
  private readonly start: number;
  private readonly registry: Set<Tunnel>;
  private upstream: Socket | undefined;
  private route: RuntimeRoute | undefined;
  /** The route state this tunnel is counted in (concurrency) until it closes. */
  private state: RouteState | undefined;
  private endpoint: RuntimeEndpoint | undefined;
  private tried: RuntimeEndpoint[] | undefined;
  private attempts = 0;
  /** The request target as received, and as the upstream gets it (prefix stripped). */
  private url = '/';
  private path = '/';
  private head: Buffer = EMPTY;
  private status = 0;
  private errorCode: ErrorCode | undefined;
  private reason: string | undefined;
  /** The upstream's answer has started to reach the client (or was refused): no retry, no error page. */
  private answered = false;
  private responding = false;
  private done = false;

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
    const url = req.url ?? '/';
    const route = url.charCodeAt(0) === 47 ? ctx.runtimes.current?.match(this.host, url) : undefined;
    if (route === undefined) return this.refuse('SY_NO_ROUTE', ERROR_BODIES.SY_NO_ROUTE);
    this.route = route;
    if (route.guarded && this.refusedByPolicy(route, url)) return;
    const state = route.state;
    state.inflight += 1;
    this.state = state;
    if (route.retryCount > 0) state.budget.deposit(this.start);
    const endpoint = route.pick();
    if (endpoint === undefined) return this.refuse('SY_NO_ENDPOINT', route.noEndpointBody);
    this.url = url;
    this.path = stripPath(url, route.strip);
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
    }
    // After a 101 the half-close travels through the pipe to the upstream.
  }

  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** The route's admission checks (see admission.ts), answered on the raw socket. */
  private refusedByPolicy(route: RuntimeRoute, url: string): boolean {
    const verdict = admission(route, this.req.socket, this.forwardedFor, this.ctx.httpsPort, this.start);
    if (verdict === REDIRECT) {
      const location = httpsLocation(this.host, this.ctx.httpsPort!, url);
      if (location === undefined) this.refuse('SY_BAD_REQUEST', ERROR_BODIES.SY_BAD_REQUEST);
      else {
        this.status = 308;
        this.respond(rawRedirect(location, this.requestId!));
      }
      return true;
    }
    if (verdict > 0) {
      this.refuse('SY_RATE_LIMITED', ERROR_BODIES.SY_RATE_LIMITED, String(verdict));
      return true;
    }
    if (route.state.inflight >= route.maxConcurrent) {
      route.metrics.overloaded();
      this.refuse('SY_OVERLOADED', ERROR_BODIES.SY_OVERLOADED);
      return true;
    }
    return false;
  }

  /** The upgrade request as the upstream `endpoint` gets it. */
  private requestText(endpoint: RuntimeEndpoint): string {
    const { req, ctx } = this;
    const headers = this.connection === undefined ? this.headers : removeConnectionNominated(this.headers, this.connection);
    let text = `${req.method ?? 'GET'} ${this.path} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    text += `host: ${ctx.preserveHost && this.host !== undefined ? this.host : endpointHost(endpoint)}\r\n`;
    text += 'connection: upgrade\r\n';
    const upgrade = req.headers.upgrade;
    if (upgrade !== undefined) text += `upgrade: ${upgrade}\r\n`;
    const address = clientAddress(req.socket.remoteAddress);
    text += `x-forwarded-for: ${this.forwardedFor === undefined ? address : `${this.forwardedFor}, ${address}`}\r\n`;
    text += `x-forwarded-proto: ${(req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : ctx.proto}\r\n`;
    if (this.host !== undefined) text += `x-forwarded-host: ${this.host}\r\n`;
    if (this.path !== this.url) text += `x-forwarded-prefix: ${this.route!.strip!}\r\n`;
    return `${text}x-request-id: ${this.requestId!}\r\n\r\n`;
  }

  /** One attempt: connect to `endpoint`, send the request head, wait for the answer's status line. */
  private connectTo(endpoint: RuntimeEndpoint): void {
    const route = this.route!;
    const client = this.client;
    this.endpoint = endpoint;
    this.attempts += 1;
    let connected = false;
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
    upstream.on('error', (err) => this.upstreamFailed(upstream, connected ? 'closed' : 'connect', err));
    upstream.on('close', () => {
      if (upstream !== this.upstream) return; // an abandoned attempt
      if (!this.answered) {
        this.upstreamFailed(upstream, 'closed', new Error('the upstream closed the connection before answering'));
        if (upstream !== this.upstream) return; // retried on another endpoint
      }
      this.finish();
    });
    upstream.on('connect', () => {
      connected = true;
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
      upstream.off('data', onUpstreamAnswer);
      upstream.setTimeout(0);
      const answer = pending;
      pending = undefined;
      // `HTTP/1.1 101 Switching Protocols`: the status code is the second token.
      const status = Number.parseInt(answer.toString('latin1', 9, 12), 10);
      if (answer.toString('latin1', 0, 5) !== 'HTTP/' || !(status >= 100 && status <= 599)) {
        this.upstreamFailed(upstream, 'invalid', new Error('the upstream did not answer the upgrade with HTTP'));
        return;
      }
      if (status >= 500) {
        route.failed(endpoint);
        // Nothing of this answer reached the client yet: a 502/503/504 the route retries goes to
        // another endpoint, as for a plain request.
        if (status >= 502 && status <= 504 && this.retryStatus(upstream, status)) return;
      } else endpoint.health.consecutive = 0;
      this.answered = true;
      this.status = status;
      client.off('data', this.early);
      client.write(answer);
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

  /** Retry after a 502/503/504 answer when the route's policy says so; true when retried. */
  private retryStatus(upstream: Socket, status: number): boolean {
    const route = this.route!;
    const condition = status === 502 ? RETRY_ON_502 : status === 503 ? RETRY_ON_503 : RETRY_ON_504;
    if ((route.retryOn & condition) === 0 || this.attempts > route.retryCount || !isIdempotent(this.req.method)) return false;
    const next = route.retryEndpoint(this.tried ?? (this.tried = []), this.endpoint!, performance.now());
    if (next === undefined) return false;
    this.retryOn(upstream, next, String(status));
    return true;
  }

  /** Abandon the attempt on `upstream` and make the next one on `next`. */
  private retryOn(upstream: Socket, next: RuntimeEndpoint, reason: string): void {
    this.route!.metrics.retry(reason);
    this.upstream = undefined;
    upstream.destroy();
    this.connectTo(next);
  }

  /**
   * The attempt on `upstream` failed before its answer reached the client (or, for `closed`, the
   * tunnel broke later). Counted against the endpoint; a connect failure, or a close before any
   * answer (nothing but the head was sent), goes to another endpoint when the route retries it;
   * otherwise the client gets 502/504.
   */
  private upstreamFailed(upstream: Socket, failure: UpstreamFailure, err: Error): void {
    if (this.done || upstream !== this.upstream) return;
    // Our own error answer is on its way; the client socket closes once it is written.
    if (this.responding && !this.answered) return;
    const route = this.route!;
    if (this.answered || this.client.destroyed) {
      // The tunnel was open (or the client is gone): tear both sides down.
      if (this.answered && this.errorCode === undefined && !this.client.destroyed) {
        this.errorCode = 'SY_UPSTREAM_RESET';
        this.reason = err.message;
        route.metrics.upstreamError('SY_UPSTREAM_RESET');
      }
      this.destroy();
      return;
    }
    const endpoint = this.endpoint!;
    route.failed(endpoint);
    const code: ErrorCode = failure === 'connect-timeout' || failure === 'headers-timeout' ? 'SY_UPSTREAM_TIMEOUT' : 'SY_UPSTREAM_CONNECT';
    route.metrics.upstreamError(code);
    if (failure === 'connect-timeout') route.metrics.timeout('connect');
    else if (failure === 'headers-timeout') route.metrics.timeout('headers');
    // As for plain requests: a connect failure sent nothing; a close after the head only for
    // idempotent methods (an upgrade is a GET).
    const condition = failure === 'connect' || failure === 'connect-timeout' ? RETRY_ON_CONNECT_FAILURE
      : failure === 'closed' && isIdempotent(this.req.method) ? RETRY_ON_RESET : 0;
    if ((route.retryOn & condition) !== 0 && this.attempts <= route.retryCount) {
      const next = route.retryEndpoint(this.tried ?? (this.tried = []), endpoint, performance.now());
      if (next !== undefined) {
        this.retryOn(upstream, next, condition === RETRY_ON_RESET ? 'reset' : 'connect-failure');
        return;
      }
    }
    this.errorCode = code;
    this.reason = err.message;
    this.status = httpStatusFor(code);
    this.respond(rawErrorResponse(code, ERROR_BODIES[code], this.requestId!));
    upstream.destroy();
  }

  /** No byte either way for the route's tunnel idle timeout: close the tunnel (counted, logged). */
  private tunnelIdle(upstream: Socket): void {
    if (this.done || upstream !== this.upstream) return;
    const route = this.route!;
    route.metrics.timeout('tunnel');
    this.reason = `tunnel idle for ${route.tunnelIdleMs} ms`;
    this.destroy();
  }

  private clientFailed(err: Error): void {
    if (this.done) return;
    if (this.reason === undefined) this.reason = err.message;
    this.destroy();
  }

  /** Answer the upgrade request with an error (the tunnel never opened). */
  private refuse(code: ErrorCode, body: Buffer, retryAfter?: string): void {
    this.errorCode = code;
    this.status = httpStatusFor(code);
    this.respond(retryAfter === undefined
      ? rawErrorResponse(code, body, this.requestId!)
      : rawErrorResponse(code, body, this.requestId!, 'retry-after', retryAfter));
  }

  /** Write a complete response to the client, then close its socket. */
  private respond(response: Buffer): void {
    this.responding = true;
    const client = this.client;
    if (client.destroyed) return;
    client.end(response, () => client.destroy());
  }

  /** Either socket closed: close the other one; log once both are closed. */
  private finish(): void {
    if (this.done) return;
    if (!this.client.destroyed) {
      // The upstream closed first. An answer or error being written closes the client itself.
      if (!this.responding) this.client.destroy();
      return;
    }
    const upstream = this.upstream;
    if (upstream !== undefined && !upstream.destroyed) {
      upstream.destroy();
      return;
    }
    this.done = true;
    this.registry.delete(this);
    const state = this.state;
    if (state !== undefined) {
      state.inflight -= 1;
      this.state = undefined;
    }
    const seconds = (performance.now() - this.start) / 1000;
    const route = this.route;
    if (this.status === 0 && route !== undefined) this.status = CLIENT_CLOSED_STATUS; // the client left first
    (route === undefined ? this.ctx.runtimes.noRouteMetrics : route.metrics).count(this.status);
    this.ctx.accessLog?.write({
      reqId: this.requestId!,
      routeJson: route === undefined ? NO_ROUTE_JSON : route.nameJson,
      upstream: this.endpoint?.origin,
      endpoint: this.endpoint?.id,
      method: this.req.method ?? '',
      path: this.req.url ?? '',
      status: this.status,
      ms: seconds * 1000,
      upgrade: true,
      error: this.errorCode,
      reason: this.reason,
      attempts: this.attempts > 1 ? this.attempts : undefined,
    });
  }
}

const EMPTY = Buffer.alloc(0);

function endpointHost(endpoint: RuntimeEndpoint): string {
  const { address, port } = endpoint.endpoint;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
