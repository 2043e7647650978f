/**
 * Weight and policy overrides from KV (keys already relative to the KV prefix).
 *
 *   routes/<route>/weights      {"<service>" | "<service>:<tag>": weight, ...}
 *   services/<service>/weights  {"<instanceId>": weight, ...}
 *   routes/<route>/policy       a policy layer (policy-parse.ts), merged over the template's policy
 *   routes/<route>/route        gateway options (route-options.ts, mode 'kv'), merged over the
 *                               route's own field by field (table-builder.ts)
 *
 * - <route> / <service> is everything between the first `/` and the final `/weights`, written in
 *   the key form `kvKeyName` gives it: Consul 1.21.5+ refuses keys with any character outside
 *   `a-zA-Z0-9,-_./`, and keys containing `../` (agent/kvs_endpoint.go validateKVKey,
 *   hashicorp/consul#22822), so every other byte of the name is written `,XX` (two lower-case hex
 *   digits of its UTF-8 byte, `,` itself included), as is a `.` that would make `../`. A tag
 *   route `tag:users:/api` has the key `routes/tag,3ausers,3a/api/weights`. Names made only of
 *   allowed characters (`api-users`) are their own key form.
 * - The raw name is still read (keys written before Consul 1.21.5, or by its other APIs):
 *   `routes/tag:users:/api/weights`. When both forms of one name exist, the encoded one applies and
 *   the raw one is reported (kind 'kv') as ignored.
 * - A weight is a finite number >= 0. A value that is not JSON, not a plain object, or holds any
 *   entry that is not such a number, is skipped as a whole (a half-applied canary split is worse
 *   than none) and reported as a BuildProblem of kind 'kv' naming the key; other keys still apply.
 * - A policy value that is not JSON or not a valid policy layer is skipped whole and reported the
 *   same way (kind 'kv'); so is one that is valid alone but unusable over the template's layer
 *   (build-table.ts), in which case the template's policy applies. A route value likewise: not
 *   JSON or not valid options here; unusable over the route (a required field missing, a tie with
 *   another route, a redirect with a rewrite) in table-builder.ts, the route's own options then
 *   applying.
 * - Any other key under the prefix is ignored silently.
 * - Semantics (applied in build-table.ts): a route override replaces the weight of the destinations
 *   it names, unnamed destinations keep their configured weight; an entry naming a destination the
 *   route lacks is reported and skipped. An override for a route or instance that does not exist is
 *   kept silently: routes from `each` and instances come and go, and an override set ahead (e.g. to
 *   drain an instance before it re-registers) must not be noise.
 */
import { ConfigError } from '../errors.js';
import { compareCodeUnits } from './compare-code-units.js';
import type { PolicyInput } from './policy.js';
import { parsePolicyJson } from './policy-parse.js';
import {
  describeOptionsProblem, isOptionsProblem, mergeRouteOptions, optionsConflict, parseRouteOptionsJson, type RouteOptionsLayer,
} from './route-options.js';
import type { RouteSpec } from './route-spec.js';
import type { BuildProblem, KvSnapshot } from './types.js';
import { normalizeSpec } from './validate-routes.js';

/** A `routes/<route>/route` value: its key (for problems) and its parsed layer. */
export interface RouteOverride {
  readonly key: string;
  readonly layer: RouteOptionsLayer;
}

export interface KvOverrides {
  /** Route name → destination key → weight. */
  readonly routeWeights: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Service name → instance id → weight. */
  readonly instanceWeights: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Route name → policy layer over the template's. */
  readonly routePolicies: ReadonlyMap<string, PolicyInput>;
  /** Route name → gateway options layer over the route's (`routes/<route>/route`), with the key it came from. */
  readonly routeOptions: ReadonlyMap<string, RouteOverride>;
  readonly problems: readonly BuildProblem[];
}

const WEIGHTS_SUFFIX = '/weights';
const POLICY_SUFFIX = '/policy';
const ROUTE_SUFFIX = '/route';

/** Characters a Consul 1.21.5+ key may hold, `,` aside (it is the escape here). */
const KEY_SAFE = /^[a-zA-Z0-9\-_./]$/;
const ESCAPE = /,([0-9a-fA-F]{2})/g;
const HAS_ESCAPE = /,[0-9a-fA-F]{2}/;

/**
 * A route or service name as it is written in a KV key: every byte outside `a-zA-Z0-9-_./` as
 * `,XX`, and the `.` that would complete a `../` likewise, so that Consul 1.21.5+ accepts the key.
 */
export function kvKeyName(name: string): string {
  let out = '';
  for (const ch of name) {
    if (KEY_SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `,${byte.toString(16).padStart(2, '0')}`;
  }
  // "../" is refused anywhere in a key; escaping the second dot breaks every occurrence.
  return out.replaceAll('../', '.,2e/');
}

/** The inverse of kvKeyName (`,XX` → byte); a name without escapes is returned as is. */
export function nameFromKvKey(keyName: string): string {
  if (!HAS_ESCAPE.test(keyName)) return keyName;
  const bytes: number[] = [];
  let last = 0;
  for (const match of keyName.matchAll(ESCAPE)) {
    bytes.push(...Buffer.from(keyName.slice(last, match.index), 'utf8'), Number.parseInt(match[1] ?? '0', 16));
    last = match.index + match[0].length;
  }
  bytes.push(...Buffer.from(keyName.slice(last), 'utf8'));
  return Buffer.from(bytes).toString('utf8');
}

/** The KV keys (relative to the KV prefix) of a route's weights, policy and options, in the key form. */
export function routeKvKeys(route: string): { weights: string; policy: string; route: string } {
  const name = kvKeyName(route);
  return { weights: `routes/${name}${WEIGHTS_SUFFIX}`, policy: `routes/${name}${POLICY_SUFFIX}`, route: `routes/${name}${ROUTE_SUFFIX}` };
}

/** The KV key (relative to the KV prefix) of a service's instance weights. */
export function serviceKvWeightsKey(service: string): string {
  return `services/${kvKeyName(service)}${WEIGHTS_SUFFIX}`;
}

export function parseKvOverrides(kv: KvSnapshot): KvOverrides {
  const routeWeights = new Map<string, ReadonlyMap<string, number>>();
  const instanceWeights = new Map<string, ReadonlyMap<string, number>>();
  const routePolicies = new Map<string, PolicyInput>();
  const routeOptions = new Map<string, RouteOverride>();
  const problems: BuildProblem[] = [];
  // Which key set each (map, name): an encoded key beats the raw (pre-1.21.5) form of the same name.
  const setBy = new Map<object, Map<string, string>>();
  const claim = (target: object, name: string, key: string, rawName: string): boolean => {
    const owners = setBy.get(target) ?? new Map<string, string>();
    setBy.set(target, owners);
    const encoded = kvKeyName(name) === rawName;
    const previous = owners.get(name);
    if (previous !== undefined) {
      const [kept, dropped] = encoded ? [key, previous] : [previous, key];
      problems.push({ kind: 'kv', source: dropped, message: `same name as ${kept}, the Consul 1.21.5+ key form, which applies; key ignored` });
      if (!encoded) return false;
    }
    owners.set(name, key);
    return true;
  };
  // Sorted so problems come out in a stable order whatever order the provider listed keys in.
  for (const key of Object.keys(kv).sort(compareCodeUnits)) {
    const layered = !key.startsWith('routes/') ? undefined
      : key.endsWith(POLICY_SUFFIX) ? { suffix: POLICY_SUFFIX, target: routePolicies as Map<string, unknown>, parse: parsePolicyJson }
        : key.endsWith(ROUTE_SUFFIX) ? { suffix: ROUTE_SUFFIX, target: routeOptions as Map<string, unknown>, parse: (raw: string) => routeOverride(key, raw) }
          : undefined;
    if (layered !== undefined) {
      const rawName = key.slice('routes/'.length, key.length - layered.suffix.length);
      if (rawName === '') continue;
      const layer = layered.parse(kv[key] ?? '');
      if (typeof layer === 'string') problems.push({ kind: 'kv', source: key, message: `${layer}; key ignored` });
      else {
        const name = nameFromKvKey(rawName);
        if (claim(layered.target, name, key, rawName)) layered.target.set(name, layer);
      }
      continue;
    }
    const target = key.startsWith('routes/') ? routeWeights : key.startsWith('services/') ? instanceWeights : undefined;
    if (target === undefined || !key.endsWith(WEIGHTS_SUFFIX)) continue;
    const rawName = key.slice(key.indexOf('/') + 1, key.length - WEIGHTS_SUFFIX.length);
    if (rawName === '') continue;
    const parsed = parseWeights(kv[key] ?? '');
    if (typeof parsed === 'string') {
      problems.push({ kind: 'kv', source: key, message: `${parsed}; key ignored` });
      continue;
    }
    const name = nameFromKvKey(rawName);
    if (claim(target, name, key, rawName)) target.set(name, parsed);
  }
  return { routeWeights, instanceWeights, routePolicies, routeOptions, problems };
}

function routeOverride(key: string, raw: string): RouteOverride | string {
  const layer = parseRouteOptionsJson(raw);
  return typeof layer === 'string' ? layer : { key, layer };
}

/**
 * A route with its KV `routes/<route>/route` layer applied, normalised (normalizeSpec), or why the
 * layer cannot apply to it. mergeRouteOptions merges the options; besides:
 * - a layer that rewrites the path (`rewrite.path` or `rewrite.regex`) replaces the route's
 *   `strip` too (both rewrite the path; a route has one);
 * - a layer that turns a route with destinations into a redirect leaves its destinations (and its
 *   strip) out: the route answers by itself and its services get none of its traffic until the
 *   redirect is removed (`"redirect": null`); the reverse (a redirect route given
 *   `"redirect": null`) has nowhere to send requests and is refused;
 * - the cross-field rules of optionsConflict hold for the result.
 * Ties with other routes are the caller's (findMatchConflict).
 */
export function applyRouteOverride(spec: RouteSpec, layer: RouteOptionsLayer): RouteSpec | string {
  const merged = mergeRouteOptions({ ...spec.options, hosts: spec.hosts, path: spec.path }, layer);
  if (isOptionsProblem(merged)) return describeOptionsProblem(merged);
  const { hosts = spec.hosts, path = spec.path, ...options } = merged;
  const becomesRedirect = options.redirect !== undefined && spec.options?.redirect === undefined;
  const strip = becomesRedirect || layer.rewrite?.path !== undefined || layer.rewrite?.regex !== undefined ? undefined : spec.strip;
  const conflict = optionsConflict(options, strip);
  if (conflict !== undefined) return describeOptionsProblem(conflict);
  const to = becomesRedirect ? [] : spec.to;
  const { options: _before, ...rest } = spec;
  const candidate: RouteSpec = { ...rest, hosts, path, strip, to, ...(Object.keys(options).length === 0 ? {} : { options }) };
  try {
    return normalizeSpec(candidate);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const prefix = `${err.source}: route "${spec.name}": `;
    return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  }
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
