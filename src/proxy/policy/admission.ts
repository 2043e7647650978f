import type { Socket } from 'node:net';
import type { ErrorCode } from '../../errors.js';
import { clientAddress } from '../http/headers.js';
import type { RuntimeRoute } from '../runtime/runtime.js';

/**
 * The admission checks plain requests (http/exchange.ts) and upgrades (upgrade/tunnel.ts) share,
 * in order: the redirect of plain HTTP to HTTPS, the rate limit, the body size by Content-Length,
 * the concurrency limit. Each refusal is counted in the route's metrics here; each caller answers
 * the verdict its own way (a ServerResponse or raw bytes on a socket; `refusalCode` names the error).
 * Called only for routes with an admission policy (`route.guarded`); no allocation on this path.
 */
export const ADMITTED = 0;
/** The route redirects plain HTTP and this connection is plain: answer 308 (httpsLocation). */
export const REDIRECT = -1;
/** The route's concurrency limit is reached: 503 SY_OVERLOADED. */
export const OVERLOADED = -2;
/** The Content-Length is over the route's `maxBodyBytes`: 413 SY_BODY_TOO_LARGE. */
export const TOO_LARGE = -3;

/**
 * ADMITTED, REDIRECT, OVERLOADED, TOO_LARGE, or, when the rate limit refuses the request, the
 * seconds the client should wait before trying again (> 0, for Retry-After). `contentLength`: the
 * request's declared body size, -1 when none is declared.
 */
export function admission(route: RuntimeRoute, socket: Socket, forwardedFor: string | undefined, httpsPort: number | undefined, now: number, contentLength: number): number {
  if (route.redirectToHttps && httpsPort !== undefined && httpsPort > 0 && (socket as { encrypted?: boolean }).encrypted !== true) return REDIRECT;
  const limiter = route.limiter;
  if (limiter !== undefined) {
    const wait = limiter.take(limiter.perClient ? rateLimitKey(forwardedFor, socket.remoteAddress) : '', now);
    if (wait > 0) {
      route.metrics.rateLimited();
      return wait;
    }
  }
  if (route.maxBody >= 0 && contentLength > route.maxBody) {
    route.metrics.bodyTooLarge();
    return TOO_LARGE;
  }
  // The state's share of the limit: route.maxConcurrent itself in a single process (route-state.ts).
  const state = route.state;
  if (state.inflight >= state.maxConcurrent) {
    route.metrics.overloaded();
    return OVERLOADED;
  }
  return ADMITTED;
}

/** The error a refusing verdict (anything but ADMITTED and REDIRECT) is answered with. */
export function refusalCode(verdict: number): ErrorCode {
  return verdict > 0 ? 'SY_RATE_LIMITED' : verdict === TOO_LARGE ? 'SY_BODY_TOO_LARGE' : 'SY_OVERLOADED';
}

/**
 * The client a per-client rate limit counts: the peer address, or, when the peer is a trusted proxy
 * (the request guard removes X-Forwarded-For from everyone else), the address that proxy appended
 * last to X-Forwarded-For.
 */
export function rateLimitKey(forwardedFor: string | undefined, remoteAddress: string | undefined): string {
  if (forwardedFor === undefined) return clientAddress(remoteAddress);
  const comma = forwardedFor.lastIndexOf(',');
  return (comma === -1 ? forwardedFor : forwardedFor.slice(comma + 1)).trim();
}

/** `https://<host without port>[:port]<path>`, or undefined without a usable Host. */
export function httpsLocation(host: string | undefined, httpsPort: number, path: string): string | undefined {
  if (host === undefined || host === '') return undefined;
  let name = host;
  if (name.charCodeAt(0) === 91 /* [ */) {
    const end = name.indexOf(']');
    if (end === -1) return undefined;
    name = name.slice(0, end + 1);
  } else {
    const colon = name.indexOf(':');
    if (colon !== -1) name = name.slice(0, colon);
  }
  if (name === '' || name === '[]') return undefined;
  return `https://${name}${httpsPort === 443 ? '' : `:${httpsPort}`}${path}`;
}
