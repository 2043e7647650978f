import { conditionText } from '../model/explain.js';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { ADMIN_HELP, ADMIN_OPTIONS, adminGet, adminTarget } from './admin-client.js';
import { addressText, matchText, weightText, type DestinationJson, type EndpointJson, type RouteJson } from './routes-table.js';
import { noAdminTokenFlag } from './routes.js';
import { percent, printableLines, renderTable } from './text-table.js';

/** `switchyard explain URL`: what a running Switchyard would do with a request (/api/match), for a person. */
export const help = [
  'Usage: switchyard explain URL [--method M] [--header NAME:VALUE]... [--all] [--admin HOST:PORT] [--admin-token-file FILE]',
  '',
  'Ask a running Switchyard (its /api/match) where a request would go, and print: the route and why,',
  'the candidate routes that lost, and each destination and endpoint with its share of new requests.',
  'URL is http(s)://host[:port]/path?query (the Host is the URL\'s), host/path (http:// assumed) or',
  '/path?query (no Host, unless --header Host:NAME gives one). The path is matched as a client sends it.',
  '',
  '  --method M            the request method (default GET)',
  '  --header NAME:VALUE   a request header (repeatable). Host: sets the host for a /path URL.',
  '                        Method, headers and the URL\'s query decide between routes with match',
  '                        conditions (methods, headers, query); each condition is shown as held or failed.',
  '                        (A Switchyard older than match conditions says it routes on host and path only.)',
  '  --all                 list every candidate route, also those whose prefix the path does not fall under',
  ADMIN_HELP,
  '',
  'Exit status: 0 answered (whatever the answer: routed, 404, 503), 1 the admin API could not be asked,',
  '2 usage error.',
].join('\n');

const OPTIONS = {
  ...ADMIN_OPTIONS,
  method: { type: 'string' },
  header: { type: 'string', multiple: true },
  all: { type: 'boolean' },
} as const;

interface MatchEndpoint extends EndpointJson {
  readonly share: number;
  readonly why: string;
}

interface MatchDestination extends Omit<DestinationJson, 'endpoints'> {
  readonly share: number;
  readonly endpoints: readonly MatchEndpoint[];
}

/** One condition's verdict (model/explain.ts ConditionVerdict). */
interface VerdictJson {
  readonly kind: 'method' | 'header' | 'query';
  readonly name: string | null;
  readonly expected: string | readonly string[];
  readonly held: boolean;
  readonly seen: readonly string[];
}

/** A candidate route; the fields after `chosen` are absent from a Switchyard older than match conditions. */
interface CandidateJson {
  readonly route: string;
  readonly host: string | null;
  readonly path: string;
  readonly prefixMatches: boolean;
  readonly chosen: boolean;
  readonly hostMatch?: 'exact' | 'wildcard' | 'any';
  readonly conditionCount?: number;
  readonly conditions?: readonly VerdictJson[];
  readonly conditionsHold?: boolean;
}

interface MatchJson {
  readonly outcome: 'routed' | 'redirected' | 'no-route' | 'no-endpoint' | 'refused';
  readonly location?: string | null;
  readonly status: number | null;
  readonly reason: string;
  readonly request: {
    readonly host: string | null;
    readonly target: string;
    readonly normalizedTarget: string | null;
    readonly method?: string;
    readonly headers?: readonly (readonly [string, string])[];
  };
  readonly route?: Omit<RouteJson, 'destinations'> & {
    /** Every host entry (absent from a Switchyard older than host lists). */
    readonly hosts?: readonly string[];
    readonly upstreamTarget: string | null;
    readonly destinations: readonly MatchDestination[];
    readonly admission?: readonly string[];
  };
  readonly candidates?: readonly CandidateJson[];
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(noAdminTokenFlag((err as Error).message));
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'which URL? e.g. switchyard explain http://api.example.com/users/7' : `one URL only, got ${positionals.length}`);
  const method = (values.method ?? 'GET').toUpperCase();
  if (!/^[!#$%&'*+.^_`|~0-9A-Z-]+$/.test(method)) throw new UsageError(`--method: not an HTTP method: ${JSON.stringify(values.method)}`);
  const headers = (values.header ?? []).map(parseHeader);
  const request = requestOf(positionals[0]!, headers);
  const target = adminTarget(values, env);
  const query = new URLSearchParams();
  query.set('method', method);
  for (const [name, value] of headers) if (name !== 'host') query.append('header', `${name}:${value}`);
  if (request.host !== undefined) query.set('host', request.host);
  // `path=` last and raw: /api/match takes everything after it as the request target.
  const answer = await adminGet(target, `/api/match?${query.toString()}&path=${request.target}`) as MatchJson;
  const asked = values.method !== undefined || headers.some(([name]) => name !== 'host');
  process.stdout.write(`${printableLines(explainReport(answer, method, { all: values.all === true, methodAndHeadersAsked: asked }))}\n`);
  return 0;
}

function parseHeader(text: string): [string, string] {
  const at = text.indexOf(':');
  const name = at <= 0 ? '' : text.slice(0, at).trim().toLowerCase();
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new UsageError(`--header: expected NAME:VALUE, got ${JSON.stringify(text)}`);
  return [name, text.slice(at + 1).trim()];
}

/**
 * The request a client would send for `url`: its Host (from an absolute URL, or a Host header) and
 * its target, as sent: kept as written, but for characters no request line may carry (spaces,
 * control characters, non-ASCII), percent-encoded as a browser or curl does, and no fragment.
 */
export function requestOf(url: string, headers: readonly [string, string][]): { host: string | undefined; target: string } {
  const hostHeader = headers.find(([name]) => name === 'host')?.[1];
  let host = hostHeader;
  let target = url;
  if (!url.startsWith('/')) {
    const absolute = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/i.exec(url) ?? /^()([^/?#]+)(.*)$/.exec(url);
    if (absolute === null) throw new UsageError(`not a URL: ${JSON.stringify(url)}`);
    const scheme = absolute[1]!.toLowerCase();
    if (scheme !== '' && scheme !== 'http' && scheme !== 'https') throw new UsageError(`only http and https URLs are proxied, got ${scheme}://`);
    const authority = absolute[2]!.replace(/^[^@]*@/, '');
    if (authority === '') throw new UsageError(`no host in ${JSON.stringify(url)}`);
    host = authority;
    target = absolute[3] === '' ? '/' : absolute[3]!;
    if (!target.startsWith('/')) target = `/${target}`;
  }
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  // eslint-disable-next-line no-control-regex -- what a request line cannot carry
  target = target.replace(/[\u0000-\u0020\u007f-\uffff]/gu, (ch) => encodeURIComponent(ch));
  return { host, target };
}

/** The answer for a person. */
export function explainReport(m: MatchJson, method: string, options: { all: boolean; methodAndHeadersAsked: boolean }): string {
  const lines: string[] = [];
  const req = m.request;
  lines.push(`Request   ${method} ${req.target}${req.host === null ? ' (no Host)' : ` Host: ${req.host}`}`);
  if (req.normalizedTarget !== null && req.normalizedTarget !== req.target) lines.push(`          matched as ${req.normalizedTarget} (dot segments resolved)`);
  for (const [name, value] of req.headers ?? []) lines.push(`          ${name}: ${value}`);
  const route = m.route;
  const answer = m.outcome === 'routed' && route !== undefined
    ? `forwarded by route "${route.name}" to ${route.upstreamTarget}`
    : m.outcome === 'redirected' ? `Switchyard answers ${m.status ?? 302} itself (route "${route?.name ?? '?'}" is a redirect route)${m.location === null || m.location === undefined ? '' : `: Location ${m.location}`}`
    : m.outcome === 'no-route' ? `Switchyard answers ${m.status ?? 404} itself: no route`
    : m.outcome === 'no-endpoint' ? `Switchyard answers ${m.status ?? 503} itself: route "${route?.name ?? '?'}" has no endpoint that can take it`
    : `Switchyard answers ${m.status ?? 400} itself: the request is refused before routing`;
  lines.push(`Answer    ${answer}`);
  lines.push(`Why       ${m.reason}`);
  if (route !== undefined) {
    const hosts = route.hosts ?? [];
    const allHosts = hosts.length > 1 ? ` (hosts ${hosts.join(', ')})` : '';
    lines.push(`Route     ${route.name}: ${matchText(route)}${route.host === null ? ' (any host)' : allHosts}${route.strip === null ? '' : `, strip ${route.strip}`}; from ${route.origin} ${route.source}`);
  }
  const chosen = m.candidates?.find((c) => c.chosen);
  if (chosen !== undefined && (chosen.conditions ?? []).length > 0) {
    lines.push(`Matched   ${(chosen.conditions ?? []).map(verdictText).join('; ')}`);
  }
  if (options.methodAndHeadersAsked && req.method === undefined) {
    lines.push('Note      this Switchyard routes on host and path only: --method and --header were sent along but do not change the answer');
  }
  const candidates = m.candidates ?? [];
  if (candidates.length > 0) {
    const winner = chosen;
    const shown = options.all ? candidates : candidates.filter((c) => c.prefixMatches || c.chosen);
    const withConditions = shown.some((c) => (c.conditions ?? []).length > 0);
    lines.push('', `Candidates (exact host, then wildcards longest first, then any host; longest prefix first; most conditions first)${options.all ? '' : ': those whose prefix the path falls under'}`);
    if (shown.length > 0) {
      const columns = [{ title: '' }, { title: 'ROUTE' }, { title: 'HOST' }, { title: 'PREFIX' }, ...(withConditions ? [{ title: 'CONDITIONS' }] : []), { title: 'RESULT' }];
      lines.push(renderTable(columns, shown.map((c) => [
        c.chosen ? '*' : '', c.route, c.host ?? '(any)', c.path,
        ...(withConditions ? [(c.conditions ?? []).map(verdictText).join('; ')] : []),
        c.chosen ? 'chosen' : lostBecause(c, winner),
      ]), '  '));
    } else {
      lines.push('  (none)');
    }
    const hidden = candidates.length - shown.length;
    if (hidden > 0) lines.push(`  and ${hidden} other route(s) whose prefix the path does not fall under (--all lists them)`);
  }
  // A redirect route has no destinations: its answer line says it all.
  if (route !== undefined && (m.outcome !== 'redirected' || route.destinations.length > 0)) {
    lines.push('', 'Destinations and endpoints (SHARE: of this route\'s new requests)');
    const rows: string[][] = [];
    for (const d of route.destinations) {
      d.endpoints.forEach((e, at) => rows.push([
        at === 0 ? d.key : '', at === 0 ? weightText(d) : '', at === 0 ? percent(d.share) : '',
        e.id, addressText(e), e.status, String(e.weight), percent(d.share * e.share), e.why,
      ]));
      if (d.endpoints.length === 0) rows.push([d.key, weightText(d), percent(d.share), '(no instances)']);
    }
    lines.push(renderTable([
      { title: 'DESTINATION' }, { title: 'WEIGHT', align: 'right' }, { title: 'SHARE', align: 'right' },
      { title: 'ENDPOINT' }, { title: 'ADDRESS' }, { title: 'HEALTH' }, { title: 'WEIGHT', align: 'right' }, { title: 'SHARE', align: 'right' }, { title: 'WHY' },
    ], rows, '  '));
    if ((route.admission ?? []).length > 0) {
      lines.push('', 'Before forwarding, the route may still answer itself:', ...(route.admission ?? []).map((note) => `  ${note}`));
    }
  }
  return lines.join('\n');
}

/** `header x-canary = "1": held` or `method POST: failed (sent GET)`; the condition as /api/match's reason words it. */
function verdictText(v: VerdictJson): string {
  const wanted = conditionText({ ...v, expected: v.kind === 'method' && !Array.isArray(v.expected) ? [v.expected as string] : v.expected });
  if (v.held) return `${wanted}: held`;
  const seen = v.seen.length === 0 ? (v.kind === 'method' ? 'no method' : 'absent') : `sent ${v.seen.map((s) => (v.kind === 'method' ? s : JSON.stringify(s))).join(', ')}`;
  return `${wanted}: failed (${seen})`;
}

const TIER: Record<string, number> = { exact: 2, wildcard: 1, any: 0 };

function lostBecause(c: CandidateJson, winner: CandidateJson | undefined): string {
  if (!c.prefixMatches) return 'lost: the path is not under its prefix';
  if (c.conditionsHold === false) return 'lost: a condition failed';
  if (winner === undefined) return 'lost';
  if (winner.host !== null && c.host === null) return 'lost: routes for the Host come before routes for any host';
  const winnerTier = TIER[winner.hostMatch ?? ''];
  const tier = TIER[c.hostMatch ?? ''];
  if (winnerTier !== undefined && tier !== undefined && winnerTier > tier) return 'lost: an exact host comes before a wildcard';
  if (winner.hostMatch === 'wildcard' && c.hostMatch === 'wildcard' && winner.host !== c.host) return `lost: a longer wildcard matched (${winner.host ?? ''})`;
  if (winner.path !== c.path) return `lost: a longer prefix matched (${winner.path})`;
  if ((winner.conditionCount ?? 0) > (c.conditionCount ?? 0)) return `lost: the chosen route has more conditions (${winner.conditionCount ?? 0} to ${c.conditionCount ?? 0})`;
  return 'lost: an earlier route in the table';
}
