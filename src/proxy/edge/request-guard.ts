import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Counter } from 'prom-client';
import { util } from 'undici';
import { httpStatusFor, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { TrustedProxies, type Cidr } from './client-address.js';
import { errorBody, rawErrorResponse } from '../http/error-response.js';
import { clientAddress } from '../http/headers.js';
import { normalizeRequestTarget, type PathRejection } from './path-normalize.js';

/**
 * The request guard: what node's HTTP parser (llhttp, strict) lets through but an edge proxy must
 * not forward. Runs once per request, before routing, on plain and upgrade requests alike.
 *
 * llhttp already refuses (as `clientError`, answered by the listener guard): Content-Length with
 * Transfer-Encoding, duplicate or malformed Content-Length, Transfer-Encoding other than a final
 * `chunked` in one header, bare CR or LF, obsolete line folding, invalid header names and control
 * characters, unknown methods, HTTP/1.2+ and malformed chunk framing. This guard adds:
 *
 * - HTTP versions other than 1.0 and 1.1 (node accepts `HTTP/0.9`-style and `HTTP/2.0` heads) → 400.
 * - TRACE (reflects headers back: cross-site tracing) → 405; CONNECT never gets here (listener guard).
 * - More than `maxHeaderCount` header fields → 431 (node would drop the excess silently).
 * - Host: missing on HTTP/1.1, repeated, or with characters no authority has → 400.
 * - Transfer-Encoding other than exactly `chunked` (llhttp accepts `gzip, chunked`; the proxy
 *   re-frames the body and cannot forward other codings) and any Transfer-Encoding on HTTP/1.0
 *   (RFC 9112 §6.1: the framing is faulty) → 400.
 * - Content-Length beyond 2^53 (not representable when forwarded) → 400.
 * - Header names that are an underscore spelling of a framing or forwarding header
 *   (`Content_Length`, `X_Forwarded_For`, ...): CGI-style upstreams map both spellings to the same
 *   variable → 400.
 * - `Upgrade: h2c` offers are not refused (Java's HttpClient and `curl --http2` send them): the
 *   upgrade listener serves them as plain HTTP/1.1 requests without the offer (nginx ignores it
 *   too; upgrade/h2c-offer.ts), so no h2c connection ever reaches an upstream.
 * - The request target: origin-form paths are checked and their dot segments resolved, `//` and
 *   percent-encoding kept as sent (path-normalize.ts), and the result is what is matched and
 *   forwarded; absolute-form (`GET http://host/p`) is turned into origin-form
 *   with its authority as the Host (RFC 9112 §3.2.2), so a host no route serves gets the usual 404
 *   and nothing is ever forwarded *to* that host; `*` and anything else → 400.
 * - X-Forwarded-For and Forwarded from a client outside the trusted proxies are removed (the
 *   proxy then sends the client address alone) and its X-Real-IP is replaced by the client
 *   address; from a trusted proxy they are kept and the client address is appended.
 *
 * A refused request is answered with a JSON error and `Connection: close` and gets one access line
 * (route `(none)`, through `refusalLog`, as do the listener guard's answers), and every later request
 * already pipelined on that connection is dropped unanswered, so nothing that followed a refused
 * request reaches an upstream. Decisions per connection (trusted or not, refused) are cached on the
 * socket.
 */

const lowerName = util.headerNameToString;

export interface Refusal {
  readonly status: number;
  /** The SY_* code; its status comes from errors.ts. */
  readonly code: ErrorCode;
  /** Label of `switchyard_requests_refused_total`. */
  readonly reason: string;
  readonly message: string;
  readonly body: Buffer;
  /** Response head fields for `res.writeHead`. */
  readonly headers: readonly string[];
  /** The whole response, with `connection: close`, for sockets outside the HTTP server. */
  readonly raw: Buffer;
}

/**
 * A refusal, serialised by the one error serialiser (error-response.ts): `errorBody` for the JSON
 * and `rawErrorResponse` for the bytes on sockets outside the HTTP server. Refusals are built once
 * and shared by every request, before any request id exists, so the raw answer carries none.
 */
export function makeRefusal(code: ErrorCode, reason: string, message: string, extra?: readonly [name: string, value: string]): Refusal {
  const status = httpStatusFor(code);
  const body = errorBody(code, message);
  const headers = ['content-type', 'application/json', 'content-length', String(body.length), 'cache-control', 'no-store'];
  if (extra !== undefined) headers.push(extra[0], extra[1]);
  const raw = rawErrorResponse(code, body, undefined, extra?.[0], extra?.[1]);
  return Object.freeze({ status, code, reason, message, body, headers: Object.freeze(headers), raw });
}

/**
 * The methods a 405 names (RFC 9110 §15.5.6: a 405 MUST carry Allow). The proxy forwards every
 * method but TRACE and CONNECT; these are the standard ones a client may use instead.
 */
const ALLOW: readonly [string, string] = ['allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'];

/** Every refusal, built once. */
export const REFUSALS = Object.freeze({
  version: makeRefusal('SY_BAD_REQUEST', 'version', 'only HTTP/1.0 and HTTP/1.1 are served'),
  method: makeRefusal('SY_METHOD_NOT_ALLOWED', 'method', 'this method is not served', ALLOW),
  connect: makeRefusal('SY_METHOD_NOT_ALLOWED', 'method', 'CONNECT is not served: Switchyard is not a forward proxy', ALLOW),
  tooManyHeaders: makeRefusal('SY_HEADERS_TOO_LARGE', 'headers_too_large', 'the request has too many header fields'),
  headersTooLarge: makeRefusal('SY_HEADERS_TOO_LARGE', 'headers_too_large', 'the request head is too large'),
  noHost: makeRefusal('SY_BAD_REQUEST', 'host', 'an HTTP/1.1 request needs a Host header'),
  duplicateHost: makeRefusal('SY_BAD_REQUEST', 'host', 'the request has more than one Host header'),
  badHost: makeRefusal('SY_BAD_REQUEST', 'host', 'the Host header is not a valid authority'),
  transferEncoding: makeRefusal('SY_BAD_REQUEST', 'framing', 'only Transfer-Encoding: chunked is accepted'),
  transferEncodingHttp10: makeRefusal('SY_BAD_REQUEST', 'framing', 'Transfer-Encoding is not allowed on HTTP/1.0'),
  contentLength: makeRefusal('SY_BAD_REQUEST', 'framing', 'Content-Length is too large'),
  ambiguousHeader: makeRefusal('SY_BAD_REQUEST', 'header', 'a header name uses "_" where a framing or forwarding header has "-"'),
  target: makeRefusal('SY_BAD_REQUEST', 'target', 'the request target must be a path or an http(s) URL'),
  badRequest: makeRefusal('SY_BAD_REQUEST', 'parse', 'the request is malformed'),
  timeout: makeRefusal('SY_REQUEST_TIMEOUT', 'timeout', 'the request was not received in time'),
});

const PATH_REFUSALS = new Map<PathRejection, Refusal>();
function pathRefusal(rejection: PathRejection): Refusal {
  let refusal = PATH_REFUSALS.get(rejection);
  if (refusal === undefined) {
    refusal = makeRefusal('SY_BAD_REQUEST', 'path', rejection.message);
    PATH_REFUSALS.set(rejection, refusal);
  }
  return refusal;
}

/** Header names whose underscore spelling is refused. */
const PROTECTED_NAMES = new Set([
  'content-length', 'transfer-encoding', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
  'x-forwarded-port', 'x-real-ip', 'x-request-id',
]);

/** An underscore spelling of a protected header name (`X_Forwarded-For`, `content_length`). */
function isAmbiguous(name: string): boolean {
  return PROTECTED_NAMES.has(name.toLowerCase().replaceAll('_', '-'));
}

/** Characters of an authority (RFC 3986 host and port): unreserved, sub-delims, `:`, `[`, `]`, `%`. */
const AUTHORITY = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&\'()*+,;=:[]%') AUTHORITY[c.charCodeAt(0)] = 1;

export function isValidAuthority(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || AUTHORITY[c] === 0) return false;
  }
  return true;
}

function isChunked(value: string): boolean {
  return value.length === 7 && (value === 'chunked' || value.toLowerCase() === 'chunked');
}

/** `http://host:port/p?q` → authority and origin-form target, or undefined (other schemes, userinfo, no host). */
export function splitAbsoluteForm(target: string): { authority: string; path: string } | undefined {
  const scheme = target.slice(0, 8).toLowerCase();
  const start = scheme.startsWith('http://') ? 7 : scheme === 'https://' ? 8 : -1;
  if (start === -1) return undefined;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const authority = target.slice(start, end);
  if (authority === '' || !isValidAuthority(authority)) return undefined;
  const rest = target.slice(end);
  return { authority, path: rest === '' ? '/' : rest.charCodeAt(0) === 47 ? rest : `/${rest}` };
}

/**
 * `req.headers` before `req.rawHeaders` changes. node builds `headers` lazily from `rawHeaders`
 * with the header count it parsed, so it must be built first (a shorter `rawHeaders` would crash
 * the getter), and then edited alongside. Only the rare rewriting paths pay for building it.
 */
function editableHeaders(req: IncomingMessage): IncomingHttpHeaders {
  return req.headers;
}

const STATE = Symbol('switchyard.requestGuard');
const VALID_HOST = Symbol('switchyard.validHost');
const TRUSTED = 1;
const REFUSED = 2;
type GuardedSocket = Socket & { [STATE]?: number; [VALID_HOST]?: string };

/**
 * Writes the access line of a refusal (method and path "" when the head was never parsed); the
 * ProxyHandler sets it when the access log is on. Only refusals call it: normal requests never do.
 */
export type RefusalLog = (refusal: Refusal, method: string, path: string) => void;

export interface RequestGuardOptions {
  /** CIDRs whose forwarding headers are believed. Default none. */
  trustedProxies?: readonly (Cidr | string)[];
  /** Header fields (name/value pairs) a request may carry. Default 100, Envoy's default. */
  maxHeaderCount?: number;
}

export class RequestGuard {
  readonly maxHeaderCount: number;
  private readonly trusted: TrustedProxies | undefined;
  private readonly logger: Logger | undefined;
  private readonly refused: Counter<'reason'> | undefined;
  /** One access line per answered refusal (see RefusalLog); undefined: `--access-log off`. */
  refusalLog: RefusalLog | undefined;

  constructor(options: RequestGuardOptions = {}, logger?: Logger, metrics?: Metrics) {
    this.maxHeaderCount = options.maxHeaderCount ?? 100;
    const cidrs = options.trustedProxies ?? [];
    this.trusted = cidrs.length === 0 ? undefined : new TrustedProxies(cidrs);
    this.logger = logger;
    this.refused = metrics === undefined ? undefined : refusedCounter(metrics);
  }

  /**
   * For the `request` event: true when the request may proceed (possibly with its url, Host and
   * forwarding headers rewritten); otherwise the response has been sent or the request dropped.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const socket = req.socket as GuardedSocket;
    const state = socket[STATE] ?? this.firstRequest(socket);
    // A request pipelined behind a refused one: the connection closes after the refusal is sent.
    if ((state & REFUSED) !== 0) return false;
    const refusal = this.safeInspect(req, (state & TRUSTED) !== 0, false);
    if (refusal === undefined) return true;
    socket[STATE] = state | REFUSED;
    this.record(refusal, req);
    res.shouldKeepAlive = false;
    res.writeHead(refusal.status, refusal.headers as string[]);
    res.end(refusal.body);
    return false;
  }

  /** For the `upgrade` event: like `admit`, answering on the raw socket. */
  admitUpgrade(req: IncomingMessage, socket: Duplex): boolean {
    const s = socket as GuardedSocket;
    const state = s[STATE] ?? this.firstRequest(s);
    if ((state & REFUSED) !== 0) {
      s.destroy();
      return false;
    }
    const refusal = this.safeInspect(req, (state & TRUSTED) !== 0, true);
    if (refusal === undefined) return true;
    s[STATE] = state | REFUSED;
    this.record(refusal, req);
    this.refuseSocket(s, refusal);
    return false;
  }

  /**
   * Write a refusal on a socket outside the HTTP server's control and close it once sent. True when
   * the answer was written (false: already answered, or the socket could no longer be written).
   */
  refuseSocket(socket: Duplex, refusal: Refusal): boolean {
    // Already answered (node can report a second parser error for the same bytes): let it flush.
    if (socket.destroyed || socket.writableEnded) return false;
    if (!socket.writable) {
      socket.destroy();
      return false;
    }
    socket.end(refusal.raw);
    (socket as Socket).destroySoon?.();
    return true;
  }

  /** Count (and log at debug) a refusal decided elsewhere (listener events). */
  count(reason: string, detail?: Record<string, unknown>): void {
    this.refused?.inc({ reason });
    this.logger?.debug({ reason, ...detail }, 'request refused');
  }

  /** Whether a client address is a trusted proxy. */
  isTrusted(address: string | undefined): boolean {
    return this.trusted !== undefined && this.trusted.contains(address);
  }

  /**
   * The refusal for `req`, or undefined after rewriting it for forwarding. `trusted`: its peer is
   * a trusted proxy; `_upgrade`: it came through the `upgrade` event (upgrades and plain requests
   * get the same checks since h2c offers are served as plain requests).
   */
  inspect(req: IncomingMessage, trusted: boolean, _upgrade = false): Refusal | undefined {
    const minor = req.httpVersionMinor;
    if (req.httpVersionMajor !== 1 || minor > 1) return REFUSALS.version;
    const method = req.method;
    if (method === 'TRACE' || method === 'CONNECT') return REFUSALS.method;
    const raw = req.rawHeaders;
    if (raw.length > this.maxHeaderCount * 2) return REFUSALS.tooManyHeaders;

    let hostAt = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const rawName = raw[i]!;
      // Only names of these lengths can matter; the others cost one length check and one indexOf.
      const length = rawName.length;
      if (length !== 4 && length !== 7 && length !== 9 && length !== 14 && length !== 15 && length !== 17) {
        if (rawName.indexOf('_') !== -1 && isAmbiguous(rawName)) return REFUSALS.ambiguousHeader;
        continue;
      }
      const name = lowerName(rawName);
      switch (name) {
        case 'host':
          if (hostAt !== -1) return REFUSALS.duplicateHost;
          hostAt = i + 1;
          break;
        case 'transfer-encoding':
          if (minor === 0) return REFUSALS.transferEncodingHttp10;
          if (!isChunked(raw[i + 1]!)) return REFUSALS.transferEncoding;
          break;
        case 'content-length':
          // llhttp guarantees digits only; 16 digits and more can exceed 2^53.
          if (raw[i + 1]!.length > 15) return REFUSALS.contentLength;
          break;
        case 'x-forwarded-for':
        case 'forwarded':
          if (!trusted) {
            delete editableHeaders(req)[name];
            raw.splice(i, 2);
            i -= 2;
          }
          break;
        case 'x-real-ip':
          if (!trusted) editableHeaders(req)[name] = raw[i + 1] = clientAddress(req.socket.remoteAddress);
          break;
        default:
          if (name.indexOf('_') !== -1 && isAmbiguous(name)) return REFUSALS.ambiguousHeader;
      }
    }

    const url = req.url ?? '';
    if (url.charCodeAt(0) === 47 /* / */) {
      if (hostAt === -1) {
        if (minor === 1) return REFUSALS.noHost;
      } else {
        // Keep-alive clients repeat their Host: validate each distinct value once per connection.
        const host = raw[hostAt]!;
        const socket = req.socket as GuardedSocket;
        if (socket[VALID_HOST] !== host) {
          if (!isValidAuthority(host)) return REFUSALS.badHost;
          socket[VALID_HOST] = host;
        }
      }
      const normalized = normalizeRequestTarget(url);
      if (typeof normalized !== 'string') return pathRefusal(normalized);
      if (normalized !== url) req.url = normalized;
      return undefined;
    }

    // Absolute-form: the authority is the Host (RFC 9112 §3.2.2), whatever the Host header says.
    const absolute = splitAbsoluteForm(url);
    if (absolute === undefined) return REFUSALS.target;
    const normalized = normalizeRequestTarget(absolute.path);
    if (typeof normalized !== 'string') return pathRefusal(normalized);
    editableHeaders(req).host = absolute.authority;
    if (hostAt === -1) raw.push('Host', absolute.authority);
    else raw[hostAt] = absolute.authority;
    req.url = normalized;
    return undefined;
  }

  /** `inspect`, never throwing: it runs inside node's event listeners, where a throw ends the process. */
  private safeInspect(req: IncomingMessage, trusted: boolean, upgrade: boolean): Refusal | undefined {
    try {
      return this.inspect(req, trusted, upgrade);
    } catch (err) {
      this.logger?.error({ err }, 'request guard failed; refusing the request');
      return REFUSALS.badRequest;
    }
  }

  private firstRequest(socket: GuardedSocket): number {
    const state = this.isTrusted(socket.remoteAddress) ? TRUSTED : 0;
    socket[STATE] = state;
    return state;
  }

  private record(refusal: Refusal, req: IncomingMessage): void {
    this.refused?.inc({ reason: refusal.reason });
    // The access line has the target as sent: a refused request was never rewritten.
    this.refusalLog?.(refusal, req.method ?? '', req.url ?? '');
    if (this.logger?.isLevelEnabled('debug') === true) {
      const url = req.url ?? '';
      this.logger.debug({
        reason: refusal.reason,
        status: refusal.status,
        method: req.method,
        path: url.length > 200 ? `${url.slice(0, 200)}...` : url,
        remote: req.socket.remoteAddress,
        detail: refusal.message,
      }, 'request refused');
    }
  }
}

/** `switchyard_requests_refused_total{reason}`, registered once per registry. */
export function refusedCounter(metrics: Metrics): Counter<'reason'> {
  const name = 'switchyard_requests_refused_total';
  return (metrics.registry.getSingleMetric(name) as Counter<'reason'> | undefined) ?? new Counter({
    name,
    help: 'Requests and connections refused before routing, by reason (parse, framing, path, host, version, method, headers_too_large, timeout, max_connections, ...)',
    labelNames: ['reason'] as const,
    registers: [metrics.registry],
  });
}
