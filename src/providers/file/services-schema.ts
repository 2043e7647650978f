import { z } from 'zod';

/**
 * Shape of the services file: the same data as Consul's catalog, health and KV, so the file
 * provider and the Consul provider produce identical snapshots.
 */
const weight = z.number().int().nonnegative();

const instance = z.strictObject({
  id: z.string().min(1),
  address: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  tags: z.array(z.string().min(1)).default([]),
  status: z.enum(['passing', 'warning', 'critical', 'maintenance']).default('passing'),
  weights: z.strictObject({ passing: weight.default(1), warning: weight.default(1) }).default({ passing: 1, warning: 1 }),
  meta: z.record(z.string(), z.string()).default({}),
});

/** A KV value is a string, as in Consul; a YAML mapping or list is accepted and stored as its JSON. */
const kvValue = z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
  .transform((value) => (typeof value === 'string' ? value : JSON.stringify(value)));

export const servicesFileSchema = z.strictObject({
  services: z.record(
    z.string().min(1),
    z.array(instance).refine(
      (list) => new Set(list.map((i) => i.id)).size === list.length,
      'instance ids must be unique within a service',
    ),
  ).default({}),
  kv: z.record(z.string().min(1), kvValue).default({}),
});

export type ServicesFile = z.output<typeof servicesFileSchema>;
