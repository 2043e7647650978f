import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { TableStore } from '../../src/control/table-store.js';
import { ConfigWatcher } from '../../src/control/watcher.js';
import type { DiscoverySnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { instance, template } from '../model/fixtures.js';
import { waitFor } from '../support/wait.js';
import { discoveryProvider, ManualClock, templatesProvider } from './fakes.js';

const COALESCE = 5;
const MIN_INTERVAL = 50;

const snapshot = (...instances: ServiceInstance[]): DiscoverySnapshot => ({
  catalog: Object.fromEntries(instances.map((i) => [i.service, []])),
  instances: instances.reduce<Record<string, ServiceInstance[]>>((acc, i) => ({ ...acc, [i.service]: [...(acc[i.service] ?? []), i] }), {}),
});
const ROUTES: RouteTemplate[] = [template('r', '/', [{ service: 's', weight: 1 }])];

async function configErrors(metrics: Metrics, kind: string): Promise<number> {
  const values = (await metrics.configErrors.get()).values;
  return values.find((v) => v.labels['kind'] === kind)?.value ?? 0;
}

/** A watcher over a real TableStore with hand-driven providers and a manual clock. */
async function setup(options: { providers?: number; clock?: ManualClock | null } = {}) {
  const clock = options.clock === null ? undefined : options.clock ?? new ManualClock();
  const store = new TableStore();
  const metrics = new Metrics({ defaultMetrics: false });
  const templates = templatesProvider(ROUTES);
  const providers = Array.from({ length: options.providers ?? 1 }, (_, i) =>
    discoveryProvider(`p${i}`, i === 0 ? { discovery: snapshot(instance('s', 's-1', { port: 9001 })), kv: {} } : { discovery: snapshot() }));
  const watcher = new ConfigWatcher(providers, templates, store, createLogger({ level: 'silent' }), metrics,
    { coalesceMs: COALESCE, minIntervalMs: MIN_INTERVAL, ...(clock === undefined ? {} : { clock }) });
  await watcher.start();
  const ports = (): number[] => (store.current?.routes[0]?.destinations[0]?.endpoints ?? []).map((e) => e.port);
  return { clock: clock!, store, metrics, templates, providers, watcher, ports, provider: providers[0]! };
}

describe('ConfigWatcher', () => {
  it('start-up builds one table from every provider first snapshot, after the coalescing delay', async () => {
    const { clock, store, watcher, ports } = await setup({ providers: 2 });
    assert.equal(store.version, 0, 'nothing is built before the clock moves');
    clock.advance(COALESCE - 1);
    assert.equal(store.version, 0);
    clock.advance(1);
    assert.equal(store.version, 1);
    assert.deepEqual(ports(), [9001]);
    assert.equal(watcher.ready, true);
  });

  it('stays ready once ready: a provider busy with a change (not synced right now) does not turn /readyz to 503', async () => {
    const { clock, watcher, provider } = await setup();
    provider.processing();
    assert.equal(watcher.ready, false, 'not ready before the first table');
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9001 })), kv: {} });
    clock.advance(COALESCE);
    assert.equal(watcher.ready, true);
    provider.processing();
    assert.equal(watcher.ready, true, 'a change being processed is no loss of readiness');
  });

  it('coalesces a burst into one build from the newest snapshot (no queue of stale states)', async () => {
    const { clock, store, provider, ports } = await setup();
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 1);
    for (let port = 9100; port < 9110; port++) provider.emit({ discovery: snapshot(instance('s', 's-1', { port })) });
    assert.equal(clock.pending, 1, 'one timer for the whole burst');
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 2);
    assert.deepEqual(ports(), [9109]);
  });

  it('throttles by the monotonic clock: a change right after a build waits for minIntervalMs since that build', async () => {
    const { clock, store, provider, ports } = await setup();
    clock.advance(COALESCE);
    assert.equal(store.version, 1);
    clock.advance(10);
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9200 })) });
    assert.equal(clock.nextDelay, MIN_INTERVAL - 10);
    clock.advance(MIN_INTERVAL - 11);
    assert.equal(store.version, 1, 'not before minIntervalMs since the last build');
    clock.advance(1);
    assert.equal(store.version, 2);
    assert.deepEqual(ports(), [9200]);
    // Long after the last build, a change waits only the coalescing delay.
    clock.advance(10 * MIN_INTERVAL);
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9201 })) });
    assert.equal(clock.nextDelay, COALESCE);
  });

  it('drops snapshots identical to the last one: no timer, no build', async () => {
    const { clock, store, provider, templates } = await setup();
    clock.advance(COALESCE);
    assert.equal(store.version, 1);
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9001 })), kv: {} });
    provider.emit({ kv: {} });
    templates.emit(ROUTES.map((r) => ({ ...r })));
    assert.equal(clock.pending, 0);
    clock.advance(10 * MIN_INTERVAL);
    assert.equal(store.version, 1);
  });

  it('merges the providers in order: the later one replaces an instance with the same id', async () => {
    const { clock, providers, ports } = await setup({ providers: 2 });
    clock.advance(COALESCE);
    providers[1]!.emit({ discovery: snapshot(instance('s', 's-1', { port: 9301 }), instance('s', 's-2', { port: 9302 })) });
    clock.advance(MIN_INTERVAL);
    assert.deepEqual(ports(), [9301, 9302]);
  });

  it('a rejected template change keeps the live table, is counted and kept as lastFailure; other changes apply; the next good change heals', async () => {
    const { clock, store, templates, provider, metrics, watcher, ports } = await setup();
    clock.advance(COALESCE);
    const live = store.current;
    templates.emit([...ROUTES, template('r', '/other', [{ service: 's', weight: 1 }])]);
    clock.advance(MIN_INTERVAL);
    assert.equal(store.current, live);
    assert.equal(store.version, 1);
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.match(watcher.lastFailure?.message ?? '', /"r"/);
    assert.equal(await configErrors(metrics, 'build'), 1);

    // Discovery changes keep arriving while the templates are broken: they apply with the last
    // good templates (watcher-template-fallback.test.ts); the error stays, counted once.
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9400 })) });
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 2);
    assert.deepEqual(ports(), [9400]);
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.equal(await configErrors(metrics, 'build'), 1);

    templates.emit([...ROUTES, template('r2', '/other', [{ service: 's', weight: 1 }])]);
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 3);
    assert.equal(store.current?.routes.length, 2, 'the heal applies the new templates');
    assert.deepEqual(ports(), [9400], 'with the newest discovery snapshot');
    assert.equal(watcher.lastFailure, undefined);
  });

  it('a swap that fails while preparing keeps the live table, is recorded as the last rejected build, and does not block later changes', async () => {
    const { clock, store, provider, metrics, watcher, ports } = await setup();
    clock.advance(COALESCE);
    let explode = true;
    const aborted: number[] = [];
    store.onPrepare(() => {
      if (explode) throw new Error('pool creation failed');
    });
    store.onAborted(() => aborted.push(store.version));
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9500 })) });
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 1);
    assert.deepEqual(ports(), [9001]);
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.match(watcher.lastFailure?.message ?? '', /table swap aborted while preparing: pool creation failed/);
    assert.equal(await configErrors(metrics, 'swap'), 1);
    assert.deepEqual(aborted, [1]);

    explode = false;
    provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9501 })) });
    clock.advance(MIN_INTERVAL);
    assert.equal(store.version, 2);
    assert.deepEqual(ports(), [9501]);
    assert.equal(watcher.lastFailure, undefined);
  });

  describe('with the default (real, monotonic) clock', () => {
    const realNow = Date.now;
    afterEach(() => {
      Date.now = realNow;
    });

    it('a wall clock stepped back by an hour does not delay the next build', async (t) => {
      const { store, provider, watcher, ports } = await setup({ clock: null });
      t.after(() => watcher.stop());
      await waitFor('the first table', () => store.version === 1, 5_000);
      const stepped = realNow() - 3_600_000;
      const base = realNow();
      Date.now = () => stepped + (realNow() - base);
      provider.emit({ discovery: snapshot(instance('s', 's-1', { port: 9600 })) });
      await waitFor('the change to apply despite the clock step', () => store.version === 2, 5_000);
      assert.deepEqual(ports(), [9600]);
    });
  });
});
