import type { RoutingTable } from '../model/types.js';

/** An endpoint outlier detection has taken out of rotation (the proxy's RuntimeStore.ejectedEndpoints()). */
export interface EjectedEndpointView {
  readonly route: string;
  readonly endpoint: string;
  readonly ejections: number;
  readonly ejectedAt: string;
  readonly until: string;
}

/** Where /api/routes reads runtime ejection state from: the proxy's RuntimeStore fits. */
export interface EjectionSource {
  ejectedEndpoints(): readonly EjectedEndpointView[];
}

/**
 * The live table as JSON for /api/routes: what routes where, with which weights, and why; each
 * route's effective policy, and (given `ejections`) the endpoints outlier detection has ejected.
 */
export function routesView(table: RoutingTable | undefined, version: number, swappedAt: number, ejections?: EjectionSource): unknown {
  if (table === undefined) return { version: 0, swappedAt: null, routes: [], problems: [] };
  const ejected = ejections?.ejectedEndpoints() ?? [];
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
      policy: route.policy,
      ejectedEndpoints: ejected
        .filter((e) => e.route === route.name)
        .map((e) => ({ endpoint: e.endpoint, ejections: e.ejections, ejectedAt: e.ejectedAt, until: e.until })),
    })),
    problems: table.problems,
  };
}
