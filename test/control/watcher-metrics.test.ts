/**
 * The control plane's metrics: change → swap delay per provider, build duration (every build,
 * rejected ones too) and the live table's version, on the hand-driven monotonic clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableStore } from '../../src/control/table-store.js';
import { ConfigWatcher, type WatcherClock } from '../../src/control/watcher.js';
import type { DiscoverySnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { instance, template } from '../model/fixtures.js';
import { discoveryProvider, ManualClock, templatesProvider } from './fakes.js';

const COALESCE = 5;
const MIN_INTERVAL = 50;
const ROUTES: RouteTemplate[] = [template('r', '/', [{ service: 's', weight: 1 }])];
const BROKEN: RouteTemplate[] = [...ROUTES, template('r', '/other', [{ service: 's', weight: 1 }])];

const snapshot = (...instances: ServiceInstance[]): DiscoverySnapshot => ({
  catalog: Object.fromEntries(instances.map((i) => [i.service, []])),
  instances: Object.fromEntries(instances.map((i) => [i.service, [i]])),
});
const at = (port: number): { discovery: DiscoverySnapshot } => ({ discovery: snapshot(instance('s', 's-1', { port })) });

/**
 * The manual clock plus time that passes inside the watcher's own work (a build, a swap's prepare
 * hooks): `spend(ms)` moves `now()` without running timers. Monotonic: the offset only grows.
 */
class WorkClock implements WatcherClock {
  private offset = 0;
  constructor(readonly timers: ManualClock) {}
  now(): number {
    return this.timers.now() + this.offset;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    return this.timers.setTimeout(callback, ms);
  }
  clearTimeout(handle: unknown): void {
    this.timers.clearTimeout(handle);
  }
  spend(ms: number): void {
    this.offset += ms;
  }
}

async function setup() {
  const timers = new ManualClock();
  const clock = new WorkClock(timers);
  const store = new TableStore();
  const metrics = new Metrics({ defaultMetrics: false });
  const templates = templatesProvider(ROUTES);
  const consul = discoveryProvider('consul', { ...at(9001), kv: {} });
  const file = discoveryProvider('file', { discovery: snapshot() });
  const watcher = new ConfigWatcher([consul, file], templates, store, createLogger({ level: 'silent' }), metrics,
    { coalesceMs: COALESCE, minIntervalMs: MIN_INTERVAL, clock });
  await watcher.start();
  // Each build takes 2 ms, each swap's preparation 3 ms, on the watcher's clock.
  const build = watcher.builder.build.bind(watcher.builder);
  watcher.builder.build = (...args) => {
    clock.spend(2);
    return build(...args);
  };
  store.onPrepare(() => clock.spend(3));
  return { timers, clock, store, metrics, templates, consul, file, watcher };
}

/** Each provider's {count, sum in ms} of switchyard_change_to_swap_seconds. */
async function delays(metrics: Metrics): Promise<Record<string, { count: number; sumMs: number }>> {
  const out: Record<string, { count: number; sumMs: number }> = {};
  for (const v of (await metrics.changeToSwapDelay.get()).values) {
    const provider = String(v.labels['provider']);
    const entry = (out[provider] ??= { count: 0, sumMs: 0 });
    if (v.metricName === 'switchyard_change_to_swap_seconds_count') entry.count = v.value;
    if (v.metricName === 'switchyard_change_to_swap_seconds_sum') entry.sumMs = Math.round(v.value * 1e6) / 1e3;
  }
  return out;
}

async function builds(metrics: Metrics): Promise<{ count: number; sumMs: number }> {
  const values = (await metrics.buildDuration.get()).values;
  const count = values.find((v) => v.metricName === 'switchyard_table_build_duration_seconds_count')?.value ?? 0;
  const sum = values.find((v) => v.metricName === 'switchyard_table_build_duration_seconds_sum')?.value ?? 0;
  return { count, sumMs: Math.round(sum * 1e6) / 1e3 };
}

const version = async (metrics: Metrics): Promise<number | undefined> => (await metrics.tableVersion.get()).values[0]?.value;

describe('ConfigWatcher metrics', () => {
  it('start-up: one build timed, the version set, no change-to-swap delay (start-up is not a change)', async () => {
    const { timers, store, metrics } = await setup();
    timers.advance(COALESCE);
    assert.equal(store.version, 1);
    assert.deepEqual(await delays(metrics), {});
    assert.deepEqual(await builds(metrics), { count: 1, sumMs: 2 });
    assert.equal(await version(metrics), 1);
  });

  it('a coalesced burst: each provider whose change is in the swapped table, from its earliest pending change to the swap', async () => {
    const { timers, store, metrics, consul, templates } = await setup();
    timers.advance(COALESCE);
    timers.advance(100);
    consul.emit(at(9100)); // t0
    timers.advance(1);
    consul.emit(at(9101)); // a later change of the same provider: the delay still counts from t0
    timers.advance(1);
    templates.emit([template('r', '/', [{ service: 's', weight: 2 }])]); // t0 + 2
    timers.advance(COALESCE); // the build starts at t0 + 5: 2 ms of building, 3 of preparing
    assert.equal(store.version, 2);
    assert.deepEqual(await delays(metrics), { consul: { count: 1, sumMs: 10 }, templates: { count: 1, sumMs: 8 } });
    assert.deepEqual(await builds(metrics), { count: 2, sumMs: 4 });
    assert.equal(await version(metrics), 2);

    // The next change of one provider is observed for that provider only.
    timers.advance(100);
    consul.emit(at(9102));
    timers.advance(COALESCE);
    assert.equal(store.version, 3);
    assert.deepEqual(await delays(metrics), { consul: { count: 2, sumMs: 20 }, templates: { count: 1, sumMs: 8 } });
    assert.equal(await version(metrics), 3);
  });

  it('a dropped duplicate is no change: nothing pending, nothing observed', async () => {
    const { timers, metrics, consul } = await setup();
    timers.advance(COALESCE);
    timers.advance(100);
    consul.emit({ ...at(9001), kv: {} });
    timers.advance(10 * MIN_INTERVAL);
    assert.deepEqual(await delays(metrics), {});
    assert.equal((await builds(metrics)).count, 1);
  });

  it('rejected builds are timed; a template change held back counts until the swap that finally holds it', async () => {
    const { timers, store, metrics, file, templates, watcher } = await setup();
    timers.advance(COALESCE);
    timers.advance(100);
    templates.emit(BROKEN); // t0: held back, nothing else changed: no table
    timers.advance(COALESCE);
    assert.equal(store.version, 1);
    assert.equal(watcher.lastFailure?.code, 'SY_CONFIG_INVALID');
    assert.deepEqual(await builds(metrics), { count: 2, sumMs: 4 }, 'the rejected build is timed too');
    timers.advance(100); // t0 + 105 (+2 spent in the rejected build)
    file.emit(at(9200)); // applies with the last good templates: the broken ones fail (2 ms), the good ones build (2 ms)
    timers.advance(COALESCE); // t0 + 110
    assert.equal(store.version, 2);
    assert.deepEqual(await delays(metrics), { file: { count: 1, sumMs: 5 + 2 + 2 + 3 } }, 'the file change is live; the template change is not');
    assert.deepEqual(await builds(metrics), { count: 3, sumMs: 8 }, 'one build, both attempts');
    assert.equal(await version(metrics), 2);
    timers.advance(100);
    templates.emit(ROUTES); // t0 + 210 (+2 +4 +3 spent since t0): the heal
    timers.advance(COALESCE);
    assert.equal(store.version, 3);
    // Build starts at t0 + 215 + 9 (work clock): 2 build + 3 prepare → swap at t0 + 229.
    assert.deepEqual(await delays(metrics), { templates: { count: 1, sumMs: 229 }, file: { count: 1, sumMs: 12 } });
    assert.deepEqual(await builds(metrics), { count: 4, sumMs: 10 });
    assert.equal(await version(metrics), 3);
  });

  it('a swap that fails while preparing observes nothing; the next swap does, and sets the version', async () => {
    const { timers, store, metrics, consul } = await setup();
    timers.advance(COALESCE);
    let explode = true;
    store.onPrepare(() => {
      if (explode) throw new Error('pool creation failed');
    });
    timers.advance(100);
    consul.emit(at(9300)); // t0
    timers.advance(COALESCE);
    assert.equal(store.version, 1);
    assert.deepEqual(await delays(metrics), {});
    assert.equal((await builds(metrics)).count, 2);
    explode = false;
    timers.advance(100);
    consul.emit(at(9301));
    timers.advance(COALESCE);
    assert.equal(store.version, 2);
    // From t0: 5 coalescing, 5 spent by the aborted build and preparation, 100, 5 coalescing, 5 this build and swap.
    assert.deepEqual(await delays(metrics), { consul: { count: 1, sumMs: 120 } });
    assert.equal(await version(metrics), 2);
  });
});
