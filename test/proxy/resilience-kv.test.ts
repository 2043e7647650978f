/**
 * Policies end to end through a running Switchyard: the template `policy:` block, a KV
 * `routes/<route>/policy` override hot-swapped in (services file KV, the same snapshot shape as
 * Consul's), an invalid KV value ignored with a metric while the template policy keeps serving,
 * and /api/routes showing the effective policy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { routesView } from '../../src/admin/routes-view.js';
import { DEFAULT_POLICY, type RoutePolicy } from '../../src/model/policy.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { makeTable } from './harness.js';

interface RoutesJson {
  routes: { name: string; policy: RoutePolicy; ejectedEndpoints: unknown[] }[];
  problems: { kind: string; source: string; message: string }[];
}

describe('policies through the live configuration', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let up: TestUpstream;
  let proxy = '';
  let admin = '';

  const services = (kv: string): string =>
    `services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${up.port} }\n${kv === '' ? '' : `kv:\n${kv}`}`;

  async function status(path = '/x'): Promise<number> {
    const res = await request(`${proxy}${path}`);
    await res.body.dump();
    return res.statusCode;
  }

  async function routes(): Promise<RoutesJson> {
    return await (await request(`${admin}/api/routes`)).body.json() as RoutesJson;
  }

  async function kvErrors(): Promise<number> {
    const text = await (await request(`${admin}/metrics`)).body.text();
    const line = text.split('\n').find((l) => l.startsWith('switchyard_config_errors_total{kind="kv"}'));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  }

  before(async () => {
    up = await startUpstream({ name: 'app' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', [
      'routes:',
      '  - name: app',
      '    match: { path: / }',
      '    to: [ { service: app } ]',
      '    policy:',
      '      timeouts: { headersMs: 2s, totalMs: 10s }',
      '      retries: { on: [connect-failure, reset, 503] }',
      '',
    ].join('\n'));
    await workspace.writeServices(services(''));
    app = await startTestSwitchyard(workspace);
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
    admin = `http://127.0.0.1:${app.adminAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await up?.close();
    await workspace?.remove();
  });

  it('the template block is the route policy, shown whole by /api/routes', async () => {
    const route = (await routes()).routes.find((r) => r.name === 'app')!;
    assert.deepEqual(route.policy, {
      ...DEFAULT_POLICY,
      timeouts: { ...DEFAULT_POLICY.timeouts, headersMs: 2_000, totalMs: 10_000 },
      retries: { ...DEFAULT_POLICY.retries, on: ['connect-failure', 'reset', '503'] },
    });
    assert.deepEqual(route.ejectedEndpoints, []);
  });

  it('a KV policy is merged over it and hot-swapped in; an invalid one is ignored with a metric, the template policy stays', async () => {
    for (let i = 0; i < 3; i++) assert.equal(await status(), 200, 'no rate limit yet');
    await workspace.writeServices(services('  switchyard/routes/app/policy: \'{"rateLimit": {"requestsPerSecond": 0.2, "burst": 1}, "timeouts": {"totalMs": "20s"}}\'\n'));
    await waitFor('the KV rate limit to apply', async () => (await status()) === 429, 5_000);
    const limited = (await routes()).routes.find((r) => r.name === 'app')!.policy;
    assert.deepEqual(limited.rateLimit, { requestsPerSecond: 0.2, burst: 1, perClient: false });
    assert.deepEqual(limited.timeouts, { ...DEFAULT_POLICY.timeouts, headersMs: 2_000, totalMs: 20_000 }, 'field by field over the template');

    const errorsBefore = await kvErrors();
    await workspace.writeServices(services('  switchyard/routes/app/policy: \'{"rateLimit": {"requestsPerSecond": "fast"}\'\n'));
    await waitFor('the invalid KV policy to be reported', async () => (await routes()).problems.some((p) => p.source === 'routes/app/policy'), 5_000);
    const table = await routes();
    assert.match(table.problems.find((p) => p.source === 'routes/app/policy')!.message, /not valid JSON; key ignored/);
    const policy = table.routes.find((r) => r.name === 'app')!.policy;
    assert.equal(policy.rateLimit, null, 'the KV layer is ignored whole');
    assert.equal(policy.timeouts.totalMs, 10_000, 'the template policy applies');
    assert.equal(await kvErrors(), errorsBefore + 1);
    for (let i = 0; i < 3; i++) assert.equal(await status(), 200);

    await workspace.writeServices(services('  switchyard/routes/app/policy: \'{"retries": {"on": ["timeout"]}}\'\n'));
    await waitFor('the wrongly shaped policy to be reported', async () =>
      (await routes()).problems.some((p) => p.source === 'routes/app/policy' && /retries\.on: unknown retry condition "timeout"/.test(p.message)), 5_000);
    assert.equal(await kvErrors(), errorsBefore + 2);
    assert.equal(await status(), 200);
  });
});

describe('routesView: policy and ejected endpoints', () => {
  it('adds each route’s effective policy and the ejected endpoints the runtime reports', () => {
    const table = makeTable([
      { name: 'a', path: '/a', to: [{ service: 's', endpoints: [{ id: 's1', port: 1 }] }], policy: { concurrency: { max: 3 } } },
      { name: 'b', path: '/b', to: [{ service: 's', endpoints: [{ id: 's1', port: 1 }] }] },
    ]);
    const view = routesView(table, 1, Date.now(), {
      ejectedEndpoints: () => [{ route: 'a', endpoint: 's/s1', ejections: 2, ejectedAt: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:01:00.000Z' }],
    }) as RoutesJson;
    assert.deepEqual(view.routes.map((r) => [r.name, r.policy.concurrency, r.ejectedEndpoints.length]), [['a', { max: 3 }, 1], ['b', null, 0]]);
    assert.deepEqual(view.routes[0]!.ejectedEndpoints[0], { endpoint: 's/s1', ejections: 2, ejectedAt: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:01:00.000Z' });
    const withoutRuntime = routesView(table, 1, Date.now()) as RoutesJson;
    assert.deepEqual(withoutRuntime.routes.map((r) => r.ejectedEndpoints), [[], []]);
  });
});
