import type { Socket } from 'node:net';
import { clientAddress, type RequestHead } from './headers.js';
import type { PathRewrite } from './rewrite.js';

/**
 * The longest target sent again as X-Replaced-Path. The listener takes request heads up to 16 KiB;
 * a second copy of a longer target could push the head past the upstream's own limit (node's 16 KiB,
 * nginx's 8 KiB header line) and turn a request it would serve into a 431.
 */
export const REPLACED_PATH_MAX = 4096;

/**
 * Append the headers the proxy sets on every request it forwards, plain or upgrade, to a flat
 * `[name, value, ...]` list: X-Forwarded-For (the client's address appended to what a trusted
 * proxy sent; the request guard removed it from anyone else), X-Forwarded-Proto, -Host and -Port
 * (from the listener that accepted the connection: the client's own were dropped by
 * scanRequestHeaders), when the route's rewrite changed the path (`rewritten`) X-Forwarded-Prefix
 * (a prefix stripped) or X-Replaced-Path (`url`, the target as received: any other rewrite; see
 * rewrite.ts; left out for a target longer than REPLACED_PATH_MAX), X-Request-Id, and the trace context (`traceparent`: `trace`; `tracestate` as the
 * client sent it when observability/tracing.ts kept it).
 */
export function appendForwarded(out: string[], head: RequestHead, socket: Socket, proto: string, rewritten: PathRewrite | undefined, url: string, requestId: string, trace: string): void {
  const client = clientAddress(socket.remoteAddress);
  out.push('x-forwarded-for', head.forwardedFor === undefined ? client : `${head.forwardedFor}, ${client}`);
  // Per connection: the same handler serves the plain and the TLS listener.
  out.push('x-forwarded-proto', (socket as { encrypted?: boolean }).encrypted === true ? 'https' : proto);
  if (head.host !== undefined) out.push('x-forwarded-host', head.host);
  const port = socket.localPort;
  if (port !== undefined) out.push('x-forwarded-port', String(port));
  if (rewritten !== undefined) {
    const prefix = rewritten.forwardedPrefix;
    if (prefix !== undefined) out.push('x-forwarded-prefix', prefix);
    else if (url.length <= REPLACED_PATH_MAX) out.push('x-replaced-path', url);
  }
  out.push('x-request-id', requestId, 'traceparent', trace);
  if (head.tracestate !== undefined) out.push('tracestate', head.tracestate);
}
