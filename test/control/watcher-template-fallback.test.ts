/**
 * A template error that only shows when the table is built (a tie between two routes of one file)
 * must not hold back every later change: the watcher builds from the last good templates with the
 * newest discovery and KV, counts and logs the error once per message, keeps it as lastFailure,
 * and applies the fixed templates at once. The same when the catalog makes unchanged templates
 * clash (a service registers with the tag an `each` template expands): the last good templates
 * and catalog stay, the newest instances and KV apply. Per file first: a tie in one file keeps that
 * file's last good version (none at start-up: it adds no routes, the other files serve) while the
 * other files' changes apply. Hand-driven providers and the manual clock: each
 * `clock.advance` runs the due build synchronously, so the assertions after it are deterministic.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableStore } from '../../src/control/table-store.js';
import { ConfigWatcher } from '../../src/control/watcher.js';
import type { DiscoverySnapshot, KvSnapshot, RouteTemplate } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { discovery, instance, routeNamed, template } from '../model/fixtures.js';
import { discoveryProvider, ManualClock, templatesProvider } from './fakes.js';

const COALESCE = 5;
const MIN_INTERVAL = 50;

const CATALOG: DiscoverySnapshot = discovery([
  instance('users', 'users-1', { port: 9001, tags: ['v1'] }),
  instance('users', 'users-2', { port: 9002, tags: ['v2'] }),
  instance('docs', 'docs-1', { port: 9101 }),
]);
const USERS = template('users', '/users', [{ service: 'users', tag: 'v1', weight: 1 }, { service: 'users', tag: 'v2', weight: 1 }], { host: 'api.example.com' });
const GOOD: RouteTemplate[] = [USERS, template('docs', '/docs', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' })];
/** Two routes of one file with the same host and path, one with a header condition, one with a query condition: a tie. */
const TIED: RouteTemplate[] = [
  ...GOOD,
  { ...template('beta-header', '/beta', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' }), options: { conditions: { methods: [], headers: [['x-beta', '1']], query: [] } } },
  { ...template('beta-query', '/beta', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' }), options: { conditions: { methods: [], headers: [], query: [['beta', '1']] } } },
];
const FIXED: RouteTemplate[] = [...GOOD, TIED[2]!];
const weights = (v1: number, v2: number): KvSnapshot => ({ 'routes/users/weights': JSON.stringify({ 'users:v1': v1, 'users:v2': v2 }) });

interface LogLine { level: number; msg: string; code?: string; lastGoodTemplates?: boolean }

async function setup(first: readonly RouteTemplate[] = GOOD, catalog: DiscoverySnapshot = CATALOG) {
  const clock = new ManualClock();
  const store = new TableStore();
  const metrics = new Metrics({ defaultMetrics: false });
  const logs: LogLine[] = [];
  const sink = { write: (line: string) => logs.push(JSON.parse(line) as LogLine) } as unknown as NodeJS.WritableStream;
  const templates = templatesProvider(first);
  const consul = discoveryProvider('consul', { discovery: catalog, kv: weights(50, 50) });
  const watcher = new ConfigWatcher([consul], templates, store, createLogger({ level: 'info', destination: sink }), metrics,
    { coalesceMs: COALESCE, minIntervalMs: MIN_INTERVAL, clock });
  await watcher.start();
  clock.advance(COALESCE);
  assert.equal(store.version, 1, 'the first table is live');
  const buildErrors = async (): Promise<number> =>
    (await metrics.configErrors.get()).values.find((v) => v.labels['kind'] === 'build')?.value ?? 0;
  const errorLogs = (): LogLine[] => logs.filter((l) => l.level >= 50);
  const userWeights = (): number[] => routeNamed(store.current!, 'users').destinations.map((d) => d.weight);
  const routeNames = (): string[] => store.current!.routes.map((r) => r.name);
  /** Let the pending build run (at most one throttling interval away). */
  const settle = (): void => clock.advance(MIN_INTERVAL);
  return { clock, store, metrics, logs, templates, consul, watcher, buildErrors, errorLogs, userWeights, routeNames, settle };
}

describe('ConfigWatcher: a template error at build time keeps the last good templates in force', () => {
  it('a tie added to the templates is counted and logged once; a KV weight change still applies with the old routes', async () => {
    const { store, templates, consul, watcher, buildErrors, errorLogs, userWeights, routeNames, settle } = await setup();
    assert.deepEqual(userWeights(), [50, 50]);

    const live = store.current;
    templates.emit(TIED);
    settle();
    assert.equal(store.version, 1, 'the bad templates make no new table');
    assert.equal(store.current, live);
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.match(watcher.lastFailure?.message ?? '', /route "beta-query": matches .* like route "beta-header"/);
    assert.equal(await buildErrors(), 1);
    assert.equal(errorLogs().length, 1);
    assert.equal(errorLogs()[0]!.code, 'SY_CONFIG_INVALID');
    assert.match(errorLogs()[0]!.msg, /last good templates stay in force.*beta-query/);

    // The canary rollback: a KV weight change while the templates are broken.
    consul.emit({ kv: weights(100, 0) });
    settle();
    assert.equal(store.version, 2, 'the KV change produced a new table');
    assert.deepEqual(userWeights(), [100, 0], 'with the new weights');
    assert.deepEqual(routeNames(), ['users', 'docs'], 'and the last good routes');
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID', 'the template error stays visible');
    assert.equal(watcher.ready, true);
  });

  it('a further KV or discovery change does not count or log the same error again; a different error is counted', async () => {
    const { store, templates, consul, watcher, buildErrors, errorLogs, userWeights, settle } = await setup();
    templates.emit(TIED);
    settle();
    assert.equal(await buildErrors(), 1);
    const failure = watcher.lastFailure;

    for (const [v1, v2] of [[90, 10], [80, 20], [70, 30]] as const) {
      const before = store.version;
      consul.emit({ kv: weights(v1, v2) });
      settle();
      assert.equal(store.version, before + 1);
      assert.deepEqual(userWeights(), [v1, v2]);
    }
    consul.emit({ discovery: discovery([instance('users', 'users-1', { port: 9001, tags: ['v1'] }), instance('users', 'users-2', { port: 9003, tags: ['v2'] }), instance('docs', 'docs-1', { port: 9101 })]) });
    settle();
    assert.deepEqual(routeNamed(store.current!, 'users').destinations[1]!.endpoints.map((e) => e.port), [9003]);
    assert.equal(await buildErrors(), 1, 'the same error is counted once');
    assert.equal(errorLogs().length, 1, 'and logged once');
    assert.equal(watcher.lastFailure, failure, 'lastFailure keeps its first time');

    // Another broken template change: a new message, counted and logged.
    templates.emit([...GOOD, template('users', '/again', [{ service: 'users', weight: 1 }])]);
    settle();
    assert.equal(await buildErrors(), 2);
    assert.equal(errorLogs().length, 2);
    assert.match(watcher.lastFailure?.message ?? '', /duplicate route name/);
  });

  it('fixing the templates applies them at once and clears lastFailure; the builder reuses what did not change', async () => {
    const { store, templates, consul, watcher, buildErrors, userWeights, routeNames, settle } = await setup();
    templates.emit(TIED);
    settle();
    consul.emit({ kv: weights(100, 0) });
    settle();
    // The fallback built from the same templates and catalog: no new expansion, the routes reused.
    assert.equal(watcher.builder.stats.specsCollected, false);
    assert.equal(watcher.builder.stats.routesReused, 1, 'docs reused, users rebuilt for its new weights');
    const before = store.version;

    templates.emit(FIXED);
    settle();
    assert.equal(store.version, before + 1);
    assert.deepEqual(routeNames(), ['users', 'docs', 'beta-header']);
    assert.deepEqual(userWeights(), [100, 0], 'the KV change applied meanwhile stays');
    assert.equal(watcher.lastFailure, undefined);
    assert.equal(await buildErrors(), 1);
    assert.equal(watcher.builder.stats.routesReused, 2, 'the fixed build reuses the routes of the fallback build');

    // The fixed templates are the new last good ones: breaking them again falls back to FIXED.
    templates.emit(TIED);
    settle();
    consul.emit({ kv: weights(60, 40) });
    settle();
    assert.deepEqual(routeNames(), ['users', 'docs', 'beta-header']);
    assert.deepEqual(userWeights(), [60, 40]);
    assert.equal(await buildErrors(), 2, 'the error came back after a fix: counted again');
  });

  it('a first build that fails is rejected as before: no table, counted, lastFailure set, not ready', async () => {
    const clock = new ManualClock();
    const store = new TableStore();
    const metrics = new Metrics({ defaultMetrics: false });
    const templates = templatesProvider(TIED);
    const consul = discoveryProvider('consul', { discovery: CATALOG, kv: weights(50, 50) });
    const watcher = new ConfigWatcher([consul], templates, store, createLogger({ level: 'silent' }), metrics,
      { coalesceMs: COALESCE, minIntervalMs: MIN_INTERVAL, clock });
    await watcher.start();
    clock.advance(COALESCE);
    assert.equal(store.version, 0);
    assert.equal(store.current, undefined);
    assert.match(watcher.lastFailure?.message ?? '', /beta-query/);
    assert.equal(watcher.ready, false);
    consul.emit({ kv: weights(100, 0) });
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 0, 'nothing to fall back to: still rejected');
    const counted = (await metrics.configErrors.get()).values.find((v) => v.labels['kind'] === 'build')?.value;
    assert.equal(counted, 2, 'each rejected build counted, as before');
    templates.emit(FIXED);
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 1);
    assert.equal(watcher.lastFailure, undefined);
    assert.equal(watcher.ready, true);
  });
});

/** The users/docs catalog plus `shop`, tagged public: `pub-shop` expands from the `each` template. */
const SHOP = instance('shop', 'shop-1', { port: 9201, tags: ['public'] });
const BASE = [...Object.values(CATALOG.instances).flat(), SHOP];
const PUBLIC_CATALOG = discovery(BASE);
/** A literal route at api.example.com/blog, and a route per service tagged public at api.example.com/<service>. */
const BLOG = template('blog', '/blog', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' });
const EACH_PUBLIC = template('pub-{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { host: 'api.example.com', each: { tag: 'public' } });
const WITH_EACH: RouteTemplate[] = [...GOOD, BLOG, EACH_PUBLIC];
/** A service `blog` registering with the tag public: `pub-blog` ties with the literal route `blog`. */
const withServices = (...extra: ReturnType<typeof instance>[]): DiscoverySnapshot => discovery([...BASE, ...extra]);
const BLOG_1 = instance('blog', 'blog-1', { port: 9301, tags: ['public'] });
const NEWS_1 = instance('news', 'news-1', { port: 9401, tags: ['public'] });
/** Read through a call: after `assert.equal(watcher.lastFailure, undefined)` TypeScript narrows the field for good. */
const failureMessage = (watcher: ConfigWatcher): string => watcher.lastFailure?.message ?? '';
const CLASH = /route "pub-blog": matches api\.example\.com\/blog like route "blog"/;

describe('ConfigWatcher: a catalog change that makes unchanged templates clash keeps the last good catalog for the routes', () => {
  it('a registration whose {{service}} route ties is counted once; KV and instance changes still apply; deregistering it clears the failure', async () => {
    const { store, consul, watcher, buildErrors, errorLogs, userWeights, routeNames, settle } = await setup(WITH_EACH, PUBLIC_CATALOG);
    const ROUTES = ['users', 'docs', 'blog', 'pub-shop'];
    assert.deepEqual(routeNames(), ROUTES);

    // blog clashes; news (also public) registers in the same change.
    consul.emit({ discovery: withServices(BLOG_1, NEWS_1) });
    settle();
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.match(watcher.lastFailure?.message ?? '', CLASH);
    assert.equal(await buildErrors(), 1);
    assert.equal(errorLogs().length, 1);
    assert.match(errorLogs()[0]!.msg, /catalog change rejected for routes, the routes of the last good catalog stay in force.*pub-blog/);
    assert.deepEqual(routeNames(), ROUTES, 'the routes of the last good catalog: no pub-blog, and no pub-news yet');
    assert.equal(watcher.builder.stats.specsCollected, false, 'the last good specs reused, not expanded again');
    const failure = watcher.lastFailure;

    // The canary rollback while the registration clashes.
    let version = store.version;
    consul.emit({ kv: weights(100, 0) });
    settle();
    assert.equal(store.version, version + 1, 'the KV change produced a new table');
    assert.deepEqual(userWeights(), [100, 0], 'with the new weights');
    assert.deepEqual(routeNames(), ROUTES);

    // An instance change (users-2 moves, shop-1 fails its check) still applies.
    version = store.version;
    const moved = instance('users', 'users-2', { port: 9003, tags: ['v2'] });
    const failing = instance('shop', 'shop-1', { port: 9201, tags: ['public'], status: 'critical' });
    consul.emit({ discovery: discovery([instance('users', 'users-1', { port: 9001, tags: ['v1'] }), moved, instance('docs', 'docs-1', { port: 9101 }), failing, BLOG_1, NEWS_1]) });
    settle();
    assert.equal(store.version, version + 1);
    assert.deepEqual(routeNamed(store.current!, 'users').destinations[1]!.endpoints.map((e) => e.port), [9003]);
    assert.deepEqual(routeNamed(store.current!, 'pub-shop').destinations[0]!.endpoints.map((e) => e.status), ['critical']);
    assert.equal(await buildErrors(), 1, 'the same clash is counted once');
    assert.equal(errorLogs().length, 1, 'and logged once');
    assert.equal(watcher.lastFailure, failure, 'lastFailure keeps its first time');

    // A reload with nothing new: no swap, nothing counted.
    version = store.version;
    await watcher.reload();
    settle();
    assert.equal(store.version, version);
    assert.equal(await buildErrors(), 1);

    // blog deregisters: the current inputs build again, news gets its route, the failure clears.
    consul.emit({ discovery: withServices(NEWS_1) });
    settle();
    assert.equal(watcher.lastFailure, undefined);
    assert.deepEqual(routeNames(), ['users', 'docs', 'blog', 'pub-news', 'pub-shop']);
    assert.deepEqual(userWeights(), [100, 0], 'the KV change applied meanwhile stays');
    assert.equal(await buildErrors(), 1);

    // Registering it again is a new failure: counted again.
    consul.emit({ discovery: withServices(NEWS_1, BLOG_1) });
    settle();
    assert.match(failureMessage(watcher), CLASH);
    assert.equal(await buildErrors(), 2);
    assert.deepEqual(routeNames(), ['users', 'docs', 'blog', 'pub-news', 'pub-shop'], 'the last good catalog is now the one with news');
  });

  it('broken templates and a clashing registration together: the last good templates over the last good catalog; each resolved in turn', async () => {
    const { store, templates, consul, watcher, buildErrors, errorLogs, userWeights, routeNames, settle } = await setup(WITH_EACH, PUBLIC_CATALOG);
    const ROUTES = ['users', 'docs', 'blog', 'pub-shop'];
    // The tie comes before the `each` template: the current templates fail on it first.
    templates.emit([...GOOD, BLOG, TIED[2]!, TIED[3]!, EACH_PUBLIC]);
    settle();
    assert.equal(await buildErrors(), 1);
    assert.match(watcher.lastFailure?.message ?? '', /beta-query/);

    consul.emit({ discovery: withServices(BLOG_1) });
    settle();
    assert.equal(await buildErrors(), 2, 'the last good templates clash too: a new message');
    assert.match(watcher.lastFailure?.message ?? '', /beta-query.*; the last good templates clash with the current catalog too: \S+: route "pub-blog"/);
    assert.match(errorLogs()[1]!.msg, /^template and catalog change rejected, the last good templates and catalog stay in force/);
    assert.deepEqual(routeNames(), ROUTES);

    let version = store.version;
    consul.emit({ kv: weights(0, 100) });
    settle();
    assert.equal(store.version, version + 1);
    assert.deepEqual(userWeights(), [0, 100]);
    assert.equal(await buildErrors(), 2);

    // blog leaves: back to the template error alone (the last good templates build with the current catalog).
    consul.emit({ discovery: withServices() });
    settle();
    assert.equal(await buildErrors(), 3);
    assert.match(errorLogs()[2]!.msg, /^template change rejected, the last good templates stay in force/);
    assert.doesNotMatch(watcher.lastFailure?.message ?? '', /pub-blog/);

    // The fixed templates apply and clear it.
    version = store.version;
    templates.emit(WITH_EACH.concat(TIED[3]!));
    settle();
    assert.equal(store.version, version + 1);
    assert.equal(watcher.lastFailure, undefined);
    assert.deepEqual(routeNames(), [...ROUTES.slice(0, 3), 'pub-shop', 'beta-query']);
    assert.deepEqual(userWeights(), [0, 100]);
  });
});

/**
 * Per file: `a.yaml` and `b.yaml` (provider order: by name). A tie in one file replaces only that
 * file's templates with its last good ones (none at start-up: it adds no routes), in place.
 */
const A = '/etc/switchyard/templates/a.yaml';
const B = '/etc/switchyard/templates/b.yaml';
const inFile = (source: string, t: RouteTemplate): RouteTemplate => ({ ...t, source });
const conditioned = (name: string, conditions: { headers?: [string, string][]; query?: [string, string][] }, source: string): RouteTemplate =>
  ({ ...template(name, '/t', [{ service: 'docs', weight: 1 }], { host: 'tie.example.com', source }), options: { conditions: { methods: [], headers: conditions.headers ?? [], query: conditions.query ?? [] } } });
const A_GOOD: RouteTemplate[] = [inFile(A, template('a-docs', '/a', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' }))];
/** a.yaml with two routes on tie.example.com/t, one on a header, one on a query parameter: a tie. */
const A_TIED: RouteTemplate[] = [...A_GOOD, conditioned('t-header', { headers: [['x-a', '1']] }, A), conditioned('t-query', { query: [['a', '1']] }, A)];
const A_FIXED: RouteTemplate[] = [...A_GOOD, conditioned('t-header', { headers: [['x-a', '1']] }, A)];
const B_GOOD: RouteTemplate[] = [inFile(B, USERS), inFile(B, template('docs', '/docs', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' }))];
const B_MORE: RouteTemplate[] = [...B_GOOD, inFile(B, template('b-new', '/b-new', [{ service: 'docs', weight: 1 }], { host: 'api.example.com' }))];
const TIE = /a\.yaml: route "t-query": matches tie\.example\.com\/t like route "t-header"/;

describe('ConfigWatcher: a template error at build time keeps only the failing file\'s last good version', () => {
  it('start-up with a tying file next to a good one: the good file serves, ready, counted and logged once; the fix applies', async () => {
    const { store, templates, consul, watcher, buildErrors, errorLogs, userWeights, routeNames, settle } = await setup([...A_TIED, ...B_GOOD]);
    assert.deepEqual(routeNames(), ['users', 'docs'], 'a.yaml adds no routes, b.yaml serves');
    assert.equal(watcher.ready, true);
    assert.match(failureMessage(watcher), TIE);
    assert.equal(await buildErrors(), 1);
    assert.equal(errorLogs().length, 1);
    assert.match(errorLogs()[0]!.msg, /^template file rejected at build time, \/etc\/switchyard\/templates\/a\.yaml adds no routes \(no earlier good version\).*t-query/);

    consul.emit({ kv: weights(100, 0) });
    settle();
    assert.equal(store.version, 2);
    assert.deepEqual(userWeights(), [100, 0]);
    assert.deepEqual(routeNames(), ['users', 'docs']);
    assert.equal(await buildErrors(), 1, 'the same error is counted once');
    assert.equal(errorLogs().length, 1);

    templates.emit([...A_FIXED, ...B_GOOD]);
    settle();
    assert.equal(store.version, 3);
    assert.deepEqual(routeNames(), ['a-docs', 't-header', 'users', 'docs']);
    assert.equal(watcher.lastFailure, undefined);
    assert.equal(await buildErrors(), 1);
  });

  it('a.yaml made to tie while b.yaml changes: b.yaml\'s change applies, a.yaml\'s last good routes stay in place; the fix applies and clears', async () => {
    const { store, templates, watcher, buildErrors, errorLogs, routeNames, settle } = await setup([...A_GOOD, ...B_GOOD]);
    assert.deepEqual(routeNames(), ['a-docs', 'users', 'docs']);

    templates.emit([...A_TIED, ...B_MORE]);
    settle();
    assert.equal(store.version, 2, 'the change of b.yaml made a new table');
    assert.deepEqual(routeNames(), ['a-docs', 'users', 'docs', 'b-new']);
    assert.match(failureMessage(watcher), TIE);
    assert.equal(await buildErrors(), 1);
    assert.equal(errorLogs().length, 1);
    assert.match(errorLogs()[0]!.msg, /^template file rejected at build time, the last good version of \/etc\/switchyard\/templates\/a\.yaml stays in force/);

    // Nothing but a.yaml changes again (still tying): the result is the live table's templates, no swap.
    templates.emit([...A_TIED.slice(1), ...B_MORE]);
    settle();
    assert.equal(store.version, 2, 'nothing to swap');
    assert.equal(await buildErrors(), 1, 'the same message: not counted again');

    // b.yaml changes once more while a.yaml is broken: it applies too.
    templates.emit([...A_TIED, ...B_GOOD]);
    settle();
    assert.equal(store.version, 3);
    assert.deepEqual(routeNames(), ['a-docs', 'users', 'docs']);
    assert.equal(await buildErrors(), 1);

    templates.emit([...A_FIXED, ...B_MORE]);
    settle();
    assert.equal(store.version, 4);
    assert.deepEqual(routeNames(), ['a-docs', 't-header', 'users', 'docs', 'b-new']);
    assert.equal(watcher.lastFailure, undefined);
    assert.equal(await buildErrors(), 1);
  });

  it('a tie blamed on an unchanged file (the other file changed): the last good templates of every file stay, as before', async () => {
    // b.yaml, unchanged, holds the later route of the tie: substituting it changes nothing.
    const B_TIE = [...B_GOOD, conditioned('t-query', { query: [['a', '1']] }, B)];
    const { store, templates, watcher, buildErrors, errorLogs, routeNames, settle } = await setup([...A_GOOD, ...B_TIE]);
    templates.emit([...A_FIXED, ...B_TIE]);
    settle();
    assert.equal(store.version, 1, 'nothing but the templates changed: no swap');
    assert.deepEqual(routeNames(), ['a-docs', 'users', 'docs', 't-query']);
    assert.match(failureMessage(watcher), /b\.yaml: route "t-query": matches tie\.example\.com\/t like route "t-header"/);
    assert.equal(await buildErrors(), 1);
    assert.match(errorLogs()[0]!.msg, /^template change rejected, the last good templates stay in force/);
  });
});
