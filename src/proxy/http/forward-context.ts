import type { AccessLog } from '../../observability/access-log.js';
import type { Tracing } from '../../observability/tracing.js';
import type { RuntimeStore } from '../runtime/runtime.js';
import type { RequestIdGenerator } from './request-id.js';

/** Shared, per-proxy state an exchange or a tunnel reads (implemented by ProxyHandler). */
export interface ForwardContext {
  readonly runtimes: RuntimeStore;
  /** Access logger; undefined turns the access log off. */
  readonly accessLog: AccessLog | undefined;
  readonly ids: RequestIdGenerator;
  /** Trace propagation, sampling and (when configured) span export. */
  readonly tracing: Tracing;
  /** Forward the client's Host header (true) or let undici send the endpoint's host:port. */
  readonly preserveHost: boolean;
  /** Value of X-Forwarded-Proto. */
  readonly proto: string;
  /** Set while the proxy drains: responses ask clients to close their connection. */
  readonly closing: boolean;
  /**
   * Set when the drain time of a shutdown is over and what is still open is being cut: exchanges
   * and tunnels that end from now on are logged with `end: drain_cut`.
   */
  cutting: boolean;
  /** Port of the TLS listener, for routes whose policy redirects plain HTTP; undefined = no redirects. */
  readonly httpsPort: number | undefined;
  /** Called once per exchange when its response closed. */
  requestDone(): void;
}
