import { util } from 'undici';
import { reservedHeaderReason } from '../../model/route-options.js';

/**
 * Header rewriting for both directions. Names are lower-cased through undici's table of well-known
 * header names (no allocation for common names); the outgoing lists are flat `[name, value, ...]`
 * arrays, the form both undici's dispatch and `res.writeHead` take without further conversion.
 */
const lowerName = util.headerNameToString;

/** What the proxy needs from the client's request head, filled in one pass over `rawHeaders`. */
export interface RequestHead {
  /** Headers to forward (hop-by-hop and proxy-owned ones removed), names lower-case. */
  headers: string[];
  host: string | undefined;
  forwardedFor: string | undefined;
  requestId: string | undefined;
  /** The client's `Connection` header, whose tokens name further hop-by-hop headers. */
  connection: string | undefined;
  /** A body follows (Content-Length > 0 or Transfer-Encoding). */
  hasBody: boolean;
  /** The client accepts trailer fields (`TE: trailers`), so an upstream's trailers are relayed. */
  trailers: boolean;
  /** The client's `traceparent` ('' when it sent more than one: invalid); the proxy sends its own. */
  traceparent: string | undefined;
  /** The client's `tracestate` (several fields joined with `,`), passed on with a valid traceparent. */
  tracestate: string | undefined;
}

/**
 * Fill `head` from the client's raw headers. Dropped: hop-by-hop headers (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and HTTP2-Settings, which only goes
 * with an `Upgrade: h2c` offer: RFC 9113 §3.2.1 / RFC 7540 §3.2.1, a connection-specific field),
 * Host (re-added by the caller), X-Forwarded-Proto/-Host/-Port/-Prefix, X-Replaced-Path and
 * X-Request-Id (set by the proxy, whoever the client is, as Traefik does for untrusted peers;
 * X-Forwarded-For is kept in `forwardedFor` to be appended to; X-Forwarded-Prefix and
 * X-Replaced-Path go only from a rewriting route, rewrite.ts, so nobody can spoof them), and Expect (node answered
 * `100-continue`). `TE: trailers` is remembered in `trailers` (the exchange sends its own).
 * `traceparent` and `tracestate` are kept aside: the proxy sends its own (observability/tracing.ts).
 */
export function scanRequestHeaders(raw: readonly string[], head: RequestHead): void {
  const out = head.headers;
  for (let i = 0; i < raw.length; i += 2) {
    const value = raw[i + 1]!;
    const name = lowerName(raw[i]!);
    switch (name) {
      case 'host':
        if (head.host === undefined) head.host = value;
        continue;
      case 'connection':
        head.connection = head.connection === undefined ? value : `${head.connection}, ${value}`;
        continue;
      case 'transfer-encoding':
        head.hasBody = true;
        continue;
      case 'content-length':
        if (value !== '0') head.hasBody = true;
        break;
      case 'x-forwarded-for':
        head.forwardedFor = head.forwardedFor === undefined ? value : `${head.forwardedFor}, ${value}`;
        continue;
      case 'x-request-id':
        if (head.requestId === undefined && value.length > 0 && value.length <= 200) head.requestId = value;
        continue;
      case 'te':
        if (listsTrailers(value)) head.trailers = true;
        continue;
      case 'traceparent':
        // Several traceparent fields are invalid (W3C Trace Context §3.2): '' never parses.
        head.traceparent = head.traceparent === undefined ? value : '';
        continue;
      case 'tracestate':
        head.tracestate = head.tracestate === undefined ? value : `${head.tracestate},${value}`;
        continue;
      case 'keep-alive':
      case 'proxy-connection':
      case 'trailer':
      case 'upgrade':
      case 'http2-settings':
      case 'expect':
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
      case 'x-forwarded-port':
      case 'x-forwarded-prefix':
      case 'x-replaced-path':
        continue;
      default:
        break;
    }
    out.push(name, value);
  }
}

/**
 * Remove the headers a `Connection` value names (RFC 9110 §7.6.1) from a flat list whose names are
 * lower-case (or, with `anyCase`, spelled as received). Returns the list itself when the value
 * names nothing beyond keep-alive/close/upgrade (the common case).
 */
export function removeConnectionNominated(headers: string[], connection: string, anyCase = false): string[] {
  // Fast path for the values nearly every peer sends.
  if (connection.length <= 10) {
    const value = connection.toLowerCase();
    if (value === 'keep-alive' || value === 'close' || value === 'upgrade') return headers;
  }
  let nominated: Set<string> | undefined;
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'keep-alive' || name === 'close' || name === 'upgrade') continue;
    (nominated ??= new Set()).add(name);
  }
  if (nominated === undefined) return headers;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (!nominated.has(anyCase ? name.toLowerCase() : name)) out.push(name, headers[i + 1]!);
  }
  return out;
}

/** `TE` lists `trailers` (RFC 9110 §10.1.4), case-insensitively. */
function listsTrailers(value: string): boolean {
  if (value.length === 8) return value.toLowerCase() === 'trailers';
  for (const token of value.split(',')) {
    const t = token.trim();
    if (t.length >= 8 && t.slice(0, 8).toLowerCase() === 'trailers' && (t.length === 8 || t.charCodeAt(8) === 59 /* ; */ || t.charCodeAt(8) === 32)) return true;
  }
  return false;
}

/**
 * Convert undici's raw response headers to the list for `res.writeHead`, without hop-by-hop headers
 * and without the upstream's X-Request-Id (the proxy sets its own), then append `x-request-id`.
 * Names keep the upstream's spelling (`ETag`, `X-Custom-Thing`): node writes an array head as
 * given, and some legacy clients compare names case-sensitively (nginx keeps them too).
 * `trailers`: the response may go out chunked and the client accepts trailers, so the upstream's
 * `Trailer` field (which names them) is kept, unless the upstream also sent a Content-Length: then
 * the response is not chunked and node refuses a head with both (ERR_HTTP_TRAILER_INVALID; a
 * message without chunked framing cannot carry trailers, RFC 9112 §7.1.2). nginx drops it too.
 */
export function responseHeaders(raw: readonly Buffer[], requestId: string, trailers: boolean, edits?: HeaderEditPlan): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let trailer: string | undefined;
  let contentLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const rawName = raw[i]!;
    const name = lowerName(rawName);
    switch (name) {
      case 'connection':
        connection = raw[i + 1]!.toString('latin1');
        continue;
      case 'content-length':
        contentLength = true;
        break;
      case 'trailer':
        if (trailers) {
          const value = raw[i + 1]!.toString('latin1');
          trailer = trailer === undefined ? value : `${trailer}, ${value}`;
        }
        continue;
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
      case 'transfer-encoding':
      case 'upgrade':
      case 'x-request-id':
        continue;
      default:
        if (edits !== undefined && edits.drop.has(name)) continue;
        break;
    }
    out.push(rawName.toString('latin1'), raw[i + 1]!.toString('latin1'));
  }
  if (trailer !== undefined && !contentLength) out.push('Trailer', trailer);
  const result = connection === undefined ? out : removeConnectionNominated(out, connection, true);
  if (edits !== undefined) appendSet(result, edits);
  result.push('x-request-id', requestId);
  return result;
}

/**
 * A route's header edits of one direction (`headers.request` / `headers.response`), made once when
 * the runtime is built: `drop` holds the removed names and the names `set` replaces (every field of
 * a set name goes, then one field with the configured value is added), `set` is a flat
 * `[name, value, ...]` list. Names are lower-case. Applied after the proxy's own header rules.
 */
export interface HeaderEditPlan {
  readonly drop: ReadonlySet<string>;
  readonly set: readonly string[];
}

/**
 * Whether header edits may touch `name` (lower-case): an HTTP token the model does not reserve
 * (model/route-options.ts `reservedHeaderReason`: hop-by-hop and framing fields, Host, Forwarded and
 * X-Forwarded-*, X-Request-Id, the trace context; validation refuses those with that reason, and
 * this is the run-time guard for a table that carries one anyway), nor `expect` (undici refuses
 * to send it; node answered the client's `100-continue` already).
 */
export function editableHeader(name: string): boolean {
  if (name === '' || name === 'expect' || reservedHeaderReason(name) !== undefined) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // RFC 9110 token characters, lower-case letters only (names arrive lower-cased).
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || '!#$%&\'*+-.^_`|~'.includes(name[i]!);
    if (!ok) return false;
  }
  return true;
}

/** A field value node would send: no CR, LF, NUL or other control character except tab. */
export function validHeaderValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return false;
  }
  return true;
}

/** The plan for `edits`, without anything that must not be touched; undefined when nothing is left. */
export function headerEditPlan(edits: { readonly set: readonly (readonly [string, string])[]; readonly remove: readonly string[] } | undefined): HeaderEditPlan | undefined {
  if (edits === undefined) return undefined;
  const drop = new Set<string>();
  const set: string[] = [];
  for (const name of edits.remove) {
    const lower = name.toLowerCase();
    if (editableHeader(lower)) drop.add(lower);
  }
  for (const [name, value] of edits.set) {
    const lower = name.toLowerCase();
    if (!editableHeader(lower) || !validHeaderValue(value)) continue;
    drop.add(lower);
    set.push(lower, value);
  }
  return drop.size === 0 ? undefined : { drop, set };
}

/** Apply a request edit plan to a forwarded list (lower-case names) in place: remove, then set. */
export function editRequestHeaders(headers: string[], plan: HeaderEditPlan): void {
  const { drop } = plan;
  let at = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (drop.has(name)) continue;
    headers[at++] = name;
    headers[at++] = headers[i + 1]!;
  }
  headers.length = at;
  appendSet(headers, plan);
}

function appendSet(headers: string[], plan: HeaderEditPlan): void {
  const set = plan.set;
  for (let i = 0; i < set.length; i += 2) headers.push(set[i]!, set[i + 1]!);
}

/** undici's raw trailer list (`[name, value, ...]` as Buffers) as pairs for `res.addTrailers`. */
export function trailerPairs(raw: readonly (Buffer | string)[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toString(), raw[i + 1]!.toString()]);
  return out;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`: the form X-Forwarded-For consumers expect. */
export function clientAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The Content-Length of a request from its raw headers: the first such field's value as a number,
 * -1 when absent or not a plain decimal (framing errors are the request guard's and node's
 * business; this only serves the body-size limit).
 */
export function contentLengthOf(raw: readonly string[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    if (lowerName(raw[i]!) !== 'content-length') continue;
    const value = raw[i + 1]!.trim();
    if (value === '') return -1;
    for (let j = 0; j < value.length; j++) {
      const c = value.charCodeAt(j);
      if (c < 48 || c > 57) return -1;
    }
    return Number(value);
  }
  return -1;
}
