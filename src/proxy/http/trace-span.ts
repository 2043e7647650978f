import type { Attributes, Span } from '@opentelemetry/api';
import { hostKey } from '../../model/host.js';
import type { RuntimeEndpoint, RuntimeRoute } from '../runtime/runtime.js';
import type { ExchangeOutcome } from './access-record.js';
import { clientAddress } from './headers.js';

/**
 * The exchange's span, for sampled requests when spans are exported (observability/tracing.ts).
 * One SERVER span per exchange, as Envoy (its ingress span) and Traefik (the entry point span)
 * record an edge proxy's request, with the upstream it went to as attributes: HTTP semantic
 * conventions (`http.request.method`, `url.path`, `http.route` = the route's path prefix,
 * `http.response.status_code`, `server.address`/`server.port`, `client.address`,
 * `network.peer.address`, `url.scheme`), plus `switchyard.route`, `switchyard.endpoint`,
 * `switchyard.upstream` (origin), `switchyard.attempts`. Retries and ejections are span events
 * (`retry`, `ejection`), added when they happen. Status ERROR for a 5xx, a cut response, or an
 * exchange with no response (`error.type` names the proxy's error code or the status).
 * Nothing here runs for unsampled requests. Each attribute costs serialisation time in the OTLP/JSON
 * exporter (~1-2 µs per span each, measured): recommended ones that add nothing here (protocol
 * version, peer port, the request id, which the access line links to the trace id) are left out.
 */

/** SpanStatusCode.ERROR of @opentelemetry/api (a literal: the API module is not needed to end a span). */
const STATUS_ERROR = 2;

/** Host header → `server.address`: the lookup key (port and trailing dot off, lower case) without IPv6 brackets. */
function serverAddress(host: string): string {
  const key = hostKey(host);
  return key.startsWith('[') ? key.slice(1, -1) : key;
}

/** Set the span's attributes, name and status from the finished exchange, and end it now. */
export function endSpan(span: Span, o: ExchangeOutcome, upgrade: boolean): void {
  const { req, route, endpoint, status } = o;
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const socket = req.socket as typeof req.socket | null;
  const peer = socket?.remoteAddress;
  const attributes: Attributes = {
    'http.request.method': method,
    'url.path': q === -1 ? url : url.slice(0, q),
    'url.scheme': (socket as { encrypted?: boolean } | null)?.encrypted === true ? 'https' : 'http',
  };
  if (peer !== undefined) attributes['network.peer.address'] = clientAddress(peer);
  // The original client: the first X-Forwarded-For entry when a trusted proxy sent one (the request
  // guard drops it from anyone else), else the peer.
  const forwarded = o.forwardedFor;
  attributes['client.address'] = forwarded === undefined ? clientAddress(peer) : forwarded.split(',', 1)[0]!.trim();
  if (o.host !== undefined) attributes['server.address'] = serverAddress(o.host);
  if (socket?.localPort !== undefined) attributes['server.port'] = socket.localPort;
  if (status > 0 && status !== 499) attributes['http.response.status_code'] = status;
  if (route !== undefined) {
    attributes['http.route'] = route.route.path;
    attributes['switchyard.route'] = route.name;
    span.updateName(`${method} ${route.route.path}`);
  } else {
    span.updateName(method);
  }
  if (endpoint !== undefined) {
    attributes['switchyard.endpoint'] = endpoint.id;
    attributes['switchyard.upstream'] = endpoint.origin;
  }
  if (o.attempts > 1) attributes['switchyard.attempts'] = o.attempts;
  if (o.end !== undefined) attributes['switchyard.end'] = o.end;
  if (upgrade) attributes['switchyard.upgrade'] = true;
  const failed = status >= 500 || status === 0 || (o.end !== undefined && o.end.startsWith('upstream_'));
  if (o.errorCode !== undefined) attributes['error.type'] = o.errorCode;
  else if (failed) attributes['error.type'] = status > 0 ? String(status) : (o.end ?? 'cut');
  span.setAttributes(attributes);
  if (failed) span.setStatus({ code: STATUS_ERROR, message: o.reason ?? o.errorCode });
  span.end();
}

/** Span event: the exchange goes again to `next` after `reason` (connect-failure, reset, 502, ...). */
export function retryEvent(span: Span, reason: string, failed: RuntimeEndpoint | undefined, next: RuntimeEndpoint, attempt: number): void {
  span.addEvent('retry', {
    'switchyard.retry.reason': reason,
    'switchyard.retry.from': failed?.id,
    'switchyard.endpoint': next.id,
    'switchyard.attempt': attempt,
  });
}

/** Span event: outlier detection ejected `endpoint` after this exchange's failure on it. */
export function ejectionEvent(span: Span, endpoint: RuntimeEndpoint): void {
  span.addEvent('ejection', { 'switchyard.endpoint': endpoint.id, 'switchyard.upstream': endpoint.origin });
}

/**
 * Outlier accounting of a failure on `endpoint` (RuntimeRoute.failed), for plain exchanges and
 * tunnels alike; an ejection it causes is an event of the exchange's span when it has one.
 */
export function failedOn(route: RuntimeRoute, endpoint: RuntimeEndpoint, span: Span | undefined): void {
  if (span === undefined) {
    route.failed(endpoint);
    return;
  }
  const before = endpoint.health.ejected;
  route.failed(endpoint);
  if (!before && endpoint.health.ejected) ejectionEvent(span, endpoint);
}
