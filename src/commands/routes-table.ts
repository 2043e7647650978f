import { renderTable, type Column } from './text-table.js';

/** The JSON of /api/routes (src/admin/routes-view.ts), as far as the commands read it. */
export interface RoutesJson {
  readonly version: number;
  readonly swappedAt: string | null;
  readonly routes: readonly RouteJson[];
  readonly problems: readonly ProblemJson[];
}

export interface RouteJson {
  readonly name: string;
  readonly host: string | null;
  readonly path: string;
  readonly strip: string | null;
  readonly origin: string;
  readonly source: string;
  readonly destinations: readonly DestinationJson[];
  readonly ejectedEndpoints?: readonly { readonly endpoint: string; readonly until: string }[];
}

export interface DestinationJson {
  readonly key: string;
  readonly weight: number;
  readonly configuredWeight: number;
  readonly share?: number;
  readonly endpoints: readonly EndpointJson[];
}

export interface EndpointJson {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly status: string;
  readonly state: string;
  readonly weight: number;
}

export interface ProblemJson {
  readonly kind: string;
  readonly source: string;
  readonly message: string;
}

/** `api.example.com/users` or `/users` (any host). */
export function matchText(route: { host: string | null; hosts?: readonly string[]; path: string }): string {
  const hosts = route.hosts ?? (route.host === null ? [] : [route.host]);
  return hosts.length <= 1 ? `${hosts[0] ?? ''}${route.path}` : `{${hosts.join(',')}}${route.path}`;
}

/** `90`, or `50 (configured 90)` when KV overrides the template's weight. */
export function weightText(d: { weight: number; configuredWeight: number }): string {
  return d.weight === d.configuredWeight ? String(d.weight) : `${d.weight} (configured ${d.configuredWeight})`;
}

/** `[v6]:port` or `address:port`; port 0 (the demo's, chosen at start): `*`. */
export function addressText(e: { address: string; port: number }): string {
  const port = e.port === 0 ? '*' : String(e.port);
  return e.address.includes(':') ? `[${e.address}]:${port}` : `${e.address}:${port}`;
}

/**
 * One line per endpoint, route and destination named on their first line only: ROUTE, MATCH,
 * STRIP, DESTINATION, WEIGHT (and SHARE of the route's requests when the view has shares),
 * ENDPOINT, ADDRESS, HEALTH, STATE, WEIGHT. An ejected endpoint's state says until when.
 */
export function renderRoutes(routes: readonly RouteJson[], indent = ''): string {
  const withStrip = routes.some((r) => r.strip !== null);
  const columns: Column[] = [
    { title: 'ROUTE' }, { title: 'MATCH' }, ...(withStrip ? [{ title: 'STRIP' }] : []),
    { title: 'DESTINATION' }, { title: 'WEIGHT', align: 'right' },
    { title: 'ENDPOINT' }, { title: 'ADDRESS' }, { title: 'HEALTH' }, { title: 'STATE' }, { title: 'WEIGHT', align: 'right' },
  ];
  const rows: string[][] = [];
  for (const route of routes) {
    const ejected = new Map((route.ejectedEndpoints ?? []).map((e) => [e.endpoint, e.until]));
    let first = true;
    const head = (): string[] => {
      const cells = first ? [route.name, matchText(route), ...(withStrip ? [route.strip ?? ''] : [])] : ['', '', ...(withStrip ? [''] : [])];
      first = false;
      return cells;
    };
    if (route.destinations.length === 0) rows.push([...head(), '(none)']);
    for (const d of route.destinations) {
      const dest = [d.key, weightText(d)];
      if (d.endpoints.length === 0) rows.push([...head(), ...dest, '(no instances)']);
      d.endpoints.forEach((e, at) => {
        const until = ejected.get(e.id);
        rows.push([
          ...head(), ...(at === 0 ? dest : ['', '']),
          e.id, addressText(e), e.status, until === undefined ? e.state : `ejected until ${until.slice(11, 19)}`, String(e.weight),
        ]);
      });
    }
  }
  return renderTable(columns, rows, indent);
}

/** `kind source: message`, one per line. */
export function renderProblems(problems: readonly ProblemJson[], indent = '  '): string {
  return problems.map((p) => `${indent}${p.kind} ${p.source}: ${p.message}`).join('\n');
}
