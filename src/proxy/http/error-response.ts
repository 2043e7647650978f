import { STATUS_CODES, type ServerResponse } from 'node:http';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import { jsonString } from '../../observability/access-log.js';

/**
 * The one serialiser of error answers, for the proxy (a ServerResponse), the upgrade tunnel (raw
 * bytes on a socket) and the admin server: `{"error": CODE, "message": ...}` with the status of
 * CODE from errors.ts, `cache-control: no-store` and, when there is one, the request id.
 */

/** `{"error": CODE, "message": ...}` as bytes; build once, send many times. */
export function errorBody(code: ErrorCode, message: string): Buffer {
  return Buffer.from(JSON.stringify({ error: code, message }));
}

/** Bodies for the errors whose message carries no request detail. */
export const ERROR_BODIES = {
  SY_NO_ROUTE: errorBody('SY_NO_ROUTE', 'no route matches this host and path'),
  SY_NO_ENDPOINT: errorBody('SY_NO_ENDPOINT', 'the route has no endpoint that can take traffic'),
  SY_UPSTREAM_CONNECT: errorBody('SY_UPSTREAM_CONNECT', 'no connection to the upstream could be made'),
  SY_UPSTREAM_RESET: errorBody('SY_UPSTREAM_RESET', 'the upstream closed the connection after the request was sent'),
  SY_UPSTREAM_BAD_RESPONSE: errorBody('SY_UPSTREAM_BAD_RESPONSE', 'the upstream answered with an invalid or oversized response head'),
  SY_UPSTREAM_TIMEOUT: errorBody('SY_UPSTREAM_TIMEOUT', 'the upstream did not answer in time'),
  SY_QUEUE_TIMEOUT: errorBody('SY_QUEUE_TIMEOUT', 'no upstream connection became free in time (upstream.maxConnections)'),
  SY_BAD_REQUEST: errorBody('SY_BAD_REQUEST', 'the request cannot be forwarded'),
  SY_RATE_LIMITED: errorBody('SY_RATE_LIMITED', 'the route rate limit was exceeded; retry after the Retry-After delay'),
  SY_OVERLOADED: errorBody('SY_OVERLOADED', 'the route has too many requests in flight'),
  SY_BODY_TOO_LARGE: errorBody('SY_BODY_TOO_LARGE', 'the request body exceeds the route limit'),
} as const satisfies Partial<Record<ErrorCode, Buffer>>;

/**
 * A proxy error body with the exchange's ids appended: `{"error", "message", "requestId", "traceId"}`,
 * so a client's bug report names the request in the access log and its trace. `body` is one of the
 * prebuilt bodies (a JSON object).
 */
export function bodyWithIds(body: Buffer, requestId: string | undefined, traceId: string): Buffer {
  const ids = requestId === undefined ? `,"traceId":"${traceId}"}` : `,"requestId":${jsonString(requestId)},"traceId":"${traceId}"}`;
  const out = Buffer.allocUnsafe(body.length - 1 + Buffer.byteLength(ids));
  body.copy(out, 0, 0, body.length - 1);
  out.write(ids, body.length - 1, 'utf8');
  return out;
}

/** The prebuilt body of `code`, or a generic one naming it. */
export function errorBodyOf(code: ErrorCode): Buffer {
  return (ERROR_BODIES as Partial<Record<ErrorCode, Buffer>>)[code] ?? errorBody(code, STATUS_CODES[httpStatusFor(code)] ?? 'error');
}

/**
 * Send a JSON error response. `res` must not have sent its head yet. `close` asks the client to
 * close the connection. `extra` adds one header (e.g. Retry-After). Returns the status sent.
 */
export function sendError(res: ServerResponse, code: ErrorCode, body: Buffer, requestId: string | undefined, close = false, extraName?: string, extraValue?: string): number {
  const status = httpStatusFor(code);
  if (close) res.shouldKeepAlive = false;
  const headers = [
    'content-type', 'application/json',
    'content-length', String(body.length),
    'cache-control', 'no-store',
  ];
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  if (extraName !== undefined && extraValue !== undefined) headers.push(extraName, extraValue);
  res.writeHead(status, headers);
  res.end(body);
  return status;
}

/**
 * A complete raw HTTP/1.1 error response, for sockets that left the HTTP server (upgrades, and the
 * refusals built once at start, which have no request id). `extra` adds one header (e.g. Retry-After).
 */
export function rawErrorResponse(code: ErrorCode, body: Buffer, requestId: string | undefined, extraName?: string, extraValue?: string): Buffer {
  const status = httpStatusFor(code);
  const id = requestId === undefined ? '' : `x-request-id: ${requestId}\r\n`;
  const extra = extraName !== undefined && extraValue !== undefined ? `${extraName}: ${extraValue}\r\n` : '';
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n`
    + `cache-control: no-store\r\n${id}${extra}connection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A complete raw 308 to `location`, for upgrade requests on routes that redirect to HTTPS. */
export function rawRedirect(location: string, requestId: string): Buffer {
  return Buffer.from(`HTTP/1.1 308 Permanent Redirect\r\nlocation: ${location}\r\ncontent-length: 0\r\n`
    + `cache-control: no-store\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`, 'latin1');
}
