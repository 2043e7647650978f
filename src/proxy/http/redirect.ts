import { STATUS_CODES } from 'node:http';
import { hostKey } from '../../model/host.js';
import type { RouteRedirect } from '../../model/types.js';

/**
 * Redirect routes (`redirect: {to, status, keepQuery}`): the proxy answers by itself, no upstream.
 * `to` is split once, when the runtime is built, into literal text and two placeholders:
 * - `{path}`: the request's path without its query, as received after the edge's normalisation
 *   (dot segments resolved, percent-encodings kept), before any rewrite of the route;
 * - `{host}`: the request's host name, lower-case, without port and trailing dot (nginx's `$host`);
 *   write the port in `to` when one is needed. A request without Host on a `to` that uses
 *   `{host}` gets 400 SY_BAD_REQUEST.
 * `keepQuery` appends the request's query: `?query`, or `&query` when `to` has a query of its own;
 * before a `#fragment` of `to`. The answer: the configured status, `Location`, `Content-Length: 0`
 * and `X-Request-Id` (no Cache-Control, so a 301/308 may be cached as browsers do for nginx's
 * `return 301`). A Location with a control character (CR, LF, ...) is never sent: 400 instead.
 *
 * Open-redirect guard: a Location that would start with `/` followed by more slashes or
 * backslashes (`//evil.com`, `/\evil.com`, `///evil.com`) is a protocol-relative reference that
 * browsers follow to another site (WHATWG URL treats `\` as `/`). With `to: "/{path}"` (or
 * `{path}` alone, what Fabio's `redirect=...,/$path` becomes) a request for `/evil.com/x` or
 * `//evil.com` would produce one, the trap nginx's `return 302 /$uri` is known for. The run of
 * slashes and backslashes after the first character is collapsed to that single `/`, so the
 * redirect stays on the same site (`/evil.com/x`). Absolute `to` (`https://example.com{path}`,
 * `https://{host}{path}`) is untouched: after an authority `//` in the path is only a path.
 */
const PATH = 0;
const SLASH = 47;
const BACKSLASH = 92;
const HOST = 1;

export class RedirectTemplate {
  readonly status: number;
  private readonly parts: readonly (string | typeof PATH | typeof HOST)[];
  private readonly keepQuery: boolean;
  private readonly ownQuery: boolean;

  constructor(redirect: RouteRedirect) {
    this.status = redirect.status;
    this.keepQuery = redirect.keepQuery;
    const to = redirect.to;
    const parts: (string | typeof PATH | typeof HOST)[] = [];
    let at = 0;
    for (;;) {
      const p = to.indexOf('{path}', at);
      const h = to.indexOf('{host}', at);
      const next = p === -1 ? h : h === -1 ? p : Math.min(p, h);
      if (next === -1) break;
      if (next > at) parts.push(to.slice(at, next));
      parts.push(next === p ? PATH : HOST);
      at = next + 6;
    }
    if (at < to.length) parts.push(to.slice(at));
    this.parts = parts;
    this.ownQuery = to.includes('?');
  }

  /**
   * The Location for a request to `url` (origin-form) with Host `host`; undefined when it cannot
   * be made (no Host for `{host}`) or would carry a character a header value must not.
   */
  location(url: string, host: string | undefined): string | undefined {
    const q = url.indexOf('?');
    let out = '';
    for (const part of this.parts) {
      if (part === PATH) out += q === -1 ? url : url.slice(0, q);
      else if (part === HOST) {
        if (host === undefined || host === '') return undefined;
        out += hostKey(host);
      } else out += part;
    }
    if (this.keepQuery && q !== -1 && q + 1 < url.length) {
      const query = `${this.ownQuery ? '&' : '?'}${url.slice(q + 1)}`;
      const hash = out.indexOf('#');
      out = hash === -1 ? out + query : out.slice(0, hash) + query + out.slice(hash);
    }
    if (out.charCodeAt(0) === SLASH) out = sameSite(out);
    for (let i = 0; i < out.length; i++) {
      const c = out.charCodeAt(i);
      if (c <= 32 || c === 127 || c > 255) return undefined;
    }
    return out;
  }
}

/** `location` (starting with `/`) with the slashes and backslashes after its first `/` collapsed into it (file header). */
function sameSite(location: string): string {
  let i = 1;
  for (let c = location.charCodeAt(i); c === SLASH || c === BACKSLASH; c = location.charCodeAt(++i));
  return i === 1 ? location : `/${location.slice(i)}`;
}

/** A complete raw redirect answer, for upgrade requests (the tunnel answers on the socket). */
export function rawRedirectAnswer(status: number, location: string, requestId: string): Buffer {
  return Buffer.from(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Redirect'}\r\nlocation: ${location}\r\ncontent-length: 0\r\n`
    + `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n`, 'latin1');
}
