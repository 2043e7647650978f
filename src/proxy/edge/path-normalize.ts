/**
 * Request path rules, applied once per request before matching, so that the path a route is
 * matched on is the path the upstream receives: `/public/../admin` is `/admin` for both, and cannot
 * slip past a route boundary. Apart from dot segments, the path reaches the upstream byte for byte
 * as the client sent it (URL-in-path APIs such as `/fetch/https://example.com/x` depend on it).
 *
 * Rules, applied to the path part only (the query, from the first `?`, passes through unchanged):
 * 1. Percent-encoding is kept as sent: no decoding (`%41` stays `%41`), no re-casing of the hex
 *    (`%2f` stays `%2f`: an encoded slash is never a separator). It is validated: `%` must be
 *    followed by two hex digits, else the request is refused; so are `%00` (NUL truncates paths in
 *    C upstreams) and overlong UTF-8 lead sequences (`%C0%AE`, `%E0%80%AE`, `%F0%80%80%AE`), which
 *    naive decoders turn into `.` or `/`. HAProxy and Envoy (`normalize_path` off) forward
 *    encodings as sent too; matching is therefore on the bytes as sent (`/%61pi` is not `/api`).
 * 2. A raw backslash is refused: some upstreams (Windows, some frameworks) treat it as `/`.
 * 3. Empty segments are kept (`//a///b` stays as is), as Envoy does by default (`merge_slashes`
 *    off): an upstream that gives `//` a meaning gets it.
 * 4. Dot segments are removed (RFC 3986 §5.2.4), for matching and forwarding alike: `/a/./b` →
 *    `/a/b`, `/a/b/../c` → `/a/c`, `/a//../b` → `/a/b` (`..` removes the empty segment before it,
 *    as the RFC's algorithm does). A percent-encoded dot (`%2e`, `%2E`) in a segment made only of
 *    dots counts as a dot (RFC 3986 §6.2.2.2: they are the same URI, and an upstream that decodes
 *    would resolve it after the proxy did not; Envoy's `normalize_path` decodes it too): `/a/%2e%2e/b`
 *    → `/b`. A `%2e` inside any other segment (`/a%2eb`) is kept. A path that climbs above the root
 *    (`/../x`, `/%2e%2e/x`) is refused rather than clamped: no client that means well sends one.
 *    A dot segment with parameters (`/..;/`, `/.;x/`, `/%2e%2e;/`) is refused too: Tomcat and other
 *    servlet containers strip `;...` and would resolve it after the proxy did not.
 * 5. A fragment (`#`) anywhere in the target is refused: request targets never carry one.
 *
 * Hot path: `normalizeRequestTarget` first looks for `%`, `\`, `#` and `/.` (one precompiled regex
 * test); a target without them (nearly all traffic) is returned as is, with no allocation. A
 * target that has them but no dot segment comes back as the same string.
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

/** Any of `%`, `\`, `#`, `/.` anywhere in the target. */
const SUSPECT = /[%\\#]|\/\./;

/**
 * Whether `target` (origin-form: starts with `/`) may need work: its path (before `?`) contains
 * `%`, `\` or `/.`, or the target contains `#`. Conservative (`/.well-known` takes the slow path
 * and comes back unchanged). The common case is one test of a precompiled regex, measured faster
 * than a JS character loop or several `indexOf` calls; the bounds are checked only on a hit.
 */
export function needsNormalization(target: string): boolean {
  if (!SUSPECT.test(target)) return false;
  const q = target.indexOf('?');
  const end = q === -1 ? target.length : q;
  return before(target.indexOf('%'), end)
    || before(target.indexOf('/.'), end)
    || before(target.indexOf('\\'), end)
    || target.indexOf('#') !== -1;
}

function before(index: number, end: number): boolean {
  return index !== -1 && index < end;
}

/**
 * The target to match and forward for an origin-form request target (`/path?query`), or why it is
 * refused. Returns `target` itself (same string) when nothing changes.
 */
export function normalizeRequestTarget(target: string): string | PathRejection {
  if (!needsNormalization(target)) return target;
  if (target.indexOf('#') !== -1) return PATH_REJECTIONS.fragment;
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const normalized = normalizePath(path);
  if (typeof normalized !== 'string') return normalized;
  if (normalized === path) return target;
  return q === -1 ? normalized : normalized + target.slice(q);
}

/** A path (no query, starts with `/`) under the rules in the file comment; the same string when unchanged. */
function normalizePath(path: string): string | PathRejection {
  if (path.indexOf('%') !== -1 || path.indexOf('\\') !== -1) {
    const problem = checkEncoding(path);
    if (problem !== undefined) return problem;
  }
  return removeDotSegments(path);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/** The octet encoded at `i` (`%XX`), or -1 when there is no valid `%XX` there. */
function octetAt(s: string, i: number): number {
  if (i + 2 >= s.length || s.charCodeAt(i) !== PERCENT) return -1;
  const hi = hexValue(s.charCodeAt(i + 1));
  const lo = hexValue(s.charCodeAt(i + 2));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/** What rules 1 and 2 refuse, or undefined. Reads the path, never rewrites it. */
function checkEncoding(path: string): PathRejection | undefined {
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
    i += 2;
  }
  return undefined;
}

/** `dotSegment` results besides 1 (`.`): not a dot segment, `..`, a dot segment with `;` parameters. */
const NOT_DOT = 0;
const TWO_DOTS = 2;
const DOT_PARAMETERS = 3;

/**
 * Whether a segment is `.` or `..`, each dot literal or `%2e`/`%2E` (rule 4), possibly followed by
 * `;` parameters. Three dots or more, or any other character, make an ordinary segment.
 */
function dotSegment(segment: string): number {
  let dots = 0;
  let i = 0;
  const n = segment.length;
  while (i < n && dots < 3) {
    const c = segment.charCodeAt(i);
    if (c === DOT) {
      i += 1;
    } else if (c === PERCENT && segment.charCodeAt(i + 1) === 50 /* 2 */ && (segment.charCodeAt(i + 2) | 0x20) === 101 /* e */) {
      i += 3;
    } else {
      break;
    }
    dots += 1;
  }
  if (dots === 0 || dots > 2) return NOT_DOT;
  if (i === n) return dots;
  return segment.charCodeAt(i) === SEMICOLON ? DOT_PARAMETERS : NOT_DOT;
}

/**
 * Resolve `.` and `..` (RFC 3986 §5.2.4 on an absolute path), keeping empty segments. A trailing
 * `/.` or `/..` leaves a trailing slash, as the RFC's algorithm does. The same string when there is
 * no dot segment.
 */
function removeDotSegments(path: string): string | PathRejection {
  if (!mayHaveDotSegment(path)) return path;
  const parts = path.split('/');
  const out: string[] = [];
  let changed = false;
  // parts[0] is the empty string before the leading slash.
  for (let i = 1; i < parts.length; i++) {
    const segment = parts[i]!;
    const kind = dotSegment(segment);
    if (kind === NOT_DOT) {
      out.push(segment);
      continue;
    }
    if (kind === DOT_PARAMETERS) return PATH_REJECTIONS.dotParameters;
    changed = true;
    if (kind === TWO_DOTS) {
      if (out.length === 0) return PATH_REJECTIONS.aboveRoot;
      out.pop();
    }
    if (i === parts.length - 1) out.push('');
  }
  if (!changed) return path;
  return out.length === 0 ? '/' : `/${out.join('/')}`;
}

/** Whether some segment starts with `.` or `%2e`/`%2E` (a possible dot segment). */
function mayHaveDotSegment(path: string): boolean {
  if (path.indexOf('/.') !== -1) return true;
  for (let i = path.indexOf('/%'); i !== -1; i = path.indexOf('/%', i + 2)) {
    if (path.charCodeAt(i + 2) === 50 /* 2 */ && (path.charCodeAt(i + 3) | 0x20) === 101 /* e */) return true;
  }
  return false;
}
