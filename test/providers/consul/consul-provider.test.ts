/**
 * The Consul provider against the Consul API test server over real HTTP: what it asks (blocking
 * index and wait, token header), what it emits (catalog, instances with aggregated health, weights,
 * addresses, KV), deduplication, rate limiting, health watches following watchServices, and stop().
 */
import assert from 'node:assert/strict';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as pace } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { ConsulTestServer } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';
import { instance, ProviderHarness, requestsTo } from './harness.js';

describe('consul provider: watches and snapshots', () => {
  let server: ConsulTestServer;
  let h: ProviderHarness | undefined;

  before(async () => {
    server = await ConsulTestServer.start({ jitter: false });
  });
  after(async () => {
    await server.stop();
  });
  afterEach(async () => {
    await h?.stop();
    h = undefined;
    // Every test starts from an empty catalog (but the consul service) and no KV.
    await server.restart({ keepData: false });
    server.clearRequests();
  });

  it('reads catalog, health state, nodes and KV first without blocking, then blocks with index and wait; a service is read without blocking', async () => {
    server.registerService(instance('web', 'web-1', 9001, { tags: ['public'] }));
    server.kvPut('switchyard/routes/web/weights', '{"web":1}');
    h = new ProviderHarness(server.url, { waitMs: 3_000 });
    await h.start(['web']);
    await server.waitForBlocked(4);
    await h.waitSynced();
    const watches = h.provider.status().detail?.['watches'] as Record<string, { index: number }>;
    // One blocking query per list, whatever the number of services (no longer one per service).
    for (const [path, watch] of [['/v1/catalog/services', 'catalog'], ['/v1/health/state/any', 'health'], ['/v1/catalog/nodes', 'nodes'], ['/v1/kv/switchyard/', 'kv']] as const) {
      const [first, second] = requestsTo(server, path);
      assert.ok(first !== undefined && second !== undefined, `two requests to ${path}`);
      assert.equal(first.query['index'], undefined, `${path}: the first read does not block`);
      assert.equal(second.query['index'], String(watches[watch]?.index), `${path}: sends the index it got`);
      assert.equal(second.query['wait'], '3000ms');
      assert.equal(second.blocked, true);
    }
    assert.equal(requestsTo(server, '/v1/kv/switchyard/')[0]?.query['recurse'], 'true');
    const reads = requestsTo(server, '/v1/health/service/web');
    assert.equal(reads.length, 1, 'the service is read once, nothing changed since');
    assert.equal(reads[0]?.query['index'], undefined, 'a service read never blocks');
    assert.deepEqual(h.discovery?.catalog, { web: ['public'] });
    assert.deepEqual(h.kv, { 'routes/web/weights': '{"web":1}' });
    assert.equal(h.instances('web')?.length, 1);
  });

  it('emits a change within milliseconds and deduplicates returns without change', async () => {
    server.registerService(instance('web', 'web-1', 9001));
    // A 60 s blocking wait, six times the bound below: a change caught only when the held query
    // times out (instead of the write waking it) cannot meet the bound.
    h = new ProviderHarness(server.url, { waitMs: 60_000 });
    await h.start(['web']);
    await h.waitSynced();
    await server.waitForBlocked(4);
    const emitted = h.updates.length;
    const healthCalls = requestsTo(server, '/v1/health/service/web').length;

    // An idempotent write raises the index without changing the answer.
    server.touchService('web');
    await waitFor('a new health call after the no-change return', () => requestsTo(server, '/v1/health/service/web').length > healthCalls, 10_000);
    await server.waitForBlocked(4);
    assert.equal(h.updates.length, emitted, 'a return without change emits nothing');

    const t0 = performance.now();
    server.setCheck('service:web-1', 'critical');
    await waitFor('the critical status', () => h?.statuses('web')?.['web-1'] === 'critical', 10_000);
    // Typically a few ms; 10 s leaves a loaded CI machine room and still rules out the 60 s timeout.
    assert.ok(performance.now() - t0 < 10_000, `took ${performance.now() - t0} ms`);
    assert.equal(h.updates.length, emitted + 1);
  });

  it('aggregates checks: passing, warning, critical, service and node maintenance, node failure', async () => {
    server.addNode('node-2', '10.0.0.2');
    server.addNode('node-3', '10.0.0.3');
    for (const [id, status] of [['web-1', 'passing'], ['web-2', 'warning'], ['web-3', 'critical'], ['web-4', 'passing']] as const) {
      server.registerService(instance('web', id, 9000, { status }));
    }
    server.setServiceMaintenance('web-4', true, 'deploy');
    server.registerService(instance('api', 'api-1', 9000), { node: 'node-2' });
    server.registerService(instance('api', 'api-2', 9000), { node: 'node-3' });
    server.registerService(instance('api', 'api-3', 9000));
    server.setNodeMaintenance(true, '', { node: 'node-2' });
    server.setCheck('serfHealth', 'critical', { node: 'node-3' });
    h = new ProviderHarness(server.url);
    await h.start(['web', 'api']);
    await h.waitSynced();
    await waitFor('both services', () => h?.instances('web') !== undefined && h.instances('api') !== undefined);
    assert.deepEqual(h.statuses('web'), { 'web-1': 'passing', 'web-2': 'warning', 'web-3': 'critical', 'web-4': 'maintenance' });
    assert.deepEqual(h.statuses('api'), { 'api-1': 'maintenance', 'api-2': 'critical', 'api-3': 'passing' });

    server.setServiceMaintenance('web-4', false);
    server.setNodeMaintenance(false, '', { node: 'node-2' });
    server.setCheck('service:web-2', 'passing');
    await waitFor('maintenance off', () => h?.statuses('web')?.['web-4'] === 'passing' && h.statuses('api')?.['api-1'] === 'passing' && h.statuses('web')?.['web-2'] === 'passing');
  });

  it('honours Service.Weights (default 1/1) and uses the node address when Service.Address is empty', async () => {
    server.addNode('node-2', '10.0.0.2');
    server.registerService(instance('web', 'web-1', 9001, { weights: { Passing: 10, Warning: 2 } }));
    server.registerService(instance('web', 'web-2', 9002));
    server.registerService({ ID: 'web-n2', Name: 'web', Port: 9003, Check: { TTL: '30s', Status: 'passing' } }, { node: 'node-2' });
    h = new ProviderHarness(server.url);
    await h.start(['web']);
    await h.waitSynced();
    const byId = Object.fromEntries((h.instances('web') ?? []).map((i) => [i.id, i]));
    assert.deepEqual(byId['web-1']?.weights, { passing: 10, warning: 2 });
    assert.deepEqual(byId['web-2']?.weights, { passing: 1, warning: 1 });
    assert.equal(byId['web-2']?.address, '127.0.0.1');
    assert.equal(byId['web-n2']?.address, '10.0.0.2');
    assert.equal(byId['web-n2']?.port, 9003);
  });

  it('KV: prefix removed, values decoded, null as "", 404 as no keys; the consul service is dropped', async () => {
    h = new ProviderHarness(server.url);
    await h.start();
    await h.waitSynced();
    assert.deepEqual(h.kv, {}, '404 is no keys');
    assert.deepEqual(h.discovery?.catalog, {}, 'only the consul service: an empty catalog');
    assert.equal(requestsTo(server, '/v1/kv/switchyard/').find((r) => r.status === 404) !== undefined, true);

    server.kvPut('switchyard/routes/api/weights', '{"api:v1":90,"api:v2":10}');
    server.kvPut('switchyard/flag', '');
    server.kvPut('switchyard/utf8', 'grüße ✓');
    server.kvPut('other/key', 'not ours');
    await waitFor('the KV keys', () => Object.keys(h?.kv ?? {}).length === 3);
    assert.deepEqual(h.kv, { flag: '', 'routes/api/weights': '{"api:v1":90,"api:v2":10}', utf8: 'grüße ✓' });

    server.kvDelete('switchyard/', { recurse: true });
    await waitFor('no keys again', () => Object.keys(h?.kv ?? { x: 1 }).length === 0);
  });

  it('reads services as watchServices adds them and forgets the ones it drops', async () => {
    server.registerService(instance('web', 'web-1', 9001));
    server.registerService(instance('api', 'api-1', 9002));
    server.registerService(instance('db', 'db-1', 9003));
    h = new ProviderHarness(server.url);
    await h.start(['web']);
    await h.waitSynced();
    assert.deepEqual(Object.keys(h.discovery?.instances ?? {}), ['web']);

    h.provider.watchServices(['api', 'db', 'web']);
    assert.equal(h.provider.status().synced, false, 'not synced until the new services are read');
    await waitFor('api and db instances', () => h?.instances('api') !== undefined && h.instances('db') !== undefined);
    await h.waitSynced();
    assert.equal(server.blockedQueries, 4, 'still the four list watches, not one per service');

    h.provider.watchServices(['db']);
    const before = { web: requestsTo(server, '/v1/health/service/web').length, api: requestsTo(server, '/v1/health/service/api').length };
    server.setCheck('service:web-1', 'critical');
    server.setCheck('service:api-1', 'critical');
    server.setCheck('service:db-1', 'warning');
    await waitFor('db to follow', () => h?.statuses('db')?.['db-1'] === 'warning');
    assert.deepEqual(Object.keys(h.discovery?.instances ?? {}), ['db'], 'unwatched services are no longer emitted');
    assert.equal(requestsTo(server, '/v1/health/service/web').length, before.web, 'no call for web after its watch stopped');
    assert.equal(requestsTo(server, '/v1/health/service/api').length, before.api, 'no call for api after its watch stopped');
  });

  it('rate-limits each watch: a burst of writes costs at most one call per interval', async () => {
    h = new ProviderHarness(server.url, {}, { minIntervalMs: 100 });
    await h.start();
    await h.waitSynced();
    await server.waitForBlocked(2);
    server.clearRequests();
    const t0 = performance.now();
    let writes = 0;
    // The writer paces itself (a write every ~2 ms for 600 ms); the watch must not follow each one.
    while (performance.now() - t0 < 600 && writes < 1_000) {
      server.kvPut('switchyard/counter', String(writes));
      writes += 1;
      await pace(2);
    }
    const elapsed = performance.now() - t0;
    await waitFor('the last value', () => h?.kv?.['counter'] === String(writes - 1));
    const calls = requestsTo(server, '/v1/kv/switchyard/').filter((r) => r.at - t0 <= elapsed);
    assert.ok(writes > 100, `only ${writes} writes`);
    assert.ok(calls.length >= 3, `the watch followed (${calls.length} calls)`);
    assert.ok(calls.length <= Math.ceil(elapsed / 100) + 1, `${calls.length} calls in ${Math.round(elapsed)} ms for ${writes} writes`);
    for (let i = 1; i < calls.length; i++) {
      // Server-side arrival times carry a few ms of network and event-loop jitter; without the
      // limit the calls would follow the writes, ~2 ms apart.
      assert.ok(calls[i]!.at - calls[i - 1]!.at >= 80, `calls ${i} and ${i + 1} only ${calls[i]!.at - calls[i - 1]!.at} ms apart`);
    }
  });

  it('reaches Consul at an IPv6 literal address (http://[::1]:PORT)', async (t) => {
    const sockets = new Set<Socket>();
    const relay = createTcpServer((socket) => {
      const upstream = connect(server.port, '127.0.0.1');
      sockets.add(socket).add(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    const listening = await new Promise<boolean>((resolve) => {
      relay.once('error', () => resolve(false));
      relay.listen(0, '::1', () => resolve(true));
    });
    if (!listening) {
      t.skip('no IPv6 loopback');
      return;
    }
    try {
      server.registerService(instance('web', 'web-1', 9001));
      h = new ProviderHarness(`http://[::1]:${(relay.address() as AddressInfo).port}`);
      await h.start(['web']);
      await h.waitSynced();
      assert.equal(h.instances('web')?.length, 1);
      await h.stop();
      h = undefined;
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it('stop() ends every loop promptly: no held query, no open connection', async () => {
    server.registerService(instance('web', 'web-1', 9001));
    h = new ProviderHarness(server.url, { waitMs: 600_000 });
    await h.start(['web']);
    await h.waitSynced();
    await server.waitForBlocked(4);
    const t0 = performance.now();
    await h.stop();
    // The queries are held for 600 s: a stop() that waited for them (instead of aborting them)
    // would take minutes; 10 s is room for a loaded machine.
    assert.ok(performance.now() - t0 < 10_000, `stop took ${performance.now() - t0} ms`);
    await waitFor('the server to see every query end', () => server.blockedQueries === 0 && server.openConnections === 0, 10_000);
    const count = server.requestCount;
    server.registerService(instance('web', 'web-2', 9002));
    server.kvPut('switchyard/x', '1');
    // Give a stray loop every chance to call again: wait for the server to answer a probe of our own.
    await fetch(`${server.url}/v1/status/leader`);
    assert.equal(server.requestCount, count + 1, 'no call after stop()');
    assert.equal(h.provider.status().healthy, false);
    h = undefined;
  });
});
