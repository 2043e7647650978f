import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { httpStatusFor, type ErrorCode } from '../errors.js';
import { ERROR_BODIES, rawErrorResponse } from './error-response.js';
import type { ForwardContext } from './forward.js';
import { clientAddress, removeConnectionNominated, scanRequestHeaders, type RequestHead } from './headers.js';
import { NO_ROUTE_JSON } from './route-metrics.js';
import { stripPath, type RuntimeEndpoint, type RuntimeRoute } from './runtime.js';

/**
 * Upgrade requests (WebSocket and any other `Connection: upgrade`): the same lookup and pick as a
 * plain request, then a raw TCP tunnel to the endpoint. The request head is rewritten like a plain
 * request's (X-Forwarded-*, X-Request-Id, stripped path) but keeps `Connection: upgrade` and
 * `Upgrade`; the upstream's answer (101 or a refusal) is relayed byte for byte. Either side closing
 * or failing tears both down. Tunnels are long-lived and few, so closures here are fine.
 */
export class UpgradeProxy {
  private readonly ctx: ForwardContext;
  private readonly connectTimeoutMs: number;
  private readonly tunnels = new Set<Tunnel>();

  constructor(ctx: ForwardContext, connectTimeoutMs: number) {
    this.ctx = ctx;
    this.connectTimeoutMs = connectTimeoutMs;
  }

  /** Open tunnels. */
  get size(): number {
    return this.tunnels.size;
  }

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const tunnel = new Tunnel(this.ctx, req, socket as Socket, performance.now(), this.tunnels);
    tunnel.run(head, this.connectTimeoutMs);
  };

  /** Tear down every open tunnel (shutdown). */
  destroyAll(): void {
    for (const tunnel of this.tunnels) tunnel.destroy();
  }
}

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
  private endpoint: RuntimeEndpoint | undefined;
  private status = 0;
  private errorCode: ErrorCode | undefined;
  private reason: string | undefined;
  private connected = false;
  private responding = false;
  private done = false;

  constructor(ctx: ForwardContext, req: IncomingMessage, client: Socket, start: number, registry: Set<Tunnel>) {
    this.ctx = ctx;
    this.req = req;
    this.client = client;
    this.start = start;
    this.registry = registry;
  }

  run(head: Buffer, connectTimeoutMs: number): void {
    const { req, client, ctx } = this;
    this.registry.add(this);
    client.on('error', (err) => this.fail(undefined, err));
    client.on('close', () => this.finish());
    scanRequestHeaders(req.rawHeaders, this);
    const requestId = this.requestId ?? (this.requestId = ctx.ids.next());
    const url = req.url ?? '/';
    const route = url.charCodeAt(0) === 47 ? ctx.runtimes.current?.match(this.host, url) : undefined;
    if (route === undefined) return this.refuse('SY_NO_ROUTE', ERROR_BODIES.SY_NO_ROUTE);
    this.route = route;
    const endpoint = route.pick();
    if (endpoint === undefined) return this.refuse('SY_NO_ENDPOINT', route.noEndpointBody);
    this.endpoint = endpoint;

    const headers = this.connection === undefined ? this.headers : removeConnectionNominated(this.headers, this.connection);
    let text = `${req.method ?? 'GET'} ${stripPath(url, route.strip)} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    text += `host: ${ctx.preserveHost && this.host !== undefined ? this.host : `${endpointHost(endpoint)}`}\r\n`;
    text += 'connection: upgrade\r\n';
    const upgrade = req.headers.upgrade;
    if (upgrade !== undefined) text += `upgrade: ${upgrade}\r\n`;
    const address = clientAddress(req.socket.remoteAddress);
    text += `x-forwarded-for: ${this.forwardedFor === undefined ? address : `${this.forwardedFor}, ${address}`}\r\n`;
    text += `x-forwarded-proto: ${(req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : ctx.proto}\r\n`;
    if (this.host !== undefined) text += `x-forwarded-host: ${this.host}\r\n`;
    text += `x-request-id: ${requestId}\r\n\r\n`;

    const upstream = connect({ host: endpoint.endpoint.address, port: endpoint.endpoint.port });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.setTimeout(connectTimeoutMs, () => {
      if (!this.connected) this.fail('SY_UPSTREAM_TIMEOUT', new Error(`connect timed out after ${connectTimeoutMs} ms`));
    });
    upstream.on('error', (err) => this.fail(this.connected ? 'SY_UPSTREAM_RESET' : 'SY_UPSTREAM_CONNECT', err));
    upstream.on('close', () => this.finish());
    upstream.on('connect', () => {
      this.connected = true;
      upstream.setTimeout(0);
      upstream.write(text, 'latin1');
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
      const answer = pending;
      pending = undefined;
      // `HTTP/1.1 101 Switching Protocols`: the status code is the second token.
      const status = Number.parseInt(answer.toString('latin1', 9, 12), 10);
      this.status = Number.isFinite(status) ? status : 0;
      client.write(answer);
      upstream.pipe(client);
      if (this.status === 101) {
        if (head.length > 0) upstream.write(head);
        client.pipe(upstream);
      } else {
        // Relay the refusal, then close: half-close the upstream so it ends after its answer, and
        // drop the client connection once everything is flushed to it.
        this.responding = true;
        upstream.end();
        client.once('finish', () => client.destroy());
      }
    };
  }

  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** Answer the upgrade request with an error (the tunnel never opened). */
  private refuse(code: ErrorCode, body: Buffer): void {
    this.errorCode = code;
    this.status = httpStatusFor(code);
    this.respond(rawErrorResponse(code, body, this.requestId!));
  }

  /** Write a complete response to the client, then close its socket. */
  private respond(response: Buffer): void {
    this.responding = true;
    const client = this.client;
    if (client.destroyed) return;
    client.end(response, () => client.destroy());
  }

  private fail(code: ErrorCode | undefined, err: Error): void {
    if (this.done) return;
    if (code !== undefined && this.errorCode === undefined) {
      this.errorCode = code;
      this.reason = err.message;
      this.route?.metrics.upstreamError(code);
      if (!this.connected && !this.responding) {
        this.status = httpStatusFor(code);
        this.respond(rawErrorResponse(code, ERROR_BODIES[code as keyof typeof ERROR_BODIES] ?? ERROR_BODIES.SY_UPSTREAM_CONNECT, this.requestId!));
        this.upstream?.destroy();
        return;
      }
    }
    this.destroy();
  }

  /** Either socket closed: close the other one; log once both are closed. */
  private finish(): void {
    if (this.done) return;
    if (!this.client.destroyed) {
      // The upstream closed first. An error response being written closes the client itself.
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
    const seconds = (performance.now() - this.start) / 1000;
    const route = this.route;
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
      attempts: undefined,
    });
  }
}

function endpointHost(endpoint: RuntimeEndpoint): string {
  const { address, port } = endpoint.endpoint;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
