/** The proxy: node:http in front, undici Pools behind, a runtime view rebuilt on every table swap. */
export { createProxy, type Proxy, type ProxyDeps, type ProxyOptions } from './server.js';
export { Upstreams, resolveUpstreamOptions, tableOrigins, type UpstreamOptions, type ResolvedUpstreamOptions } from './upstreams.js';
export { RuntimeStore, Runtime, RuntimeRoute, RuntimeDestination, RuntimeEndpoint, buildRuntime, stripPath, normaliseStrip } from './runtime.js';
export { ProxyHandler, type HandlerOptions } from './handler.js';
export { UpgradeProxy } from './websocket.js';
export { RequestIdGenerator } from './request-id.js';
export { NO_ROUTE_LABEL } from './route-metrics.js';
export { CLIENT_CLOSED_STATUS, classifyUpstreamError } from './forward.js';
export { RouteState, EndpointHealth, type EjectedEndpoint } from './route-state.js';
export { RateLimiter } from './rate-limiter.js';
export { RetryBudget, RETRY_WINDOW_SECONDS } from './retry-budget.js';
export { poolKey } from './upstreams.js';
export { explainRequest, type MatchExplanation, type MatchOutcome } from './explain.js';
