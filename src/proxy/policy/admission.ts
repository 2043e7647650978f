import type { Socket } from 'node:net';
import { clientAddress } from '../http/headers.js';
import type { RuntimeRoute } from '../runtime/runtime.js';

/**
 * The admission checks that plain requests (forward.ts) and upgrades (websocket.ts) share, in order:
 * the redirect of plain HTTP to HTTPS, then the rate limit. Each caller answers the verdict its own
 * way (a ServerResponse or raw bytes on a socket) and adds its own checks (body size, concurrency).
 * Called only for routes with an admission policy (`route.guarded`); no allocation on this path.
 */
export const ADMITTED = 0;
/** The route redirects plain HTTP and this connection is plain: answer 308 (httpsLocation). */
export const REDIRECT = -1;

/**
 * ADMITTED, REDIRECT, or, when the rate limit refuses the request, the seconds the client should
 * wait before trying again (> 0, for Retry-After; the refusal is counted in the route's metrics).
 */
export function admission(route: RuntimeRoute, socket: Socket, forwardedFor: string | undefined, httpsPort: number | undefined, now: number): number {
  if (route.redirectToHttps && httpsPort !== undefined && httpsPort > 0 && (socket as { encrypted?: boolean }).encrypted !== true) return REDIRECT;
  const limiter = route.limiter;
  if (limiter !== undefined) {
    const wait = limiter.take(limiter.perClient ? rateLimitKey(forwardedFor, socket.remoteAddress) : '', now);
    if (wait > 0) {
      route.metrics.rateLimited();
      return wait;
    }
  }
  return ADMITTED;
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
