/**
 * Request conditions of a route (`match.methods`, `match.headers`, `match.query`), evaluated on the
 * request hot path by the lookup index (route-index.ts) and, verdict by verdict, by explanations
 * (explain.ts). One implementation, so what `/api/match` says is what the proxy does.
 *
 * Rules (every listed condition must hold):
 * - Method: exact, case-sensitive comparison with the request method, as HTTP defines methods,
 *   except that a list with `GET` also takes `HEAD` (HAProxy's `METH_GET` and nginx's
 *   `limit_except GET` do the same: HEAD is GET without the body, RFC 9110 §9.3.2, and a route
 *   that serves GET but 404s HEAD breaks link checkers and health probes). The configured list is
 *   kept as written (what /api/match shows); HEAD is decided here, at comparison time, with no
 *   allocation. No request facts (a lookup without `request`) = no method.
 * - Header: the name compared case-insensitively over every field of `rawHeaders`; the value exactly
 *   (case-sensitive, as node received it: surrounding whitespace already trimmed). `*` = the header
 *   is present with any value (so a condition cannot ask for the literal value `*`). A request with
 *   several fields of that name satisfies the condition when any one of them has the value (no
 *   joining with commas).
 * - Query parameter: read from the request target after the first `?` (up to a `#`), split on `&`
 *   only (not `;`: dropped from the WHATWG URL standard and from Go's `ParseQuery`), each part
 *   `name=value` or `name` (value empty). Name and value compare as they read once decoded the way
 *   Traefik's `Query` matcher (Go's `url.ParseQuery`) reads them: `+` is a space, `%XX` escapes are
 *   UTF-8 bytes. A part whose escapes are malformed (`%zz`, a `%` at the end) or not UTF-8 counts
 *   as absent, as Go drops it. `*` = present, with any value (also none). Several parts with one
 *   name: any matching value satisfies the condition. Decoding happens only for a part that has a
 *   `%` or `+` and whose raw length allows it to equal the wanted text; other parts are compared in
 *   place, without allocation.
 *
 * No regex, no closure, no allocation unless a query part needs decoding.
 */
import type { MatchConditions, RequestFacts } from './types.js';

const QUESTION = 63; // '?'
const EQUALS = 61; // '='
const PERCENT = 37; // '%'
const PLUS = 43; // '+'
const UPPER_A = 65;
const UPPER_Z = 90;

/** The value of a header or query condition that asks only for presence. */
export const PRESENT = '*';

/** Whether every condition holds. `end` = pathEnd(path): where the path part stops (`?`, `#` or the end). */
export function conditionsHold(c: MatchConditions, path: string, end: number, request: RequestFacts | undefined): boolean {
  if (c.methods.length > 0 && !methodHolds(c.methods, request?.method)) return false;
  const headers = c.headers;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    if (!headerHolds(name, value, request?.rawHeaders)) return false;
  }
  const query = c.query;
  for (let i = 0; i < query.length; i++) {
    const [name, value] = query[i]!;
    if (!queryHolds(name, value, path, end)) return false;
  }
  return true;
}

export function methodHolds(methods: readonly string[], method: string | undefined): boolean {
  if (methods.length === 0) return true;
  if (method === undefined) return false;
  const head = method === 'HEAD';
  for (let i = 0; i < methods.length; i++) {
    const m = methods[i];
    if (m === method || (head && m === 'GET')) return true;
  }
  return false;
}

/** `name` lower-case. */
export function headerHolds(name: string, value: string, raw: readonly string[] | undefined): boolean {
  if (raw === undefined) return false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (sameLowerName(raw[i]!, name) && (value === PRESENT || raw[i + 1] === value)) return true;
  }
  return false;
}

/** The values of header `name` (lower-case) in `raw`, in order: what explanations show. */
export function headerValues(name: string, raw: readonly string[] | undefined): string[] {
  const out: string[] = [];
  if (raw === undefined) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) if (sameLowerName(raw[i]!, name)) out.push(raw[i + 1]!);
  return out;
}

/** `end` = pathEnd(path). */
export function queryHolds(name: string, value: string, path: string, end: number): boolean {
  if (path.charCodeAt(end) !== QUESTION) return false;
  const stop = queryStop(path, end);
  let at = end + 1;
  while (at <= stop) {
    let next = path.indexOf('&', at);
    if (next < 0 || next > stop) next = stop;
    if (next > at && partHolds(path, at, next, name, value)) return true;
    at = next + 1;
  }
  return false;
}

/** The decoded values of query parameter `name`, in order (parts that do not decode are left out): what explanations show. */
export function queryValues(name: string, path: string, end: number): string[] {
  const out: string[] = [];
  if (path.charCodeAt(end) !== QUESTION) return out;
  const stop = queryStop(path, end);
  let at = end + 1;
  while (at <= stop) {
    let next = path.indexOf('&', at);
    if (next < 0 || next > stop) next = stop;
    if (next > at) {
      const eq = equalsIn(path, at, next);
      const rawName = path.slice(at, eq);
      if (decodeQueryPart(rawName) === name) {
        const rawValue = eq === next ? '' : path.slice(eq + 1, next);
        const decoded = decodeQueryPart(rawValue);
        if (decoded !== undefined) out.push(decoded);
      }
    }
    at = next + 1;
  }
  return out;
}

/** Index just past the query: the `#` after it, or the end. */
function queryStop(path: string, end: number): number {
  const hash = path.indexOf('#', end + 1);
  return hash < 0 ? path.length : hash;
}

function equalsIn(path: string, from: number, to: number): number {
  for (let i = from; i < to; i++) if (path.charCodeAt(i) === EQUALS) return i;
  return to;
}

/** Whether the part path[from, to) is parameter `name` with `value` (or present, for `*`). */
function partHolds(path: string, from: number, to: number, name: string, value: string): boolean {
  const eq = equalsIn(path, from, to);
  if (!rangeReads(path, from, eq, name)) return false;
  if (value === PRESENT) return true;
  return eq === to ? value === '' : rangeReads(path, eq + 1, to, value);
}

/** Whether path[from, to), decoded (see file header), is `want`; allocates only to decode. */
function rangeReads(path: string, from: number, to: number, want: string): boolean {
  const length = to - from;
  let encoded = false;
  for (let i = from; i < to; i++) {
    const c = path.charCodeAt(i);
    if (c === PERCENT || c === PLUS) {
      encoded = true;
      break;
    }
  }
  if (!encoded) return length === want.length && path.startsWith(want, from);
  // Decoding never lengthens text, and one UTF-16 unit takes at most 9 raw characters (%XX%XX%XX).
  if (length < want.length || length > want.length * 9) return false;
  return decodeQueryPart(path.slice(from, to)) === want;
}

/** `+` → space, then percent-decoding as UTF-8; undefined when malformed (file header). */
export function decodeQueryPart(raw: string): string | undefined {
  const spaced = raw.includes('+') ? raw.replaceAll('+', ' ') : raw;
  let percent = spaced.indexOf('%');
  if (percent < 0) return spaced;
  // Check the escapes before decodeURIComponent: it throws on malformed ones, and a throw per part
  // is what a hostile query of many `%` parts would cost.
  while (percent >= 0) {
    if (!isHex(spaced.charCodeAt(percent + 1)) || !isHex(spaced.charCodeAt(percent + 2))) return undefined;
    percent = spaced.indexOf('%', percent + 3);
  }
  try {
    return decodeURIComponent(spaced);
  } catch {
    return undefined; // well-formed escapes that are not UTF-8 (`%ff`)
  }
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** `raw` (any case) equals `lower` (lower-case ASCII token), without allocating. */
function sameLowerName(raw: string, lower: string): boolean {
  if (raw.length !== lower.length) return false;
  for (let i = 0; i < raw.length; i++) {
    let c = raw.charCodeAt(i);
    if (c >= UPPER_A && c <= UPPER_Z) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}
