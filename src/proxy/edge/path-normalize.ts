/**
 * Request path normalisation, done once per request before matching, so that the path a route is
 * matched on is the path the upstream receives: `/public/../admin` is `/admin` for both, and cannot
 * slip past a route boundary.
 *
 * Rules, applied to the path part only (the query, from the first `?`, passes through unchanged):
 * 1. Percent-encoding (RFC 3986 §6.2.2): `%XX` with two hex digits, else rejected. Unreserved
 *    characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%41` → `A`, `%2e` → `.`); every other octet
 *    stays encoded with upper-case hex (`%2f` → `%2F`: an encoded slash never becomes a separator).
 *    Rejected: `%00` (NUL truncates paths in C upstreams) and overlong UTF-8 lead sequences
 *    (`%C0%AE`, `%E0%80%AE`, `%F0%80%80%AE`), which naive decoders turn into `.` or `/`.
 * 2. A raw backslash is rejected: some upstreams (Windows, some frameworks) treat it as `/`.
 * 3. Repeated slashes collapse (`//a///b` → `/a/b`).
 * 4. Dot segments are removed (RFC 3986 §5.2.4): `/a/./b` → `/a/b`, `/a/b/../c` → `/a/c`; a path
 *    that climbs above the root (`/../x`) is rejected rather than clamped, because no client that
 *    means well sends one. A dot segment with parameters (`/..;/`, `/.;x/`) is rejected too: Tomcat
 *    and other servlet containers strip `;...` and would resolve it after the proxy did not.
 * 5. A fragment (`#`) anywhere in the target is rejected: request targets never carry one.
 *
 * Hot path: `normalizeRequestTarget` first looks for `%`, `\`, `#`, `//` and `/.` (one precompiled
 * regex test); a target without them (nearly all traffic) is returned as is, with no allocation.
 */

const DOT = 46; // '.'
const PERCENT = 37; // '%'
const BACKSLASH = 92; // '\'
const SEMICOLON = 59; // ';'

/** Why a request path was refused. `message` is safe to send to the client (it echoes nothing). */
export interface PathRejection {
  readonly reason: 'percent-encoding' | 'nul' | 'overlong-utf8' | 'backslash' | 'above-root' | 'dot-segment-parameters' | 'fragment';
  readonly message: string;
}

function rejection(reason: PathRejection['reason'], message: string): PathRejection {
  return Object.freeze({ reason, message });
}

export const PATH_REJECTIONS = Object.freeze({
  percentEncoding: rejection('percent-encoding', 'the request path has invalid percent-encoding'),
  nul: rejection('nul', 'the request path contains an encoded NUL'),
  overlong: rejection('overlong-utf8', 'the request path contains overlong UTF-8'),
  backslash: rejection('backslash', 'the request path contains a backslash'),
  aboveRoot: rejection('above-root', 'the request path climbs above the root'),
  dotParameters: rejection('dot-segment-parameters', 'the request path has a dot segment with parameters'),
  fragment: rejection('fragment', 'the request target contains a fragment'),
});

/** Any of `%`, `\`, `#`, `//`, `/.` anywhere in the target. */
const SUSPECT = /[%\\#]|\/[./]/;

/**
 * Whether `target` (origin-form: starts with `/`) may need work: its path (before `?`) contains
 * `%`, `\`, `//` or `/.`, or the target contains `#`. Conservative (`/.well-known` takes the slow
 * path and comes back unchanged). The common case is one test of a precompiled regex, measured
 * faster than a JS character loop or five `indexOf` calls; the bounds are checked only on a hit.
 */
export function needsNormalization(target: string): boolean {
  if (!SUSPECT.test(target)) return false;
  const q = target.indexOf('?');
  const end = q === -1 ? target.length : q;
  return before(target.indexOf('%'), end)
    || before(target.indexOf('/.'), end)
    || before(target.indexOf('//'), end)
    || before(target.indexOf('\\'), end)
    || target.indexOf('#') !== -1;
}

function before(index: number, end: number): boolean {
  return index !== -1 && index < end;
}

/**
 * The normalised form of an origin-form request target (`/path?query`), or why it is refused.
 * Returns `target` itself (same string) when nothing changes.
 */
export function normalizeRequestTarget(target: string): string | PathRejection {
  if (!needsNormalization(target)) return target;
  if (target.indexOf('#') !== -1) return PATH_REJECTIONS.fragment;
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const normalized = normalizePath(path);
  if (typeof normalized !== 'string') return normalized;
  if (q === -1) return normalized;
  return normalized === path ? target : normalized + target.slice(q);
}

/** Normalise a path (no query, starts with `/`): the rules in the file comment. */
export function normalizePath(path: string): string | PathRejection {
  let decoded = path;
  if (path.indexOf('%') !== -1 || path.indexOf('\\') !== -1) {
    const result = decodeUnreserved(path);
    if (typeof result !== 'string') return result;
    decoded = result;
  }
  return removeDotSegments(decoded);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

function isUnreserved(b: number): boolean {
  return (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b === 45 || b === 46 || b === 95 || b === 126;
}

/** The octet encoded at `i` (`%XX`), or -1 when there is no valid `%XX` there. */
function octetAt(s: string, i: number): number {
  if (i + 2 >= s.length || s.charCodeAt(i) !== PERCENT) return -1;
  const hi = hexValue(s.charCodeAt(i + 1));
  const lo = hexValue(s.charCodeAt(i + 2));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

const HEX = '0123456789ABCDEF';

/** Decode unreserved octets, upper-case the hex of the others, reject what rule 1 and 2 reject. */
function decodeUnreserved(path: string): string | PathRejection {
  let out = '';
  let from = 0;
  const n = path.length;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c === BACKSLASH) return PATH_REJECTIONS.backslash;
    if (c !== PERCENT) continue;
    const b = octetAt(path, i);
    if (b < 0) return PATH_REJECTIONS.percentEncoding;
    if (b === 0) return PATH_REJECTIONS.nul;
    if (b === 0xc0 || b === 0xc1) return PATH_REJECTIONS.overlong;
    if (b === 0xe0 || b === 0xf0) {
      // E0 80..9F and F0 80..8F start overlong 3- and 4-byte forms.
      const next = octetAt(path, i + 3);
      if (next >= 0x80 && next <= (b === 0xe0 ? 0x9f : 0x8f)) return PATH_REJECTIONS.overlong;
    }
    out += path.slice(from, i);
    out += isUnreserved(b) ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
    from = i + 3;
    i += 2;
  }
  return from === 0 ? path : out + path.slice(from);
}

/**
 * Collapse empty segments and resolve `.` and `..` (RFC 3986 §5.2.4 on an absolute path). A
 * trailing `/`, `/.` or `/..` leaves a trailing slash, as the RFC's algorithm does.
 */
function removeDotSegments(path: string): string | PathRejection {
  if (!hasWork(path)) return path;
  const parts = path.split('/');
  const out: string[] = [];
  let trailingSlash = false;
  // parts[0] is the empty string before the leading slash.
  for (let i = 1; i < parts.length; i++) {
    const segment = parts[i]!;
    const last = i === parts.length - 1;
    if (segment === '' || segment === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (segment === '..') {
      if (out.length === 0) return PATH_REJECTIONS.aboveRoot;
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    if (segment.charCodeAt(0) === DOT && isDotWithParameters(segment)) return PATH_REJECTIONS.dotParameters;
    out.push(segment);
  }
  if (out.length === 0) return '/';
  const joined = `/${out.join('/')}`;
  return trailingSlash ? `${joined}/` : joined;
}

/** `.;x` or `..;x`: a dot segment once path parameters are stripped. */
function isDotWithParameters(segment: string): boolean {
  return segment.charCodeAt(1) === SEMICOLON || (segment.charCodeAt(1) === DOT && segment.charCodeAt(2) === SEMICOLON);
}

/** Whether the path (already decoded) has an empty segment or a segment starting with `.`. */
function hasWork(path: string): boolean {
  return path.indexOf('//') !== -1 || path.indexOf('/.') !== -1;
}
