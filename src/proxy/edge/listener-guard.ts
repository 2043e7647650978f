import type { IncomingMessage, Server, ServerOptions } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../observability/logger.js';
import { rawErrorResponse } from '../http/error-response.js';
import type { Exchange } from '../http/exchange.js';
import { REFUSALS, type Refusal, type RequestGuard } from './request-guard.js';

/**
 * Listener hardening (HAProxy's and Envoy's edge guidance): the limits node's HTTP server enforces
 * itself, and the answers to what its parser refuses.
 *
 * - `headersTimeout` (slowloris): a client gets this long to send a complete request head, counted
 *   from the connection's first byte (or from accepting it); 408 and close on expiry.
 * - `requestTimeout`: the whole request, head and body, must arrive within it; an upload slower
 *   than that is cut (408). 0 turns it off, for deployments that stream long uploads.
 * - `keepAliveTimeout`: an idle keep-alive connection is closed after it.
 * - `maxHeaderSize`: a larger request head is answered 431 and the connection closed.
 * - `maxConnections`: connections beyond it are closed as soon as they are accepted.
 * - node checks the two request timeouts every `connectionsCheckingInterval`; it is derived from
 *   the header timeout so that expiry is detected within half of it (at most 1 s late).
 * - `insecureHTTPParser` is forced off, whatever NODE_OPTIONS says, and the Host check is done by
 *   the request guard (JSON answer) instead of node (empty 400).
 */

export interface ListenerLimits {
  /** Default 10 s. */
  headersTimeoutMs?: number;
  /** Default 5 min; 0 disables. */
  requestTimeoutMs?: number;
  /** Default 65 s, above common load balancer idle timeouts. */
  keepAliveTimeoutMs?: number;
  /** Bytes of request line and headers. Default 16 KiB (node's default). */
  maxHeaderSize?: number;
  /** Concurrent client connections per listener. Default 10 000. */
  maxConnections?: number;
  /** How often node looks for expired requests. Default: half the header timeout, 50 ms to 1 s. */
  connectionsCheckingIntervalMs?: number;
}

export const LISTENER_DEFAULTS = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 65_000,
  maxHeaderSize: 16_384,
  maxConnections: 10_000,
  maxHeaderCount: 100,
});

/** The node:http creation options for the limits (shared by the plain and the TLS listener). */
export function listenerServerOptions(limits: ListenerLimits): Pick<ServerOptions,
  'keepAliveTimeout' | 'headersTimeout' | 'requestTimeout' | 'maxHeaderSize' | 'connectionsCheckingInterval' | 'requireHostHeader' | 'insecureHTTPParser'> {
  const headersTimeout = limits.headersTimeoutMs ?? LISTENER_DEFAULTS.headersTimeoutMs;
  return {
    keepAliveTimeout: limits.keepAliveTimeoutMs ?? LISTENER_DEFAULTS.keepAliveTimeoutMs,
    headersTimeout,
    requestTimeout: limits.requestTimeoutMs ?? LISTENER_DEFAULTS.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderSize ?? LISTENER_DEFAULTS.maxHeaderSize,
    connectionsCheckingInterval: limits.connectionsCheckingIntervalMs ?? Math.min(1_000, Math.max(50, Math.floor(headersTimeout / 2))),
    requireHostHeader: false,
    insecureHTTPParser: false,
  };
}

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Wire a listener: the connection cap, upgrades through the request guard, CONNECT refused, and
 * parser errors answered (400, 431 or 408, `Connection: close`) then the connection closed.
 * Call before `listenTls`, which copies these listeners to the TLS listener.
 */
export function guardListener(server: Server | HttpsServer, guard: RequestGuard, upgrade: UpgradeListener, limits: ListenerLimits, logger?: Logger): void {
  server.maxConnections = limits.maxConnections ?? LISTENER_DEFAULTS.maxConnections;
  // Count header fields in the request guard (431) instead of letting node drop the excess silently.
  server.maxHeadersCount = 0;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (guard.admitUpgrade(req, socket)) upgrade(req, socket, head);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    guard.count('method', { method: 'CONNECT', remote: req.socket.remoteAddress });
    if (guard.refuseSocket(socket, REFUSALS.connect)) guard.refusalLog?.(REFUSALS.connect, 'CONNECT', req.url ?? '');
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(guard, err, socket, logger));
  server.on('drop', () => guard.count('max_connections'));
}

/** The answer to a parser or timeout error, or undefined when the connection is just closed. */
export function clientErrorRefusal(code: string | undefined): Refusal | undefined {
  switch (code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return REFUSALS.headersTooLarge;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return REFUSALS.timeout;
    default:
      return REFUSALS.badRequest;
  }
}

function answerClientError(guard: RequestGuard, err: NodeJS.ErrnoException, socket: Duplex, logger: Logger | undefined): void {
  const refusal = clientErrorRefusal(err.code);
  // Never log err.rawPacket: it holds whatever the client sent, credentials included.
  logger?.debug({ err: err.message, code: err.code }, 'client error');
  if (refusal === undefined) {
    socket.destroy();
    return;
  }
  guard.count(refusal.reason, { code: err.code });
  // A response already on the wire (an error in a pipelined request): an answer would corrupt it.
  // node keeps the response of the request being read on the socket (`_httpMessage`).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean; exchange?: Exchange } | null })._httpMessage;
  if (inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  // The request whose body was still arriving: its exchange logs what the client gets from us,
  // and the answer carries its request id, as the access line does (built here: a rare path).
  const exchange = inFlight?.exchange;
  exchange?.answeredByListener(refusal.code);
  if (exchange === undefined) {
    // No request was parsed (a malformed or too large head, a slow head): nothing else logs it.
    // Never the method or target from err.rawPacket (see above): the line has "" for both.
    if (guard.refuseSocket(socket, refusal)) guard.refusalLog?.(refusal, '', '');
    return;
  }
  const requestId = exchange.requestId;
  guard.refuseSocket(socket, requestId === undefined ? refusal : { ...refusal, raw: rawErrorResponse(refusal.code, refusal.body, requestId) });
}
