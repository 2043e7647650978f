/**
 * Routing cost (issue 10 §3): CPU nanoseconds per `RoutingTable.lookup`, in-process, over a table
 * of 1,000 routes of which 200 carry header conditions, with a realistic request mix; and the
 * plain map-probe case (routes without conditions or wildcards) for comparison.
 *
 *   node --import tsx bench/route-match.ts            every case, markdown on stdout
 *   node --import tsx bench/route-match.ts --quick    fewer lookups
 *   node --import tsx bench/route-match.ts --json     the measurement as JSON (what the phase runs, with --pinned under taskset)
 *
 * The table (buildTable, as the watcher builds it):
 * - 100 exact hosts `h<i>.example.com`, 4 prefixes each (`/api`, `/api/v1`, `/static`, `/users`): 400
 *   plain routes;
 * - on 100 of those host + prefix pairs (`/api` and `/users` of h0..h49), 2 header-conditioned
 *   routes each: `x-canary: 1`, and `x-tenant: *` with `x-canary: 2`: 200 conditioned routes;
 * - 100 wildcards `*.t<i>.example.com` on `/api`, 100 on `/`: 200 routes;
 * - 200 any-host routes `/svc<i>`: 1,000 routes in all.
 * The requests (4,096, cycled): 40% exact host on a plain prefix, 20% exact host on a conditioned
 * prefix (a third with `x-canary: 1`, a third with `x-tenant` and `x-canary: 2`, a third with no
 * condition header: they fall through to the plain route), 15% wildcard hosts (2 labels before the
 * suffix), 15% any-host paths under an unknown Host, 10% misses (404); paths 2-4 segments deep with
 * a query on half; 12 request headers each (as a browser sends), the condition headers among them,
 * names in mixed case. Host headers carry a port on a quarter of the requests.
 *
 * Method: warm-up lookups (JIT), then rounds of N lookups between two `process.cpuUsage()` reads
 * (user + system), ns/lookup = CPU time / N; the median of the rounds is reported. Goal: mixed
 * requests ≤ 2,000 ns (2 µs) per lookup.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { buildTable } from '../src/model/build-table.js';
import type { DiscoverySnapshot, RequestFacts, RouteTemplate, RoutingTable } from '../src/model/types.js';
import type { Phase } from './phase.js';
import { cpuPrefix } from './procs.js';
import { checksMarkdown, checksText, fmtNs, markdownTable, median, textTable, type Check } from './report.js';
import { mulberry32 } from '../test/support/churn.js';

export const LOOKUP_NS_GOAL = 2_000;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Probe {
  readonly host: string | undefined;
  readonly path: string;
  readonly request: RequestFacts;
}

export interface CaseResult {
  readonly name: string;
  readonly routes: number;
  readonly conditioned: number;
  readonly lookups: number;
  /** Per round. */
  readonly nsPerLookup: readonly number[];
  readonly median: number;
  /** Share of the probes that found a route (a check that the mix is what it says). */
  readonly hitRate: number;
}

export interface RouteMatchResult {
  readonly node: string;
  /** Run by the phase under taskset on the proxy CPU. */
  readonly pinned: boolean;
  readonly cases: readonly CaseResult[];
}

const snapshot: DiscoverySnapshot = {
  catalog: { svc: [] },
  instances: { svc: [{ id: 'svc-1', service: 'svc', address: '127.0.0.1', port: 9000, tags: [], status: 'passing', weights: { passing: 1, warning: 1 }, meta: {} }] },
};

function template(name: string, hosts: readonly string[], path: string, headers?: readonly (readonly [string, string])[]): RouteTemplate {
  return {
    name,
    match: { hosts, path },
    to: [{ service: 'svc', weight: 1 }],
    source: 'bench/route-match.ts',
    ...(headers === undefined ? {} : { options: { conditions: { methods: [], headers, query: [] } } }),
  };
}

const PREFIXES = ['/api', '/api/v1', '/static', '/users'];

/** The 1,000-route gateway table (file header). */
export function gatewayTable(): RoutingTable {
  const templates: RouteTemplate[] = [];
  for (let h = 0; h < 100; h++) {
    for (const prefix of PREFIXES) templates.push(template(`h${h}${prefix}`, [`h${h}.example.com`], prefix));
  }
  for (let h = 0; h < 50; h++) {
    for (const prefix of ['/api', '/users']) {
      templates.push(template(`h${h}${prefix}-canary`, [`h${h}.example.com`], prefix, [['x-canary', '1']]));
      templates.push(template(`h${h}${prefix}-tenant`, [`h${h}.example.com`], prefix, [['x-canary', '2'], ['x-tenant', '*']]));
    }
  }
  for (let t = 0; t < 100; t++) {
    templates.push(template(`t${t}-api`, [`*.t${t}.example.com`], '/api'));
    templates.push(template(`t${t}-root`, [`*.t${t}.example.com`], '/'));
  }
  for (let s = 0; s < 200; s++) templates.push(template(`svc${s}`, [], `/svc${s}`));
  return buildTable(snapshot, {}, templates);
}

/** The same number of routes, every one exact host + prefix without conditions: the map-probe case. */
export function plainTable(): RoutingTable {
  const templates: RouteTemplate[] = [];
  for (let h = 0; h < 250; h++) {
    for (const prefix of PREFIXES) templates.push(template(`h${h}${prefix}`, [`h${h}.example.com`], prefix));
  }
  return buildTable(snapshot, {}, templates);
}

const BROWSER_HEADERS: readonly (readonly [string, string])[] = [
  ['Host', ''], ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36'], ['Accept', 'text/html,application/json;q=0.9'],
  ['Accept-Language', 'en-US,en;q=0.8'], ['Accept-Encoding', 'gzip, deflate, br'], ['Connection', 'keep-alive'],
  ['Cookie', 'session=abc123; theme=dark'], ['Referer', 'https://www.example.com/'], ['Sec-Fetch-Mode', 'cors'],
  ['Sec-Fetch-Site', 'same-origin'], ['Cache-Control', 'no-cache'], ['X-Request-Id', '8f14e45f'],
];

function facts(host: string | undefined, extra: readonly (readonly [string, string])[]): RequestFacts {
  const raw: string[] = [];
  for (const [name, value] of BROWSER_HEADERS) raw.push(name, name === 'Host' ? (host ?? '') : value);
  // Condition headers in the middle, in mixed case, as clients send them.
  const middle = 6;
  const before = raw.slice(0, middle * 2);
  const after = raw.slice(middle * 2);
  return { method: 'GET', rawHeaders: [...before, ...extra.flatMap(([n, v]) => [n, v]), ...after] };
}

/** The mixed request set (file header). */
export function gatewayProbes(count = 4096, seed = 10): Probe[] {
  const rand = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const tail = (): string => {
    const depth = 1 + Math.floor(rand() * 3);
    let s = '';
    for (let i = 0; i < depth; i++) s += `/${pick(['items', 'v2', '123', 'a-b', 'profile', 'x'])}`;
    return rand() < 0.5 ? `${s}?page=${Math.floor(rand() * 9)}&sort=name` : s;
  };
  const withPort = (host: string): string => (rand() < 0.25 ? `${host}:443` : host);
  const probes: Probe[] = [];
  for (let i = 0; i < count; i++) {
    const r = rand();
    let host: string;
    let path: string;
    let extra: (readonly [string, string])[] = [];
    if (r < 0.4) {
      const h = Math.floor(rand() * 100);
      // Plain prefixes: /api/v1 and /static everywhere, /api and /users on h50..h99.
      const prefix = h >= 50 ? pick(PREFIXES) : pick(['/api/v1', '/static']);
      host = `h${h}.example.com`;
      path = prefix + tail();
    } else if (r < 0.6) {
      host = `h${Math.floor(rand() * 50)}.example.com`;
      path = pick(['/api', '/users']) + tail();
      const which = rand();
      extra = which < 1 / 3 ? [['X-Canary', '1']] : which < 2 / 3 ? [['x-tenant', 'acme'], ['X-CANARY', '2']] : [];
    } else if (r < 0.75) {
      host = `${pick(['eu', 'us', 'a1'])}.${pick(['shop', 'api'])}.t${Math.floor(rand() * 100)}.example.com`;
      path = pick(['/api', '/home', '/']) + tail();
    } else if (r < 0.9) {
      host = `unknown${Math.floor(rand() * 10)}.example.org`;
      path = `/svc${Math.floor(rand() * 200)}${tail()}`;
    } else {
      host = `h${Math.floor(rand() * 100)}.example.com`;
      path = `/nothing${tail()}`;
    }
    const sent = withPort(host);
    probes.push({ host: sent, path, request: facts(sent, extra) });
  }
  return probes;
}

/** Exact host + prefix hits on the plain table. */
export function plainProbes(count = 4096, seed = 11): Probe[] {
  const rand = mulberry32(seed);
  const probes: Probe[] = [];
  for (let i = 0; i < count; i++) {
    const host = `h${Math.floor(rand() * 250)}.example.com`;
    probes.push({ host, path: `${PREFIXES[Math.floor(rand() * 4)]!}/items/${i % 97}`, request: facts(host, []) });
  }
  return probes;
}

/** ns per lookup of `probes` (cycled) over `table`, per round. */
export function measure(name: string, table: RoutingTable, probes: readonly Probe[], lookups: number, rounds: number): CaseResult {
  const n = probes.length;
  let sink = 0;
  let hits = 0;
  for (const p of probes) if (table.lookup(p.host, p.path, p.request) !== undefined) hits++;
  // Warm-up: as many lookups as one round, so the JIT has settled on the measured code.
  for (let i = 0; i < lookups; i++) {
    const p = probes[i % n]!;
    sink += table.lookup(p.host, p.path, p.request)?.path.length ?? 0;
  }
  const nsPerLookup: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.cpuUsage();
    for (let i = 0; i < lookups; i++) {
      const p = probes[i % n]!;
      sink += table.lookup(p.host, p.path, p.request)?.path.length ?? 0;
    }
    const used = process.cpuUsage(start);
    nsPerLookup.push(((used.user + used.system) * 1000) / lookups);
  }
  if (sink === 0) throw new Error('no lookup found a route: the measurement is meaningless');
  return {
    name,
    routes: table.routes.length,
    conditioned: table.routes.filter((r) => r.conditions !== undefined).length,
    lookups,
    nsPerLookup,
    median: median(nsPerLookup),
    hitRate: hits / n,
  };
}

export function measureAll(quick: boolean, pinned: boolean): RouteMatchResult {
  const lookups = quick ? 200_000 : 2_000_000;
  const rounds = quick ? 3 : 7;
  const gateway = gatewayTable();
  const plain = plainTable();
  const mixed = gatewayProbes();
  // Host + prefix pairs that have conditioned routes: a hit elsewhere is one map probe.
  const shared = new Set(gateway.routes.filter((r) => r.conditions !== undefined).map((r) => `${r.hosts.join(',')} ${r.path}`));
  const plainHits = mixed.filter((p) => {
    const found = gateway.lookup(p.host, p.path, p.request);
    return found !== undefined && found.hosts.length === 1 && !found.hosts[0]!.startsWith('*') && !shared.has(`${found.hosts[0]!} ${found.path}`);
  });
  const conditioned = mixed.filter((p) => p.request.rawHeaders.length > BROWSER_HEADERS.length * 2);
  return {
    node: process.version,
    pinned,
    cases: [
      measure('1,000 routes (200 with header conditions): mixed requests', gateway, mixed, lookups, rounds),
      measure('same table: requests carrying a condition header (canary / tenant)', gateway, conditioned, lookups, rounds),
      measure('same table: exact host on a plain prefix (no condition header)', gateway, plainHits, lookups, rounds),
      measure('plain map probe: 1,000 exact host + prefix routes, no conditions', plain, plainProbes(), lookups, rounds),
    ],
  };
}

export function routeMatchChecks(result: RouteMatchResult): Check[] {
  const mixed = result.cases[0]!;
  const plain = result.cases[3]!;
  return [
    { what: 'ns per lookup, 1,000 routes incl. 200 header-conditioned, mixed requests (median)', value: fmtNs(mixed.median), limit: `≤ ${fmtNs(LOOKUP_NS_GOAL)}`, pass: mixed.median <= LOOKUP_NS_GOAL },
    { what: 'ns per lookup, plain map probe (median)', value: fmtNs(plain.median), limit: 'no goal', pass: undefined, info: true },
  ];
}

const HEAD = ['case', 'routes', 'conditioned', 'hit rate', 'ns/lookup (median)', 'rounds'];

function rows(result: RouteMatchResult): string[][] {
  return result.cases.map((c) => [c.name, String(c.routes), String(c.conditioned), `${(c.hitRate * 100).toFixed(0)}%`, fmtNs(c.median), c.nsPerLookup.map((v) => v.toFixed(0)).join(', ')]);
}

export function routeMatchMarkdown(result: RouteMatchResult, quick: boolean): string {
  const lookups = result.cases[0]?.lookups ?? 0;
  return [
    '## Routing cost', '',
    `CPU time per \`RoutingTable.lookup\` (bench/route-match.ts, in a process of its own${result.pinned ? ' pinned to the proxy CPU' : ''}, node ${result.node}): ` +
      `${lookups.toLocaleString('en-US')} lookups per round after as many warm-up lookups, \`process.cpuUsage()\` around each round. ` +
      'The table: 400 exact-host routes (100 hosts × 4 prefixes), 200 header-conditioned routes on 100 of those host + prefix pairs, ' +
      '200 wildcard routes, 200 any-host routes. Requests: 12 headers each, the condition headers among them; a fifth of them on a ' +
      'conditioned prefix (a third falling through to the plain route), wildcard hosts, unknown hosts, misses, a quarter with a port.' +
      (quick ? ' **Quick run: few lookups.**' : ''), '',
    markdownTable(HEAD, rows(result)), '',
    checksMarkdown(routeMatchChecks(result)), '',
  ].join('\n');
}

export const routeMatchPhase: Phase = {
  name: 'route-match',
  budgetSeconds: () => 180,
  run: async (ctx) => {
    // A child process of its own (pinned like the proxy): nothing else in its heap or JIT.
    const pin = cpuPrefix(ctx.options.proxyCpu);
    const args = [...pin, process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), '--json', ...(ctx.options.quick ? ['--quick'] : []), ...(pin.length > 0 ? ['--pinned'] : [])];
    const r = spawnSync(args[0]!, args.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
    if (r.status !== 0) throw new Error(`bench/route-match.ts exited ${r.status ?? r.signal}: ${r.stderr.slice(-2000)}`);
    const result = JSON.parse(r.stdout) as RouteMatchResult;
    return {
      console: `Routing cost\n${textTable(HEAD, rows(result))}\n\n${checksText(routeMatchChecks(result))}`,
      markdown: routeMatchMarkdown(result, ctx.options.quick),
    };
  },
};

function main(): void {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, pinned: { type: 'boolean', default: false } } });
  const result = measureAll(values.quick, values.pinned);
  process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `${routeMatchMarkdown(result, values.quick)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
