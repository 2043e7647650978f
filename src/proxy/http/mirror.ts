import type { Dispatcher } from 'undici';
import type { MirrorEndpoint, MirrorResult, MirrorState, RouteMirror } from '../runtime/mirror-route.js';
import type { BodySink } from './body-tap.js';
import { failureOf, ProxyAbort, timeoutKind } from './upstream-failure.js';

/**
 * Request mirroring (shadow traffic): a copy of a sampled share of a route's requests goes to the
 * mirror service's pool and its answer is read and discarded. The rules:
 * - The client's request never waits for, and never fails because of, its copy: the exchange
 *   dispatches the main request first, then the copy, fire-and-forget; a copy's errors are only
 *   counted (`switchyard_mirror_total{route,result}`, results in runtime/mirror-route.ts).
 * - Bounded: at most `maxInFlight` copies per route (per worker: 1/N of it) from the decision until
 *   undici is done with the copy; a request over it is `shed`, nothing sent. A copy's whole life,
 *   waiting for the client's body included, is bounded by `timeoutMs` (one timer per copy), and
 *   undici's headers and body timeouts are `timeoutMs` too. A copy still connecting when its time
 *   is up is counted `timeout` then, and keeps its slot until undici lets go of it (at the pool's
 *   connect timeout at the latest), so the slots bound what undici really holds.
 * - Bodies: with a Content-Length over `maxBodyBytes` nothing is copied (`body_too_large`); else
 *   the BodyTap keeps a copy while the body streams to the main upstream unhindered, and the copy
 *   is sent when the client's body is complete (BodySink). Memory per route is therefore at most
 *   `maxInFlight` × `maxBodyBytes`.
 * - The copy carries the main request's method, path and headers as the exchange built them
 *   (rewrites, header edits, X-Forwarded-*, X-Request-Id, traceparent), except the client's
 *   credentials (Authorization, Cookie, Proxy-Authorization), which are dropped unless the
 *   target says `keepAuth`, the target's `removeHeaders` (dropped from the copy only, whatever
 *   keepAuth says; one set made at build time: runtime/mirror-route.ts mirrorDropSet), and its Host, which gets the suffix `-shadow` on the host name (before
 *   any port: `api.example.com:8080` → `api.example.com-shadow:8080`), as Envoy and Google Cloud
 *   load balancers mark shadow traffic, so the mirror can tell it from real traffic. No Host in
 *   the main request's headers (preserveHost off): undici sends the mirror endpoint's host:port.
 * - Never retried: one dispatch on one endpoint (the mirror's own smooth weighted round-robin).
 * - The answer is read to its end and dropped (undici keeps the connection for the next request).
 */

/** setTimeout callback of a copy's deadline; the copy is the timer's argument, so no closure. */
function onMirrorTimeout(copy: MirrorCopy): void {
  copy.expire();
}

/**
 * The copy's headers: `headers` (a flat `[name, value, ...]` list with lower-case names, as the
 * exchange sends them) without the fields named in `drop` (RouteMirror.dropHeaders), and with
 * `-shadow` added to Host.
 */
export function mirrorHeaders(headers: readonly string[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name === 'host') out.push(name, shadowHost(value));
    else if (!drop.has(name)) out.push(name, value);
  }
  return out;
}

/** `host[:port]` with `-shadow` after the host name: `a.example:81` → `a.example-shadow:81`. */
export function shadowHost(host: string): string {
  const colon = host.lastIndexOf(':');
  // A port follows the last colon unless it is inside an IPv6 literal (`[::1]`, `[::1]:80`).
  if (colon === -1 || host.indexOf(']', colon) !== -1 || (host.charCodeAt(0) !== 91 /* [ */ && host.indexOf(':') !== colon)) return `${host}-shadow`;
  return `${host.slice(0, colon)}-shadow${host.slice(colon)}`;
}

/**
 * Decide whether this request is copied, and start the copy when it is: the sampling draw, then
 * the body bound (`bodyLength`: the Content-Length, -1 for a chunked body, 0 for none), the
 * mirror's endpoints, the in-flight bound. Returns the copy (its slot taken, its deadline running),
 * or undefined (counted, except a request not sampled). A copy without a body is sent by `send`;
 * one with a body goes to the BodyTap as its sink and sends itself when the body is complete.
 */
export function startMirror(mirror: RouteMirror, method: string | undefined, path: string, headers: readonly string[], bodyLength: number): MirrorCopy | undefined {
  if (!mirror.sampled()) return undefined;
  const state = mirror.state;
  if (bodyLength > mirror.maxBodyBytes) {
    state.count('body_too_large');
    return undefined;
  }
  const endpoint = mirror.balancer.pick();
  if (endpoint === undefined) {
    state.count('no_endpoint');
    return undefined;
  }
  if (state.inflight >= mirror.maxInFlight) {
    state.count('shed');
    return undefined;
  }
  return new MirrorCopy(mirror, endpoint, method, path, mirrorHeaders(headers, mirror.dropHeaders));
}

/**
 * One copy of one request to the mirror: the BodySink of the exchange's BodyTap and the undici
 * dispatch handler of the copy (legacy handler methods, as the exchange's). Counted once (its
 * result), released once (its slot and its timer); in that order or the other.
 */
export class MirrorCopy implements BodySink, Dispatcher.DispatchHandler {
  readonly maxBytes: number;
  private readonly state: MirrorState;
  private readonly endpoint: MirrorEndpoint;
  private readonly options: Dispatcher.DispatchOptions;
  private timer: NodeJS.Timeout | undefined;
  private abort: ((err?: Error) => void) | null = null;
  /** Handed to undici (until it calls onComplete or onError). */
  private dispatched = false;
  /** undici gave the copy a connection (onConnect). */
  private connected = false;
  private counted = false;
  private released = false;
  private status = 0;

  constructor(mirror: RouteMirror, endpoint: MirrorEndpoint, method: string | undefined, path: string, headers: string[]) {
    this.maxBytes = mirror.maxBodyBytes;
    this.state = mirror.state;
    this.endpoint = endpoint;
    const ms = mirror.timeoutMs;
    this.options = { method: (method ?? 'GET') as Dispatcher.HttpMethod, path, headers, body: null, headersTimeout: ms, bodyTimeout: ms };
    mirror.state.inflight += 1;
    this.timer = setTimeout(onMirrorTimeout, ms, this);
    // A copy never keeps the process (a test, a drain) alive.
    this.timer.unref();
  }

  /** Send the copy with `body` (null: none). Called once; ignored when its time is already up. */
  send(body: Buffer | null): void {
    if (this.counted) return;
    const options = this.options;
    options.body = body;
    this.dispatched = true;
    try {
      this.endpoint.pool.dispatch(options, this);
    } catch {
      // A pool that refuses synchronously (closed by a swap under us): no answer will come.
      this.dispatched = false;
      this.finish('error');
    }
  }

  // ---- BodySink (body-tap.ts) ----

  bodyComplete(body: Buffer): void {
    this.send(body);
  }

  bodyDropped(reason: 'body_too_large' | 'incomplete'): void {
    this.finish(reason);
  }

  /** The deadline: count a timeout; abort the copy if undici has it, else release it now. */
  expire(): void {
    this.timer = undefined;
    if (this.counted) return;
    this.count('timeout');
    if (!this.dispatched) {
      this.release();
      return;
    }
    // Connected: undici reports the abort to onError synchronously. Not yet: onConnect aborts.
    const abort = this.abort;
    if (abort !== null) abort(new ProxyAbort('total-timeout', 'the mirror copy exceeded its timeout'));
  }

  // ---- undici dispatch handler ----

  onConnect(abort: (err?: Error) => void): void {
    if (this.counted) {
      abort(new ProxyAbort('total-timeout', 'the mirror copy exceeded its timeout'));
      return;
    }
    this.connected = true;
    this.abort = abort;
  }

  onHeaders(statusCode: number): boolean {
    if (statusCode >= 200) this.status = statusCode;
    return true;
  }

  /** The answer is read and dropped: reading on keeps the connection reusable. */
  onData(): boolean {
    return true;
  }

  onComplete(): void {
    this.dispatched = false;
    this.finish(this.status >= 500 ? 'server_error' : 'ok');
  }

  onError(err: Error): void {
    this.dispatched = false;
    this.finish(timeoutKind(failureOf(err, this.connected)) === undefined ? 'error' : 'timeout');
  }

  private finish(result: MirrorResult): void {
    this.count(result);
    this.release();
  }

  private count(result: MirrorResult): void {
    if (this.counted) return;
    this.counted = true;
    this.state.count(result);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.state.inflight -= 1;
    this.abort = null;
    const timer = this.timer;
    if (timer !== undefined) {
      clearTimeout(timer);
      this.timer = undefined;
    }
  }
}
