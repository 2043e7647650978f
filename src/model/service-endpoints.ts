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
import type { BuildProblem, Endpoint, EndpointState, InstanceWeights, ServiceInstance } from './types.js';

const DEFAULT_WEIGHT = 1;

export function serviceEndpoints(
  service: string,
  instances: readonly ServiceInstance[],
  overrides: ReadonlyMap<string, number> | undefined,
  problems: BuildProblem[],
): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
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
    const { weight, state } = effectiveWeight(instance, overrides?.get(instance.id), (message) => {
      problems.push({ kind: 'service', source: where, message });
    });
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
      tags: Object.freeze([...instance.tags]),
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
  let weight: number;
  if (instance.status === 'passing') weight = healthWeight(instance.weights, 'passing', report);
  else if (instance.status === 'warning') weight = healthWeight(instance.weights, 'warning', report);
  else return { weight: 0, state: 'unhealthy' };
  if (override !== undefined) weight = override;
  return { weight, state: weight > 0 ? 'active' : 'draining' };
}

function healthWeight(
  weights: Partial<InstanceWeights> | undefined,
  which: keyof InstanceWeights,
  report: (message: string) => void,
): number {
  const value = weights?.[which];
  if (value === undefined) return DEFAULT_WEIGHT;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    report(`weights.${which} is ${String(value)}; using ${DEFAULT_WEIGHT}`);
    return DEFAULT_WEIGHT;
  }
  return value;
}

/**
 * `http://address:port`, an IPv6 address bracketed as URLs require. `address` passed
 * addressProblem (no zone, so no `%` to escape).
 */
export function originFor(address: string, port: number): string {
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}
