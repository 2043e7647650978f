import { RETRY_ON_502, RETRY_ON_503, RETRY_ON_504, RETRY_ON_CONNECT_FAILURE, type RuntimeEndpoint, type RuntimeRoute } from '../runtime/runtime.js';

/**
 * The retry decision plain exchanges and upgrade tunnels share. An attempt that failed with
 * `condition` (a RETRY_ON_* bit) goes again when the route's policy lists the condition and has
 * attempts left, and:
 * - after a connect failure (nothing was sent), any method whose body can be sent again in full;
 * - after a reset or a 502/503/504 (the request reached the upstream), only an idempotent method,
 *   and one with a body only when the whole body was kept (BodyTap, `retries.bufferBytes`).
 * The endpoint is another one, not ejected, not tried yet, and the retry budget must allow it.
 */
export function retryTarget(
  route: RuntimeRoute,
  condition: number,
  attempts: number,
  method: string | undefined,
  bodyResendable: boolean,
  tried: RuntimeEndpoint[],
  failed: RuntimeEndpoint,
): RuntimeEndpoint | undefined {
  if ((route.retryOn & condition) === 0 || attempts > route.retryCount || !bodyResendable) return undefined;
  if (condition !== RETRY_ON_CONNECT_FAILURE && !isIdempotent(method)) return undefined;
  return route.retryEndpoint(tried, failed, performance.now());
}

/** The RETRY_ON_* bit of a 502/503/504 answer (0 for any other status). */
export function statusCondition(status: number): number {
  switch (status) {
    case 502: return RETRY_ON_502;
    case 503: return RETRY_ON_503;
    case 504: return RETRY_ON_504;
    default: return 0;
  }
}

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
export function isIdempotent(method: string | undefined): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'PUT':
    case 'DELETE':
    case 'TRACE':
      return true;
    default:
      return false;
  }
}
