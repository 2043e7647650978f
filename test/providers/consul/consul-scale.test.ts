/**
 * Issue 8 §2: a large catalog (1,000 services × 10 instances) against the Consul test server, which
 * enforces the agent's per-client connection limit (200, 429 and close past it). The provider
 * must hold a constant, small number of connections (≤ 8) whatever the number of services, follow
 * one health change with one read and new arrays for that service only, see port, address, node,
 * registration and deregistration changes, and cost nothing but the blocking re-arms while idle.
 * Counts and outcomes only: speed belongs in bench/consul-scale.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DiscoverySnapshot } from '../../../src/model/types.js';
import { MAX_CONCURRENT_REQUESTS } from '../../../src/providers/consul/consul-provider.js';
import { populateLargeCatalog, serviceName, type LargeCatalog } from '../../support/consul/large-catalog.js';
import { ConsulTestServer, DEFAULT_MAX_CONNS_PER_CLIENT } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';
import { ProviderHarness, WATCH_PATHS } from './harness.js';

const SERVICES = 1_000;
const INSTANCES = 10;
/** Generous: the machine is shared and loaded; a sync takes about a second when it is not. */
const SYNC_TIMEOUT_MS = 90_000;
const CHANGE_TIMEOUT_MS = 30_000;

describe('consul provider: 1,000 services × 10 instances', () => {
  let server: ConsulTestServer;
  let catalog: LargeCatalog;
  let h: ProviderHarness;

  before(async () => {
    server = await ConsulTestServer.start({ jitter: false });
    assert.equal(server.peakConnections(), 0);
    catalog = populateLargeCatalog(server, { services: SERVICES, instances: INSTANCES, nodes: INSTANCES });
    // A 2 s wait keeps the idle window of the last test short; every other test is woken by writes.
    // Wide client timeouts: a loaded machine must not turn a slow answer into a failed call.
    h = new ProviderHarness(server.url, { waitMs: 2_000 }, { timeoutMarginMs: 10_000, readTimeoutMs: 20_000 });
    await h.start(catalog.names);
  });
  after(async () => {
    await h.stop();
    await server.stop();
  });

  /** The provider has nothing queued or running: every change so far is applied. */
  function quiet(): Promise<true> {
    return waitFor('no service read queued or running', () => (h.provider.status().detail?.['requests'] as { readBacklog: number }).readBacklog === 0, CHANGE_TIMEOUT_MS);
  }

  function healthReadsSince(mark: number): string[] {
    return server.requests.filter((r) => r.seq > mark && r.path.startsWith('/v1/health/service/')).map((r) => r.path.slice('/v1/health/service/'.length));
  }

  it('(a) syncs every service with at most 8 connections to the agent, far under its per-client limit', async () => {
    await h.waitSynced(SYNC_TIMEOUT_MS);
    const snapshot = h.discovery;
    assert.ok(snapshot !== undefined);
    assert.equal(Object.keys(snapshot.instances).length, SERVICES);
    for (const name of catalog.names) assert.equal(snapshot.instances[name]?.length, INSTANCES, name);
    assert.equal(Object.keys(snapshot.catalog).length, SERVICES);
    const peak = server.peakConnections();
    assert.ok(peak <= MAX_CONCURRENT_REQUESTS, `the server saw ${peak} concurrent connections from the provider (max ${MAX_CONCURRENT_REQUESTS})`);
    assert.ok(peak < DEFAULT_MAX_CONNS_PER_CLIENT);
    assert.equal(server.refusedConnections, 0, 'no connection refused by the per-client limit');
    const requests = h.provider.status().detail?.['requests'] as { peak: number; serviceReads: number };
    assert.ok(requests.peak <= MAX_CONCURRENT_REQUESTS, `${requests.peak} requests in flight at once`);
    // One read per service; a few more only if a list watch moved meanwhile (nothing moves here).
    assert.equal(requests.serviceReads, SERVICES, 'each service read once');
    // The watches re-arm once the first reads are over (the provider holds them meanwhile), maybe
    // just after the synced status: wait for them, then check that there are exactly four.
    await waitFor('the four watches re-armed', () => server.blockedQueries >= WATCH_PATHS.length, CHANGE_TIMEOUT_MS);
    assert.equal(server.blockedQueries, WATCH_PATHS.length, 'four blocking queries held, not one per service');
  });

  it('(b) one check going critical among 1,000 services: one read, and only that service gets a new array', async () => {
    await quiet();
    const before: DiscoverySnapshot = h.discovery!;
    const target = serviceName(500);
    const mark = server.requestCount;
    const emitted = h.updates.length;
    server.setCheck(`service:${target}-3`, 'critical', { node: catalog.nodeOf(3) });
    await waitFor('the critical instance in a snapshot', () => h.statuses(target)?.[`${target}-3`] === 'critical', CHANGE_TIMEOUT_MS);
    await quiet();
    const after = h.discovery!;
    assert.equal(h.updates.length, emitted + 1, 'one snapshot for one change');
    assert.deepEqual(healthReadsSince(mark), [target], 'only the changed service was read');
    assert.notEqual(after.instances[target], before.instances[target], 'the changed service has a new array');
    let same = 0;
    for (const name of catalog.names) {
      if (name === target) continue;
      assert.equal(after.instances[name], before.instances[name], `${name}: same instances array`);
      same += 1;
    }
    assert.equal(same, SERVICES - 1);
    for (const name of catalog.names) assert.equal(after.catalog[name], before.catalog[name], `${name}: same tag array`);
    assert.ok(server.peakConnections() <= MAX_CONCURRENT_REQUESTS);
  });

  it('(c) a port change, an address change through the node, a new instance with and without a check, and a deregistration reach the snapshot', async () => {
    await quiet();
    const ported = serviceName(700);
    const grown = serviceName(800);
    const bare = serviceName(900);
    const nodal = serviceName(42);
    // An 11th instance of `nodal` on a node of its own, without a service address: the node's is used.
    server.addNode('edge', '10.9.0.1');
    server.registerService({ ID: `${nodal}-edge`, Name: nodal, Port: 30_000, Check: { TTL: '30s', Status: 'passing' } }, { node: 'edge' });
    await waitFor('the edge instance', () => h.instances(nodal)?.find((i) => i.id === `${nodal}-edge`)?.address === '10.9.0.1', CHANGE_TIMEOUT_MS);
    await quiet();
    const before: DiscoverySnapshot = h.discovery!;

    // Same ID, same check: only the services table moves (no check changes), as with a real agent.
    server.registerService({ ID: `${ported}-1`, Name: ported, Address: '10.7.7.7', Port: 31_001, Tags: ['public'], Check: { TTL: '30s', Status: 'passing' } }, { node: catalog.nodeOf(1) });
    server.registerService({ ID: `${grown}-10`, Name: grown, Address: '10.8.8.8', Port: 31_010, Tags: ['public'], Check: { TTL: '30s', Status: 'passing' } }, { node: catalog.nodeOf(0) });
    server.registerService({ ID: `${bare}-10`, Name: bare, Address: '10.9.9.9', Port: 31_011, Tags: ['public'] }, { node: catalog.nodeOf(0) });
    server.deregisterService(`${grown}-0`, { node: catalog.nodeOf(0) });
    server.addNode('edge', '10.9.0.2');

    await waitFor('every change in the snapshot', () => {
      const port = h.instances(ported)?.find((i) => i.id === `${ported}-1`);
      const ids = (name: string): string[] => (h.instances(name) ?? []).map((i) => i.id);
      return port?.port === 31_001 && port.address === '10.7.7.7'
        && ids(grown).includes(`${grown}-10`) && !ids(grown).includes(`${grown}-0`)
        && ids(bare).includes(`${bare}-10`)
        && h.instances(nodal)?.find((i) => i.id === `${nodal}-edge`)?.address === '10.9.0.2';
    }, CHANGE_TIMEOUT_MS);
    await quiet();
    const after = h.discovery!;
    const changed = new Set([ported, grown, bare, nodal]);
    for (const name of catalog.names) {
      if (changed.has(name)) assert.notEqual(after.instances[name], before.instances[name], `${name}: new array`);
      else assert.equal(after.instances[name], before.instances[name], `${name}: same array`);
    }
    assert.equal(h.instances(grown)?.length, INSTANCES);
    assert.equal(h.instances(bare)?.length, INSTANCES + 1);
    assert.ok(server.peakConnections() <= MAX_CONCURRENT_REQUESTS, `${server.peakConnections()} connections at the peak`);
    assert.equal(server.refusedConnections, 0);
  });

  it('(d) idle: no request but the blocking re-arms of the four watches (counted, not timed)', async () => {
    await quiet();
    const mark = server.requestCount;
    const rearmed = (path: string): number => server.requests.filter((r) => r.seq > mark && r.path === path && r.blocked === true && r.status !== undefined).length;
    // Two full holds of each watch (each ends at its wait with nothing new): an idle window.
    await waitFor('two idle holds of each watch', () => WATCH_PATHS.every((path) => rearmed(path) >= 2), 30_000);
    const window = server.requests.filter((r) => r.seq > mark);
    for (const path of WATCH_PATHS) {
      const calls = window.filter((r) => r.path === path);
      // Each call was held until its wait ended (none answered at once: nothing moved), so the
      // calls number the holds that ended, plus the one held now.
      const unheld = calls.filter((r) => r.blocked !== true && r.status !== undefined);
      assert.deepEqual(unheld.map((r) => r.rawQuery), [], `${path}: a call answered without holding`);
      assert.ok(calls.length <= rearmed(path) + 1, `${path}: ${calls.length} calls for ${rearmed(path)} holds`);
      assert.ok(calls.every((r) => Number(r.query['index'] ?? 0) > 0), `${path}: every call blocks`);
    }
    const others = window.filter((r) => !(WATCH_PATHS as readonly string[]).includes(r.path));
    assert.deepEqual(others.map((r) => r.path), [], 'no service read, no probe while nothing changes');
  });
});
