import { createHash } from 'node:crypto';
import type { StickySession } from '../../model/types.js';
import type { RuntimeDestination, RuntimeEndpoint } from '../runtime/runtime.js';

/**
 * Session affinity by cookie (`sticky: {cookie, ttlMs}`), HAProxy's `cookie ... insert` and
 * Traefik's sticky cookie in one shape.
 *
 * The cookie's value is an opaque id of the endpoint: the first 16 characters of
 * base64url(sha256(endpoint id)), the id being `service/instanceId`. It never shows the address,
 * and it is the same in every worker process and after a restart, so any process can honour a
 * cookie another one set. The id → endpoint map is built with the RuntimeRoute (only for routes
 * that changed in a swap); it holds the route's balancer items, i.e. endpoints of destinations with
 * weight > 0 that themselves have weight > 0 (draining and unhealthy endpoints never are).
 *
 * Per request: the cookie is looked for in the request's `Cookie` fields (several fields, several
 * cookies per field, spaces, a quoted value; no regex, one pass). An id that names a balancer item
 * that is not ejected picks that endpoint, bypassing the balancer; anything else (no cookie, an
 * unknown or garbage value, an endpoint that left the table, was drained or ejected) gets the
 * normal weighted pick, and the answer carries `Set-Cookie` naming the endpoint that answered
 * (after a retry moved the request, that one). New sessions therefore follow the weights. The
 * cookie is set with `Path=<route path>`, `Max-Age=<ttl in s>` (none when ttlMs is 0: a session
 * cookie), `HttpOnly`, `SameSite=Lax`, and `Secure` when the request came over TLS. It is not
 * refreshed on each answer (its lifetime counts from when it was set, as Traefik's).
 */

/** The cookie value naming the endpoint `id`. */
export function stickyId(id: string): string {
  return createHash('sha256').update(id).digest('base64url').slice(0, 16);
}

/** RFC 6265 cookie-name (a token). */
function cookieNameValid(name: string): boolean {
  if (name === '') return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 32 || c >= 127 || '()<>@,;:\\"/[]?={}'.includes(name[i]!)) return false;
  }
  return true;
}

/** A Path attribute value: no `;` and no control character (else the cookie goes with `/`). */
function cookiePath(path: string): string {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 33 || c === 59 || c >= 127) return '/';
  }
  return path === '' ? '/' : path;
}

/** One endpoint as the cookie names it, with its Set-Cookie values made once. */
interface StickyEntry {
  readonly endpoint: RuntimeEndpoint;
  readonly plain: string;
  readonly secure: string;
}

export class StickySessions {
  readonly cookie: string;
  private readonly byId = new Map<string, StickyEntry>();
  private readonly byEndpoint = new Map<RuntimeEndpoint, StickyEntry>();

  constructor(sticky: StickySession, routePath: string, destinations: readonly RuntimeDestination[]) {
    this.cookie = sticky.cookie;
    const maxAge = sticky.ttlMs > 0 ? `; Max-Age=${Math.max(1, Math.round(sticky.ttlMs / 1000))}` : '';
    const attributes = `; Path=${cookiePath(routePath)}${maxAge}; HttpOnly; SameSite=Lax`;
    for (const destination of destinations) {
      for (const endpoint of destination.balancer.items) {
        const id = stickyId(endpoint.id);
        const plain = `${sticky.cookie}=${id}${attributes}`;
        const entry: StickyEntry = { endpoint, plain, secure: `${plain}; Secure` };
        this.byId.set(id, entry);
        this.byEndpoint.set(endpoint, entry);
      }
    }
  }

  /**
   * The endpoint the request's cookie names, when it can take the request (a balancer item of
   * this route, not ejected); undefined otherwise. `headers`: a flat list with lower-case names.
   */
  find(headers: readonly string[]): RuntimeEndpoint | undefined {
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] !== 'cookie') continue;
      const endpoint = this.inField(headers[i + 1]!);
      if (endpoint !== undefined) return endpoint;
    }
    return undefined;
  }

  /** `Set-Cookie` naming `endpoint` (undefined for an endpoint not of this route). */
  setCookie(endpoint: RuntimeEndpoint, secure: boolean): string | undefined {
    const entry = this.byEndpoint.get(endpoint);
    return entry === undefined ? undefined : secure ? entry.secure : entry.plain;
  }

  /** The first cookie of this name in one `Cookie` field value that names a usable endpoint. */
  private inField(value: string): RuntimeEndpoint | undefined {
    const name = this.cookie;
    const n = value.length;
    let at = 0;
    while (at < n) {
      while (at < n && (value.charCodeAt(at) === 32 || value.charCodeAt(at) === 9)) at++;
      let end = value.indexOf(';', at);
      if (end === -1) end = n;
      if (value.startsWith(name, at)) {
        let eq = at + name.length;
        while (eq < end && value.charCodeAt(eq) === 32) eq++;
        if (eq < end && value.charCodeAt(eq) === 61 /* = */) {
          const endpoint = this.usable(value, eq + 1, end);
          if (endpoint !== undefined) return endpoint;
        }
      }
      at = end + 1;
    }
    return undefined;
  }

  /** The endpoint for the cookie value in value[from, to) (trimmed, quotes removed), if usable. */
  private usable(value: string, from: number, to: number): RuntimeEndpoint | undefined {
    while (from < to && value.charCodeAt(from) === 32) from++;
    while (to > from && (value.charCodeAt(to - 1) === 32 || value.charCodeAt(to - 1) === 9)) to--;
    if (to - from >= 2 && value.charCodeAt(from) === 34 && value.charCodeAt(to - 1) === 34) {
      from++;
      to--;
    }
    // Our ids are 16 characters: anything else is not one (and is never sliced).
    if (to - from !== 16) return undefined;
    const entry = this.byId.get(value.slice(from, to));
    if (entry === undefined || entry.endpoint.health.ejected) return undefined;
    return entry.endpoint;
  }
}

/** The sticky sessions of a route, or undefined when it has none (or an unusable cookie name). */
export function stickyOf(sticky: StickySession | undefined, routePath: string, destinations: readonly RuntimeDestination[]): StickySessions | undefined {
  return sticky === undefined || !cookieNameValid(sticky.cookie) ? undefined : new StickySessions(sticky, routePath, destinations);
}
