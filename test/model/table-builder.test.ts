import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { TableBuilder } from '../../src/model/table-builder.js';
import type { DiscoverySnapshot, HealthStatus, KvSnapshot, RouteTemplate, RoutingTable, ServiceInstance } from '../../src/model/types.js';
import { mulberry32 } from '../support/churn.js';
import { instance, template } from './fixtures.js';

/**
 * The incremental TableBuilder against the one-shot buildTable: for random sequences of changes
 * (seeded, bounded), every table it builds equals a fresh build of the same inputs, and routes
 * whose inputs did not change are the previous table's objects.
 */


const SERVICES = ['alpha', 'beta', 'gamma', 'delta', 'eps'];
const STATUSES: HealthStatus[] = ['passing', 'warning', 'critical', 'maintenance'];

const TEMPLATES_A: RouteTemplate[] = [
  template('{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: { tag: 'public' }, strip: '/{{service}}' }),
  template('canary', '/canary', [{ service: 'alpha', tag: 'v1', weight: 90 }, { service: 'alpha', tag: 'v2', weight: 10 }], { host: 'canary.example.com' }),
  template('ghost', '/ghost', [{ service: 'nowhere', weight: 1 }]),
  template('mix', '/', [{ service: 'beta', weight: 1 }, { service: 'gamma', tag: 'v1', weight: 3 }]),
];
const TEMPLATES_B: RouteTemplate[] = [
  ...TEMPLATES_A.slice(0, 2),
  template('mix', '/mix', [{ service: 'beta', weight: 2 }, { service: 'delta', weight: 1 }]),
];

interface World {
  catalog: Record<string, readonly string[]>;
  instances: Record<string, readonly ServiceInstance[]>;
  kv: KvSnapshot;
  templates: readonly RouteTemplate[];
}

function initialWorld(): World {
  const instances: Record<string, readonly ServiceInstance[]> = {};
  const catalog: Record<string, readonly string[]> = {};
  let port = 9000;
  for (const s of SERVICES) {
    instances[s] = [0, 1, 2].map((i) => instance(s, `${s}-${i}`, { port: port++, tags: ['public', i % 2 === 0 ? 'v1' : 'v2'] }));
    catalog[s] = ['public', 'v1', 'v2'];
  }
  return { catalog, instances, kv: {}, templates: TEMPLATES_A };
}

const snapshotOf = (w: World): DiscoverySnapshot => ({ catalog: w.catalog, instances: w.instances });

/** One random change; returns the services it touched, or 'all' for a change of KV or templates. */
function change(w: World, random: () => number, counter: { port: number }): Set<string> | 'all' {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const service = pick(SERVICES);
  const list = w.instances[service] ?? [];
  const replace = (next: readonly ServiceInstance[]): Set<string> => {
    w.instances = { ...w.instances, [service]: next };
    return new Set([service]);
  };
  switch (Math.floor(random() * 11)) {
    case 0: { // health flip of one instance
      if (list.length === 0) return new Set();
      const i = Math.floor(random() * list.length);
      return replace(list.map((x, k) => (k === i ? { ...x, status: pick(STATUSES) } : x)));
    }
    case 1: // a new instance (rolling deploy: new id, new port)
      return replace([...list, instance(service, `${service}-n${counter.port}`, { port: counter.port++, tags: [pick(['v1', 'v2']), 'public'] })]);
    case 2: // an instance leaves
      return list.length === 0 ? new Set() : replace(list.slice(1));
    case 3: // health weights change
      return list.length === 0 ? new Set() : replace([{ ...list[0]!, weights: { passing: Math.floor(random() * 5), warning: 1 } }, ...list.slice(1)]);
    case 4: // re-parsed: a new, equal array (the file provider)
      return replace(list.map((x) => ({ ...x, tags: [...x.tags] })));
    case 5: // the whole snapshot re-parsed, nothing changed
      w.instances = Object.fromEntries(Object.entries(w.instances).map(([k, v]) => [k, v.map((x) => ({ ...x }))]));
      w.catalog = Object.fromEntries(Object.entries(w.catalog).map(([k, v]) => [k, [...v]]));
      return new Set();
    case 6: { // catalog: a service stops or starts being public (routes come and go)
      const tags = w.catalog[service] ?? [];
      w.catalog = { ...w.catalog, [service]: tags.includes('public') ? tags.filter((t) => t !== 'public') : [...tags, 'public'] };
      return 'all';
    }
    case 7: // KV instance weights of one service
      w.kv = { ...w.kv, [`services/${service}/weights`]: JSON.stringify({ [`${service}-0`]: Math.floor(random() * 3) }) };
      return 'all';
    case 8: // KV route weights (sometimes naming a destination the route lacks: a problem)
      w.kv = { ...w.kv, 'routes/canary/weights': JSON.stringify(random() < 0.8 ? { 'alpha:v1': Math.floor(random() * 4), 'alpha:v2': 1 } : { nope: 1 }) };
      return 'all';
    case 9: // KV policy of a route, sometimes invalid (a problem)
      w.kv = { ...w.kv, 'routes/mix/policy': random() < 0.7 ? JSON.stringify({ retries: { count: Math.floor(random() * 3) } }) : '{not json' };
      return 'all';
    default: // templates swapped (a file edit)
      w.templates = w.templates === TEMPLATES_A ? TEMPLATES_B : TEMPLATES_A;
      return 'all';
  }
}

/** Everything of a table but its lookup function, plus lookups of every route's own match. */
function comparable(table: RoutingTable): unknown {
  const probes = ['/', '/alpha/x', '/beta', '/canary', '/mix/y', '/ghost', '/nothing'];
  return {
    routes: table.routes,
    problems: table.problems,
    services: table.services,
    lookups: [
      ...table.routes.map((r) => table.lookup(r.hosts[0], r.path)?.name),
      ...probes.map((p) => table.lookup(undefined, p)?.name),
      ...probes.map((p) => table.lookup('canary.example.com', p)?.name),
    ],
  };
}

describe('TableBuilder: incremental builds equal one-shot builds', () => {
  for (const seed of [1, 7, 42, 2024, 99991]) {
    it(`random change sequence, seed ${seed}`, () => {
      const random = mulberry32(seed);
      const world = initialWorld();
      const counter = { port: 20_000 };
      const builder = new TableBuilder();
      let previous = builder.build(snapshotOf(world), world.kv, world.templates);
      for (let step = 0; step < 150; step++) {
        const touched = change(world, random, counter);
        const table = builder.build(snapshotOf(world), world.kv, world.templates);
        const fresh = buildTable(snapshotOf(world), world.kv, world.templates);
        assert.deepStrictEqual(comparable(table), comparable(fresh), `seed ${seed}, step ${step}`);
        assert.ok(Object.isFrozen(table) && table.routes.every((r) => Object.isFrozen(r) && r.destinations.every(Object.isFrozen)), 'frozen');
        if (touched !== 'all') {
          for (const route of table.routes) {
            const before = previous.routes.find((r) => r.name === route.name);
            if (before === undefined || route.destinations.some((d) => touched.has(d.service))) continue;
            assert.equal(route, before, `seed ${seed}, step ${step}: route ${route.name} uses no changed service, so it is the previous object`);
          }
        }
        previous = table;
      }
    });
  }
});

describe('TableBuilder: reuse', () => {
  const world = initialWorld();
  const kv = { 'routes/canary/weights': '{"alpha:v1": 1, "alpha:v2": 1}' };

  it('one instance change rebuilds only the routes of its service; the index is rebound, not rebuilt', () => {
    const builder = new TableBuilder();
    const first = builder.build(snapshotOf(world), kv, world.templates);
    assert.equal(builder.stats.routesBuilt, first.routes.length);
    const list = world.instances['beta']!;
    const flipped = { ...world.instances, beta: [{ ...list[0]!, status: 'critical' as const }, ...list.slice(1)] };
    const second = builder.build({ catalog: world.catalog, instances: flipped }, kv, world.templates);
    const rebuilt = second.routes.filter((r, i) => r !== first.routes[i]).map((r) => r.name);
    assert.deepEqual(rebuilt, ['beta', 'mix'], 'only the routes to beta');
    assert.deepEqual(
      { routesBuilt: builder.stats.routesBuilt, servicesBuilt: builder.stats.servicesBuilt, specsCollected: builder.stats.specsCollected, kvParsed: builder.stats.kvParsed, indexBuilt: builder.stats.indexBuilt },
      { routesBuilt: 2, servicesBuilt: 1, specsCollected: false, kvParsed: false, indexBuilt: false },
    );
    // The unchanged endpoints of the changed service keep their objects too.
    const before = first.routes.find((r) => r.name === 'beta')!.destinations[0]!.endpoints;
    const after = second.routes.find((r) => r.name === 'beta')!.destinations[0]!.endpoints;
    assert.notEqual(after[0], before[0]);
    assert.equal(after[1], before[1]);
    assert.equal(second.lookup(undefined, '/beta/1')?.destinations[0]?.endpoints[0]?.status, 'critical', 'the rebound index answers with the new route');
  });

  it('a snapshot re-parsed into equal new arrays and an equal KV object rebuilds nothing', () => {
    const builder = new TableBuilder();
    const first = builder.build(snapshotOf(world), kv, world.templates);
    const copy: DiscoverySnapshot = JSON.parse(JSON.stringify(snapshotOf(world))) as DiscoverySnapshot;
    const second = builder.build(copy, { ...kv }, world.templates);
    assert.equal(builder.stats.routesBuilt, 0);
    assert.equal(builder.stats.servicesBuilt, 0);
    assert.ok(second.routes.every((r, i) => r === first.routes[i]));
  });

  it('a build that throws (an invalid template) leaves the builder at its last good build', () => {
    const builder = new TableBuilder();
    const first = builder.build(snapshotOf(world), kv, world.templates);
    const bad = [...world.templates, template('twice', '/canary', [{ service: 'alpha', weight: 1 }], { host: 'canary.example.com' })];
    assert.throws(() => builder.build(snapshotOf(world), kv, bad), /matches/);
    const again = builder.build(snapshotOf(world), kv, world.templates);
    assert.equal(builder.stats.routesBuilt, 0);
    assert.ok(again.routes.every((r, i) => r === first.routes[i]));
  });

  it('forgets services and routes that left: nothing kept per id for what is gone', () => {
    const builder = new TableBuilder();
    builder.build(snapshotOf(world), kv, world.templates);
    const catalog = { ...world.catalog, eps: ['v1'] };
    const table = builder.build({ catalog, instances: world.instances }, kv, world.templates);
    assert.equal(table.routes.some((r) => r.name === 'eps'), false);
    // Bringing it back rebuilds it: the builder kept nothing of it.
    builder.build(snapshotOf(world), kv, world.templates);
    assert.equal(builder.stats.routesBuilt, 1);
  });
});
