import type { RoutingTable } from '../model/types.js';
import { destinationHead, endpointHead, routeHead } from '../model/views.js';

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
      ...routeHead(route),
      destinations: route.destinations.map((d) => ({ ...destinationHead(d), endpoints: d.endpoints.map(endpointHead) })),
      policy: route.policy,
      ejectedEndpoints: ejected
        .filter((e) => e.route === route.name)
        .map((e) => ({ endpoint: e.endpoint, ejections: e.ejections, ejectedAt: e.ejectedAt, until: e.until })),
    })),
    problems: table.problems,
  };
}
