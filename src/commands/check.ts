import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { routesView } from '../admin/routes-view.js';
import { consulConnection, type ConsulSettings } from '../config/consul-settings.js';
import { FLAGS, flagGetter, parseDuration } from '../config/flags.js';
import { mergeDiscovery, mergeKv } from '../control/merge.js';
import { ConfigError, UsageError } from '../errors.js';
import { buildTable } from '../model/build-table.js';
import type { BuildProblem, DiscoverySnapshot, KvSnapshot, RouteTemplate, RoutingTable, ServiceInstance } from '../model/types.js';
import { servicesFileSchema } from '../providers/file/services-schema.js';
import { kvUnderPrefix, servicesToDiscovery } from '../providers/file/to-snapshot.js';
import { isTemplateFile, toTemplate } from '../providers/templates/templates-provider.js';
import { templatesFileSchema } from '../providers/templates/templates-schema.js';
import { parseYamlChecked, readTextFile, type Locate, type YamlProblem } from '../providers/yaml-file.js';
import { renderRoutes, type RoutesJson } from './routes-table.js';
import { printableLines } from './text-table.js';

/**
 * `switchyard check`: build the routing table from the sources once, as the proxy would at start,
 * and print it, or every problem with its file and line; exit 0 when valid, 1 when not (as
 * `nginx -t`, `haproxy -c`). One read of each source: the templates directory, the services file,
 * and Consul's catalog, KV and the health of the services the routes need (non-blocking reads).
 * Nothing listens, nothing is watched.
 */
export const help = [
  'Usage: switchyard check [--templates DIR] [--services FILE] [--consul ADDR] [--kv-prefix PREFIX] [--strict]',
  '',
  'Build the routing table from the sources once, as Switchyard would at start, and print its routes',
  '(as `switchyard routes` does: conditions, redirects and gateway options included), destinations and',
  'endpoints; or print every problem with its file and line (YAML syntax and schema errors in the',
  'templates and the services file, gateway option errors, route conflicts) and exit 1.',
  'KV values (weights, policy, route options) that the proxy would ignore are warnings. Serves nothing.',
  '',
  `  --templates DIR       route templates: every *.yaml in DIR (default ${FLAGS.templates.default}) [${FLAGS.templates.env}]`,
  `  --services FILE       services file (services and KV) [${FLAGS.services.env}]`,
  `  --consul ADDR         read Consul once: catalog, KV and the health of the services the routes need [${FLAGS.consul.env}];`,
  '                        the connection is read from the environment as Consul\'s CLI reads it (CONSUL_HTTP_TOKEN, ...)',
  `  --consul-datacenter DC, --consul-consistency MODE   as for the proxy [${FLAGS['consul-datacenter'].env}, ${FLAGS['consul-consistency'].env}]`,
  `  --kv-prefix PREFIX    KV prefix holding weights and policies (default ${FLAGS['kv-prefix'].default}) [${FLAGS['kv-prefix'].env}]`,
  '  --strict              warnings (what the build skips: a bad KV value, an unusable address) fail the check too',
  '',
  'Without --services and --consul the templates are checked against the embedded default\'s demo services',
  '(users with tags v1 and v2, hello with tag public), and the output says so.',
  '',
  'Errors and warnings go to stderr as FILE:LINE:COLUMN: message (KV problems name their key, tag',
  'problems their service); the table and the summary go to stdout.',
  'Exit status: 0 valid (warnings allowed, as nginx -t allows them, unless --strict), 1 invalid, or a',
  'source could not be read, 2 usage error.',
].join('\n');

const OPTIONS = {
  templates: { type: 'string' },
  services: { type: 'string' },
  consul: { type: 'string' },
  'consul-datacenter': { type: 'string' },
  'consul-consistency': { type: 'string' },
  'kv-prefix': { type: 'string' },
  strict: { type: 'boolean' },
} as const;

/**
 * The embedded default's demo services (src/demo/demo-upstreams.ts starts one server per entry on
 * a loopback port chosen at start, so the check shows the port as 0). test/cli/check.test.ts
 * keeps this list equal to the demo's.
 */
export const DEMO_SERVICES: readonly { service: string; id: string; tags: readonly string[] }[] = [
  { service: 'users', id: 'users-1', tags: ['v1'] },
  { service: 'users', id: 'users-2', tags: ['v1'] },
  { service: 'users', id: 'users-3', tags: ['v2'] },
  { service: 'hello', id: 'hello-1', tags: ['public'] },
];

/** One problem: where (`file:line:column`, a KV key, a service) and what. */
export interface CheckProblem {
  readonly where: string;
  readonly message: string;
}

export interface CheckResult {
  /** What was read, one line each. */
  readonly sources: readonly string[];
  readonly errors: readonly CheckProblem[];
  /** table.problems: what the build skipped. */
  readonly warnings: readonly CheckProblem[];
  /** Built from what was valid; undefined when even that failed. */
  readonly table: RoutingTable | undefined;
  readonly demo: boolean;
}

export interface CheckSources {
  readonly templatesDir: string;
  readonly servicesFile: string | undefined;
  readonly consul: ConsulSettings | undefined;
  readonly kvPrefix: string;
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'invalid command line');
  }
  const get = flagGetter(values, env);
  const consistency = get('consul-consistency')!;
  if (consistency !== 'default' && consistency !== 'stale' && consistency !== 'consistent') {
    throw new UsageError(`--consul-consistency: expected default, stale or consistent, got ${JSON.stringify(consistency)}`);
  }
  const address = get('consul');
  const kvPrefix = get('kv-prefix')!;
  const sources: CheckSources = {
    templatesDir: get('templates')!,
    servicesFile: get('services'),
    consul: address === undefined ? undefined : consulConnection(address, env, {
      datacenter: get('consul-datacenter'), consistency, waitMs: parseDuration('consul-wait', FLAGS['consul-wait'].default),
    }),
    kvPrefix: kvPrefix.endsWith('/') ? kvPrefix : `${kvPrefix}/`,
  };
  const result = await check(sources);
  const strict = values.strict === true;
  const out: string[] = [...result.sources];
  if (result.errors.length === 0 && result.table !== undefined) {
    const view = routesView(result.table, 0, 0) as RoutesJson;
    out.push('', view.routes.length === 0 ? 'No routes.' : renderRoutes(result.demo ? withDemoPorts(view).routes : view.routes));
  }
  const err: string[] = [
    ...result.errors.map((p) => `${p.where}: ${p.message}`),
    ...result.warnings.map((p) => `warning: ${p.where}: ${p.message}`),
  ];
  const failed = result.errors.length > 0 || (strict && result.warnings.length > 0);
  const endpoints = new Set(result.table?.routes.flatMap((r) => r.destinations.flatMap((d) => d.endpoints.map((e) => e.id))) ?? []).size;
  const summary = failed
    ? `switchyard check: FAILED: ${count(result.errors.length, 'error')}, ${count(result.warnings.length, 'warning')}${strict && result.errors.length === 0 ? ' (--strict)' : ''}`
    : `switchyard check: OK: ${count(result.table?.routes.length ?? 0, 'route')}, ${count(endpoints, 'endpoint')}${result.warnings.length > 0 ? `, ${count(result.warnings.length, 'warning')}` : ''}`;
  out.push('', summary);
  if (err.length > 0) process.stderr.write(`${printableLines(err.join('\n'))}\n`);
  process.stdout.write(`${printableLines(out.join('\n'))}\n`);
  return failed ? 1 : 0;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** The demo's ports are chosen at start: shown as `*` (port 0). */
function withDemoPorts(view: RoutesJson): RoutesJson {
  return {
    ...view,
    routes: view.routes.map((r) => ({ ...r, destinations: r.destinations.map((d) => ({ ...d, endpoints: d.endpoints.map((e) => ({ ...e, port: 0 })) })) })),
  };
}

/** Read every source once and build the table; every problem found on the way. */
export async function check(sources: CheckSources): Promise<CheckResult> {
  const lines: string[] = [];
  const errors: CheckProblem[] = [];
  const templates = await readTemplates(sources.templatesDir, errors);
  const invalid = templates.read - templates.files.length;
  lines.push(`templates: ${sources.templatesDir} (${count(templates.read, 'file')}${invalid > 0 ? `, ${invalid} invalid` : ''}, ${count(templates.files.reduce((n, f) => n + f.templates.length, 0), 'valid route template')})`);
  const discoveries: DiscoverySnapshot[] = [];
  const kvs: KvSnapshot[] = [];
  const sourceWarnings: CheckProblem[] = [];
  let servicesFile: ServicesRead | undefined;
  const demo = sources.servicesFile === undefined && sources.consul === undefined;
  if (sources.servicesFile !== undefined) {
    const file = await readServices(sources.servicesFile, sources.kvPrefix, errors);
    servicesFile = file;
    if (file !== undefined) {
      discoveries.push(file.discovery);
      kvs.push(file.kv);
      lines.push(`services file: ${sources.servicesFile} (${describeDiscovery(file.discovery, file.kv)})`);
    }
  }
  if (sources.consul !== undefined) {
    const consul = await readConsul(sources.consul, sources.kvPrefix, templates.files.flatMap((f) => f.templates));
    if (typeof consul === 'string') {
      errors.push({ where: `consul ${sources.consul.url}`, message: consul });
    } else {
      discoveries.push(consul.discovery);
      kvs.push(consul.kv);
      sourceWarnings.push(...consul.warnings.map((message) => ({ where: `consul ${sources.consul!.url}`, message })));
      lines.push(`consul: ${sources.consul.url} (${describeDiscovery(consul.discovery, consul.kv)}; read once, not watched)`);
    }
  }
  if (demo) {
    discoveries.push(demoDiscovery());
    kvs.push({});
    lines.push('no --services and no --consul: checked against the embedded default\'s demo services (users: v1, v2; hello: public; their ports are chosen at start: *)');
  }
  if (discoveries.length === 0) {
    // The services file or Consul failed: the templates are still checked against each other
    // (conflicts, placeholders); what the build would say about services is left out.
    errors.push(...buildReporting({ catalog: {}, instances: {} }, {}, templates.files).buildErrors);
    return { sources: lines, errors, warnings: sourceWarnings, table: undefined, demo };
  }
  const { table, buildErrors } = buildReporting(mergeDiscovery(discoveries), mergeKv(kvs), templates.files);
  errors.push(...buildErrors);
  const warnings = [
    ...sourceWarnings,
    ...(table?.problems ?? []).map((p) => {
      const template = templateFileLine(templates.files, p);
      if (template !== undefined) return { where: template, message: p.message };
      const what = p.kind === 'kv' ? `KV key ${sources.kvPrefix}${p.source}` : `${p.kind} ${p.source}`;
      const line = servicesFile === undefined ? undefined : servicesFileLine(servicesFile, p, sources.kvPrefix);
      return { where: line === undefined ? what : `${line}: ${what}`, message: p.message };
    }),
  ];
  return { sources: lines, errors, warnings, table, demo };
}

function describeDiscovery(discovery: DiscoverySnapshot, kv: KvSnapshot): string {
  const instances = Object.values(discovery.instances).reduce((n, list) => n + list.length, 0);
  return `${count(Object.keys(discovery.catalog).length, 'service')}, ${count(instances, 'instance')}, ${count(Object.keys(kv).length, 'KV key')}`;
}

interface TemplateFile {
  readonly path: string;
  readonly templates: readonly RouteTemplate[];
  readonly locate: Locate;
}

async function readTemplates(dir: string, errors: CheckProblem[]): Promise<{ files: TemplateFile[]; read: number }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isTemplateFile).sort();
  } catch (err) {
    errors.push({ where: dir, message: `cannot read the templates directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return { files: [], read: 0 };
  }
  const files: TemplateFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const parsed = await readChecked(path, templatesFileSchema, errors);
    if (parsed !== undefined) files.push({ path, templates: parsed.data.routes.map((route) => toTemplate(route, path)), locate: parsed.locate });
  }
  return { files, read: names.length };
}

interface ServicesRead {
  readonly path: string;
  readonly discovery: DiscoverySnapshot;
  readonly kv: KvSnapshot;
  readonly locate: Locate;
}

async function readServices(path: string, kvPrefix: string, errors: CheckProblem[]): Promise<ServicesRead | undefined> {
  const parsed = await readChecked(path, servicesFileSchema, errors);
  return parsed === undefined ? undefined : { path, discovery: servicesToDiscovery(parsed.data), kv: kvUnderPrefix(parsed.data.kv, kvPrefix), locate: parsed.locate };
}

/**
 * Where a build problem about a route stands in its template file (a service no source knows):
 * `file:line:column` of the route's `to` entry naming the service (or its `mirror.service`), or of
 * its name; the file alone
 * when the route is not found as written (an `each` template's routes have other names). Undefined
 * when the problem's source is no template file.
 */
function templateFileLine(files: readonly TemplateFile[], problem: BuildProblem): string | undefined {
  const file = files.find((f) => f.path === problem.source);
  if (file === undefined) return undefined;
  const index = file.templates.findIndex((t) => problem.message.startsWith(`route "${t.name}": `));
  if (index < 0) return file.path;
  const service = /: service "([^"]*)"/.exec(problem.message)?.[1];
  const to = service === undefined ? -1 : file.templates[index]!.to.findIndex((d) => d.service === service);
  const mirror = /: mirror service "/.test(problem.message) && file.templates[index]!.options?.mirror !== undefined;
  const pos = file.locate(to >= 0 ? ['routes', index, 'to', to, 'service'] : mirror ? ['routes', index, 'mirror', 'service'] : ['routes', index, 'name']);
  return pos === undefined ? file.path : `${file.path}:${pos.line}:${pos.column}`;
}

/**
 * `file:line:column` of what a build problem names in the services file: a KV key, or an
 * instance (`service/id`, kind endpoint) at its address. Undefined when it is not there (Consul's).
 */
function servicesFileLine(file: ServicesRead, problem: BuildProblem, kvPrefix: string): string | undefined {
  let pos: ReturnType<Locate>;
  if (problem.kind === 'kv' && Object.hasOwn(file.kv, problem.source)) {
    pos = file.locate(['kv', `${kvPrefix}${problem.source}`]);
  } else if (problem.kind === 'endpoint') {
    const slash = problem.source.indexOf('/');
    const service = problem.source.slice(0, slash);
    const index = (file.discovery.instances[service] ?? []).findIndex((i) => i.id === problem.source.slice(slash + 1));
    if (index >= 0) pos = file.locate(['services', service, index, 'address']);
  }
  return pos === undefined ? undefined : `${file.path}:${pos.line}:${pos.column}`;
}

/** A file read and validated, or undefined with its problems (by line) added to `errors`. */
async function readChecked<S extends Parameters<typeof parseYamlChecked>[1]>(path: string, schema: S, errors: CheckProblem[]): Promise<{ data: ReturnType<S['parse']>; locate: Locate } | undefined> {
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (err) {
    errors.push({ where: path, message: (err as ConfigError).message.slice(path.length + 2) });
    return undefined;
  }
  const parsed = parseYamlChecked(text, schema);
  if ('problems' in parsed) {
    const sorted = [...parsed.problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    errors.push(...sorted.map((p) => ({ where: at(path, p), message: `${p.path === '' ? '' : `${p.path}: `}${p.message}` })));
    return undefined;
  }
  return parsed as { data: ReturnType<S['parse']>; locate: Locate };
}

function at(path: string, p: Pick<YamlProblem, 'line' | 'column'>): string {
  return p.line === undefined ? path : `${path}:${p.line}:${p.column ?? 1}`;
}

/** Most rounds of "report the template that failed, build without it". */
const MAX_BUILD_ROUNDS = 100;

/**
 * buildTable stops at the first invalid route (a duplicate, a bad placeholder): report it at its
 * template's line, leave that template out and build again, so every such problem is reported
 * in one run, and the table of what is valid is still built.
 */
function buildReporting(discovery: DiscoverySnapshot, kv: KvSnapshot, files: readonly TemplateFile[]): { table: RoutingTable | undefined; buildErrors: CheckProblem[] } {
  const buildErrors: CheckProblem[] = [];
  let templates = files.flatMap((f) => f.templates);
  for (let round = 0; round < MAX_BUILD_ROUNDS; round += 1) {
    try {
      return { table: buildTable(discovery, kv, templates), buildErrors };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const message = err.message.startsWith(`${err.source}: `) ? err.message.slice(err.source.length + 2) : err.message;
      const file = files.find((f) => f.path === err.source);
      const culprit = file === undefined ? undefined : templateNamed(file, templates, message);
      const index = culprit === undefined || file === undefined ? -1 : file.templates.indexOf(culprit);
      const pos = index < 0 ? undefined : file!.locate(['routes', index, 'name']);
      buildErrors.push({ where: pos === undefined ? err.source : `${err.source}:${pos.line}:${pos.column}`, message });
      if (culprit === undefined) return { table: undefined, buildErrors };
      templates = templates.filter((t) => t !== culprit);
    }
  }
  return { table: undefined, buildErrors };
}

/** The template of `file` a build error names (`route "NAME": ...`): by name, or for an `each` template by its expansion. */
function templateNamed(file: TemplateFile, remaining: readonly RouteTemplate[], message: string): RouteTemplate | undefined {
  const name = /^route "((?:[^"\\]|\\.)*)"/.exec(message)?.[1];
  if (name === undefined) return undefined;
  const candidates = file.templates.filter((t) => remaining.includes(t));
  // The last one: a conflict (same name, same match) is reported on the later route of the two.
  return candidates.findLast((t) => t.name === name)
    ?? candidates.findLast((t) => t.each !== undefined && expansionPattern(t.name).test(name));
}

function expansionPattern(name: string): RegExp {
  const parts = name.split('{{service}}').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.+')}$`);
}

function demoDiscovery(): DiscoverySnapshot {
  const instances: Record<string, ServiceInstance[]> = {};
  DEMO_SERVICES.forEach((d, at) => (instances[d.service] ??= []).push({
    id: d.id, service: d.service, address: '127.0.0.1', port: 1 + at, tags: d.tags,
    status: 'passing', weights: { passing: 1, warning: 1 }, meta: { demo: 'true' },
  }));
  const catalog = Object.fromEntries(Object.entries(instances).map(([name, list]) => [name, [...new Set(list.flatMap((i) => i.tags))]]));
  return { catalog, instances };
}

/**
 * What ACLs may have hidden: Consul filters what a token may not read instead of refusing it (and
 * masks that for anonymous requests), so an empty catalog without a token is checked with one
 * anonymous probe, as the provider does (empty-answer-guard.ts).
 */
async function aclWarnings(
  client: { aclProbe(signal: AbortSignal): Promise<string> }, filtered: boolean, catalog: DiscoverySnapshot['catalog'], settings: ConsulSettings, signal: AbortSignal,
): Promise<string[]> {
  if (filtered) return ['Consul left out services this token may not read (X-Consul-Results-Filtered-By-Acls): the table may lack routes'];
  if (settings.token !== undefined || Object.keys(catalog).length > 0) return [];
  const acl = await client.aclProbe(signal).catch(() => 'unknown');
  return acl === 'enabled' ? ['the catalog is empty, Consul\'s ACLs are on and no token is set (CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE): the anonymous token may see nothing'] : [];
}

/** Most health reads in flight at once (the proxy's request budget is 8). */
const CONSUL_READS = 8;

/**
 * Consul read once, without blocking: the catalog and the KV prefix, then the health of each
 * catalog service the routes need (as the provider reads them, decoded by the same functions).
 * A string: why Consul could not be read.
 */
async function readConsul(settings: ConsulSettings, kvPrefix: string, templates: readonly RouteTemplate[]): Promise<{ discovery: DiscoverySnapshot; kv: KvSnapshot; warnings: string[] } | string> {
  const [{ ConsulClient }, { catalogFromServices }, { kvFromEntries }, { instancesFromHealth }] = await Promise.all([
    import('../providers/consul/consul-client.js'), import('../providers/consul/catalog.js'), import('../providers/consul/kv.js'), import('../providers/consul/health.js'),
  ]);
  let client;
  try {
    client = new ConsulClient(settings, { timeoutMarginMs: 5_000, readTimeoutMs: 10_000, maxSockets: CONSUL_READS });
  } catch (err) {
    return (err as Error).message;
  }
  const request = { index: 0, waitMs: settings.waitMs, signal: new AbortController().signal };
  try {
    const [catalogAnswer, kvAnswer] = await Promise.all([client.catalogServices(request), client.kvList(kvPrefix, request)]);
    const catalog = catalogFromServices(catalogAnswer.body);
    const kv = kvFromEntries(kvAnswer.body, kvPrefix);
    // The services the table needs, KV included (a mirror set in routes/<route>/route), as the
    // running proxy's table.services says.
    let needed: readonly string[];
    try {
      needed = buildTable({ catalog, instances: {} }, kv, templates).services;
    } catch {
      needed = Object.keys(catalog); // the build reports the templates' problem
    }
    const queue = needed.filter((name) => Object.hasOwn(catalog, name));
    const instances: Record<string, readonly ServiceInstance[]> = {};
    const worker = async (): Promise<void> => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        instances[name] = instancesFromHealth((await client.healthService(name, request)).body);
      }
    };
    await Promise.all(Array.from({ length: CONSUL_READS }, worker));
    return { discovery: { catalog, instances }, kv, warnings: await aclWarnings(client, catalogAnswer.meta.filteredByAcls, catalog, settings, request.signal) };
  } catch (err) {
    return (err as Error).message;
  } finally {
    client.close();
  }
}
