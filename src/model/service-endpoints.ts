/**
 * A service's instances → endpoints with effective weights, as Consul's DNS/health interface does:
 *
 *   passing      → weights.passing (default 1)
 *   warning      → weights.warning (default 1)
 *   critical,
 *   maintenance  → 0, state 'unhealthy' (any unknown status too: fail closed)
 *
 * then the KV instance override (`services/<service>/weights`) replaces the weight of a passing or
 * warning instance, whatever its health weight was (it is the operator's explicit word); it can
 * never revive an unhealthy one.
 *
 * Invariant: state === 'active' ⇔ weight > 0; a healthy instance whose weight is 0 (KV 0, or a
 * warning weight of 0) is 'draining': no new requests, in-flight ones finish.
 *
 * Bad instance data is not fatal (discovery is not the operator's config file): an instance weight
 * that is negative or non-finite falls back to the default 1 (a problem of kind 'service'), and an
 * instance whose address the proxy cannot connect to (endpoint-address.ts: not an IPv4, IPv6 or DNS
 * name, or an IPv6 zone) or whose port is outside 1..65535 is left out (a problem of kind
 * 'endpoint'), so the runtime never sees an origin it cannot open a pool for. A repeated
 * instance id keeps the first. Endpoints are sorted by instance id so the balancer order is stable.
 * Each Endpoint (and its tags) is frozen as it is made; the array is the caller's.
 */
import { compareCodeUnits } from './compare-code-units.js';
import { addressProblem, portProblem } from './endpoint-address.js';
import { sameStrings } from './snapshot-equal.js';
import type { BuildProblem, Endpoint, EndpointState, ServiceInstance } from './types.js';

const DEFAULT_WEIGHT = 1;

export function serviceEndpoints(
  service: string,
  instances: readonly ServiceInstance[],
  overrides: ReadonlyMap<string, number> | undefined,
  problems: BuildProblem[],
): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  const tagLists: (readonly string[])[] = [];
  for (const instance of instances) {
    const where = `${service}/${instance.id}`;
    if (seen.has(instance.id)) {
      problems.push({ kind: 'service', source: where, message: 'duplicate instance id; the first one is used' });
      continue;
    }
    seen.add(instance.id);
    const unusable = addressProblem(instance.address) ?? portProblem(instance.port);
    if (unusable !== undefined) {
      problems.push({
        kind: 'endpoint',
        source: where,
        message: `unusable address ${JSON.stringify(instance.address)} port ${String(instance.port)}: ${unusable}; instance left out`,
      });
      continue;
    }
    const health = healthyWeight(instance, overrides?.get(instance.id), problems, where);
    const weight = health ?? 0;
    const state: EndpointState = health === undefined ? 'unhealthy' : weight > 0 ? 'active' : 'draining';
    // Frozen here, where it is made: the table builder then never walks it again.
    out.push(Object.freeze({
      id: where,
      instanceId: instance.id,
      service,
      address: instance.address,
      port: instance.port,
      origin: originFor(instance.address, instance.port),
      status: instance.status,
      weight,
      state,
      tags: frozenTags(instance.tags, tagLists),
    }));
  }
  return out.sort((a, b) => compareCodeUnits(a.instanceId, b.instanceId));
}

/** Health weight, then the KV override; see the table at the top. */
export function effectiveWeight(
  instance: ServiceInstance,
  override: number | undefined,
  report: (message: string) => void = () => {},
): { weight: number; state: EndpointState } {
  const problems: BuildProblem[] = [];
  const weight = healthyWeight(instance, override, problems, '');
  for (const problem of problems) report(problem.message);
  return weight === undefined ? { weight: 0, state: 'unhealthy' } : { weight, state: weight > 0 ? 'active' : 'draining' };
}

/**
 * The weight of a passing or warning instance (health weight, then the KV override), undefined for
 * an unhealthy one; a bad health weight is reported in `problems` under `where`. No closure or
 * result object per instance: a full build calls it for every instance.
 */
function healthyWeight(instance: ServiceInstance, override: number | undefined, problems: BuildProblem[], where: string): number | undefined {
  const which = instance.status;
  if (which !== 'passing' && which !== 'warning') return undefined;
  let weight = DEFAULT_WEIGHT;
  const value = instance.weights?.[which];
  if (value !== undefined) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      problems.push({ kind: 'service', source: where, message: `weights.${which} is ${String(value)}; using ${DEFAULT_WEIGHT}` });
    } else {
      weight = value;
    }
  }
  return override ?? weight;
}

/**
 * A frozen copy of `tags`, shared with the endpoints of this service made before it that carry
 * the same tags (`seen`; a service's instances mostly carry one of a few tag lists): one array per
 * distinct list, not one per endpoint. Tags are compared by content, so sharing is invisible.
 */
function frozenTags(tags: readonly string[], seen: (readonly string[])[]): readonly string[] {
  for (const known of seen) if (sameStrings(known, tags)) return known;
  const copy = Object.freeze([...tags]);
  if (seen.length < MAX_TAG_LISTS) seen.push(copy);
  return copy;
}

/** Distinct tag lists shared per service: a bound on the linear search above. */
const MAX_TAG_LISTS = 8;

/**
 * `http://address:port`, an IPv6 address bracketed as URLs require. `address` passed
 * addressProblem (no zone, so no `%` to escape).
 */
export function originFor(address: string, port: number): string {
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}
