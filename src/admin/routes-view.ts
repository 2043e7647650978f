import type { RoutingTable } from '../model/types.js';

/** The live table as JSON for /api/routes: what routes where, with which weights, and why. */
export function routesView(table: RoutingTable | undefined, version: number, swappedAt: number): unknown {
  if (table === undefined) return { version: 0, swappedAt: null, routes: [], problems: [] };
  return {
    version,
    swappedAt: new Date(swappedAt).toISOString(),
    routes: table.routes.map((route) => ({
      name: route.name,
      host: route.host ?? null,
      path: route.path,
      strip: route.strip ?? null,
      origin: route.origin,
      source: route.source,
      destinations: route.destinations.map((d) => ({
        key: d.key,
        service: d.service,
        tag: d.tag ?? null,
        weight: d.weight,
        configuredWeight: d.configuredWeight,
        endpoints: d.endpoints.map((e) => ({
          id: e.id,
          address: e.address,
          port: e.port,
          status: e.status,
          state: e.state,
          weight: e.weight,
        })),
      })),
    })),
    problems: table.problems,
  };
}
