import type { IncomingMessage } from 'node:http';
import type { Span } from '@opentelemetry/api';
import type { ErrorCode } from '../../errors.js';
import { NO_ROUTE_JSON } from '../runtime/route-metrics.js';
import type { RuntimeEndpoint, RuntimeRoute } from '../runtime/runtime.js';
import type { ForwardContext } from './forward-context.js';
import { endSpan } from './trace-span.js';

/**
 * How an exchange ended when it did not end with a complete response (the access log's `end`,
 * in the spirit of Envoy's response flags). `status` is always what the client received: the
 * upstream's status once its head was relayed, the proxy's error status otherwise, 499 when the
 * client left before any response (nginx), 0 when the proxy cut it before any response.
 * - `upstream_reset`: the upstream connection broke (or sent an invalid body) after the head was relayed (Envoy UR/UPE).
 * - `upstream_timeout`: the body or total timeout expired after the head was relayed (Envoy UT).
 * - `body_too_large`: a chunked request body passed the limit after the head was relayed.
 * - `client_closed`: the client closed its connection before the response ended (Envoy DC).
 * - `request_timeout`: the listener's request timeout cut a slow upload (408).
 * - `drain_cut`: still running when the drain timeout of a shutdown expired.
 * - `tunnel_idle`: an upgraded connection idle both ways for the route's tunnelIdleMs.
 * - `queue_timeout`: waited longer than `upstream.queueTimeoutMs` for an upstream connection (503 SY_QUEUE_TIMEOUT).
 */
export type ExchangeEnd =
  | 'upstream_reset' | 'upstream_timeout' | 'body_too_large' | 'client_closed'
  | 'request_timeout' | 'drain_cut' | 'tunnel_idle' | 'queue_timeout';

/** Status logged and counted when the client closed the connection before any response (nginx's 499). */
export const CLIENT_CLOSED_STATUS = 499;

/** What a plain exchange and an upgrade tunnel both know when they end. */
export interface ExchangeOutcome {
  readonly req: IncomingMessage;
  readonly start: number;
  readonly requestId: string | undefined;
  readonly route: RuntimeRoute | undefined;
  readonly endpoint: RuntimeEndpoint | undefined;
  readonly status: number;
  readonly errorCode: ErrorCode | undefined;
  readonly reason: string | undefined;
  readonly attempts: number;
  readonly end: ExchangeEnd | undefined;
  readonly host: string | undefined;
  readonly forwardedFor: string | undefined;
  /** The trace id (observability/tracing.ts). */
  readonly traceId: string;
  /** The exchange's span: set only for sampled requests when spans are exported. */
  readonly span: Span | undefined;
}

/**
 * Count one finished exchange in its route's metrics, end its span (sampled requests, when spans
 * are exported) and write its access line: the one record builder for plain requests and upgrades. A tunnel's lifetime is no latency, so upgrades are
 * counted without a duration.
 */
export function recordExchange(ctx: ForwardContext, o: ExchangeOutcome, upgrade: boolean): void {
  const ms = performance.now() - o.start;
  const route = o.route;
  const metrics = route === undefined ? ctx.runtimes.noRouteMetrics : route.metrics;
  if (upgrade) metrics.count(o.status);
  else metrics.record(o.status, ms / 1000);
  o.endpoint?.window.record(o.start + ms, upgrade ? -1 : ms, o.status);
  if (o.span !== undefined) endSpan(o.span, o, upgrade);
  const log = ctx.accessLog;
  if (log === undefined) return;
  const endpoint = o.endpoint;
  log.write({
    reqId: o.requestId!,
    traceId: o.traceId,
    routeJson: route === undefined ? NO_ROUTE_JSON : route.nameJson,
    upstream: endpoint?.origin,
    endpoint: endpoint?.id,
    method: o.req.method ?? '',
    path: o.req.url ?? '',
    status: o.status,
    ms,
    error: o.errorCode,
    reason: o.reason,
    attempts: o.attempts > 1 ? o.attempts : undefined,
    end: o.end,
    upgrade,
  });
}
