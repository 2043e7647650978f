import { SwitchyardError, type ErrorCode } from '../../errors.js';
import { RETRY_ON_CONNECT_FAILURE, RETRY_ON_RESET } from '../runtime/runtime.js';

/**
 * What went wrong on the way to (or from) an upstream, for plain exchanges and upgrade tunnels
 * alike. `failureOf` is the one place that reads the `code` of undici's and node's socket errors;
 * everything else (the error code answered, retries, outlier accounting, timeout metrics) derives
 * from the Failure it returns.
 *
 * - `refused`: no connection could be made (refused, unreachable): nothing was sent.
 * - `connect-timeout`: the TCP connect did not complete in time: nothing was sent.
 * - `reset`: the connection broke after the request was (partly) sent.
 * - `bad-response`: the upstream's answer is not valid HTTP, or its head is over the size limit.
 * - `headers-timeout` / `body-timeout` / `total-timeout`: the route's timeouts.
 * - `queue-timeout`: no upstream connection became free within `upstream.queueTimeoutMs`.
 * - `bad-request`: undici refused to send the request as it is (nothing was sent).
 * - `client-closed`: the client went away (the proxy aborted the upstream request itself).
 * - `body-too-large`: a chunked request body passed the route's `maxBodyBytes`.
 * - `local`: the pool was closed or destroyed under the request (a swap), nothing was sent.
 */
export type Failure =
  | 'refused' | 'connect-timeout' | 'reset' | 'bad-response'
  | 'headers-timeout' | 'body-timeout' | 'total-timeout' | 'queue-timeout'
  | 'bad-request' | 'client-closed' | 'body-too-large' | 'local';

/** An error the proxy raises into undici itself (to abort an attempt), carrying its Failure. */
export class ProxyAbort extends SwitchyardError {
  readonly failure: Failure;
  constructor(failure: Failure, message: string) {
    super(FAILURE_CODE[failure], message);
    this.failure = failure;
  }
}

/**
 * The Failure of an error from undici or a socket. `connected`: a connection to the upstream was
 * established for this attempt (undici called onConnect, or the socket's 'connect' fired), so an
 * error without a known code broke an attempt in progress rather than preventing one.
 */
export function failureOf(err: Error, connected: boolean): Failure {
  if (err instanceof ProxyAbort) return err.failure;
  switch ((err as { code?: unknown }).code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect-timeout';
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'headers-timeout';
    case 'UND_ERR_BODY_TIMEOUT':
      return 'body-timeout';
    case 'ETIMEDOUT':
      return connected ? 'body-timeout' : 'connect-timeout';
    // UND_ERR_RES_CONTENT_LENGTH_MISMATCH: the connection ended before the body its
    // Content-Length announced (undici's parser at EOF).
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return 'reset';
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return 'bad-response';
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'bad-request';
    case 'SY_BODY_TOO_LARGE':
      return 'body-too-large';
    case 'UND_ERR_ABORTED':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return 'local';
    default: {
      const code = (err as { code?: unknown }).code;
      // llhttp's refusals of the response (undici's HTTPParserError, its code HPE_* when it has one).
      if ((typeof code === 'string' && code.startsWith('HPE_')) || err.name === 'HTTPParserError') return 'bad-response';
      return connected ? 'reset' : 'refused';
    }
  }
}

/** The error code a Failure is answered (and counted) with. */
export const FAILURE_CODE: Readonly<Record<Failure, ErrorCode>> = {
  refused: 'SY_UPSTREAM_CONNECT',
  'connect-timeout': 'SY_UPSTREAM_TIMEOUT',
  reset: 'SY_UPSTREAM_RESET',
  'bad-response': 'SY_UPSTREAM_BAD_RESPONSE',
  'headers-timeout': 'SY_UPSTREAM_TIMEOUT',
  'body-timeout': 'SY_UPSTREAM_TIMEOUT',
  'total-timeout': 'SY_UPSTREAM_TIMEOUT',
  'queue-timeout': 'SY_QUEUE_TIMEOUT',
  'bad-request': 'SY_BAD_REQUEST',
  'client-closed': 'SY_CLIENT_CLOSED', // never answered: the client is gone
  'body-too-large': 'SY_BODY_TOO_LARGE',
  local: 'SY_UPSTREAM_CONNECT',
};

/**
 * Failures that count against the endpoint for outlier detection: everything the upstream (or the
 * path to it) caused. Not: the client leaving, the body limit, the total timeout (it spans every
 * attempt), the queue wait (the proxy's own cap), requests undici refused to send, pools closed by a swap.
 */
export function isUpstreamFault(failure: Failure): boolean {
  switch (failure) {
    case 'client-closed':
    case 'body-too-large':
    case 'total-timeout':
    case 'queue-timeout':
    case 'bad-request':
    case 'local':
      return false;
    default:
      return true;
  }
}

/** The `kind` label of switchyard_upstream_timeouts_total, or undefined for other failures. */
export function timeoutKind(failure: Failure): string | undefined {
  switch (failure) {
    case 'connect-timeout': return 'connect';
    case 'headers-timeout': return 'headers';
    case 'body-timeout': return 'body';
    case 'total-timeout': return 'total';
    default: return undefined;
  }
}

/**
 * The retry condition (RETRY_ON_* bit) a failure before the response head matches, 0 for none:
 * a connection that could not be made sent nothing; one that broke after the request was sent
 * may have had an effect (only idempotent requests go again: retry-decision.ts).
 */
export function retryCondition(failure: Failure): number {
  switch (failure) {
    case 'refused':
    case 'connect-timeout':
      return RETRY_ON_CONNECT_FAILURE;
    case 'reset':
      return RETRY_ON_RESET;
    default:
      return 0;
  }
}
