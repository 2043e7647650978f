/**
 * A template error that only shows when the table is built (a tie between two routes of one file)
 * must not hold back every later change: the watcher builds from the last good templates with the
 * newest discovery and KV, counts and logs the error once per message, keeps it as lastFailure,
 * and applies the fixed templates at once. Hand-driven providers and the manual clock: each
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

async function setup() {
  const clock = new ManualClock();
  const store = new TableStore();
  const metrics = new Metrics({ defaultMetrics: false });
  const logs: LogLine[] = [];
  const sink = { write: (line: string) => logs.push(JSON.parse(line) as LogLine) } as unknown as NodeJS.WritableStream;
  const templates = templatesProvider(GOOD);
  const consul = discoveryProvider('consul', { discovery: CATALOG, kv: weights(50, 50) });
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
