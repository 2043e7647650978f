/** The model's public API: pure functions and frozen data, no I/O. */
export type * from './types.js';
export { SmoothWeightedRoundRobin, type Weighted } from './balancer.js';
export { buildTable, neededServices } from './build-table.js';
export { hostKey, hostProblem, normalizeHost } from './host.js';
export { parseKvOverrides, parseWeights, type KvOverrides } from './kv-overrides.js';
export { matchesPrefix, normalizePrefix, pathEnd, prefixProblem, stripPrefix } from './path.js';
export { destinationKey, type RouteSpec } from './route-spec.js';
export { effectiveWeight, originFor } from './service-endpoints.js';
export { parseUrlprefixTag, tagRoutes, TAG_PREFIX, type ParsedTag } from './tag-routes.js';
export { expandTemplates } from './template-expand.js';
export {
  DEFAULT_POLICY, RETRY_CONDITIONS, resolvePolicy,
  type ConcurrencyPolicy, type OutlierPolicy, type PolicyInput, type RateLimitPolicy, type RetryCondition, type RetryPolicy,
  type RoutePolicy, type TimeoutPolicy, type UpstreamPolicy,
} from './policy.js';
export { parseByteSize, parseDuration, parsePolicyInput, parsePolicyJson } from './policy-parse.js';
export { explainLookup, type LookupExplanation, type RouteCandidate } from './explain.js';
export { destinationHead, endpointHead, routeHead } from './views.js';
