import type { IncomingMessage } from 'node:http';
import { AccessLog } from '../../observability/access-log.js';
import type { Logger } from '../../observability/logger.js';
import { Tracing } from '../../observability/tracing.js';
import { Exchange } from './exchange.js';
import type { ForwardContext } from './forward-context.js';
import type { ProxyResponse } from './proxy-response.js';
import { RequestIdGenerator } from './request-id.js';
import { RequestGuard, type RequestGuardOptions } from '../edge/request-guard.js';
import type { RuntimeStore } from '../runtime/runtime.js';
import { NO_ROUTE_JSON } from '../runtime/route-metrics.js';

export interface HandlerOptions extends RequestGuardOptions {
  /** Forward the client's Host header (default) or send the endpoint's `address:port`. */
  preserveHost?: boolean;
  /** Write one access log line per request (default true). */
  accessLog?: boolean;
  /** X-Forwarded-Proto value (default `http`). */
  proto?: string;
  /**
   * Port of the TLS listener: routes whose policy has `redirectToHttps` answer plain-HTTP requests
   * with a 308 to it. Read per redirect, so it may be set after construction (`listenTls` does).
   * Retries, timeouts and limits are per-route policies (src/model/policy.ts), not options here.
   */
  httpsPort?: number;
  /**
   * Trace propagation and span export (observability/tracing.ts `startTracing`). Default: propagation
   * only, no export, the default sampler (new traces go upstream sampled).
   */
  tracing?: Tracing;
}

/**
 * The per-proxy context and the `request` listener. `handle` is created once; each request gets
 * one Exchange and nothing else is allocated up front. Tracks requests in flight for draining.
 */
export class ProxyHandler implements ForwardContext {
  readonly runtimes: RuntimeStore;
  readonly accessLog: AccessLog | undefined;
  readonly ids = new RequestIdGenerator();
  /** Set before the listener opens (app.ts and cluster/worker.ts attach the environment's tracing). */
  tracing: Tracing;
  readonly preserveHost: boolean;
  readonly proto: string;
  /** Hostile-input checks, path normalisation and the X-Forwarded-For choice, before routing. */
  readonly guard: RequestGuard;
  closing = false;
  cutting = false;
  /** Requests whose response has not closed yet. */
  inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly options: HandlerOptions;

  constructor(runtimes: RuntimeStore, logger: Logger | undefined, options: HandlerOptions = {}, guard = new RequestGuard(options)) {
    this.runtimes = runtimes;
    this.guard = guard;
    // Access lines carry no secrets (no headers, no bodies), so they skip the root logger's
    // redaction: its wildcard paths cost more per line than the rest of the line (measured ~3x).
    this.accessLog = options.accessLog === false || logger === undefined ? undefined : new AccessLog(logger, { kind: 'access' });
    // Requests refused before routing (request and listener guards) get an access line too, as
    // nginx and HAProxy write one for their 400s: no route, no trace, ms 0 (no exchange timed them).
    const accessLog = this.accessLog;
    if (accessLog !== undefined) {
      guard.refusalLog = (refusal, method, path) => accessLog.write({
        reqId: this.ids.next(), routeJson: NO_ROUTE_JSON, upstream: undefined, endpoint: undefined, method, path,
        status: refusal.status, ms: 0, error: refusal.code, reason: refusal.reason, attempts: undefined, end: undefined,
      });
    }
    this.preserveHost = options.preserveHost ?? true;
    this.proto = options.proto ?? 'http';
    this.tracing = options.tracing ?? new Tracing();
    this.options = options;
  }

  /** The TLS listener's port for HTTPS redirects (see HandlerOptions.httpsPort). */
  get httpsPort(): number | undefined {
    return this.options.httpsPort;
  }

  readonly handle = (req: IncomingMessage, res: ProxyResponse): void => {
    // Refused requests are answered (or dropped) by the guard and never reach routing.
    if (!this.guard.admit(req, res)) return;
    this.inflight += 1;
    new Exchange(this, req, res, performance.now()).run();
  };

  /**
   * For the server's `checkContinue` event (`Expect: 100-continue`): the same as `handle`, but the
   * `100 Continue` is sent by the exchange only once the request is admitted, so a Content-Length
   * over the route's maxBodyBytes gets its 413 before the client sends the body (nginx does the same).
   */
  readonly handleContinue = (req: IncomingMessage, res: ProxyResponse): void => {
    if (!this.guard.admit(req, res)) return;
    this.inflight += 1;
    new Exchange(this, req, res, performance.now(), true).run();
  };

  /** Called once per request when its response closed. */
  requestDone(): void {
    this.inflight -= 1;
    if (this.inflight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
