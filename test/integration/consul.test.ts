/**
 * Consul end to end, through the running proxy with real upstream servers: Switchyard started
 * in-process with `--consul`, the Consul API test server driven over its HTTP API (as an operator
 * or an orchestrator would), and every assertion made on what clients of the proxy see.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch, request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { captureLogger } from '../support/capture-logger.js';
import { ConsulTestServer } from '../support/consul/server.js';
import { startConsulSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

const TEMPLATES = `routes:
  - name: web
    match: { path: /web }
    to: [ { service: web } ]
  - name: api
    match: { path: /api }
    to:
      - { service: api, tag: v1, weight: 1 }
      - { service: api, tag: v2, weight: 1 }
  - name: "{{service}}"
    each: { tag: public }
    match: { host: "{{service}}.example" }
    to: [ { service: "{{service}}" } ]
`;

/**
 * Propagation deadline for one change (typically ~10 ms), generous for a loaded 2-core CI machine.
 * Where it is also asserted as a bound, it rules out a change caught only when the next blocking
 * query returns at its wait: Switchyard runs with a blocking wait (CONSUL_WAIT) much longer than it.
 */
const DEADLINE_MS = 10_000;
/** --consul-wait: 12 times DEADLINE_MS, so a watch that missed the wake-up cannot meet a deadline. */
const CONSUL_WAIT = '120s';

describe('consul end to end, through the proxy', () => {
  let consul: ConsulTestServer;
  let workspace: Workspace;
  let app: Switchyard;
  const log = captureLogger('debug');
  const upstreams = new Map<string, TestUpstream>();
  const agent = new Agent({ connections: 4 });

  async function consulPut(path: string, body?: unknown, server = consul, token?: string): Promise<void> {
    const res = await fetch(`${server.url}${path}`, {
      method: 'PUT',
      headers: token === undefined ? {} : { 'x-consul-token': token },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    assert.equal(res.status, 200, `PUT ${path}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer().catch(() => undefined);
  }

  async function register(service: string, id: string, extra: { tags?: string[]; weights?: { Passing: number; Warning: number } } = {}, server = consul, token?: string): Promise<TestUpstream> {
    let upstream = upstreams.get(id);
    if (upstream === undefined) {
      upstream = await startUpstream({ name: id });
      upstreams.set(id, upstream);
    }
    await consulPut('/v1/agent/service/register', {
      ID: id, Name: service, Address: '127.0.0.1', Port: upstream.port, Tags: extra.tags ?? [],
      ...(extra.weights === undefined ? {} : { Weights: extra.weights }),
      Check: { TTL: '30s', Status: 'passing' },
    }, server, token);
    return upstream;
  }

  /** One request through the proxy: status and the upstream that answered. */
  async function hit(path: string, host?: string, target = app): Promise<{ status: number; upstream: string | undefined; url: string | undefined }> {
    const res = await request(`http://127.0.0.1:${target.proxyAddress.port}${path}`, {
      dispatcher: agent,
      headers: host === undefined ? {} : { host },
    });
    const text = await res.body.text();
    const upstream = res.headers['x-upstream'];
    let url: string | undefined;
    if (res.statusCode === 200) url = (JSON.parse(text) as { url?: string }).url;
    return { status: res.statusCode, upstream: typeof upstream === 'string' ? upstream : undefined, url };
  }

  /** `n` sequential requests; upstream name (or `status:<code>`) → count. */
  async function split(path: string, n: number, host?: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const { status, upstream } = await hit(path, host);
      const key = status === 200 && upstream !== undefined ? upstream : `status:${status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  /** Destination key → effective weight of a route in the live table. */
  function weights(route: string): Record<string, number> {
    const r = app.store.current?.routes.find((x) => x.name === route);
    return Object.fromEntries((r?.destinations ?? []).map((d) => [d.key, d.weight]));
  }

  function activeIds(route: string): string[] {
    const r = app.store.current?.routes.find((x) => x.name === route);
    return (r?.active ?? []).flatMap((d) => d.active.map((e) => `${e.instanceId}=${e.weight}`)).sort();
  }

  async function configErrors(kind: string): Promise<number> {
    const metric = app.metrics.registry.getSingleMetric('switchyard_config_errors_total');
    const values = metric === undefined ? [] : (await metric.get()).values;
    return values.filter((v) => v.labels['kind'] === kind).reduce((s, v) => s + v.value, 0);
  }

  interface ConsulStatus { healthy: boolean; synced: boolean; lastError?: string; detail?: { lastSyncAgeMs?: number; watches?: Record<string, { index: number }> } }

  /** The consul provider's status, as the admin API shows it. */
  async function consulStatus(target = app): Promise<ConsulStatus> {
    const res = await fetch(`http://127.0.0.1:${target.adminAddress.port}/api/config`);
    const config = await res.json() as { providers: (ConsulStatus & { name: string })[] };
    const provider = config.providers.find((p) => p.name === 'consul');
    assert.ok(provider !== undefined, 'a consul provider in /api/config');
    return provider;
  }

  before(async () => {
    consul = await ConsulTestServer.start();
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', TEMPLATES);
    app = await startConsulSwitchyard(workspace, consul.address, { logger: log.logger, extraArgs: ['--consul-wait', CONSUL_WAIT] });
  });

  after(async () => {
    await app?.stop();
    await consul?.stop();
    await agent.close();
    for (const upstream of upstreams.values()) await upstream.close();
    await workspace?.remove();
  });

  it('starts ready with an empty Consul: routes exist, no endpoint (503)', async () => {
    assert.equal(app.watcher.ready, true);
    assert.equal((await hit('/web')).status, 503);
    assert.equal((await hit('/nothing-here')).status, 404);
  });

  it('register 3 instances → routed round robin', async () => {
    for (const id of ['web-1', 'web-2', 'web-3']) await register('web', id, { weights: { Passing: 3, Warning: 1 } });
    await waitFor('3 web endpoints', () => activeIds('web').length === 3, DEADLINE_MS);
    assert.deepEqual(await split('/web', 90), { 'web-1': 30, 'web-2': 30, 'web-3': 30 });
  });

  it('fail a check → the instance is out within the deadline', async () => {
    const t0 = performance.now();
    await consulPut('/v1/agent/check/fail/service:web-2');
    await waitFor('web-2 out of rotation', async () => !Object.hasOwn(await split('/web', 6), 'web-2'), DEADLINE_MS, 1);
    const took = performance.now() - t0;
    // The watch was woken by the write, not by the end of its 120 s wait.
    assert.ok(took < DEADLINE_MS, `took ${took} ms`);
    assert.deepEqual(await split('/web', 60), { 'web-1': 30, 'web-3': 30 });
  });

  it('warning → its weight drops (Weights.Warning), the split follows', async () => {
    await consulPut('/v1/agent/check/pass/service:web-2');
    await consulPut('/v1/agent/check/warn/service:web-1');
    await waitFor('web-1 at its warning weight', () => activeIds('web').join() === 'web-1=1,web-2=3,web-3=3', DEADLINE_MS);
    assert.deepEqual(await split('/web', 70), { 'web-1': 10, 'web-2': 30, 'web-3': 30 });
  });

  it('maintenance → out; off again → back', async () => {
    await consulPut('/v1/agent/service/maintenance/web-3?enable=true&reason=deploy');
    await waitFor('web-3 in maintenance', () => activeIds('web').join() === 'web-1=1,web-2=3', DEADLINE_MS);
    assert.deepEqual(await split('/web', 40), { 'web-1': 10, 'web-2': 30 });
    await consulPut('/v1/agent/service/maintenance/web-3?enable=false');
    await consulPut('/v1/agent/check/pass/service:web-1');
    await waitFor('all back', () => activeIds('web').join() === 'web-1=3,web-2=3,web-3=3', DEADLINE_MS);
  });

  it('KV route weights change → the split follows exactly', async () => {
    await register('api', 'api-v1', { tags: ['v1'] });
    await register('api', 'api-v2', { tags: ['v2'] });
    await waitFor('both api pools', () => weights('api')['api:v1'] === 1 && weights('api')['api:v2'] === 1, DEADLINE_MS);
    assert.deepEqual(await split('/api', 400), { 'api-v1': 200, 'api-v2': 200 });

    await consulPut('/v1/kv/switchyard/routes/api/weights', '{"api:v1":3,"api:v2":1}');
    await waitFor('3:1 live', () => weights('api')['api:v1'] === 3, DEADLINE_MS);
    assert.deepEqual(await split('/api', 400), { 'api-v1': 300, 'api-v2': 100 });

    await consulPut('/v1/kv/switchyard/routes/api/weights', '{"api:v1":90,"api:v2":10}');
    await waitFor('90:10 live', () => weights('api')['api:v1'] === 90, DEADLINE_MS);
    assert.deepEqual(await split('/api', 400), { 'api-v1': 360, 'api-v2': 40 });
  });

  it('KV instance weight 0 drains an instance', async () => {
    await consulPut('/v1/kv/switchyard/services/web/weights', '{"web-2":0}');
    await waitFor('web-2 drained', () => activeIds('web').join() === 'web-1=3,web-3=3', DEADLINE_MS);
    assert.deepEqual(await split('/web', 20), { 'web-1': 10, 'web-3': 10 });
    await fetch(`${consul.url}/v1/kv/switchyard/services/web/weights`, { method: 'DELETE' }).then((r) => r.arrayBuffer());
    await waitFor('web-2 back', () => activeIds('web').length === 3, DEADLINE_MS);
  });

  it('invalid JSON in KV → that key ignored (configured weights apply), a metric counted', async () => {
    const before = await configErrors('kv');
    await consulPut('/v1/kv/switchyard/routes/api/weights', '{"api:v1": 3, oops');
    await waitFor('the kv problem counted', async () => (await configErrors('kv')) === before + 1, DEADLINE_MS);
    assert.deepEqual(weights('api'), { 'api:v1': 1, 'api:v2': 1 }, 'the bad key is ignored, the template weights apply');
    assert.deepEqual(await split('/api', 40), { 'api-v1': 20, 'api-v2': 20 });
    assert.ok(log.lines.some((l) => l['kind'] === 'kv' && l['source'] === 'routes/api/weights'));
  });

  it('a new service with a `public` tag → its `each` route appears', async () => {
    assert.equal((await hit('/', 'shop.example')).status, 404);
    await register('shop', 'shop-1', { tags: ['public'] });
    await waitFor('the shop route to serve', async () => (await hit('/', 'shop.example')).upstream === 'shop-1', DEADLINE_MS);
  });

  it('a `urlprefix-` tag → its route, with strip', async () => {
    await register('blog', 'blog-1', { tags: ['urlprefix-/blog strip=/blog'] });
    await waitFor('the blog route to serve', async () => (await hit('/blog/posts/1')).upstream === 'blog-1', DEADLINE_MS);
    assert.equal((await hit('/blog/posts/1')).url, '/posts/1');
  });

  // Coalescing, asserted by counts only. A blocking health read returns once per batch of writes
  // that reached Consul while it was re-arming; each answer is at most one rebuild.
  it('100 instances registering at once: every rebuild follows an answer, and answers carry several registrations', async (t) => {
    const target = await register('burst', 'burst-0', { tags: ['public'] });
    await waitFor('the burst route', async () => (await hit('/', 'burst.example')).status === 200, DEADLINE_MS);
    const before = app.store.version;
    const firstSeq = consul.requestCount;
    await Promise.all(Array.from({ length: 99 }, (_, i) => consulPut('/v1/agent/service/register', {
      ID: `burst-${i + 1}`, Name: 'burst', Address: '127.0.0.1', Port: target.port, Tags: ['public'],
      Check: { TTL: '30s', Status: 'passing' },
    })));
    await waitFor('100 burst endpoints', () => activeIds('burst').length === 100, DEADLINE_MS);
    const rebuilds = app.store.version - before;
    // Answers to the health watch of `burst` sent since the burst began (each a new index).
    const answers = consul.requests.filter((r) => r.seq > firstSeq && r.path === '/v1/health/service/burst' && r.status === 200).length;
    t.diagnostic(`${rebuilds} table rebuilds, ${answers} health answers for 99 registrations`);
    assert.ok(rebuilds >= 1);
    assert.ok(rebuilds <= answers, `${rebuilds} rebuilds for ${answers} answers: a rebuild without an answer`);
    // Fails only if every registration came back alone, i.e. nothing was coalesced.
    assert.ok(answers < 99, `${answers} answers for 99 registrations`);
    await Promise.all(Array.from({ length: 100 }, (_, i) => consulPut(`/v1/agent/service/deregister/burst-${i}`)));
    await waitFor('the burst route gone', async () => (await hit('/', 'burst.example')).status === 404, DEADLINE_MS);
  });

  it('a burst that lands while the watches are parked is one answer and one rebuild', async () => {
    const target = await register('burst2', 'burst2-0', { tags: ['public'] });
    await waitFor('the burst2 route', async () => (await hit('/', 'burst2.example')).status === 200, DEADLINE_MS);
    // The health of every service is watched through one blocking query on the health state.
    const parked = (path: string): boolean => consul.requests.some((r) => r.path === path && r.blocked === true && r.status === undefined);
    await waitFor('the health state and catalog watches parked', () => parked('/v1/health/state/any') && parked('/v1/catalog/services'));
    const before = app.store.version;
    // Synchronous writes: the parked read wakes once, after the last one (no timing involved).
    for (let i = 1; i < 100; i += 1) consul.registerService({ ID: `burst2-${i}`, Name: 'burst2', Address: '127.0.0.1', Port: target.port, Tags: ['public'], Check: { TTL: '30s', Status: 'passing' } });
    await waitFor('100 burst2 endpoints', () => activeIds('burst2').length === 100, DEADLINE_MS);
    assert.equal(app.store.version - before, 1, 'one rebuild for the whole burst');
    for (let i = 0; i < 100; i += 1) consul.deregisterService(`burst2-${i}`);
    await waitFor('the burst2 route gone', async () => (await hit('/', 'burst2.example')).status === 404, DEADLINE_MS);
  });

  // Consul >= 1.10 answers every blocking health/service read from its streaming view, with
  // X-Consul-KnownLeader: false whatever the cluster's state (the test server does the same).
  // Switchyard reads services without blocking (a plain RPC, whose header is a fact): the last
  // instance leaving must empty the pool.
  it('the last instance fails its check, then goes into maintenance → 503 SY_NO_ENDPOINT each time', async () => {
    await register('solo', 'solo-1', { tags: ['urlprefix-/solo'] });
    await waitFor('solo routed', async () => (await hit('/solo')).upstream === 'solo-1', DEADLINE_MS);
    const noEndpoint = async (): Promise<boolean> => {
      const res = await request(`http://127.0.0.1:${app.proxyAddress.port}/solo`, { dispatcher: agent });
      const text = await res.body.text();
      return res.statusCode === 503 && (JSON.parse(text) as { error?: string }).error === 'SY_NO_ENDPOINT';
    };
    await consulPut('/v1/agent/check/fail/service:solo-1');
    await waitFor('503 SY_NO_ENDPOINT after the check failed', noEndpoint, DEADLINE_MS);
    const soloReads = consul.requests.filter((r) => r.path === '/v1/health/service/solo');
    assert.ok(soloReads.length >= 2 && soloReads.every((r) => r.query['index'] === undefined), 'followed by non-blocking (never streaming) reads');
    await consulPut('/v1/agent/check/pass/service:solo-1');
    await waitFor('solo back', async () => (await hit('/solo')).upstream === 'solo-1', DEADLINE_MS);
    await consulPut('/v1/agent/service/maintenance/solo-1?enable=true&reason=deploy');
    await waitFor('503 SY_NO_ENDPOINT in maintenance', noEndpoint, DEADLINE_MS);
    await consulPut('/v1/agent/service/maintenance/solo-1?enable=false');
    await waitFor('solo back after maintenance', async () => (await hit('/solo')).upstream === 'solo-1', DEADLINE_MS);
  });

  it('tag route weights under the documented key form, which Consul 1.21.5+ accepts (the old ":" form is refused)', async () => {
    const refused = await fetch(`${consul.url}/v1/kv/switchyard/routes/tag:solo:/solo/weights`, { method: 'PUT', body: '{"solo:urlprefix-/solo":0}' });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /key contains invalid character ':'/);
    await consulPut('/v1/kv/switchyard/routes/tag,3asolo,3a/solo/weights', '{"solo:urlprefix-/solo":0}');
    await waitFor('the weight applied', () => weights('tag:solo:/solo')['solo:urlprefix-/solo'] === 0, DEADLINE_MS);
    assert.equal((await hit('/solo')).status, 503);
    const deleted = await fetch(`${consul.url}/v1/kv/switchyard/routes/tag,3asolo,3a/solo/weights`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    await deleted.arrayBuffer();
    await waitFor('the weight back to 1', () => weights('tag:solo:/solo')['solo:urlprefix-/solo'] === 1, DEADLINE_MS).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(weights('tag:solo:/solo'))} ${JSON.stringify(app.store.current?.routes.find((x) => x.name === 'tag:solo:/solo'))}`);
    });
    await consulPut('/v1/agent/service/deregister/solo-1');
  });

  it('deregister all instances → 503', async () => {
    for (const id of ['web-1', 'web-2', 'web-3']) await consulPut(`/v1/agent/service/deregister/${id}`);
    await waitFor('503 on /web', async () => (await hit('/web')).status === 503, DEADLINE_MS);
    assert.deepEqual(await split('/web', 5), { 'status:503': 5 });
    assert.equal((await hit('/api')).status, 200, 'other routes keep serving');
  });

  it('Consul restarts with the index reset → the watches recover and follow changes', async () => {
    const before = (await consulStatus()).detail?.watches ?? {};
    await consul.restart({ resetIndex: true, downMs: 100 });
    await register('web', 'web-1');
    await waitFor('web-1 routed after the restart', async () => (await hit('/web')).upstream === 'web-1', DEADLINE_MS * 2);
    await consulPut('/v1/kv/switchyard/routes/api/weights', '{"api:v1":1,"api:v2":3}');
    await waitFor('1:3 live after the restart', () => weights('api')['api:v2'] === 3, DEADLINE_MS);
    assert.deepEqual(await split('/api', 400), { 'api-v1': 100, 'api-v2': 300 });
    const afterRestart = (await consulStatus()).detail?.watches ?? {};
    for (const watch of ['catalog', 'kv', 'health:web']) {
      assert.ok((afterRestart[watch]?.index ?? Infinity) < (before[watch]?.index ?? 0), `${watch}: the reset (lower) index was taken`);
    }
    assert.equal((await consulStatus()).healthy, true);
  });

  it('Consul down → the last good table serves; /readyz and /api/config say so; it recovers by itself', async () => {
    const admin = `http://127.0.0.1:${app.adminAddress.port}`;
    const restarting = consul.restart({ downMs: 1_500 });
    await waitFor('the provider to notice', async () => !(await consulStatus()).healthy, DEADLINE_MS);
    assert.deepEqual(await split('/api', 40), { 'api-v1': 10, 'api-v2': 30 }, 'the last good table serves');
    assert.equal((await hit('/web')).upstream, 'web-1');
    const provider = await consulStatus();
    assert.equal(provider.healthy, false);
    assert.equal(provider.synced, true, 'still synced: the data is the last good one');
    assert.match(provider.lastError ?? '', /Consul at http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(typeof provider.detail?.lastSyncAgeMs, 'number');
    const readyz = await fetch(`${admin}/readyz`);
    assert.equal(readyz.status, 200, 'ready: serving the last good table');
    assert.deepEqual(await readyz.json(), { status: 'ready', lifecycle: 'serving' }, 'readiness only: the sync age is in /api/config');
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /^switchyard_consul_up 0$/m);
    assert.match(metrics, /^switchyard_consul_errors_total\{watch="catalog",code="(unreachable|reset)"\} \d+$/m);
    await restarting;
    await waitFor('recovered', async () => (await consulStatus()).healthy, 10_000);
    await consulPut('/v1/agent/check/fail/service:web-1');
    await waitFor('a change after the outage', async () => (await hit('/web')).status === 503, DEADLINE_MS);
    assert.match(await (await fetch(`${admin}/metrics`)).text(), /^switchyard_consul_up 1$/m);
  });

  it('ACL token required: works with it; a clear error and not ready without it; the token is never logged', async () => {
    const secret = 'e2e-acl-secret-5b7d3c0e';
    const acl = await ConsulTestServer.start({ aclToken: secret });
    const withLog = captureLogger('debug');
    const withoutLog = captureLogger('debug');
    const wrongLog = captureLogger('debug');
    const started: Switchyard[] = [];
    try {
      await register('web', 'acl-web-1', {}, acl, secret);
      const withToken = await startConsulSwitchyard(workspace, acl.address, { env: { CONSUL_HTTP_TOKEN: secret }, logger: withLog.logger });
      started.push(withToken);
      await waitFor('routed with the token', async () => (await hit('/web', undefined, withToken)).upstream === 'acl-web-1', DEADLINE_MS);
      assert.ok(acl.requests.some((r) => r.headers['x-consul-token'] === secret));

      const withoutToken = await startConsulSwitchyard(workspace, acl.address, { logger: withoutLog.logger, waitReady: false });
      started.push(withoutToken);
      await waitFor('the ACL error', async () => (await consulStatus(withoutToken)).lastError !== undefined, DEADLINE_MS);
      assert.match((await consulStatus(withoutToken)).lastError ?? '', /no ACL token is configured \(set CONSUL_HTTP_TOKEN/);
      // Anonymous requests never learn that ACLs filtered them (the flag is masked): the provider
      // asked /v1/acl/token/self, and /api/config says ACLs are on and what to set.
      const detail = (await consulStatus(withoutToken)).detail as { aclEnabled?: boolean; aclWarning?: string } | undefined;
      assert.equal(detail?.aclEnabled, true);
      assert.match(detail?.aclWarning ?? '', /set CONSUL_HTTP_TOKEN/);
      assert.ok(acl.requests.some((r) => r.path === '/v1/acl/token/self' && r.status === 403));
      const readyz = await fetch(`http://127.0.0.1:${withoutToken.adminAddress.port}/readyz`);
      assert.equal(readyz.status, 503);
      await readyz.arrayBuffer();
      // The first table is built once every provider has made its first attempt, a moment after
      // the error is recorded: until then there is no route (404); then the route has no endpoint.
      await waitFor('no data, no endpoint: 503', async () => (await hit('/web', undefined, withoutToken)).status === 503, DEADLINE_MS);
      assert.ok(withoutLog.lines.some((l) => l['code'] === 'SY_CONSUL_ACL' && l['level'] === 50));

      const wrongToken = await startConsulSwitchyard(workspace, acl.address, { env: { CONSUL_HTTP_TOKEN: `${secret}-old` }, logger: wrongLog.logger, waitReady: false });
      started.push(wrongToken);
      await waitFor('the 403', async () => /403 "ACL not found"/.test((await consulStatus(wrongToken)).lastError ?? ''), DEADLINE_MS);
      assert.equal(wrongToken.watcher.ready, false);
      const line = wrongLog.lines.find((l) => l['code'] === 'SY_CONSUL_ACL');
      assert.match(String(line?.['msg']), /the ACL token in CONSUL_HTTP_TOKEN is unknown to Consul/);
      const config = await (await fetch(`http://127.0.0.1:${wrongToken.adminAddress.port}/api/config`)).text();
      assert.ok(!config.includes(secret), 'the admin API never shows the token');
    } finally {
      for (const s of started) await s.stop();
      await acl.stop();
    }
    for (const captured of [withLog, withoutLog, wrongLog, log]) {
      assert.ok(captured.lines.length > 0);
      assert.ok(!captured.text().includes(secret), 'no token in any log line');
    }
  });

  // The tester's case (issue 7): ACLs on, the anonymous token may read everything (HashiCorp's
  // suggested policy for DNS), Switchyard without a token. Deregistering every service leaves the
  // anonymous catalog at {"consul": []}: a real deregistration, not ACL filtering. Refusing it kept
  // the deregistered instances live (200s, or 502s once they stopped) with /readyz 200.
  it('ACLs on, anonymous may read everything, no token: deregister every instance → 503 SY_NO_ENDPOINT, the pool empty', async () => {
    const secret = 'e2e-anon-read-secret-8c1f2a';
    const acl = await ConsulTestServer.start({ aclToken: secret });
    acl.grantAnonymousRead();
    const anonLog = captureLogger('debug');
    let anon: Switchyard | undefined;
    try {
      for (const id of ['users-1', 'users-3']) await register('web', id, {}, acl, secret);
      anon = await startConsulSwitchyard(workspace, acl.address, { logger: anonLog.logger, extraArgs: ['--consul-wait', CONSUL_WAIT] });
      const target = anon;
      const pool = (): string[] => (target.store.current?.routes.find((x) => x.name === 'web')?.active ?? []).flatMap((d) => d.active.map((e) => e.instanceId)).sort();
      await waitFor('both instances routed', () => pool().join() === 'users-1,users-3', DEADLINE_MS);
      assert.equal((await hit('/web', undefined, target)).status, 200);

      for (const id of ['users-1', 'users-3']) await consulPut(`/v1/agent/service/deregister/${id}`, undefined, acl, secret);
      const noEndpoint = async (): Promise<boolean> => {
        const res = await request(`http://127.0.0.1:${target.proxyAddress.port}/web`, { dispatcher: agent });
        const text = await res.body.text();
        return res.statusCode === 503 && (JSON.parse(text) as { error?: string }).error === 'SY_NO_ENDPOINT';
      };
      await waitFor('503 SY_NO_ENDPOINT after every instance was deregistered', noEndpoint, DEADLINE_MS);
      assert.deepEqual(pool(), [], 'the pool is empty');
      const readyz = await fetch(`http://127.0.0.1:${target.adminAddress.port}/readyz`);
      const readyBody = await readyz.text();
      assert.equal(readyz.status, 200, `still ready: a deregistration is not a permissions problem (${readyBody})`);
      const status = await consulStatus(target);
      assert.equal(status.lastError, undefined);
      const detail = status.detail as { aclEnabled?: boolean; aclWarning?: string } | undefined;
      assert.equal(detail?.aclEnabled, true);
      assert.match(detail?.aclWarning ?? '', /set CONSUL_HTTP_TOKEN/);
      const warnings = anonLog.lines.filter((l) => l['code'] === 'SY_CONSUL_ACL');
      assert.equal(warnings.length, 1, 'one line naming CONSUL_HTTP_TOKEN');
      assert.equal(warnings[0]?.['level'], 40);
      assert.match(String(warnings[0]?.['msg']), /CONSUL_HTTP_TOKEN/);
    } finally {
      await anon?.stop();
      await acl.stop();
    }
    assert.ok(!anonLog.text().includes(secret), 'no token in any log line');
  });
});
