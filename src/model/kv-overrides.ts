/**
 * Weight and policy overrides from KV (keys already relative to the KV prefix).
 *
 *   routes/<route>/weights      {"<service>" | "<service>:<tag>": weight, ...}
 *   services/<service>/weights  {"<instanceId>": weight, ...}
 *   routes/<route>/policy       a policy layer (policy-parse.ts), merged over the template's policy
 *
 * - <route> / <service> is everything between the first `/` and the final `/weights`, so route names
 *   containing `/` or `:` (tag routes: `tag:users:/api`) work: `routes/tag:users:/api/weights`.
 * - A weight is a finite number >= 0. A value that is not JSON, not a plain object, or holds any
 *   entry that is not such a number, is skipped as a whole (a half-applied canary split is worse
 *   than none) and reported as a BuildProblem of kind 'kv' naming the key; other keys still apply.
 * - A policy value that is not JSON or not a valid policy layer is skipped whole and reported the
 *   same way (kind 'kv'); so is one that is valid alone but unusable over the template's layer
 *   (build-table.ts), in which case the template's policy applies.
 * - Any other key under the prefix is ignored silently.
 * - Semantics (applied in build-table.ts): a route override replaces the weight of the destinations
 *   it names, unnamed destinations keep their configured weight; an entry naming a destination the
 *   route lacks is reported and skipped. An override for a route or instance that does not exist is
 *   kept silently: routes from `each` and instances come and go, and an override set ahead (e.g. to
 *   drain an instance before it re-registers) must not be noise.
 */
import { compareCodeUnits } from './compare-code-units.js';
import type { PolicyInput } from './policy.js';
import { parsePolicyJson } from './policy-parse.js';
import type { BuildProblem, KvSnapshot } from './types.js';

export interface KvOverrides {
  /** Route name → destination key → weight. */
  readonly routeWeights: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Service name → instance id → weight. */
  readonly instanceWeights: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Route name → policy layer over the template's. */
  readonly routePolicies: ReadonlyMap<string, PolicyInput>;
  readonly problems: readonly BuildProblem[];
}

const WEIGHTS_SUFFIX = '/weights';
const POLICY_SUFFIX = '/policy';

export function parseKvOverrides(kv: KvSnapshot): KvOverrides {
  const routeWeights = new Map<string, ReadonlyMap<string, number>>();
  const instanceWeights = new Map<string, ReadonlyMap<string, number>>();
  const routePolicies = new Map<string, PolicyInput>();
  const problems: BuildProblem[] = [];
  // Sorted so problems come out in a stable order whatever order the provider listed keys in.
  for (const key of Object.keys(kv).sort(compareCodeUnits)) {
    if (key.startsWith('routes/') && key.endsWith(POLICY_SUFFIX)) {
      const name = key.slice('routes/'.length, key.length - POLICY_SUFFIX.length);
      if (name === '') continue;
      const policy = parsePolicyJson(kv[key] ?? '');
      if (typeof policy === 'string') problems.push({ kind: 'kv', source: key, message: `${policy}; key ignored` });
      else routePolicies.set(name, policy);
      continue;
    }
    const target = key.startsWith('routes/') ? routeWeights : key.startsWith('services/') ? instanceWeights : undefined;
    if (target === undefined || !key.endsWith(WEIGHTS_SUFFIX)) continue;
    const name = key.slice(key.indexOf('/') + 1, key.length - WEIGHTS_SUFFIX.length);
    if (name === '') continue;
    const parsed = parseWeights(kv[key] ?? '');
    if (typeof parsed === 'string') {
      problems.push({ kind: 'kv', source: key, message: `${parsed}; key ignored` });
      continue;
    }
    target.set(name, parsed);
  }
  return { routeWeights, instanceWeights, routePolicies, problems };
}

/** A JSON object of name → finite weight >= 0, or the reason the value is unusable. */
export function parseWeights(raw: string): ReadonlyMap<string, number> | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return 'value is not valid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'value must be a JSON object of name to weight';
  }
  const weights = new Map<string, number>();
  for (const [name, weight] of Object.entries(value)) {
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      return `weight of "${name}" is ${JSON.stringify(weight)}; weights must be numbers >= 0`;
    }
    weights.set(name, weight);
  }
  return weights;
}
