import { z } from 'zod';
import { compareCodeUnits } from '../../model/compare-code-units.js';
import type { HealthStatus, ServiceInstance } from '../../model/types.js';

/**
 * `GET /v1/health/service/<name>` (without `?passing`) → the service's instances, their checks
 * aggregated to one status:
 *
 *   a maintenance check (`_node_maintenance`, `_service_maintenance:<id>`) → 'maintenance'
 *   else any critical check (node checks such as serfHealth included)     → 'critical'
 *   else any warning check                                                → 'warning'
 *   else                                                                  → 'passing'
 *
 * A check status Consul may add later is treated as critical (fail closed). `Service.Weights`
 * defaults to {Passing: 1, Warning: 1}; an empty `Service.Address` means the node's address.
 * The instance id is `Service.ID`; when the same ID is registered on several nodes (an agent
 * registration without ID uses the name on every node) it becomes `<ID>@<Node>` so that no instance
 * hides another. Instances are sorted by id so that equal answers serialise equally.
 */

export const NODE_MAINTENANCE = '_node_maintenance';
export const SERVICE_MAINTENANCE_PREFIX = '_service_maintenance:';

const checkSchema = z.object({
  CheckID: z.string(),
  Status: z.string(),
  ServiceID: z.string().nullish(),
});

const entrySchema = z.object({
  Node: z.object({ Node: z.string(), Address: z.string() }),
  Service: z.object({
    ID: z.string(),
    Service: z.string(),
    Tags: z.array(z.string()).nullish(),
    Address: z.string().nullish(),
    Port: z.number(),
    Meta: z.record(z.string(), z.string()).nullish(),
    Weights: z.object({ Passing: z.number().nullish(), Warning: z.number().nullish() }).nullish(),
  }),
  Checks: z.array(checkSchema).nullish(),
});

const healthSchema = z.array(entrySchema).nullable();

export type ConsulCheck = z.infer<typeof checkSchema>;

export function aggregateStatus(checks: readonly ConsulCheck[]): HealthStatus {
  let critical = false;
  let warning = false;
  for (const check of checks) {
    if (check.CheckID === NODE_MAINTENANCE || check.CheckID.startsWith(SERVICE_MAINTENANCE_PREFIX) || check.Status === 'maintenance') {
      return 'maintenance';
    }
    if (check.Status === 'passing') continue;
    if (check.Status === 'warning') warning = true;
    else critical = true;
  }
  return critical ? 'critical' : warning ? 'warning' : 'passing';
}

export function instancesFromHealth(body: unknown): ServiceInstance[] {
  return serviceFromHealth(body).instances;
}

/** The instances and the nodes they are on (a node's address change concerns them). */
export function serviceFromHealth(body: unknown): { instances: ServiceInstance[]; nodes: string[] } {
  const entries = healthSchema.parse(body ?? []) ?? [];
  const perId = new Map<string, number>();
  for (const entry of entries) perId.set(entry.Service.ID, (perId.get(entry.Service.ID) ?? 0) + 1);
  const instances = entries.map((entry): ServiceInstance => {
    const svc = entry.Service;
    const address = svc.Address !== undefined && svc.Address !== null && svc.Address !== '' ? svc.Address : entry.Node.Address;
    return {
      id: (perId.get(svc.ID) ?? 0) > 1 ? `${svc.ID}@${entry.Node.Node}` : svc.ID,
      service: svc.Service,
      address,
      port: svc.Port,
      tags: [...(svc.Tags ?? [])],
      status: aggregateStatus(entry.Checks ?? []),
      weights: { passing: svc.Weights?.Passing ?? 1, warning: svc.Weights?.Warning ?? 1 },
      meta: { ...(svc.Meta ?? {}) },
    };
  });
  return { instances: instances.sort((a, b) => compareCodeUnits(a.id, b.id)), nodes: [...new Set(entries.map((entry) => entry.Node.Node))] };
}

/** An instance that can take traffic by its health (weights aside). */
export function isUp(instance: ServiceInstance): boolean {
  return instance.status === 'passing' || instance.status === 'warning';
}
