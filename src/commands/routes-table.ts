/**
 * The routes table of `switchyard routes` and `switchyard check`, from the JSON of /api/routes.
 * - One line per endpoint; the route's name and MATCH cell on its first line only. MATCH is the
 *   host (or `{a,b}` for a host list) and path prefix, then the route's conditions in brackets:
 *   methods `[GET,POST]`, headers `[x-canary=1,x-tenant=*]` (`*` = present), query `[?beta=true]`,
 *   so two routes for the same host and path tell apart.
 * - A redirect route has no destination: its DESTINATION cell is `→ 301 <to>` (`(query kept)` with
 *   keepQuery), `{path}` and `{host}` as written.
 * - The gateway options that change the request follow the route's rows on one line of their own,
 *   under the MATCH column, `↳ ` first: `rewrite /v2` (prefix), `rewrite ^re$ → to` (regex),
 *   `Host → name`, `headers request +set -removed, response ...` (names only: a value set may be a
 *   credential; more than three names: counts), `sticky <cookie> <ttl|session>`,
 *   `mirror <service[:tag]> <percent>%` (`with credentials` when keepAuth). Routes without options
 *   have no such line, so older tables read as before.
 * - Cells and note lines are made printable (text-table.ts): names and values come from Consul and files.
 */
import { printable, renderTable, type Column } from './text-table.js';

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
  /** Gateway fields (src/model/views.ts routeHead); null or absent when the route does not use them. */
  readonly hosts?: readonly string[];
  readonly conditions?: ConditionsJson | null;
  readonly rewrite?: { readonly path?: string; readonly regex?: string; readonly to?: string; readonly host?: string } | null;
  readonly headers?: { readonly request: HeaderEditsJson | null; readonly response: HeaderEditsJson | null } | null;
  readonly sticky?: { readonly cookie: string; readonly ttlMs: number } | null;
  readonly mirror?: { readonly service: string; readonly tag?: string; readonly percent: number; readonly keepAuth: boolean } | null;
  readonly redirect?: { readonly to: string; readonly status: number; readonly keepQuery: boolean } | null;
  readonly ejectedEndpoints?: readonly { readonly endpoint: string; readonly until: string }[];
}

export interface ConditionsJson {
  readonly methods: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
}

export interface HeaderEditsJson {
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
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

/** matchText, then the conditions: `api.example.com/api [GET,POST] [x-canary=1] [?beta=true]`. */
export function matchCell(route: Parameters<typeof matchText>[0] & { conditions?: ConditionsJson | null }): string {
  const c = route.conditions;
  if (c == null) return matchText(route);
  const pairs = (r: Readonly<Record<string, string>>): string => Object.entries(r).map(([k, v]) => `${k}=${v}`).join(',');
  const parts = [
    matchText(route),
    ...(c.methods.length > 0 ? [`[${c.methods.join(',')}]`] : []),
    ...(Object.keys(c.headers).length > 0 ? [`[${pairs(c.headers)}]`] : []),
    ...(Object.keys(c.query).length > 0 ? [`[?${pairs(c.query)}]`] : []),
  ];
  return parts.join(' ');
}

/** A redirect route's DESTINATION cell: `→ 301 https://new.example.com{path} (query kept)`. */
export function redirectText(r: { to: string; status: number; keepQuery: boolean }): string {
  return `→ ${r.status} ${r.to}${r.keepQuery ? ' (query kept)' : ''}`;
}

/** `1h`, `90s`, `1500ms`; 0: `session` (a cookie without Max-Age). */
export function ttlText(ms: number): string {
  if (ms === 0) return 'session';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** The route's request-shaping options, `; `-separated (see the header); '' when it has none. */
export function routeNotes(route: RouteJson): string {
  const notes: string[] = [];
  const rw = route.rewrite;
  if (rw != null) {
    if (rw.path !== undefined) notes.push(`rewrite ${rw.path}`);
    if (rw.regex !== undefined) notes.push(`rewrite ${rw.regex} → ${rw.to ?? ''}`);
    if (rw.host !== undefined) notes.push(`Host → ${rw.host}`);
  }
  const h = route.headers;
  if (h != null) {
    const sides = [
      ...(h.request === null ? [] : [`request ${editsText(h.request)}`]),
      ...(h.response === null ? [] : [`response ${editsText(h.response)}`]),
    ];
    if (sides.length > 0) notes.push(`headers ${sides.join(', ')}`);
  }
  if (route.sticky != null) notes.push(`sticky ${route.sticky.cookie} ${ttlText(route.sticky.ttlMs)}`);
  const m = route.mirror;
  if (m != null) notes.push(`mirror ${m.service}${m.tag === undefined ? '' : `:${m.tag}`} ${m.percent}%${m.keepAuth ? ' with credentials' : ''}`);
  return notes.join('; ');
}

/** `+x-gateway -x-debug`: names only (a value may be a credential); above three names, `+5 -2`. */
function editsText(edits: HeaderEditsJson): string {
  const set = Object.keys(edits.set);
  if (set.length + edits.remove.length > 3) return `+${set.length} -${edits.remove.length}`;
  return [...set.map((n) => `+${n}`), ...edits.remove.map((n) => `-${n}`)].join(' ');
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
 * One line per endpoint, route and destination named on their first line only: ROUTE, MATCH
 * (matchCell), STRIP, DESTINATION, WEIGHT, ENDPOINT, ADDRESS, HEALTH, STATE, WEIGHT. An ejected
 * endpoint's state says until when; a redirect route's destination is redirectText; a route
 * with routeNotes gets a `↳ ` line under its MATCH column after its rows.
 */
export function renderRoutes(routes: readonly RouteJson[], indent = ''): string {
  const withStrip = routes.some((r) => r.strip !== null);
  const columns: Column[] = [
    { title: 'ROUTE' }, { title: 'MATCH' }, ...(withStrip ? [{ title: 'STRIP' }] : []),
    { title: 'DESTINATION' }, { title: 'WEIGHT', align: 'right' },
    { title: 'ENDPOINT' }, { title: 'ADDRESS' }, { title: 'HEALTH' }, { title: 'STATE' }, { title: 'WEIGHT', align: 'right' },
  ];
  const rows: string[][] = [];
  /** Per route with notes: the index of its last row and the notes. */
  const notes: { after: number; text: string }[] = [];
  for (const route of routes) {
    const ejected = new Map((route.ejectedEndpoints ?? []).map((e) => [e.endpoint, e.until]));
    let first = true;
    const head = (): string[] => {
      const cells = first ? [route.name, matchCell(route), ...(withStrip ? [route.strip ?? ''] : [])] : ['', '', ...(withStrip ? [''] : [])];
      first = false;
      return cells;
    };
    if (route.destinations.length === 0) rows.push([...head(), route.redirect == null ? '(none)' : redirectText(route.redirect)]);
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
    const text = routeNotes(route);
    if (text !== '') notes.push({ after: rows.length - 1, text });
  }
  const lines = renderTable(columns, rows, indent).split('\n');
  // Under the MATCH column: the title line's offset of MATCH (ROUTE is padded to its width).
  const at = ' '.repeat(lines[0]!.indexOf('MATCH'));
  // From the last, so earlier indexes stay right; +1 for the title line.
  for (const n of notes.reverse()) lines.splice(n.after + 2, 0, `${at}↳ ${printable(n.text)}`);
  return lines.join('\n');
}

/** `kind source: message`, one per line. */
export function renderProblems(problems: readonly ProblemJson[], indent = '  '): string {
  return problems.map((p) => `${indent}${p.kind} ${p.source}: ${p.message}`).join('\n');
}
