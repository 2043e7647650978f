import type { IncomingMessage } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { Exchange, type ForwardContext, type ProxyResponse } from './forward.js';
import { RequestIdGenerator } from './request-id.js';
import type { RuntimeStore } from './runtime.js';

export interface HandlerOptions {
  /** Forward the client's Host header (default) or send the endpoint's `address:port`. */
  preserveHost?: boolean;
  /** Write one access log line per request (default true). */
  accessLog?: boolean;
  /** X-Forwarded-Proto value (default `http`). */
  proto?: string;
  /**
   * Extra attempts on another endpoint for a request without a body whose upstream connection
   * could not be established (refused, unreachable, connect timeout): it never reached an
   * upstream, so it cannot run twice. Default 1; 0 disables.
   */
  retries?: number;
}

/**
 * The per-proxy context and the `request` listener. `handle` is created once; each request gets
 * one Exchange and nothing else is allocated up front. Tracks requests in flight for draining.
 */
export class ProxyHandler implements ForwardContext {
  readonly runtimes: RuntimeStore;
  readonly accessLog: Logger | undefined;
  readonly ids = new RequestIdGenerator();
  readonly preserveHost: boolean;
  readonly proto: string;
  readonly retries: number;
  closing = false;
  /** Requests whose response has not closed yet. */
  inflight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(runtimes: RuntimeStore, logger: Logger | undefined, options: HandlerOptions = {}) {
    this.runtimes = runtimes;
    // Access lines carry no secrets (no headers, no bodies), so they skip the root logger's
    // redaction: its wildcard paths cost more per line than the rest of the line (measured ~3x).
    this.accessLog = options.accessLog === false || logger === undefined ? undefined : logger.child({ kind: 'access' }, { redact: [] });
    this.preserveHost = options.preserveHost ?? true;
    this.proto = options.proto ?? 'http';
    this.retries = options.retries ?? 1;
  }

  readonly handle = (req: IncomingMessage, res: ProxyResponse): void => {
    this.inflight += 1;
    new Exchange(this, req, res, performance.now()).run();
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
