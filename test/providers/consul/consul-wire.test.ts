/**
 * The Consul provider against Consul's real wire behaviour (the test server's defaults, as a
 * Consul >= 1.10 agent answers): streaming health answers whose X-Consul-KnownLeader is always
 * false, X-Consul-Results-Filtered-By-ACLs masked for anonymous requests and absent from streaming
 * answers, and the connection settings api/api.go reads (unix socket, ns, partition, basic auth).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ConsulTestServer } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';
import { instance, ProviderHarness, requestsTo } from './harness.js';

interface AclDetail { aclEnabled: boolean | null; aclWarning: string | null }

describe('consul provider: real Consul wire behaviour', () => {
  let server: ConsulTestServer | undefined;
  let h: ProviderHarness | undefined;

  afterEach(async () => {
    await h?.stop();
    h = undefined;
    await server?.stop();
    server = undefined;
  });

  async function synced(opts: ConstructorParameters<typeof ProviderHarness>[1] = {}): Promise<{ s: ConsulTestServer; harness: ProviderHarness }> {
    const s = await ConsulTestServer.start({ jitter: false });
    server = s;
    s.registerService(instance('web', 'web-1', 9001));
    const harness = new ProviderHarness(s.url, opts);
    h = harness;
    await harness.start(['web']);
    await harness.waitSynced();
    await s.waitForBlocked(4);
    return { s, harness };
  }

  // Each way the last instance leaves: the pool must empty (503 SY_NO_ENDPOINT upstream of here),
  // although every blocking health/service answer (streaming) says X-Consul-KnownLeader: false.
  // Service reads are index 0 now: Consul answers them by a plain RPC, whose header is a fact.
  const leaving: [string, (s: ConsulTestServer) => void][] = [
    ['its check fails', (s) => s.setCheck('service:web-1', 'critical')],
    ['it goes into maintenance', (s) => s.setServiceMaintenance('web-1', true, 'deploy')],
    ['it is deregistered', (s) => s.deregisterService('web-1')],
  ];
  for (const [how, act] of leaving) {
    it(`streaming on: the last instance leaves when ${how}, with a leader`, async () => {
      const { s, harness } = await synced();
      const emitted = harness.updates.length;
      act(s);
      await waitFor('the pool emptied', () => harness.updates.length > emitted && !(harness.instances('web') ?? []).some((i) => i.status === 'passing'), 3_000);
      const reads = requestsTo(s, '/v1/health/service/web');
      assert.ok(reads.length >= 2, 'the change came through a second read');
      assert.ok(reads.every((r) => r.query['index'] === undefined), 'never a blocking (streaming) read');
      assert.equal(await harness.errors('health', 'no_leader'), 0, 'not refused as leaderless');
      assert.equal(harness.provider.status().healthy, true);
    });
  }

  it('a real leaderless cluster is still detected (X-Consul-KnownLeader: false on a plain read)', async () => {
    const { s, harness } = await synced();
    s.setKnownLeader(false);
    s.setCheck('service:web-1', 'critical');
    await waitFor('the refused answer', async () => (await harness.errors('health', 'no_leader')) >= 1, 3_000);
    assert.equal(harness.statuses('web')?.['web-1'], 'passing', 'kept');
    s.setKnownLeader(true);
    await waitFor('applied with a leader', () => harness.statuses('web')?.['web-1'] === 'critical', 3_000);
  });

  it('a token that loses node:read: the plain read says it was filtered (X-Consul-Results-Filtered-By-ACLs), the empty answer is refused', async () => {
    const s = await ConsulTestServer.start({ aclToken: 'root', jitter: false });
    server = s;
    s.addToken('reader', { key: 'read', service: 'read', node: 'read' });
    s.registerService(instance('web', 'web-1', 9001));
    const harness = new ProviderHarness(s.url, { token: 'reader' });
    h = harness;
    await harness.start(['web']);
    await harness.waitSynced();
    await s.waitForBlocked(4);
    s.addToken('reader', { key: 'read', service: 'read' });
    // An idempotent write moves the catalog index: every wanted service is read again (plain reads).
    s.touchService('web');
    await waitFor('refused as ACL filtering', async () => (await harness.errors('health', 'acl_filtered')) >= 1, 3_000);
    assert.equal(harness.instances('web')?.length, 1, 'the live endpoint is kept');
    assert.match(harness.provider.status().lastError ?? '', /X-Consul-Results-Filtered-By-ACLs/);
  });

  it('ACLs on, no token: the anonymous empty catalog is refused, named in one log line and in the status', async () => {
    const s = await ConsulTestServer.start({ aclToken: 'root', jitter: false });
    server = s;
    s.registerService(instance('web', 'web-1', 9001));
    const harness = new ProviderHarness(s.url);
    h = harness;
    await harness.start(['web']);
    await waitFor('the refused empty catalog', async () => (await harness.errors('catalog', 'acl_filtered')) >= 1);
    const status = harness.provider.status();
    assert.equal(status.synced, false, 'not ready');
    assert.match(status.lastError ?? '', /has ACLs enabled, and no ACL token is configured \(set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE\)/);
    const detail = status.detail as unknown as AclDetail;
    assert.equal(detail.aclEnabled, true);
    assert.match(detail.aclWarning ?? '', /CONSUL_HTTP_TOKEN/);
    await waitFor('a few retries', async () => (await harness.errors('catalog', 'acl_filtered')) >= 3, 5_000);
    const lines = harness.log.lines.filter((l) => Number(l['level']) >= 40 && /CONSUL_HTTP_TOKEN/.test(String(l['msg'])) && l['watch'] === 'catalog');
    assert.equal(lines.length, 1, 'one log line, not one per retry');
    assert.equal(lines[0]?.['code'], 'SY_CONSUL_ACL');
    assert.equal(requestsTo(s, '/v1/acl/token/self').length, 1, 'asked once');
    // Once the anonymous token may read, the answer is no longer empty and is applied.
    s.grantAnonymousRead();
    await harness.waitSynced();
    assert.equal(harness.instances('web')?.length, 1);
  });

  // The tester's case: ACLs on, the anonymous token may read everything (HashiCorp's suggested
  // policy for DNS), no token. Deregistering every service leaves the anonymous catalog at
  // {"consul": []}: a real deregistration, which must apply (503 SY_NO_ENDPOINT upstream of here),
  // not be refused as ACL filtering with the deregistered instances kept live.
  it('ACLs on, anonymous may read everything, no token: deregistering every instance empties the pool and the catalog', async () => {
    const s = await ConsulTestServer.start({ aclToken: 'root', jitter: false });
    server = s;
    s.grantAnonymousRead();
    s.registerService(instance('users', 'users-1', 9001));
    s.registerService(instance('users', 'users-3', 9003));
    const harness = new ProviderHarness(s.url);
    h = harness;
    await harness.start(['users']);
    await harness.waitSynced();
    assert.equal(harness.instances('users')?.length, 2);
    await s.waitForBlocked(4);
    s.deregisterService('users-1');
    s.deregisterService('users-3');
    await waitFor('the pool and the catalog emptied', () => harness.instances('users')?.length === 0 && harness.discovery?.catalog['users'] === undefined, 10_000);
    assert.equal(await harness.errors(undefined, 'acl_filtered'), 0, 'nothing refused as ACL filtering');
    const status = harness.provider.status();
    assert.equal(status.synced, true, 'still ready');
    const detail = status.detail as unknown as AclDetail;
    assert.equal(detail.aclEnabled, true);
    assert.match(detail.aclWarning ?? '', /CONSUL_HTTP_TOKEN/);
    // Applied, but said once: without a token Consul would not admit to hiding anything.
    const warnings = harness.log.lines.filter((l) => Number(l['level']) >= 40 && /CONSUL_HTTP_TOKEN/.test(String(l['msg'])));
    assert.equal(warnings.length, 1, 'one warning line');
    assert.equal(warnings[0]?.['code'], 'SY_CONSUL_ACL');
    // A service registered again is followed as before.
    s.registerService(instance('users', 'users-2', 9002));
    await waitFor('users-2 routed', () => harness.instances('users')?.length === 1, 10_000);
  });

  // Consul's own `consul` service is filtered like any other (agent/consul/acl.go aclFilter
  // allowService: ServiceRead, no exception): an anonymous catalog that lists it proves the
  // anonymous token reads services; a deny-all one lists nothing at all.
  it('ACLs on, anonymous may read everything, no token, nothing registered: the catalog lists only "consul" and is applied (ready)', async () => {
    const s = await ConsulTestServer.start({ aclToken: 'root', jitter: false });
    server = s;
    s.grantAnonymousRead();
    const harness = new ProviderHarness(s.url);
    h = harness;
    await harness.start(['users']);
    await harness.waitSynced();
    assert.deepEqual(harness.discovery?.catalog, {});
    assert.equal(harness.instances('users')?.length, 0);
    assert.equal(await harness.errors(undefined, 'acl_filtered'), 0);
    assert.equal((harness.provider.status().detail as unknown as AclDetail).aclEnabled, true);
  });

  it('ACLs on, anonymous may read services but not nodes, no token: the catalog applies, the service it lists with no instance is refused (not ready)', async () => {
    const s = await ConsulTestServer.start({ aclToken: 'root', jitter: false });
    server = s;
    // Health answers need node:read too (agent/consul/acl.go filterCheckServiceNodes); the catalog
    // list only service:read (filterServices): the catalog shows `web`, its health shows nothing.
    s.setAnonymousPolicy({ key: 'read', service: 'read' });
    s.registerService(instance('web', 'web-1', 9001));
    const harness = new ProviderHarness(s.url);
    h = harness;
    await harness.start(['web']);
    await waitFor('the refused empty service', async () => (await harness.errors('health', 'acl_filtered')) >= 1);
    await waitFor('the catalog applied', () => harness.discovery?.catalog['web'] !== undefined);
    assert.deepEqual(harness.discovery?.catalog, { web: [] });
    const status = harness.provider.status();
    assert.equal(status.synced, false, 'not ready');
    assert.match(status.lastError ?? '', /service "web": .*no ACL token is configured \(set CONSUL_HTTP_TOKEN/);
    s.grantAnonymousRead();
    await harness.waitSynced();
    assert.equal(harness.instances('web')?.length, 1);
  });

  it('ACLs off, no token: an empty catalog is simply empty (synced, ACLs reported off)', async () => {
    const s = await ConsulTestServer.start({ jitter: false });
    server = s;
    const harness = new ProviderHarness(s.url);
    h = harness;
    await harness.start([]);
    await harness.waitSynced();
    assert.equal((harness.provider.status().detail as unknown as AclDetail).aclEnabled, false);
    assert.equal(await harness.errors(undefined, 'acl_filtered'), 0);
  });

  it('CONSUL_NAMESPACE and CONSUL_PARTITION go as ?ns= and ?partition= on every read', async () => {
    const { s } = await synced({ namespace: 'team-a', partition: 'part-1' });
    s.setCheck('service:web-1', 'critical');
    await waitFor('web read again', () => requestsTo(s, '/v1/health/service/web').length >= 2);
    const reads = s.requests.filter((r) => r.method === 'GET');
    assert.ok(reads.length >= 3);
    for (const r of reads) {
      assert.equal(r.query['ns'], 'team-a', `${r.path}?${r.rawQuery}`);
      assert.equal(r.query['partition'], 'part-1', `${r.path}?${r.rawQuery}`);
    }
  });

  it('CONSUL_HTTP_AUTH is sent as basic auth', async () => {
    const { s, harness } = await synced({ httpAuth: 'user:p@ss' });
    for (const r of s.requests) assert.equal(r.headers.authorization, `Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    assert.ok(!JSON.stringify(harness.provider.status()).includes('p@ss'), 'never in the status');
    assert.ok(!harness.log.text().includes('p@ss'), 'never logged');
  });

  it('unix:// agent address: watches through the socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-consul-unix-'));
    const socketPath = join(dir, 'consul.sock');
    try {
      const s = await ConsulTestServer.start({ socketPath, jitter: false });
      server = s;
      s.registerService(instance('web', 'web-1', 9001));
      const harness = new ProviderHarness(`unix://${socketPath}`, { socketPath });
      h = harness;
      await harness.start(['web']);
      await harness.waitSynced();
      s.setCheck('service:web-1', 'warning');
      await waitFor('the change through the socket', () => harness.statuses('web')?.['web-1'] === 'warning', 3_000);
      assert.match(JSON.stringify(harness.provider.status().detail), /unix:\/\//);
    } finally {
      await h?.stop();
      h = undefined;
      await server?.stop();
      server = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
