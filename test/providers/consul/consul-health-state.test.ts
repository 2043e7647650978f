/**
 * The health-state watch (`/v1/health/state/any`) that replaced one blocking query per service:
 * which services a new answer says to read again, its index resets, and its place next to the
 * streaming backend (Consul streams only blocking /v1/health/service reads; the health state is a
 * plain RPC blocking query, and service reads are index 0, never streamed).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { changedServices, HealthFloors, healthDigest, indexFloor, NON_PASSING_FILTER } from '../../../src/providers/consul/health-state.js';
import { ConsulTestServer } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';
import { instance, parkedSince, ProviderHarness, requestsTo, WATCH_PATHS } from './harness.js';

function check(node: string, checkId: string, status: string, modifyIndex: number, service = '', output = ''): Record<string, unknown> {
  return { Node: node, CheckID: checkId, Status: status, Output: output, ServiceID: service === '' ? '' : `${service}-1`, ServiceName: service, ModifyIndex: modifyIndex };
}

describe('health-state digest', () => {
  const base = [
    check('n1', 'serfHealth', 'passing', 1),
    check('n2', 'serfHealth', 'passing', 2),
    check('n1', 'service:web-1', 'passing', 3, 'web'),
    check('n2', 'service:api-1', 'passing', 4, 'api'),
  ];
  const wanted = new Set(['web', 'api', 'db']);
  const none = (): string[] => [];

  it('a service check that changes marks its service only; output alone marks nothing', () => {
    const next = base.map((c) => (c['CheckID'] === 'service:web-1' ? { ...c, Status: 'critical', ModifyIndex: 9 } : c));
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(next), wanted, none)], ['web']);
    const output = base.map((c) => ({ ...c, Output: 'different' }));
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(output), wanted, none)], []);
  });

  it('a check added or removed marks its service', () => {
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(base.slice(0, 3)), wanted, none)], ['api']);
    const added = [...base, check('n2', 'service:db-1', 'passing', 7, 'db')];
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(added), wanted, none)], ['db']);
  });

  it('a node check marks the services on that node, those with checks there and those the last reads placed there', () => {
    const next = base.map((c) => (c['Node'] === 'n2' && c['CheckID'] === 'serfHealth' ? { ...c, Status: 'critical', ModifyIndex: 9 } : c));
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(next), wanted, none)], ['api']);
    assert.deepEqual([...changedServices(healthDigest(base), healthDigest(next), wanted, (node) => (node === 'n2' ? ['db', 'other'] : []))].sort(), ['api', 'db']);
  });

  it('the index floor of a service is the highest ModifyIndex of its checks and its nodes\' checks', () => {
    const digest = healthDigest(base);
    assert.equal(indexFloor(digest, 'web', []), 3);
    assert.equal(indexFloor(digest, 'api', []), 4);
    assert.equal(indexFloor(digest, 'db', ['n2']), 2);
    assert.equal(indexFloor(undefined, 'web', []), 0);
  });

  it('a check leaving the non-passing list (back to passing, deregistered) marks its service; HealthFloors puts its floor above the answer before', () => {
    const critical = [check('n1', 'serfHealth', 'critical', 5), check('n1', 'service:web-1', 'critical', 3, 'web')];
    assert.deepEqual([...changedServices(healthDigest(critical), healthDigest(critical.slice(0, 1)), wanted, none)], ['web']);
    assert.deepEqual([...changedServices(healthDigest(critical), healthDigest(critical.slice(1)), wanted, (node) => (node === 'n1' ? ['api'] : []))].sort(), ['api', 'web'], 'a node check gone: the services there');
    const floors = new HealthFloors();
    floors.raise('web', 41);
    floors.raise('web', 7);
    assert.equal(indexFloor(healthDigest([]), 'web', [], floors.get('web')), 42, 'written after the answer at 41');
    assert.equal(indexFloor(undefined, 'web', [], floors.get('web')), 42);
    floors.clear();
    assert.equal(floors.get('web'), 0, 'an index reset forgets them');
  });

  it('refuses what is not a list of checks', () => {
    assert.throws(() => healthDigest({}), /not a list/);
    assert.throws(() => healthDigest([{ Node: 1 }]), /Node is not a string/);
    assert.deepEqual(healthDigest(null).services, {});
  });
});

describe('consul provider: the health-state watch', () => {
  let server: ConsulTestServer | undefined;
  let h: ProviderHarness | undefined;

  afterEach(async () => {
    await h?.stop();
    h = undefined;
    await server?.stop();
    server = undefined;
  });

  async function synced(streaming: boolean): Promise<{ s: ConsulTestServer; harness: ProviderHarness }> {
    const s = await ConsulTestServer.start({ jitter: false, streaming });
    server = s;
    s.registerService(instance('web', 'web-1', 9001));
    s.registerService(instance('web', 'web-2', 9002));
    const harness = new ProviderHarness(s.url, { waitMs: 60_000 });
    h = harness;
    await harness.start(['web']);
    await harness.waitSynced();
    await s.waitForBlocked(WATCH_PATHS.length);
    return { s, harness };
  }

  it('asks only for the non-passing checks; a passing check whose output changes wakes the watch but reads nothing', async () => {
    const { s, harness } = await synced(false);
    const state = requestsTo(s, '/v1/health/state/any');
    assert.ok(state.length >= 2 && state.every((r) => r.query['filter'] === NON_PASSING_FILTER), 'every health-state call is filtered');
    const mark = s.requestCount;
    const reads = requestsTo(s, '/v1/health/service/web').length;
    s.setCheck('service:web-1', 'passing', { output: 'a different output' });
    await parkedSince(s, mark, ['/v1/health/state/any']);
    assert.equal(requestsTo(s, '/v1/health/service/web').length, reads, 'no service read for an output change');
    assert.equal(harness.statuses('web')?.['web-1'], 'passing');
  });

  it('critical → passing, maintenance on and off, node maintenance: every change that leaves or enters the non-passing list reaches the snapshot', async () => {
    const { s, harness } = await synced(false);
    s.setCheck('service:web-1', 'critical');
    await waitFor('web-1 critical', () => harness.statuses('web')?.['web-1'] === 'critical', 5_000);
    s.setCheck('service:web-1', 'passing');
    await waitFor('web-1 passing again (its check left the list)', () => harness.statuses('web')?.['web-1'] === 'passing', 5_000);
    s.setServiceMaintenance('web-2', true);
    await waitFor('web-2 in maintenance', () => harness.statuses('web')?.['web-2'] === 'maintenance', 5_000);
    s.setServiceMaintenance('web-2', false);
    await waitFor('web-2 out of maintenance (a critical check removed)', () => harness.statuses('web')?.['web-2'] === 'passing', 5_000);
    s.setNodeMaintenance(true);
    await waitFor('the node in maintenance', () => harness.statuses('web')?.['web-1'] === 'maintenance' && harness.statuses('web')?.['web-2'] === 'maintenance', 5_000);
    s.setNodeMaintenance(false);
    await waitFor('the node back', () => harness.statuses('web')?.['web-1'] === 'passing' && harness.statuses('web')?.['web-2'] === 'passing', 5_000);
  });

  it('a critical check deregistered (the services table index does not move): the service is read again and its instance serves', async () => {
    const { s, harness } = await synced(false);
    s.setCheck('service:web-2', 'critical');
    await waitFor('web-2 critical', () => harness.statuses('web')?.['web-2'] === 'critical', 5_000);
    const catalogIndex = (harness.provider.status().detail?.['watches'] as Record<string, { index: number }>)['catalog']?.index;
    assert.equal(s.deregisterCheck('service:web-2'), true);
    await waitFor('web-2 passing without its check', () => harness.statuses('web')?.['web-2'] === 'passing', 5_000);
    assert.equal((harness.provider.status().detail?.['watches'] as Record<string, { index: number }>)['catalog']?.index, catalogIndex, 'the catalog watch saw no change: the health watch found it');
  });

  it('first sync: the watches re-arm only after every service had its first read', async () => {
    const s = await ConsulTestServer.start({ jitter: false, streaming: false });
    server = s;
    const names = Array.from({ length: 24 }, (_, i) => `svc-${String(i).padStart(2, '0')}`);
    for (const [i, name] of names.entries()) s.registerService(instance(name, `${name}-1`, 9000 + i));
    const harness = new ProviderHarness(s.url, { waitMs: 60_000 });
    h = harness;
    await harness.start(names);
    await harness.waitSynced();
    await s.waitForBlocked(WATCH_PATHS.length);
    const lastFirstRead = Math.max(...names.map((name) => requestsTo(s, `/v1/health/service/${name}`)[0]?.seq ?? Number.POSITIVE_INFINITY));
    for (const path of WATCH_PATHS) {
      const rearm = requestsTo(s, path).find((r) => Number(r.query['index'] ?? 0) > 0);
      assert.ok(rearm !== undefined && rearm.seq > lastFirstRead, `${path} re-armed after the last first read (${rearm?.seq} > ${lastFirstRead})`);
    }
  });

  it('index reset (a restore): the health-state watch reads afresh, and a change below the old index still reaches the snapshot', async () => {
    const { s, harness } = await synced(true);
    const before = (harness.provider.status().detail?.['watches'] as Record<string, { index: number }>)['health']?.index ?? 0;
    assert.ok(before > 2);
    const mark = s.requestCount;
    await s.restart({ resetIndex: 2, downMs: 20 });
    await parkedSince(s, mark, WATCH_PATHS);
    const after = (harness.provider.status().detail?.['watches'] as Record<string, { index: number }>)['health']?.index ?? 0;
    assert.ok(after < before, `the lower index was taken (${before} → ${after})`);
    assert.ok(harness.log.lines.some((l) => l['watch'] === 'health' && /index went backwards/.test(String(l['msg']))), 'logged');
    assert.ok(s.index < before, 'the change below takes an index lower than the old one');
    s.setCheck('service:web-2', 'critical');
    await waitFor('the check change after the restore', () => harness.statuses('web')?.['web-2'] === 'critical', 5_000);
  });

  it('streaming on: the health state is a plain blocking query, service reads never block; a check flip applies without asking /v1/status/leader', async () => {
    const { s, harness } = await synced(true);
    s.setCheck('service:web-1', 'warning');
    await waitFor('the warning applied', () => harness.statuses('web')?.['web-1'] === 'warning', 5_000);
    const state = requestsTo(s, '/v1/health/state/any');
    assert.equal(state[0]?.query['index'], undefined, 'the first health-state read does not block');
    assert.ok(state.slice(1).every((r) => Number(r.query['index']) > 0), 'then it blocks');
    assert.ok(requestsTo(s, '/v1/health/service/web').every((r) => r.query['index'] === undefined), 'service reads never block, so are never streamed');
    assert.equal(requestsTo(s, '/v1/status/leader').length, 0);
    // Its answers' KnownLeader is a fact (no streaming): a leaderless view stops only what would
    // empty a pool, as on any plain read.
    s.setKnownLeader(false);
    s.setCheck('service:web-1', 'critical');
    await waitFor('web-1 critical while web-2 serves', () => harness.statuses('web')?.['web-1'] === 'critical', 5_000);
    s.setCheck('service:web-2', 'critical');
    await waitFor('the emptying answer refused', async () => (await harness.errors('health', 'no_leader')) >= 1, 5_000);
    assert.equal(harness.statuses('web')?.['web-2'], 'passing');
    s.setKnownLeader(true);
    await waitFor('applied with a leader', () => harness.statuses('web')?.['web-2'] === 'critical', 5_000);
  });
});
