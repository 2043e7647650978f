import type { ServerResponse } from 'node:http';
import { httpStatusFor, type ErrorCode } from '../../errors.js';

/** `{"error": CODE, "message": ...}` as bytes; build once, send many times. */
export function errorBody(code: ErrorCode, message: string): Buffer {
  return Buffer.from(JSON.stringify({ error: code, message }));
}

/** Bodies for the errors whose message carries no request detail. */
export const ERROR_BODIES = {
  SY_NO_ROUTE: errorBody('SY_NO_ROUTE', 'no route matches this host and path'),
  SY_NO_ENDPOINT: errorBody('SY_NO_ENDPOINT', 'the route has no endpoint that can take traffic'),
  SY_UPSTREAM_CONNECT: errorBody('SY_UPSTREAM_CONNECT', 'the upstream could not be reached or closed the connection before responding'),
  SY_UPSTREAM_RESET: errorBody('SY_UPSTREAM_RESET', 'the upstream closed the connection mid-response'),
  SY_UPSTREAM_TIMEOUT: errorBody('SY_UPSTREAM_TIMEOUT', 'the upstream did not answer in time'),
  SY_BAD_REQUEST: errorBody('SY_BAD_REQUEST', 'the request cannot be forwarded'),
  SY_RATE_LIMITED: errorBody('SY_RATE_LIMITED', 'the route rate limit was exceeded; retry after the Retry-After delay'),
  SY_OVERLOADED: errorBody('SY_OVERLOADED', 'the route has too many requests in flight'),
  SY_BODY_TOO_LARGE: errorBody('SY_BODY_TOO_LARGE', 'the request body exceeds the route limit'),
} as const satisfies Partial<Record<ErrorCode, Buffer>>;

/**
 * Send a JSON error response. `res` must not have sent its head yet. While the proxy drains,
 * `close` asks the client to close the connection. `extra` adds one header (e.g. Retry-After).
 */
export function sendError(res: ServerResponse, code: ErrorCode, body: Buffer, requestId: string, close = false, extraName?: string, extraValue?: string): number {
  const status = httpStatusFor(code);
  if (close) res.shouldKeepAlive = false;
  const headers = [
    'content-type', 'application/json',
    'content-length', String(body.length),
    'cache-control', 'no-store',
    'x-request-id', requestId,
  ];
  if (extraName !== undefined && extraValue !== undefined) headers.push(extraName, extraValue);
  res.writeHead(status, headers);
  res.end(body);
  return status;
}

/**
 * A complete raw HTTP/1.1 error response, for sockets that left the HTTP server (upgrades).
 * `extra` adds one header (e.g. Retry-After).
 */
export function rawErrorResponse(code: ErrorCode, body: Buffer, requestId: string, extraName?: string, extraValue?: string): Buffer {
  const status = httpStatusFor(code);
  const extra = extraName !== undefined && extraValue !== undefined ? `${extraName}: ${extraValue}\r\n` : '';
  const head = `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n`
    + `cache-control: no-store\r\nx-request-id: ${requestId}\r\n${extra}connection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A complete raw 308 to `location`, for upgrade requests on routes that redirect to HTTPS. */
export function rawRedirect(location: string, requestId: string): Buffer {
  return Buffer.from(`HTTP/1.1 308 Permanent Redirect\r\nlocation: ${location}\r\ncontent-length: 0\r\n`
    + `cache-control: no-store\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`, 'latin1');
}

function statusText(status: number): string {
  switch (status) {
    case 400: return 'Bad Request';
    case 404: return 'Not Found';
    case 413: return 'Content Too Large';
    case 429: return 'Too Many Requests';
    case 431: return 'Request Header Fields Too Large';
    case 502: return 'Bad Gateway';
    case 503: return 'Service Unavailable';
    case 504: return 'Gateway Timeout';
    default: return 'Error';
  }
}
