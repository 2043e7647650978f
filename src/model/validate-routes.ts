import { ConfigError } from '../errors.js';
import { hostProblem, normalizeHost } from './host.js';
import { normalizePrefix, prefixProblem } from './path.js';
import { resolvePolicy, type PolicyInput } from './policy.js';
import { parsePolicyInput } from './policy-parse.js';
import { conditionCount, conditionsOverlap, describeMatch, destinationKey, matchKeys, type RouteSpec } from './route-spec.js';

/**
 * Fatal validation of template routes (after expansion). Every failure throws a ConfigError whose
 * source is the template file and whose message names the route, so the control layer can log it
 * and keep the last good table. Errors are fatal because templates are the operator's own config:
 * serving a table that silently lacks a route is worse than keeping the previous one.
 *
 * Rules: non-empty name; valid host (host.ts) and path/strip prefixes (path.ts); at least one
 * destination; each destination has a non-empty service, a non-empty tag when given, and a finite
 * weight >= 0; no two destinations of a route with the same key (KV weights could not tell them
 * apart); a usable `policy` layer (policy-parse.ts, policy.ts); route names unique; no tie
 * (findMatchConflict): two routes on one host entry and path with as many conditions, which one
 * request can satisfy together, would leave precedence nothing to choose by. Routes with disjoint
 * method lists, or different exact values for one header or query parameter, do not tie (a
 * refinement of "same host + path + condition count": they never compete for one request, save a
 * request that repeats that header or parameter with both values, which the earlier route in
 * table order gets).
 *
 * Returns the routes normalised (host lower-case without trailing dot, prefixes normalised), in
 * input order. The first error found is thrown; order is deterministic.
 */
export function validateRoutes(specs: readonly RouteSpec[]): RouteSpec[] {
  const out: RouteSpec[] = [];
  const byName = new Map<string, RouteSpec>();
  // Match key (host + path) → the routes already accepted with it: ties are looked for only there.
  const byMatch = new Map<string, RouteSpec[]>();
  for (const raw of specs) {
    const spec = normalizeSpec(raw);
    const sameName = byName.get(spec.name);
    if (sameName !== undefined) {
      throw new ConfigError(spec.source, `route "${spec.name}": duplicate route name (also defined in ${sameName.source})`);
    }
    const keys = matchKeys(spec.hosts, spec.path);
    for (const key of keys) {
      const tie = firstTie(spec, byMatch.get(key));
      if (tie !== undefined) throw tieError(spec, tie);
    }
    byName.set(spec.name, spec);
    for (const key of keys) {
      const group = byMatch.get(key);
      if (group === undefined) byMatch.set(key, [spec]);
      else group.push(spec);
    }
    out.push(spec);
  }
  return out;
}

/**
 * The route of `others` that `spec` ties with, or undefined. A tie: both share a host entry (the
 * same exact host or the same wildcard; or both have none), the same path, the same number of
 * conditions (route-spec.ts conditionCount), and conditions one request can satisfy together
 * (conditionsOverlap): precedence could not choose between them. Routes named like `spec` are
 * skipped (a route does not tie with itself). `spec` and `others` must be normalised
 * (normalizeSpec). For callers that change one route after validation (KV route overrides).
 */
export function findMatchConflict(spec: RouteSpec, others: readonly RouteSpec[]): RouteSpec | undefined {
  return firstTie(spec, others);
}

/** The ConfigError for a tie, in the duplicate-route style: both routes and both files named. */
export function tieError(spec: RouteSpec, other: RouteSpec): ConfigError {
  const host = spec.hosts.find((h) => other.hosts.includes(h));
  const count = conditionCount(spec.options?.conditions);
  const why = count === 0 ? '' : ` with as many conditions (${count}) that one request can satisfy together; give one of them a condition more, or make them exclusive (different methods, or different values of one header or query parameter)`;
  return new ConfigError(spec.source, `route "${spec.name}": matches ${describeMatch(host, spec.path)} like route "${other.name}" (${other.source})${why}`);
}

function firstTie(spec: RouteSpec, others: readonly RouteSpec[] | undefined): RouteSpec | undefined {
  if (others === undefined) return undefined;
  const conditions = spec.options?.conditions;
  const count = conditionCount(conditions);
  for (const other of others) {
    if (other.name === spec.name || other.path !== spec.path || !sameHostEntry(spec.hosts, other.hosts)) continue;
    const otherConditions = other.options?.conditions;
    if (conditionCount(otherConditions) === count && conditionsOverlap(conditions, otherConditions)) return other;
  }
  return undefined;
}

/** Both any-host, or some host entry (exact or wildcard, in key form) in both. */
function sameHostEntry(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === 0 || b.length === 0) return a.length === b.length;
  return a.some((h) => b.includes(h));
}

/**
 * One route checked and normalised on its own (host entries in key form, prefixes normalised);
 * throws a ConfigError naming the route. Ties with other routes are findMatchConflict's.
 */
export function normalizeSpec(spec: RouteSpec): RouteSpec {
  const fail = (message: string): never => {
    throw new ConfigError(spec.source, `route "${spec.name}": ${message}`);
  };
  if (spec.name.trim() === '') fail('route name is empty');
  const hosts = new Set<string>();
  for (const host of spec.hosts) {
    const problem = hostProblem(host);
    if (problem !== undefined) fail(problem);
    const key = normalizeHost(host);
    if (hosts.has(key)) fail(`host "${host}" is listed twice`);
    hosts.add(key);
  }
  const pathProblem = prefixProblem(spec.path);
  if (pathProblem !== undefined) fail(`match.path: ${pathProblem}`);
  if (spec.strip !== undefined) {
    const stripProblem = prefixProblem(spec.strip);
    if (stripProblem !== undefined) fail(`strip: ${stripProblem}`);
  }
  if (spec.to.length === 0 && spec.options?.redirect === undefined) fail('route has no destinations');
  if (spec.to.length > 0 && spec.options?.redirect !== undefined) fail('a redirect route has no destinations ("to")');
  const keys = new Set<string>();
  for (const d of spec.to) {
    if (d.service.trim() === '') fail('a destination has an empty service name');
    if (d.tag !== undefined && d.tag === '') fail(`destination "${d.service}" has an empty tag`);
    const key = destinationKey(d.service, d.tag);
    if (typeof d.weight !== 'number' || !Number.isFinite(d.weight) || d.weight < 0) {
      fail(`destination "${key}" has weight ${String(d.weight)}; weights must be finite numbers >= 0`);
    }
    if (keys.has(key)) fail(`destination "${key}" is listed twice`);
    keys.add(key);
  }
  if (spec.policy !== undefined) {
    const problem = policyProblem(spec.policy);
    if (problem !== undefined) fail(`policy: ${problem}`);
  }
  return {
    ...spec,
    hosts: [...hosts],
    path: normalizePrefix(spec.path),
    strip: spec.strip === undefined ? undefined : normalizePrefix(spec.strip),
  };
}

/**
 * Why a template's policy layer is unusable, or undefined. The provider validated the block
 * already; this keeps the model safe for any caller. Remembered per layer object: every route a
 * template expands to carries the same one, so it is checked once per template, not per route.
 */
function policyProblem(layer: PolicyInput): string | undefined {
  if (validLayers.has(layer)) return undefined;
  const parsed = parsePolicyInput(layer);
  const resolved = typeof parsed === 'string' ? parsed : resolvePolicy([parsed]);
  if (typeof resolved === 'string') return resolved;
  validLayers.add(layer);
  return undefined;
}

/** Layers found valid (by identity: validated input is never changed after). */
const validLayers = new WeakSet<PolicyInput>();
