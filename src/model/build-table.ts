/**
 * DiscoverySnapshot + KvSnapshot + templates → one frozen RoutingTable. Pure: no I/O, no clock.
 *
 * 1. Routes: templates expanded and validated (fatal: ConfigError), then tag routes (non-fatal).
 * 2. KV overrides parsed (a bad key is a problem, the rest applies).
 * 3. Each destination resolved: the service's instances (a tag narrows to instances carrying it),
 *    weighted by health and KV instance overrides (service-endpoints.ts); `active` keeps weight > 0.
 * 4. Destination weight = KV route override for its key, else the configured weight; but 0 when no
 *    endpoint has weight > 0, so the route-level balancer never picks an empty pool while another
 *    has capacity. A route whose destinations all weigh 0 still matches (503, not 404).
 * 5. Policy: defaults, then the template's `policy:` layer, then KV `routes/<route>/policy`
 *    (policy.ts). A KV layer that cannot combine with the template's is a problem; the template's
 *    policy then applies alone.
 * 6. Everything deep-frozen; the lookup index is built once here.
 *
 * The work is done by TableBuilder (table-builder.ts), which the watcher keeps between builds so
 * that a change costs what it touches; route resolution itself is resolve-route.ts.
 *
 * Endpoint objects are shared between destinations of the same service (same id, same object).
 * A destination's service unknown to discovery (in neither catalog nor instances) is reported as a
 * problem of kind 'service'; one in the catalog without health data yet just has no endpoints.
 */
import { collectRoutes, servicesOf } from './collect-routes.js';
import { TableBuilder } from './table-builder.js';
import type { DiscoverySnapshot, KvSnapshot, RouteTemplate, RoutingTable } from './types.js';

/** One table from scratch: an incremental TableBuilder with nothing to reuse (table-builder.ts). */
export function buildTable(
  discovery: DiscoverySnapshot,
  kv: KvSnapshot,
  templates: readonly RouteTemplate[],
): RoutingTable {
  return new TableBuilder().build(discovery, kv, templates);
}

/**
 * The services the routes of these templates and this catalog's tags need instances of: what a
 * discovery provider should watch. Equal to `buildTable(...).services` for the same catalog and
 * templates. Throws ConfigError when the templates are invalid, as buildTable would.
 */
export function neededServices(
  catalog: DiscoverySnapshot['catalog'],
  templates: readonly RouteTemplate[],
): string[] {
  return servicesOf(collectRoutes(catalog, templates).routes);
}
