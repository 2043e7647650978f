/**
 * The Consul provider when Consul misbehaves: unreachable at start, 500s, hangs, dropped
 * connections, restarts that reset the index, no known leader, ACL filtering, wrong or missing
 * tokens. In every case the last data is kept (nothing emitted), the status and metrics say what is
 * wrong, and the provider recovers by itself.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { ConsulTestServer } from '../../support/consul/server.js';
import { refusedPort } from '../../support/upstream.js';
import { waitFor } from '../../support/wait.js';
import { instance, parkedSince, ProviderHarness, requestsTo, WATCH_PATHS } from './harness.js';

/** The value of a gauge without labels. */
async function gauge(harness: ProviderHarness, name: string): Promise<number | undefined> {
  return (await harness.metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

/** The part of the provider's status detail these tests read. */
interface WatchesDetail { watches: Record<string, { staleFallback: boolean }> }

describe('consul provider: outages and refused answers', () => {
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
    await server.restart({ keepData: false });
  });

  /** Provider synced on web-1 and web-2 (passing) and one KV key. */
  async function synced(settings: ConstructorParameters<typeof ProviderHarness>[1] = {}, options: ConstructorParameters<typeof ProviderHarness>[2] = {}): Promise<ProviderHarness> {
    server.registerService(instance('web', 'web-1', 9001));
    server.registerService(instance('web', 'web-2', 9002));
    server.kvPut('switchyard/routes/web/weights', '{"web":1}');
    const harness = new ProviderHarness(server.url, settings, options);
    h = harness;
    await harness.start(['web']);
    await harness.waitSynced();
    await server.waitForBlocked(4);
    return harness;
  }

  it('starts with Consul unreachable: keeps retrying, not synced, then syncs when Consul appears', async () => {
    const port = await refusedPort();
    h = new ProviderHarness(`http://127.0.0.1:${port}`);
    const t0 = performance.now();
    // start() resolves after the first (failed) attempt. The bound rules out a start() that waits
    // for a sync: none can come before Consul appears below, so such a start() would never
    // resolve (waiting with a deadline turns that hang into a failure). 10 s: room for a loaded CI.
    let started = false;
    const starting = h.start(['web']).then(() => { started = true; });
    await waitFor('start() to resolve with Consul unreachable', () => started, 10_000);
    await starting;
    assert.ok(performance.now() - t0 < 10_000, `start() took ${performance.now() - t0} ms`);
    const status = h.provider.status();
    assert.equal(status.synced, false);
    assert.equal(status.healthy, false);
    assert.match(status.lastError ?? '', /cannot reach Consul at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    assert.equal(h.updates.length, 0);
    await waitFor('several retries', async () => (await h!.errors('catalog', 'unreachable')) >= 3);
    assert.equal(await h.gauge('switchyard_consul_up'), 0);

    const late = await ConsulTestServer.start({ port, jitter: false });
    try {
      late.registerService(instance('web', 'web-1', 9001));
      await h.waitSynced();
      assert.equal(h.provider.status().healthy, true);
      assert.equal(h.instances('web')?.length, 1);
      assert.equal(await h.gauge('switchyard_consul_up'), 1);
      await h.stop();
      h = undefined;
    } finally {
      await late.stop();
    }
  });

  it('something that is not Consul (undecodable JSON, wrong shapes): an `invalid` error, retried', async () => {
    const impostor = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '5' });
      res.end(req.url?.startsWith('/v1/catalog') === true ? '{not json' : '{"a": "b"}');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      h = new ProviderHarness(`http://127.0.0.1:${(impostor.address() as AddressInfo).port}`);
      await h.start(['web']);
      await waitFor('retries', async () => (await h!.errors('catalog', 'invalid')) >= 2 && (await h!.errors('health', 'invalid')) >= 2);
      assert.match(h.provider.status().lastError ?? '', /catalog: unexpected answer from Consul at http:\/\/127\.0\.0\.1:\d+: decode \(application\/json\) failed/);
      assert.equal(h.provider.status().synced, false);
      // (The consul package reads a KV body that is not a list as "no keys", so only KV got through.)
      assert.equal(h.discovery, undefined, 'no discovery snapshot from garbage');
      await h.stop();
      h = undefined;
    } finally {
      impostor.closeAllConnections();
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
  });

  it('500s: keeps the last data, backs off exponentially, reports, then recovers and follows changes', async () => {
    const harness = await synced({}, { backoffBaseMs: 20, backoffMaxMs: 160, random: () => 1 });
    const emitted = harness.updates.length;
    const syncedAt = await harness.gauge('switchyard_consul_last_sync_timestamp_seconds');
    assert.ok(syncedAt !== undefined && syncedAt > 0);
    server.clearRequests();
    server.setFailing(500);
    server.dropConnections();
    await waitFor('five failed catalog calls', async () => (await harness.errors('catalog', '500')) >= 5, 5_000);
    const status = harness.provider.status();
    assert.equal(status.healthy, false);
    assert.equal(status.synced, true, 'still synced: the data is the last good one');
    assert.match(status.lastError ?? '', /answered 500 "injected failure/);
    assert.equal(harness.updates.length, emitted, 'nothing emitted during the outage');
    assert.equal(harness.instances('web')?.length, 2);
    assert.equal(await harness.gauge('switchyard_consul_up'), 0);
    assert.equal(await harness.gauge('switchyard_consul_last_sync_timestamp_seconds'), syncedAt);
    assert.ok(await harness.errors('catalog', '500') >= 5);
    assert.ok(await harness.errors('kv', '500') >= 1);
    assert.ok(await harness.errors('health', '500') >= 1);
    // Backoff between calls: 20, 40, 80, 160, 160 ms (random fixed at 1).
    const starts = requestsTo(server, '/v1/catalog/services').filter((r) => r.status === 500).map((r) => r.at);
    const expected = [20, 40, 80, 160];
    for (let i = 1; i < Math.min(starts.length, 5); i++) {
      const gap = starts[i]! - starts[i - 1]!;
      assert.ok(gap >= expected[i - 1]! - 1, `gap ${i}: ${gap} ms, expected >= ${expected[i - 1]}`);
    }
    // The connection drop and the 500s are two different errors: one error line each, not one per retry.
    const errorLines = harness.log.lines.filter((l) => l['level'] === 50 && l['watch'] === 'catalog');
    assert.deepEqual(errorLines.map((l) => l['reason']), ['reset', '500']);

    server.setFailing(null);
    await waitFor('recovery', () => harness.provider.status().healthy, 3_000);
    assert.equal(await harness.gauge('switchyard_consul_up'), 1);
    assert.ok(harness.log.lines.some((l) => l['msg'] === 'consul catalog watch recovered'));
    server.setCheck('service:web-1', 'critical');
    await waitFor('the change after recovery', () => harness.statuses('web')?.['web-1'] === 'critical');
  });

  it('hang: the client times out (wait + wait/16 + margin), reports it, and recovers', async () => {
    const harness = await synced({ waitMs: 300 }, { timeoutMarginMs: 100, readTimeoutMs: 300 });
    server.setHang(true);
    const t0 = performance.now();
    await waitFor('a client timeout', async () => (await harness.errors(undefined, 'timeout')) >= 1, 3_000);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 300, `timed out after ${elapsed} ms, before the wait was over`);
    assert.match(harness.provider.status().lastError ?? '', /no answer from Consul at .* within \d+ ms/);
    assert.equal(harness.instances('web')?.length, 2, 'the last data is kept');
    server.setHang(false);
    server.setCheck('service:web-2', 'warning');
    await waitFor('the change after the hang', () => harness.statuses('web')?.['web-2'] === 'warning', 3_000);
    await waitFor('healthy again', () => harness.provider.status().healthy, 3_000);
  });

  it('dropped connections: retries at once with a fresh read and keeps following', async () => {
    const harness = await synced();
    const emitted = harness.updates.length;
    const mark = server.requestCount;
    server.dropConnections();
    // Only the new state makes this true: each watch read afresh (no index) after the drop, then
    // parked a new blocking read. (The blocked count alone is 4 before the drop too.)
    await parkedSince(server, mark, WATCH_PATHS);
    const fresh = server.requests.filter((r) => r.seq > mark && r.query['index'] === undefined && r.status === 200);
    for (const path of WATCH_PATHS) assert.ok(fresh.some((r) => r.path === path), `${path}: read afresh after the drop`);
    assert.equal(await harness.errors(undefined, 'reset'), 4, 'each watch saw its connection cut once');
    assert.equal(harness.updates.length, emitted, 'the fresh reads found nothing new: nothing emitted');
    assert.equal(requestsTo(server, '/v1/health/service/web').filter((r) => r.seq > mark).length, 0, 'nothing changed: the service is not read again');
    server.deregisterService('web-2');
    await waitFor('web-2 gone', () => harness.instances('web')?.length === 1);
  });

  it('restart with the index reset: detects it, recovers, and still follows changes', async () => {
    const harness = await synced({ waitMs: 60_000 });
    const before = harness.provider.status().detail?.['watches'] as Record<string, { index: number }>;
    assert.ok((before['catalog']?.index ?? 0) > 3);
    const mark = server.requestCount;
    await server.restart({ resetIndex: true, downMs: 50 });
    await parkedSince(server, mark, WATCH_PATHS);
    const afterRestart = harness.provider.status().detail?.['watches'] as Record<string, { index: number }>;
    assert.ok((afterRestart['catalog']?.index ?? 0) < (before['catalog']?.index ?? 0), 'the lower index was taken');
    assert.ok(harness.log.lines.some((l) => l['watch'] === 'catalog' && /index went backwards/.test(String(l['msg']))), 'logged');
    // Changes whose index stays below the old one are still seen (the watch does not block on a stale index).
    server.setCheck('service:web-1', 'critical');
    await waitFor('the health change after the restart', () => harness.statuses('web')?.['web-1'] === 'critical', 3_000);
    server.kvPut('switchyard/routes/web/weights', '{"web":2}');
    await waitFor('the KV change after the restart', () => harness.kv?.['routes/web/weights'] === '{"web":2}', 3_000);
    server.registerService(instance('api', 'api-1', 9003, { tags: ['public'] }));
    await waitFor('the catalog change after the restart', () => harness.discovery?.catalog['api'] !== undefined, 3_000);
  });

  // Both backends: with streaming (Consul's default since 1.10) blocking health/service reads say
  // KnownLeader false whatever the cluster; the provider's service reads are index 0, which Consul
  // never answers from the streaming view, so their X-Consul-KnownLeader is a fact either way and
  // /v1/status/leader is not needed. (Before issue 8 each service had a blocking, streaming read.)
  for (const streaming of [true, false]) {
    it(`no known leader (${streaming ? 'streaming on' : 'use_streaming_backend=false'}): an answer that would empty a live pool is not applied; other answers are`, async () => {
      server.setStreaming(streaming);
      try {
        const harness = await synced();
        server.clearRequests();
        server.setKnownLeader(false);
        server.setCheck('service:web-1', 'critical');
        await waitFor('web-1 critical (the pool keeps web-2)', () => harness.statuses('web')?.['web-1'] === 'critical');
        server.setCheck('service:web-2', 'critical');
        await waitFor('the refused answer to be counted', async () => (await harness.errors('health', 'no_leader')) >= 1);
        assert.deepEqual(harness.statuses('web'), { 'web-1': 'critical', 'web-2': 'passing' }, 'the pool was not emptied');
        assert.match(harness.provider.status().lastError ?? '', /no known leader \(X-Consul-KnownLeader: false\)/);
        assert.equal(harness.provider.status().healthy, false);
        assert.equal(requestsTo(server, '/v1/status/leader').length, 0, 'plain reads: the header says it');
        assert.ok(requestsTo(server, '/v1/health/service/web').every((r) => r.query['index'] === undefined), 'service reads never block, so never stream');
        server.setKnownLeader(true);
        await waitFor('the answer applied once a leader is known', () => harness.statuses('web')?.['web-2'] === 'critical', 3_000);
        assert.equal(harness.provider.status().healthy, true);
      } finally {
        server.setStreaming(true);
      }
    });
  }

  it('leaderless cluster: default reads fall back to ?stale and keep following; back to default reads with a leader', async () => {
    const harness = await synced();
    server.setLeaderless(true);
    server.dropConnections();
    await waitFor('a stale read', () => server.requests.some((r) => r.path === '/v1/catalog/services' && r.query['stale'] !== undefined));
    // Agent writes work without a leader in the test server: the stale watch follows them.
    server.registerService(instance('web', 'web-3', 9003));
    await waitFor('web-3 seen through a stale read', () => harness.instances('web')?.length === 3, 3_000);
    // dropConnections reset every watch: each is healthy again once its stale read answered.
    await waitFor('healthy on stale reads', () => harness.provider.status().healthy);
    await waitFor('every watch on the fallback', () => Object.values((harness.provider.status().detail as unknown as WatchesDetail).watches).every((w) => w.staleFallback));
    assert.equal(await gauge(harness, 'switchyard_consul_stale_fallback'), 1);
    const warned = harness.log.lines.filter((l) => l['reason'] === 'no_leader' && l['level'] === 40);
    assert.deepEqual(warned.map((l) => l['watch']).sort(), ['catalog', 'health', 'health:web', 'kv', 'nodes'], 'one warning per watch, not one per read');
    // The no-leader veto still guards the pools: an answer that would empty one is refused.
    server.setCheck('service:web-1', 'critical');
    server.setCheck('service:web-2', 'critical');
    server.setCheck('service:web-3', 'critical');
    await waitFor('the emptying answer refused', async () => (await harness.errors('health', 'no_leader')) >= 1);
    assert.ok((harness.instances('web') ?? []).some((i) => i.status === 'passing'), 'the pool was not emptied');

    server.setLeaderless(false);
    await waitFor('the critical checks applied with a leader', () => (harness.instances('web') ?? []).every((i) => i.status === 'critical'), 3_000);
    await waitFor('back to default reads', () => Object.values((harness.provider.status().detail as unknown as WatchesDetail).watches).every((w) => !w.staleFallback));
    assert.ok(harness.log.lines.some((l) => l['watch'] === 'catalog' && /has a leader again/.test(String(l['msg']))));
    assert.equal(await gauge(harness, 'switchyard_consul_stale_fallback'), 0);
  });

  it('leaderless, streaming backend: a stale-fallback service read that would empty a pool is still refused', async () => {
    server.setStreaming(true);
    try {
      const harness = await synced();
      server.setLeaderless(true);
      server.dropConnections();
      await waitFor('the health state on the stale fallback', () => (harness.provider.status().detail as unknown as WatchesDetail).watches['health']?.staleFallback === true, 3_000);
      server.setCheck('service:web-1', 'critical');
      server.setCheck('service:web-2', 'critical');
      await waitFor('the emptying answer refused', async () => (await harness.errors('health', 'no_leader')) >= 1, 3_000);
      assert.ok((harness.instances('web') ?? []).some((i) => i.status === 'passing'), 'the pool was not emptied');
    } finally {
      server.setStreaming(false);
      server.setLeaderless(false);
    }
  });

  it('leaderless cluster with --consul-consistency consistent: no fallback; reads fail, the data is kept', async () => {
    const harness = await synced({ consistency: 'consistent' });
    const staleBefore = server.requests.filter((r) => r.query['stale'] !== undefined).length;
    server.setLeaderless(true);
    server.dropConnections();
    await waitFor('a 500', async () => (await harness.errors('catalog', '500')) >= 1);
    assert.match(harness.provider.status().lastError ?? '', /No cluster leader/);
    assert.equal(harness.instances('web')?.length, 2);
    assert.equal(server.requests.filter((r) => r.query['stale'] !== undefined).length, staleBefore, 'never ?stale');
    server.setLeaderless(false);
  });

  it('an answer emptied by ACL filtering is a permissions problem: reported, not applied', async () => {
    await server.restart({ keepData: false });
    const acl = await ConsulTestServer.start({ aclToken: 'root-secret', jitter: false });
    try {
      acl.addToken('reader-secret-7f3a', { key: 'read', service: 'read', node: 'read' });
      acl.registerService(instance('web', 'web-1', 9001));
      acl.registerService(instance('web', 'web-2', 9002));
      const harness = new ProviderHarness(acl.url, { token: 'reader-secret-7f3a' });
      h = harness;
      await harness.start(['web']);
      await harness.waitSynced();
      // The token loses node:read: health answers come back 200, empty, filtered.
      acl.addToken('reader-secret-7f3a', { key: 'read', service: 'read' });
      acl.dropConnections();
      await waitFor('the filtered answer to be refused', async () => (await harness.errors('health', 'acl_filtered')) >= 1);
      assert.equal(harness.instances('web')?.length, 2, 'live endpoints kept');
      const line = harness.log.lines.find((l) => l['reason'] === 'acl_filtered');
      assert.equal(line?.['code'], 'SY_CONSUL_ACL');
      assert.match(String(line?.['msg']), /Consul hid every result \(X-Consul-Results-Filtered-By-ACLs: true\): the ACL token in CONSUL_HTTP_TOKEN lacks a policy granting read/);
      acl.addToken('reader-secret-7f3a', { key: 'read', service: 'read', node: 'read' });
      acl.setCheck('service:web-1', 'warning');
      await waitFor('recovery once the policy is back', () => harness.statuses('web')?.['web-1'] === 'warning', 3_000);
      assert.ok(!harness.log.text().includes('reader-secret-7f3a'), 'the token is in no log line');
      await harness.stop();
      h = undefined;
    } finally {
      await acl.stop();
    }
  });

  it('ACL token: sent as X-Consul-Token, never logged; a wrong or missing token is a clear error and not synced', async () => {
    const secret = 'b1946ac9-2f2c-4c55-9f0e-token-SECRET';
    const acl = await ConsulTestServer.start({ aclToken: secret, jitter: false });
    try {
      acl.registerService(instance('web', 'web-1', 9001));
      acl.kvPut('switchyard/routes/web/weights', '{"web":1}');
      const good = new ProviderHarness(acl.url, { token: secret });
      h = good;
      await good.start(['web']);
      await good.waitSynced();
      assert.equal(good.instances('web')?.length, 1);
      assert.ok(acl.requests.length >= 3);
      for (const r of acl.requests) assert.equal(r.headers['x-consul-token'], secret);
      for (const r of acl.requests) assert.equal(r.query['token'], undefined, 'never ?token=');
      await good.provider.reload();
      await good.stop();

      const wrong = new ProviderHarness(acl.url, { token: `${secret}-revoked` });
      h = wrong;
      await wrong.start(['web']);
      await waitFor('403s', async () => (await wrong.errors('catalog', '403')) >= 1);
      const status = wrong.provider.status();
      assert.equal(status.synced, false);
      assert.match(status.lastError ?? '', /Consul answered 403 "ACL not found": the ACL token in CONSUL_HTTP_TOKEN is unknown to Consul/);
      const line = wrong.log.lines.find((l) => l['level'] === 50);
      assert.equal(line?.['code'], 'SY_CONSUL_ACL');
      await wrong.stop();

      const none = new ProviderHarness(acl.url);
      h = none;
      await none.start(['web']);
      await waitFor('the refused empty catalog', async () => (await none.errors('catalog', 'acl_filtered')) >= 1);
      assert.equal(none.provider.status().synced, false);
      assert.match(none.provider.status().lastError ?? '', /no ACL token is configured \(set CONSUL_HTTP_TOKEN/);
      await none.stop();
      h = undefined;

      for (const harness of [good, wrong, none]) {
        assert.ok(harness.log.lines.length > 0);
        assert.ok(!harness.log.text().includes(secret), 'the token is in no log line');
        assert.ok(!JSON.stringify(harness.provider.status()).includes(secret), 'nor in the status');
      }
    } finally {
      await acl.stop();
    }
  });
});
