import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableStore } from '../../src/control/table-store.js';
import { ConfigWatcher } from '../../src/control/watcher.js';
import type { DiscoverySnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { instance, template } from '../model/fixtures.js';
import { discoveryProvider, ManualClock, templatesProvider } from './fakes.js';

/**
 * The cost of one change follows what changed (issue 8): with a provider that keeps an unchanged
 * service's instances array (the Consul provider's contract), the watcher's dedupe compares only
 * the services whose arrays are new, and the table it swaps reuses every route of the others.
 * Asserted with counts and object identity, never with timings.
 */
const SERVICES = 200;
const TEMPLATES: RouteTemplate[] = [template('{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: {} })];
const name = (i: number): string => `svc-${String(i).padStart(3, '0')}`;

function world(): DiscoverySnapshot {
  const catalog: Record<string, readonly string[]> = {};
  const instances: Record<string, readonly ServiceInstance[]> = {};
  for (let i = 0; i < SERVICES; i++) {
    catalog[name(i)] = ['public'];
    instances[name(i)] = [0, 1].map((k) => instance(name(i), `${name(i)}-${k}`, { port: 10_000 + i * 2 + k }));
  }
  return { catalog, instances };
}

async function setup() {
  const clock = new ManualClock();
  const store = new TableStore();
  const first = world();
  const provider = discoveryProvider('consul', { discovery: first, kv: {} });
  const watcher = new ConfigWatcher([provider], templatesProvider(TEMPLATES), store, createLogger({ level: 'silent' }), new Metrics({ defaultMetrics: false }),
    { coalesceMs: 1, minIntervalMs: 1, clock });
  await watcher.start();
  clock.advance(1);
  assert.equal(store.version, 1);
  return { clock, store, provider, watcher, first };
}

describe('ConfigWatcher: one service changed costs one service', () => {
  it('dedupe compares only the service whose array is new, and the new table reuses every other route', async () => {
    const { clock, store, provider, watcher, first } = await setup();
    const before = store.current!;
    const compared = watcher.dedupe.servicesCompared;
    const [a, b] = first.instances[name(7)]!;
    // A new record (as every snapshot is), the same arrays but one: svc-007's first instance turns critical.
    const next: DiscoverySnapshot = { catalog: first.catalog, instances: { ...first.instances, [name(7)]: [{ ...a!, status: 'critical' }, b!] } };
    provider.emit({ discovery: next });
    assert.equal(watcher.dedupe.servicesCompared - compared, 1, 'one service compared field by field, not the whole snapshot');
    clock.advance(1);
    assert.equal(store.version, 2);
    const after = store.current!;
    const changed = after.routes.filter((r, i) => r !== before.routes[i]).map((r) => r.name);
    assert.deepEqual(changed, [name(7)], 'every other route is the previous object');
    assert.equal(watcher.builder.stats.servicesBuilt, 1);
  });

  it('a snapshot equal to the last is dropped: by identity at no cost, re-parsed at one comparison per service', async () => {
    const { clock, store, provider, watcher, first } = await setup();
    const { dropped, servicesCompared } = watcher.dedupe;
    provider.emit({ discovery: { catalog: first.catalog, instances: { ...first.instances } } });
    assert.deepEqual([watcher.dedupe.dropped - dropped, watcher.dedupe.servicesCompared - servicesCompared], [1, 0]);
    const reparsed = JSON.parse(JSON.stringify(first)) as DiscoverySnapshot;
    provider.emit({ discovery: reparsed });
    assert.deepEqual([watcher.dedupe.dropped - dropped, watcher.dedupe.servicesCompared - servicesCompared], [2, SERVICES]);
    clock.advance(10);
    assert.equal(store.version, 1, 'nothing was built');
  });

  it('a KV-only update keeps the discovery snapshot and compares no service', async () => {
    const { clock, store, provider, watcher } = await setup();
    const { servicesCompared } = watcher.dedupe;
    provider.emit({ kv: { [`services/${name(3)}/weights`]: `{"${name(3)}-0": 0}` } });
    clock.advance(1);
    assert.equal(store.version, 2);
    assert.equal(watcher.dedupe.servicesCompared, servicesCompared);
    assert.equal(watcher.builder.stats.servicesBuilt, 1, 'only the service the KV key names');
  });
});
