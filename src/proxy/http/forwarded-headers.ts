import type { Socket } from 'node:net';
import { clientAddress, type RequestHead } from './headers.js';

/**
 * Append the headers the proxy sets on every request it forwards, plain or upgrade, to a flat
 * `[name, value, ...]` list: X-Forwarded-For (the client's address appended to what a trusted
 * proxy sent; the request guard removed it from anyone else), X-Forwarded-Proto, -Host and -Port
 * (from the listener that accepted the connection: the client's own were dropped by
 * scanRequestHeaders), X-Forwarded-Prefix on routes that strip one (Traefik's StripPrefix sends
 * it the same way), X-Request-Id, and the trace context (`traceparent`: `trace`; `tracestate` as
 * the client sent it when observability/tracing.ts kept it).
 */
export function appendForwarded(out: string[], head: RequestHead, socket: Socket, proto: string, prefix: string | undefined, requestId: string, trace: string): void {
  const client = clientAddress(socket.remoteAddress);
  out.push('x-forwarded-for', head.forwardedFor === undefined ? client : `${head.forwardedFor}, ${client}`);
  // Per connection: the same handler serves the plain and the TLS listener.
  out.push('x-forwarded-proto', (socket as { encrypted?: boolean }).encrypted === true ? 'https' : proto);
  if (head.host !== undefined) out.push('x-forwarded-host', head.host);
  const port = socket.localPort;
  if (port !== undefined) out.push('x-forwarded-port', String(port));
  if (prefix !== undefined) out.push('x-forwarded-prefix', prefix);
  out.push('x-request-id', requestId, 'traceparent', trace);
  if (head.tracestate !== undefined) out.push('tracestate', head.tracestate);
}
