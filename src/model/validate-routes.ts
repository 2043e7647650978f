import { ConfigError } from '../errors.js';
import { hostProblem, normalizeHost } from './host.js';
import { normalizePrefix, prefixProblem } from './path.js';
import { resolvePolicy, type PolicyInput } from './policy.js';
import { parsePolicyInput } from './policy-parse.js';
import { describeMatch, destinationKey, matchKeys, type RouteSpec } from './route-spec.js';

/**
 * Fatal validation of template routes (after expansion). Every failure throws a ConfigError whose
 * source is the template file and whose message names the route, so the control layer can log it
 * and keep the last good table. Errors are fatal because templates are the operator's own config:
 * serving a table that silently lacks a route is worse than keeping the previous one.
 *
 * Rules: non-empty name; valid host (host.ts) and path/strip prefixes (path.ts); at least one
 * destination; each destination has a non-empty service, a non-empty tag when given, and a finite
 * weight >= 0; no two destinations of a route with the same key (KV weights could not tell them
 * apart); a usable `policy` layer (policy-parse.ts, policy.ts); route names unique; no two routes
 * with the same host + path (one would shadow the other).
 *
 * Returns the routes normalised (host lower-case without trailing dot, prefixes normalised), in
 * input order. The first error found is thrown; order is deterministic.
 */
export function validateRoutes(specs: readonly RouteSpec[]): RouteSpec[] {
  const out: RouteSpec[] = [];
  const byName = new Map<string, RouteSpec>();
  const byMatch = new Map<string, RouteSpec>();
  for (const raw of specs) {
    const spec = normalizeSpec(raw);
    const sameName = byName.get(spec.name);
    if (sameName !== undefined) {
      throw new ConfigError(spec.source, `route "${spec.name}": duplicate route name (also defined in ${sameName.source})`);
    }
    // Interim rule (precedence by conditions refines it): two routes without extra conditions on
    // the same host and path shadow each other.
    const keys = spec.options?.conditions === undefined ? matchKeys(spec.hosts, spec.path) : [];
    for (const key of keys) {
      const sameMatch = byMatch.get(key);
      if (sameMatch !== undefined) {
        throw new ConfigError(spec.source, `route "${spec.name}": matches ${describeMatch(key.split(' ')[0] === '*' ? undefined : key.split(' ')[0], spec.path)} like route "${sameMatch.name}" (${sameMatch.source})`);
      }
    }
    byName.set(spec.name, spec);
    for (const key of keys) byMatch.set(key, spec);
    out.push(spec);
  }
  return out;
}

function normalizeSpec(spec: RouteSpec): RouteSpec {
  const fail = (message: string): never => {
    throw new ConfigError(spec.source, `route "${spec.name}": ${message}`);
  };
  if (spec.name.trim() === '') fail('route name is empty');
  for (const host of spec.hosts) {
    const problem = hostProblem(host);
    if (problem !== undefined) fail(problem);
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
    hosts: spec.hosts.map(normalizeHost),
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
