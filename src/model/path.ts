/**
 * Path prefixes: normalisation, validation and segment-boundary matching. (Stripping runs in the
 * proxy: http/rewrite.ts `PrefixRewrite`, on the prefix normalised here.)
 *
 * Invariants of a normalised prefix: it starts with `/`; it does not end with `/` unless it is the
 * root `/` itself; it has no empty segment (`//`), no `.`/`..` segment, no `?`, `#`, whitespace or
 * control character. Matching is on the raw request path (no percent-decoding, case-sensitive), as
 * Fabio and Traefik do.
 *
 * `matchesPrefix` runs per request: no regex, no allocation.
 */

const SLASH = 47; // '/'
const QUESTION = 63; // '?'
const HASH = 35; // '#'

/**
 * `users` → `/users`, `/users/` → `/users`, `` and `///` → `/`. Only adds the leading slash and
 * drops trailing ones; everything else is left for `prefixProblem` to judge.
 */
export function normalizePrefix(prefix: string): string {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === SLASH) end--;
  if (end === 0) return '/';
  const body = end === prefix.length ? prefix : prefix.slice(0, end);
  return body.charCodeAt(0) === SLASH ? body : `/${body}`;
}

/**
 * Why `prefix` (normalised first) cannot be used as a route path or strip prefix, or undefined.
 * Decision: empty segments are rejected rather than collapsed: `/a//b` is almost certainly a typo,
 * and a prefix that silently differs from what was written is harder to debug than an error.
 */
export function prefixProblem(prefix: string): string | undefined {
  const p = normalizePrefix(prefix);
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c <= 32 || c === 127) return `path prefix "${prefix}" contains whitespace or a control character`;
    if (c === QUESTION || c === HASH) return `path prefix "${prefix}" contains "?" or "#"`;
  }
  if (p.includes('//')) return `path prefix "${prefix}" has an empty segment`;
  for (const segment of p.split('/')) {
    if (segment === '.' || segment === '..') return `path prefix "${prefix}" has a "${segment}" segment`;
  }
  return undefined;
}

/** Index where the path part of a request target ends: the first `?` or `#`, else its length. */
export function pathEnd(path: string): number {
  const q = path.indexOf('?');
  const h = path.indexOf('#');
  if (q < 0) return h < 0 ? path.length : h;
  return h < 0 || q < h ? q : h;
}

/**
 * Whether a request path (query allowed) falls under a normalised prefix on a segment boundary:
 * `/users` matches `/users`, `/users/`, `/users/1`, `/users?x=1`, not `/usersx`. The root matches
 * every path that starts with `/`.
 */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (path.charCodeAt(0) !== SLASH) return false;
  if (prefix === '/') return true;
  const n = prefix.length;
  if (n > pathEnd(path) || !path.startsWith(prefix)) return false;
  if (path.length === n) return true;
  const c = path.charCodeAt(n);
  return c === SLASH || c === QUESTION || c === HASH;
}
