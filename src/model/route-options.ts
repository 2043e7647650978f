/**
 * Gateway options of a route: one hand-written parser for the template's YAML (already parsed) and
 * KV's `routes/<route>/route` JSON, so both say the same things the same way (as policy-parse.ts
 * does for policies).
 *
 *   match:    { host: name | [names], path: /prefix, methods: [GET], headers: {name: value | "*"},
 *               query: {name: value | "*"} }
 *   rewrite:  { path: /v2 } | { regex: "^/a/(.*)$", to: "/b/$1" }, each with an optional `host`
 *   headers:  { request: { set: {name: value}, remove: [name] }, response: { ... } }
 *   sticky:   { cookie: name, ttlMs: 1h }
 *   mirror:   { service, tag, percent, keepAuth, maxBodyBytes, timeoutMs, maxInFlight, removeHeaders: [name] }
 *   redirect: { to, status, keepQuery }
 *
 * Rules (each refusal names its field):
 * - Unknown fields are errors, at every level.
 * - `match.methods`: HTTP tokens, upper-cased, sorted, duplicates dropped; CONNECT and TRACE are
 *   refused (the proxy answers them 405 before routing). `match.headers`: names are HTTP tokens
 *   (lower-cased; `host` is refused: that is `match.host`), values strings without control
 *   characters, `"*"` = the header is present with any value. `match.query`: names and values as
 *   they read once percent-decoded, `"*"` = present. Values must be strings: YAML `x: 1` is a
 *   number; write `x: "1"`.
 * - `rewrite.path` replaces the matched prefix (a prefix per path.ts; `/` strips it). `rewrite.regex`
 *   is RE2 syntax (re2js: linear-time matching; backreferences and lookaround do not exist in it),
 *   at most 512 characters; the first match in the path (without the query) is replaced by `to`
 *   (src/proxy/http/rewrite.ts applies it), in which `$1`..`$9` are its groups (only groups the
 *   pattern has) and `$$` is a `$`; `to` starts with `/` or a group and holds no `#`, space or
 *   control character (a `?query` in it is joined with the request's by `&`). `path` and `regex`
 *   exclude each other, and either excludes the route's `strip`.
 *   `rewrite.host`: the Host sent upstream, a host name or IPv6 literal with an optional port.
 * - Header edits: names HTTP tokens (lower-cased), values without CR, LF, NUL or other control
 *   characters (HTAB allowed); a name at most once per direction. Refused with their reason:
 *   hop-by-hop fields (connection, keep-alive, proxy-connection, te, trailer, transfer-encoding,
 *   upgrade, http2-settings, proxy-authenticate, proxy-authorization), host (`rewrite.host`),
 *   content-length, expect, forwarded and x-forwarded-*, x-request-id, traceparent, tracestate.
 * - `sticky.cookie` is required (a cookie-name token, RFC 6265), `ttlMs` a duration, 0 (default) =
 *   a session cookie; at most 24 h (the duration parser's bound).
 * - `mirror.service` is required; `percent` 0..100 (default 100: a configured mirror gets every
 *   request, as Envoy's request_mirror_policies), `keepAuth` (default false), `maxBodyBytes`
 *   (default 64 KiB, at most 16 MiB), `timeoutMs` (default 5 s), `maxInFlight` (default 64, at most
 *   10,000). `removeHeaders`: names (HTTP tokens, lower-cased, each once, at most 32) left out of the
 *   copy only, besides the credentials rule (`keepAuth` does not bring them back; authorization and
 *   cookie may be listed, to drop one of them while keepAuth keeps the other); the names a route's
 *   header edits may not touch are refused with the same reasons (the proxy sets them, or they
 *   belong to one connection); `[]` = none (the normal form leaves the field out).
 * - `redirect.to` is required: an absolute `http(s)://` URL without credentials, or a path starting
 *   with one `/`; the only placeholders are `{path}` (the request's path as received, without the
 *   query; not inside the host part) and `{host}` (the request's host, without port); the proxy
 *   fills them (src/proxy/http/redirect.ts). `status` is 301, 302, 303, 307 or 308, default 302
 *   (HAProxy's and Traefik's default: a mistaken 301 stays cached in browsers); `keepQuery`
 *   (default false) appends the request's query string. A redirect route sends nothing upstream
 *   and answers by itself (Location, Content-Length, X-Request-Id only), so `rewrite`, `headers`,
 *   `sticky`, `mirror` and the route's `strip` are refused with it.
 * - Template placeholders: `{{service}}` is allowed in match.host, match.path, rewrite.path,
 *   rewrite.to, rewrite.host, header set values, mirror.service, mirror.tag and redirect.to (the
 *   value is checked with a sample name, and again once filled: fillRouteOptions); any other `{{`
 *   is an error. KV values have no placeholders.
 *
 * KV layers (`mode: 'kv'`): any field may be `null` (removed; `match.host: null` = any host,
 * `match.path: null` = `/`); `sticky`, `mirror` and `redirect` may give only some fields, merged
 * over the template's (the required ones must then come from it); inside them, `mirror.tag` and
 * `mirror.removeHeaders` may be `null` (removed; a list replaces the template's whole). mergeRouteOptions applies a layer.
 */
import { RE2JS } from 're2js';
import { compareCodeUnits } from './compare-code-units.js';
import { hostProblem } from './host.js';
import { normalizePrefix, prefixProblem } from './path.js';
import { parseByteSize, parseDuration } from './policy-parse.js';
import type {
  HeaderEdits, MatchConditions, MirrorTarget, RedirectStatus, RouteHeaderEdits, RouteOptions, RouteRedirect, RouteRewrite, StickySession,
} from './types.js';

export type RouteOptionsMode = 'template' | 'kv';

/** Where a value went wrong: the field path from the options' root, and why. */
export interface RouteOptionsProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

type Pairs = readonly (readonly [string, string])[];
type Draft<T> = { -readonly [K in keyof T]?: T[K] };

/** A parsed layer: fields present are set; in KV, `null` removes. Partial objects are completed by mergeRouteOptions. */
export interface RouteOptionsLayer {
  readonly hosts?: readonly string[] | null;
  readonly path?: string | null;
  readonly methods?: readonly string[] | null;
  readonly headerConditions?: Pairs | null;
  readonly query?: Pairs | null;
  readonly rewrite?: RouteRewrite | null;
  readonly requestHeaders?: HeaderEdits | null;
  readonly responseHeaders?: HeaderEdits | null;
  readonly sticky?: Draft<StickySession> | null;
  readonly mirror?: Draft<Omit<MirrorTarget, 'tag' | 'removeHeaders'>> & { tag?: string | null; removeHeaders?: readonly string[] | null } | null;
  readonly redirect?: Draft<RouteRedirect> | null;
}

/** Limits and defaults, exported for the docs and tests. */
export const MAX_REWRITE_REGEX_LENGTH = 512;
export const MAX_MIRROR_BODY_BYTES = 16 * 1024 * 1024;
export const MAX_MIRROR_IN_FLIGHT = 10_000;
export const MAX_MIRROR_REMOVE_HEADERS = 32;
export const MIRROR_DEFAULTS = { percent: 100, keepAuth: false, maxBodyBytes: 64 * 1024, timeoutMs: 5_000, maxInFlight: 64 } as const;
export const REDIRECT_DEFAULTS = { status: 302, keepQuery: false } as const;
export const STICKY_DEFAULTS = { ttlMs: 0 } as const;
const REDIRECT_STATUSES: readonly RedirectStatus[] = [301, 302, 303, 307, 308];
const MAX_TEXT = 8192;

const PLACEHOLDER = '{{service}}';
/** What `{{service}}` is replaced with to check a template's value before expansion. */
const SAMPLE = 'service';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'proxy-authenticate', 'proxy-authorization'];

/** Why a header may not be edited by a route, or undefined. */
export function reservedHeaderReason(name: string): string | undefined {
  if (HOP_BY_HOP.includes(name)) return 'a hop-by-hop header belongs to one connection; the proxy manages it';
  if (name === 'host') return 'the Host sent upstream is rewrite.host';
  if (name === 'content-length') return 'the proxy frames the message itself';
  if (name === 'expect') return 'the proxy answers Expect: 100-continue itself; the field is never sent upstream';
  if (name === 'forwarded' || name.startsWith('x-forwarded-')) return 'the proxy writes the forwarding headers from the connection (--trusted-proxies)';
  if (name === 'x-request-id') return 'the proxy\'s request id';
  if (name === 'x-replaced-path') return 'the proxy writes it when a rewrite changes the path (a client\'s is dropped)';
  if (name === 'traceparent' || name === 'tracestate') return 'the trace context is the proxy\'s (tracing)';
  return undefined;
}

class OptionError extends Error {
  constructor(readonly path: readonly (string | number)[], readonly detail: string) {
    super(detail);
  }
}

function fail(path: readonly (string | number)[], message: string): never {
  throw new OptionError(path, message);
}

const show = (value: unknown): string => (value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value));

/** `rewrite.regex: message`, or the message alone for the root. */
export function describeOptionsProblem(problem: RouteOptionsProblem): string {
  return problem.path.length === 0 ? problem.message : `${problem.path.join('.')}: ${problem.message}`;
}

interface Ctx {
  readonly mode: RouteOptionsMode;
}

type Fields = Record<string, unknown>;
type P = readonly (string | number)[];

function fields(value: unknown, path: P, known: readonly string[]): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, `expected an object, got ${show(value)}`);
  for (const key of Object.keys(value)) if (!known.includes(key)) fail([...path, key], `unknown field (known: ${known.join(', ')})`);
  return value as Fields;
}

function controlChar(text: string, allowTab: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && !(allowTab && c === 9)) || c === 127) return true;
  }
  return false;
}

/**
 * A string field. With `placeholder`, a template value may hold `{{service}}`: the value is kept
 * as written and `check` sees it with a sample name. Any other `{{` in a template is an error.
 */
function text(value: unknown, path: P, ctx: Ctx, placeholder: boolean, check: (sample: string, path: P) => void): string {
  if (typeof value !== 'string') fail(path, `expected a string, got ${show(value)}`);
  if (value.length > MAX_TEXT) fail(path, `longer than ${MAX_TEXT} characters`);
  let sample = value;
  if (ctx.mode === 'template' && value.includes('{{')) {
    if (!placeholder) fail(path, `placeholders are not allowed here (${PLACEHOLDER} is allowed in match.host, match.path, rewrite.path, rewrite.to, rewrite.host, header set values, mirror.service, mirror.tag and redirect.to)`);
    sample = value.replaceAll(PLACEHOLDER, SAMPLE);
    if (sample.includes('{{')) fail(path, `unknown placeholder (only ${PLACEHOLDER} exists)`);
  }
  check(sample, path);
  return value;
}

const anyText = (): void => {};

function nonEmpty(sample: string, path: P): void {
  if (sample.trim() === '') fail(path, 'must not be empty');
  if (controlChar(sample, false)) fail(path, 'contains a control character');
}

function headerName(value: unknown, path: P): string {
  if (typeof value !== 'string' || !TOKEN.test(value)) fail(path, `header name ${show(value)} is not an HTTP token (letters, digits and !#$%&'*+-.^_\`|~)`);
  return value.toLowerCase();
}

function headerValue(sample: string, path: P): void {
  if (controlChar(sample, true)) fail(path, 'a header value may not contain CR, LF, NUL or another control character');
}

/** An exact-or-present condition map `{name: value | "*"}` as pairs sorted by name. */
function conditionEntries(map: Fields, path: P, ctx: Ctx, name: (key: string, path: P) => string): Pairs {
  const out = new Map<string, string>();
  for (const [key, v] of Object.entries(map)) {
    const at = [...path, key];
    const n = name(key, at);
    if (typeof v !== 'string') fail(at, `expected a string (exact value) or "*" (present), got ${show(v)}; quote numbers and booleans in YAML`);
    text(v, at, ctx, false, (sample) => {
      if (controlChar(sample, true)) fail(at, 'contains a control character');
    });
    if (out.has(n)) fail(at, `"${n}" is given twice`);
    out.set(n, v);
  }
  return [...out].sort((a, b) => compareCodeUnits(a[0], b[0]));
}

function anyKeys(value: unknown, path: P): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, `expected an object, got ${show(value)}`);
  return value as Fields;
}

function headerConditions(value: unknown, path: P, ctx: Ctx): Pairs {
  return conditionEntries(anyKeys(value, path), path, ctx, (key, at) => {
    const n = headerName(key, at);
    if (n === 'host') fail(at, 'the host is matched by match.host');
    return n;
  });
}

function queryConditions(value: unknown, path: P, ctx: Ctx): Pairs {
  return conditionEntries(anyKeys(value, path), path, ctx, (key, at) => {
    if (key === '' || controlChar(key, false)) fail(at, 'a query parameter name must be non-empty without control characters');
    if (ctx.mode === 'template' && key.includes('{{')) fail(at, 'placeholders are not allowed in a query parameter name');
    return key;
  });
}

function methods(value: unknown, path: P): string[] {
  if (!Array.isArray(value) || value.length === 0) fail(path, `expected a non-empty list of methods, got ${show(value)}`);
  const out = new Set<string>();
  (value as unknown[]).forEach((m, i) => {
    if (typeof m !== 'string' || !TOKEN.test(m)) fail([...path, i], `method ${show(m)} is not an HTTP token`);
    const upper = m.toUpperCase();
    if (upper === 'CONNECT' || upper === 'TRACE') fail([...path, i], `${upper} is refused before routing (405); no route can match it`);
    out.add(upper);
  });
  return [...out].sort();
}

function hosts(value: unknown, path: P, ctx: Ctx): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) fail(path, `expected a host or a non-empty list of hosts, got ${show(value)}`);
  // Host syntax (wildcards included) is validated with the route (validate-routes.ts), after expansion.
  return (list as unknown[]).map((h, i) => text(h, typeof value === 'string' ? path : [...path, i], ctx, true, nonEmpty));
}

function prefix(sample: string, path: P): void {
  if (!sample.startsWith('/')) fail(path, 'must start with "/"');
  const problem = prefixProblem(sample);
  if (problem !== undefined) fail(path, problem);
}

/** A Host for upstream: a name or bracketed IPv6 literal, optionally with `:port`. */
function upstreamHost(sample: string, path: P): void {
  const port = /:(\d{1,5})$/.exec(sample);
  const name = port === null || (sample.startsWith('[') && !sample.slice(0, port.index).endsWith(']')) ? sample : sample.slice(0, port.index);
  if (port !== null && Number(port[1]) > 65535) fail(path, `port ${port[1]} is out of range`);
  if (name.includes('*')) fail(path, 'a wildcard is not a host to send');
  const problem = hostProblem(name);
  if (problem !== undefined) fail(path, problem);
}

function rewrite(value: unknown, path: P, ctx: Ctx): RouteRewrite {
  const f = fields(value, path, ['path', 'regex', 'to', 'host']);
  const out: Draft<RouteRewrite> = {};
  if (f['path'] !== undefined && (f['regex'] !== undefined || f['to'] !== undefined)) fail([...path, 'path'], 'path and regex exclude each other');
  if (f['path'] !== undefined) out.path = normalizePrefix(text(f['path'], [...path, 'path'], ctx, true, prefix));
  if (f['regex'] !== undefined || f['to'] !== undefined) {
    if (f['regex'] === undefined) fail([...path, 'regex'], 'required with to');
    if (f['to'] === undefined) fail([...path, 'to'], 'required with regex');
    const regex = text(f['regex'], [...path, 'regex'], ctx, false, anyText);
    const groups = compileRewriteRegex(regex, [...path, 'regex']).groupCount();
    out.regex = regex;
    out.to = text(f['to'], [...path, 'to'], ctx, true, (sample, at) => replacementCheck(sample, at, groups));
  }
  if (f['host'] !== undefined) out.host = text(f['host'], [...path, 'host'], ctx, true, upstreamHost);
  if (out.path === undefined && out.regex === undefined && out.host === undefined) fail(path, 'expected path, regex and to, or host');
  if (out.host !== undefined && !out.host.includes('{{')) out.host = out.host.toLowerCase();
  return out;
}

function compileRewriteRegex(regex: string, path: P): RE2JS {
  if (regex === '') fail(path, 'must not be empty');
  if (regex.length > MAX_REWRITE_REGEX_LENGTH) fail(path, `longer than ${MAX_REWRITE_REGEX_LENGTH} characters`);
  try {
    return RE2JS.compile(regex);
  } catch (err) {
    return fail(path, `not a valid RE2 pattern (no backreferences or lookaround): ${(err as Error).message}`);
  }
}

/** `$1`..`$9` naming groups the pattern has, `$$`; a path without `#`, spaces or controls. */
function replacementCheck(to: string, path: P, groups: number): void {
  if (!to.startsWith('/') && !/^\$[1-9]/.test(to)) fail(path, 'must start with "/" or a group ($1)');
  if (/[\s#]/.test(to) || controlChar(to, false)) fail(path, 'may not contain "#", whitespace or control characters');
  for (let i = 0; i < to.length; i++) {
    if (to[i] !== '$') continue;
    const next = to[i + 1];
    if (next === '$') i++;
    else if (next !== undefined && next >= '1' && next <= '9') {
      if (Number(next) > groups) fail(path, `$${next} names a group the pattern does not have (it has ${groups})`);
      i++;
    } else fail(path, 'a "$" must be followed by a group number 1-9 or another "$" (a literal "$")');
  }
}

function headerEdits(value: unknown, path: P, ctx: Ctx): HeaderEdits {
  const f = fields(value, path, ['set', 'remove']);
  const seen = new Set<string>();
  const edited = (raw: unknown, at: P): string => {
    const name = headerName(raw, at);
    const reason = reservedHeaderReason(name);
    if (reason !== undefined) fail(at, `header "${name}" cannot be edited: ${reason}`);
    if (seen.has(name)) fail(at, `header "${name}" is edited twice`);
    seen.add(name);
    return name;
  };
  const set: [string, string][] = [];
  if (f['set'] !== undefined) {
    for (const [key, v] of Object.entries(anyKeys(f['set'], [...path, 'set']))) {
      const at = [...path, 'set', key];
      const name = edited(key, at);
      set.push([name, text(v, at, ctx, true, headerValue)]);
    }
  }
  const remove: string[] = [];
  if (f['remove'] !== undefined) {
    if (!Array.isArray(f['remove'])) fail([...path, 'remove'], `expected a list of header names, got ${show(f['remove'])}`);
    (f['remove'] as unknown[]).forEach((n, i) => remove.push(edited(n, [...path, 'remove', i])));
  }
  return { set, remove };
}

function duration(value: unknown, path: P, minMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined) fail(path, `expected a duration ('500ms', '5s', '1h') or a number of milliseconds, at most 24h, got ${show(value)}`);
  if (ms < minMs) fail(path, `must be at least ${minMs} ms`);
  return ms;
}

function numberIn(value: unknown, path: P, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    fail(path, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  }
  return value;
}

function bool(value: unknown, path: P): boolean {
  if (typeof value !== 'boolean') fail(path, `expected true or false, got ${show(value)}`);
  return value;
}

function sticky(value: unknown, path: P): Draft<StickySession> {
  const f = fields(value, path, ['cookie', 'ttlMs']);
  const out: Draft<StickySession> = {};
  if (f['cookie'] !== undefined) {
    if (typeof f['cookie'] !== 'string' || !TOKEN.test(f['cookie']) || f['cookie'].length > 128) {
      fail([...path, 'cookie'], `cookie name ${show(f['cookie'])} is not a cookie-name token (letters, digits and !#$%&'*+-.^_\`|~, at most 128)`);
    }
    out.cookie = f['cookie'];
  }
  if (f['ttlMs'] !== undefined) out.ttlMs = duration(f['ttlMs'], [...path, 'ttlMs'], 0);
  return out;
}

function mirror(value: unknown, path: P, ctx: Ctx): NonNullable<RouteOptionsLayer['mirror']> {
  const f = fields(value, path, ['service', 'tag', 'percent', 'keepAuth', 'maxBodyBytes', 'timeoutMs', 'maxInFlight', 'removeHeaders']);
  const out: NonNullable<RouteOptionsLayer['mirror']> = {};
  const at = (k: string): P => [...path, k];
  if (f['service'] !== undefined) out.service = text(f['service'], at('service'), ctx, true, nonEmpty);
  if (f['tag'] === null && ctx.mode === 'kv') out.tag = null;
  else if (f['tag'] !== undefined) out.tag = text(f['tag'], at('tag'), ctx, true, nonEmpty);
  if (f['percent'] !== undefined) out.percent = numberIn(f['percent'], at('percent'), 0, 100, false);
  if (f['keepAuth'] !== undefined) out.keepAuth = bool(f['keepAuth'], at('keepAuth'));
  if (f['maxBodyBytes'] !== undefined) {
    const bytes = parseByteSize(f['maxBodyBytes']);
    if (bytes === undefined || bytes > MAX_MIRROR_BODY_BYTES) fail(at('maxBodyBytes'), `expected a size ('64kb', '1mb') up to 16mb, got ${show(f['maxBodyBytes'])}`);
    out.maxBodyBytes = bytes;
  }
  if (f['timeoutMs'] !== undefined) out.timeoutMs = duration(f['timeoutMs'], at('timeoutMs'), 1);
  if (f['maxInFlight'] !== undefined) out.maxInFlight = numberIn(f['maxInFlight'], at('maxInFlight'), 1, MAX_MIRROR_IN_FLIGHT, true);
  if (f['removeHeaders'] === null && ctx.mode === 'kv') out.removeHeaders = null;
  else if (f['removeHeaders'] !== undefined) out.removeHeaders = mirrorRemoveHeaders(f['removeHeaders'], at('removeHeaders'));
  return out;
}

/** `mirror.removeHeaders`: lower-cased names, in the order given. */
function mirrorRemoveHeaders(value: unknown, path: P): string[] {
  if (!Array.isArray(value)) fail(path, `expected a list of header names, got ${show(value)}`);
  if (value.length > MAX_MIRROR_REMOVE_HEADERS) fail(path, `at most ${MAX_MIRROR_REMOVE_HEADERS} names, got ${value.length}`);
  const out: string[] = [];
  (value as unknown[]).forEach((raw, i) => {
    const name = headerName(raw, [...path, i]);
    const reason = reservedHeaderReason(name);
    if (reason !== undefined) fail([...path, i], `header "${name}" cannot be removed from the copy: ${reason}`);
    if (out.includes(name)) fail([...path, i], `header "${name}" is listed twice`);
    out.push(name);
  });
  return out;
}

function redirect(value: unknown, path: P, ctx: Ctx): Draft<RouteRedirect> {
  const f = fields(value, path, ['to', 'status', 'keepQuery']);
  const out: Draft<RouteRedirect> = {};
  if (f['to'] !== undefined) out.to = text(f['to'], [...path, 'to'], ctx, true, redirectTarget);
  if (f['status'] !== undefined) {
    if (!REDIRECT_STATUSES.includes(f['status'] as RedirectStatus)) fail([...path, 'status'], `expected one of ${REDIRECT_STATUSES.join(', ')}, got ${show(f['status'])}`);
    out.status = f['status'] as RedirectStatus;
  }
  if (f['keepQuery'] !== undefined) out.keepQuery = bool(f['keepQuery'], [...path, 'keepQuery']);
  return out;
}

const AUTHORITY = /^https?:\/\/([^/?#]*)/i;

/** An absolute http(s) URL or a `/path`; placeholders `{path}` and `{host}` only; `{path}` after the host. */
function redirectTarget(to: string, path: P): void {
  if (/[\s]/.test(to) || controlChar(to, false)) fail(path, 'may not contain whitespace or control characters');
  const unknown = to.replaceAll('{path}', '').replaceAll('{host}', '');
  if (unknown.includes('{') || unknown.includes('}')) fail(path, 'the only placeholders are {path} and {host}');
  const filled = to.replaceAll('{path}', '/p').replaceAll('{host}', 'h.example');
  if (to.startsWith('/')) {
    if (to.startsWith('//')) fail(path, 'a target starting with "//" is another host: write its scheme (https://...)');
    return;
  }
  // `{path}` starts with `/`: filled, it ends the host part where it stands.
  const authority = AUTHORITY.exec(filled);
  if (authority === null) fail(path, 'expected an absolute http:// or https:// URL or a path starting with "/"');
  if (authority[1] === '') fail(path, 'the URL has no host ({path} may only stand after it)');
  let url: URL;
  try {
    url = new URL(filled);
  } catch {
    return fail(path, 'not a valid URL');
  }
  if (url.username !== '' || url.password !== '') fail(path, 'a redirect target may not carry credentials');
  if (url.hostname === '') fail(path, 'the URL has no host');
}

const TOP = ['match', 'rewrite', 'headers', 'sticky', 'mirror', 'redirect'];
const MATCH = ['host', 'path', 'methods', 'headers', 'query'];

function parseLayer(value: unknown, ctx: Ctx): RouteOptionsLayer {
  const f = fields(value, [], TOP);
  const kv = ctx.mode === 'kv';
  const out: { -readonly [K in keyof RouteOptionsLayer]: RouteOptionsLayer[K] } = {};
  /** A field's value, null (removed, KV only) or undefined (absent). */
  const each = <T>(v: unknown, path: P, parse: (v: unknown, path: P) => T): T | null | undefined => {
    if (v === undefined) return undefined;
    if (v === null) {
      if (!kv) fail(path, 'null is for KV overrides (it removes the template\'s value); leave the field out');
      return null;
    }
    return parse(v, path);
  };
  if (f['match'] !== undefined) {
    const m = fields(f['match'], ['match'], MATCH);
    const at = (k: string): P => ['match', k];
    out.hosts = each(m['host'], at('host'), (v, p) => hosts(v, p, ctx));
    out.path = each(m['path'], at('path'), (v, p) => normalizePrefix(text(v, p, ctx, true, prefix)));
    out.methods = each(m['methods'], at('methods'), methods);
    out.headerConditions = each(m['headers'], at('headers'), (v, p) => headerConditions(v, p, ctx));
    out.query = each(m['query'], at('query'), (v, p) => queryConditions(v, p, ctx));
  }
  out.rewrite = each(f['rewrite'], ['rewrite'], (v, p) => rewrite(v, p, ctx));
  const headers = each(f['headers'], ['headers'], (v, p) => fields(v, p, ['request', 'response']));
  if (headers === null) {
    out.requestHeaders = null;
    out.responseHeaders = null;
  } else if (headers !== undefined) {
    out.requestHeaders = each(headers['request'], ['headers', 'request'], (v, p) => headerEdits(v, p, ctx));
    out.responseHeaders = each(headers['response'], ['headers', 'response'], (v, p) => headerEdits(v, p, ctx));
  }
  out.sticky = each(f['sticky'], ['sticky'], sticky);
  out.mirror = each(f['mirror'], ['mirror'], (v, p) => mirror(v, p, ctx));
  out.redirect = each(f['redirect'], ['redirect'], (v, p) => redirect(v, p, ctx));
  for (const key of Object.keys(out) as (keyof RouteOptionsLayer)[]) if (out[key] === undefined) delete out[key];
  return out;
}

/** A layer from an already parsed value, or the problem with its field path. */
export function readRouteOptions(value: unknown, mode: RouteOptionsMode): RouteOptionsLayer | RouteOptionsProblem {
  try {
    return parseLayer(value, { mode });
  } catch (err) {
    if (err instanceof OptionError) return { path: err.path, message: err.detail };
    throw err;
  }
}

export function isOptionsProblem(value: object): value is RouteOptionsProblem {
  return 'message' in value && 'path' in value && Array.isArray((value as RouteOptionsProblem).path);
}

/**
 * Template options (mode 'template'): normalised RouteOptions (hosts and path only when given), or
 * the problem as `field.path: message`. KV (mode 'kv'): the layer mergeRouteOptions applies.
 */
export function parseRouteOptions(value: unknown, mode: 'template'): RouteOptions | string;
export function parseRouteOptions(value: unknown, mode: 'kv'): RouteOptionsLayer | string;
export function parseRouteOptions(value: unknown, mode: RouteOptionsMode): RouteOptions | RouteOptionsLayer | string {
  const layer = readRouteOptions(value, mode);
  if (isOptionsProblem(layer)) return describeOptionsProblem(layer);
  if (mode === 'kv') return layer;
  const merged = mergeRouteOptions(undefined, layer);
  return isOptionsProblem(merged) ? describeOptionsProblem(merged) : merged;
}

/** A layer from KV's JSON text, or the reason it is unusable. */
export function parseRouteOptionsJson(raw: string): RouteOptionsLayer | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return 'value is not valid JSON';
  }
  return parseRouteOptions(value, 'kv');
}

/**
 * `layer` over `base` (a route's options with its hosts and path, or undefined for none): match
 * fields one by one, rewrite whole, header edits per direction, sticky/mirror/redirect field by
 * field (completed with the defaults; required fields must be somewhere), `null` removing. The
 * result is normalised RouteOptions (no empty conditions, no undefined-valued keys), or the first
 * problem. Cross-field rules are optionsConflict's.
 */
export function mergeRouteOptions(base: RouteOptions | undefined, layer: RouteOptionsLayer): RouteOptions | RouteOptionsProblem {
  const pick = <T>(over: T | null | undefined, under: T | undefined): T | undefined => (over === null ? undefined : over ?? under);
  const out: { -readonly [K in keyof RouteOptions]: RouteOptions[K] } = {};
  const hostsValue = layer.hosts === null ? [] : layer.hosts ?? base?.hosts;
  if (hostsValue !== undefined) out.hosts = hostsValue;
  const pathValue = layer.path === null ? '/' : layer.path ?? base?.path;
  if (pathValue !== undefined) out.path = pathValue;
  const c = base?.conditions;
  const conditions: MatchConditions = {
    methods: pick(layer.methods, c?.methods) ?? [],
    headers: pick(layer.headerConditions, c?.headers) ?? [],
    query: pick(layer.query, c?.query) ?? [],
  };
  if (conditions.methods.length + conditions.headers.length + conditions.query.length > 0) out.conditions = conditions;
  const rewrite = pick(layer.rewrite, base?.rewrite);
  if (rewrite !== undefined) out.rewrite = rewrite;
  const request = pick(layer.requestHeaders, base?.headers?.request);
  const response = pick(layer.responseHeaders, base?.headers?.response);
  if (request !== undefined || response !== undefined) out.headers = { request, response } satisfies RouteHeaderEdits;
  try {
    if (layer.sticky !== null && (layer.sticky !== undefined || base?.sticky !== undefined)) {
      const s = { ...STICKY_DEFAULTS, ...base?.sticky, ...layer.sticky };
      if (s.cookie === undefined) fail(['sticky', 'cookie'], 'required');
      out.sticky = { cookie: s.cookie, ttlMs: s.ttlMs };
    }
    if (layer.mirror !== null && (layer.mirror !== undefined || base?.mirror !== undefined)) {
      const m = { ...MIRROR_DEFAULTS, ...base?.mirror, ...layer.mirror };
      if (m.service === undefined) fail(['mirror', 'service'], 'required');
      out.mirror = {
        service: m.service,
        ...(m.tag === null || m.tag === undefined ? {} : { tag: m.tag }),
        percent: m.percent, keepAuth: m.keepAuth, maxBodyBytes: m.maxBodyBytes, timeoutMs: m.timeoutMs, maxInFlight: m.maxInFlight,
        ...(m.removeHeaders === null || m.removeHeaders === undefined || m.removeHeaders.length === 0 ? {} : { removeHeaders: m.removeHeaders }),
      };
    }
    if (layer.redirect !== null && (layer.redirect !== undefined || base?.redirect !== undefined)) {
      const r = { ...REDIRECT_DEFAULTS, ...base?.redirect, ...layer.redirect };
      if (r.to === undefined) fail(['redirect', 'to'], 'required');
      out.redirect = { to: r.to, status: r.status, keepQuery: r.keepQuery };
    }
  } catch (err) {
    if (err instanceof OptionError) return { path: err.path, message: err.detail };
    throw err;
  }
  return out;
}

/**
 * Rules between a route's options and its other fields: a redirect sends nothing upstream (no
 * rewrite, header edits, sticky, mirror or strip), and `strip` excludes rewrite.path/regex.
 */
export function optionsConflict(options: RouteOptions | undefined, strip: string | undefined): RouteOptionsProblem | undefined {
  if (options === undefined) return undefined;
  if (options.redirect !== undefined) {
    const upstream = options.rewrite !== undefined ? ['rewrite'] : options.sticky !== undefined ? ['sticky'] : options.mirror !== undefined ? ['mirror']
      : options.headers !== undefined ? ['headers'] : strip !== undefined ? ['strip'] : undefined;
    if (upstream !== undefined) return { path: upstream, message: `a redirect route sends nothing upstream: ${upstream.join('.')} cannot apply` };
  }
  if (strip !== undefined && (options.rewrite?.path !== undefined || options.rewrite?.regex !== undefined)) {
    return { path: ['rewrite'], message: 'strip and rewrite both rewrite the path: use one (strip: /api on a route for /api is rewrite: { path: / })' };
  }
  return undefined;
}

/** The first options field holding `{{` (in `view` of its value), for template-expand's messages, or undefined. */
export function optionsPlaceholderField(options: RouteOptions | undefined, view: (s: string) => string = (s) => s): string | undefined {
  let found: string | undefined;
  visitTemplateStrings(options, (value, field) => {
    if (found === undefined && view(value).includes('{{')) found = field;
    return value;
  });
  return found;
}

/**
 * The options with `fill` applied to every field that takes `{{service}}`, each checked again once
 * filled (a service name can make a host invalid), or the problem. Options without placeholders
 * come back as the same object.
 */
export function fillRouteOptions(options: RouteOptions, fill: (s: string) => string): RouteOptions | RouteOptionsProblem {
  if (optionsPlaceholderField(options) === undefined) return options;
  try {
    return visitTemplateStrings(options, (value, field, check) => {
      const filled = fill(value);
      check(filled, field.split('.'));
      return filled;
    })!;
  } catch (err) {
    if (err instanceof OptionError) return { path: err.path, message: err.detail };
    throw err;
  }
}

/** Calls `visit` for each field that takes a placeholder, rebuilding the options with its results. */
function visitTemplateStrings(options: RouteOptions | undefined, visit: (value: string, field: string, check: (s: string, p: P) => void) => string): RouteOptions | undefined {
  if (options === undefined) return undefined;
  const out: { -readonly [K in keyof RouteOptions]: RouteOptions[K] } = { ...options };
  if (options.hosts !== undefined) out.hosts = options.hosts.map((h) => visit(h, 'match.host', nonEmpty));
  if (options.path !== undefined) out.path = visit(options.path, 'match.path', prefix);
  if (options.rewrite !== undefined) {
    const r: Draft<RouteRewrite> = { ...options.rewrite };
    if (r.path !== undefined) r.path = visit(r.path, 'rewrite.path', prefix);
    if (r.to !== undefined) r.to = visit(r.to, 'rewrite.to', (s, p) => replacementCheck(s, p, compileRewriteRegex(r.regex ?? '', ['rewrite', 'regex']).groupCount()));
    if (r.host !== undefined) r.host = visit(r.host, 'rewrite.host', upstreamHost);
    if (r.host !== undefined && !r.host.includes('{{')) r.host = r.host.toLowerCase();
    out.rewrite = r;
  }
  if (options.headers !== undefined) {
    const edits = (e: HeaderEdits | undefined, dir: string): HeaderEdits | undefined => e === undefined ? undefined : {
      set: e.set.map(([n, v]) => [n, visit(v, `headers.${dir}.set.${n}`, headerValue)] as const), remove: e.remove,
    };
    out.headers = { request: edits(options.headers.request, 'request'), response: edits(options.headers.response, 'response') };
  }
  if (options.mirror !== undefined) {
    const m = { ...options.mirror, service: visit(options.mirror.service, 'mirror.service', nonEmpty) };
    if (m.tag !== undefined) m.tag = visit(m.tag, 'mirror.tag', nonEmpty);
    out.mirror = m;
  }
  if (options.redirect !== undefined) out.redirect = { ...options.redirect, to: visit(options.redirect.to, 'redirect.to', redirectTarget) };
  return out;
}
