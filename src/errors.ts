/**
 * Typed errors with stable codes. Callers branch on `err.code`, never on messages.
 * `httpStatusFor` is the one place that maps a code to an HTTP status.
 */
export type ErrorCode =
  | 'SY_NO_ROUTE'            // no route matches host + path → 404
  | 'SY_NO_ENDPOINT'         // route matched, but no endpoint can take traffic → 503
  | 'SY_UPSTREAM_CONNECT'    // no connection to the upstream could be made (refused, unreachable) → 502
  | 'SY_UPSTREAM_RESET'      // the upstream connection broke after the request was sent → 502
  | 'SY_UPSTREAM_BAD_RESPONSE' // the upstream's answer is not valid HTTP or its head is over the limit → 502
  | 'SY_UPSTREAM_TIMEOUT'    // upstream did not answer in time → 504
  | 'SY_QUEUE_TIMEOUT'       // waited longer than upstream.queueTimeoutMs for an upstream connection → 503
  | 'SY_BAD_REQUEST'         // malformed client request → 400
  | 'SY_RATE_LIMITED'        // token bucket empty → 429
  | 'SY_OVERLOADED'          // concurrency limit reached → 503
  | 'SY_BODY_TOO_LARGE'      // request body over the limit → 413
  | 'SY_HEADERS_TOO_LARGE'   // request headers over the limit → 431
  | 'SY_FORBIDDEN'           // a refused operation → 403
  | 'SY_UNAUTHORIZED'        // admin token missing or wrong → 401
  | 'SY_METHOD_NOT_ALLOWED'  // CONNECT, TRACE: not served → 405
  | 'SY_REQUEST_TIMEOUT'     // the client did not send its request in time → 408
  | 'SY_CLIENT_CLOSED'       // the client closed its connection before the answer (never sent; logged as nginx's 499)
  | 'SY_NOT_FOUND'           // no such admin endpoint → 404
  | 'SY_INTERNAL'            // a bug: an admin request failed unexpectedly → 500
  | 'SY_CONFIG_INVALID'      // a template, services file or KV value failed validation
  | 'SY_USAGE'               // bad command line flag or value
  | 'SY_CONSUL'              // Consul answered with an error or could not be reached
  | 'SY_CONSUL_ACL';         // Consul refused the token (403)

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A template, services file or KV value that cannot be used. `source` names the file or key. */
export class ConfigError extends SwitchyardError {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('SY_CONFIG_INVALID', `${source}: ${message}`, options);
    this.source = source;
  }
}

export class UsageError extends SwitchyardError {
  constructor(message: string) {
    super('SY_USAGE', message);
  }
}

export class ConsulError extends SwitchyardError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(status === 403 ? 'SY_CONSUL_ACL' : 'SY_CONSUL', message, options);
    this.status = status;
  }
}

const STATUS: Readonly<Record<ErrorCode, number>> = {
  SY_NO_ROUTE: 404,
  SY_NO_ENDPOINT: 503,
  SY_UPSTREAM_CONNECT: 502,
  SY_UPSTREAM_RESET: 502,
  SY_UPSTREAM_BAD_RESPONSE: 502,
  SY_UPSTREAM_TIMEOUT: 504,
  SY_QUEUE_TIMEOUT: 503,
  SY_BAD_REQUEST: 400,
  SY_RATE_LIMITED: 429,
  SY_OVERLOADED: 503,
  SY_BODY_TOO_LARGE: 413,
  SY_HEADERS_TOO_LARGE: 431,
  SY_FORBIDDEN: 403,
  SY_UNAUTHORIZED: 401,
  SY_METHOD_NOT_ALLOWED: 405,
  SY_REQUEST_TIMEOUT: 408,
  SY_CLIENT_CLOSED: 499,
  SY_NOT_FOUND: 404,
  SY_INTERNAL: 500,
  SY_CONFIG_INVALID: 500,
  SY_USAGE: 500,
  SY_CONSUL: 502,
  SY_CONSUL_ACL: 502,
};

export function httpStatusFor(code: ErrorCode): number {
  return STATUS[code];
}
