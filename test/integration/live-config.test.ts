import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

/**
 * The core promises, end to end through the running proxy: templates and the services file are
 * live within a deadline; broken input is rejected, counted, and the last good table serves; KV
 * weights and health states move traffic exactly as the docs say.
 */
describe('live configuration through the proxy', () => {
  let workspace: Workspace;
  let app: Switchyard;
  const upstreams: TestUpstream[] = [];
  let proxy = '';
  let admin = '';

  const services = (body: string): string => `services:\n  users:\n${body}`;
  const instance = (n: number, extra = ''): string =>
    `    - { id: users-${n}, address: 127.0.0.1, port: ${upstreams[n]!.port}, tags: [${n === 2 ? 'v2' : 'v1'}]${extra} }\n`;

  async function get(path: string, host?: string): Promise<{ status: number; upstream?: string; body: string }> {
    const res = await request(`${proxy}${path}`, { headers: host === undefined ? {} : { host } });
    const body = await res.body.text();
    if (res.statusCode !== 200) return { status: res.statusCode, body };
    return { status: 200, upstream: (JSON.parse(body) as EchoReply).upstream, body };
  }

  async function split(path: string, n: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const res = await get(path);
      assert.equal(res.status, 200, res.body);
      counts[res.upstream!] = (counts[res.upstream!] ?? 0) + 1;
    }
    return counts;
  }

  /**
   * Rewrite the services file and wait for the table built from it: a new table version, which
   * only the change can make (waiting for a traffic pattern could be met by the old table too).
   */
  async function changeServices(text: string): Promise<void> {
    const version = app.store.version;
    await workspace.writeServices(text);
    await waitFor('the services change to swap a new table', () => app.store.version > version, 5_000);
  }

  /** Write a template file and wait for the table built from it (a new table version). */
  async function changeTemplate(name: string, text: string): Promise<void> {
    const version = app.store.version;
    await workspace.writeTemplate(name, text);
    await waitFor(`the change of ${name} to swap a new table`, () => app.store.version > version, 5_000);
  }

  async function metric(name: string, labels: string): Promise<number> {
    const text = await (await request(`${admin}/metrics`)).body.text();
    const prefix = labels === '' ? `${name} ` : `${name}{${labels}}`;
    const line = text.split('\n').find((l) => l.startsWith(prefix));
    return line === undefined ? 0 : Number(line.split(" ").at(-1));
  }

  before(async () => {
    for (let n = 0; n < 3; n++) upstreams.push(await startUpstream({ name: `users-${n}` }));
    workspace = await Workspace.create();
    await workspace.writeTemplate('users.yaml', [
      'routes:',
      '  - name: api-users',
      '    match: { path: /users }',
      '    to:',
      '      - { service: users, tag: v1, weight: 3 }',
      '      - { service: users, tag: v2, weight: 1 }',
      '',
    ].join('\n'));
    await workspace.writeServices(services(instance(0) + instance(1) + instance(2)));
    app = await startTestSwitchyard(workspace);
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
    admin = `http://127.0.0.1:${app.adminAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await Promise.all(upstreams.map((u) => u.close()));
    await workspace?.remove();
  });

  it('reports ready and shows the live table on the admin API', async () => {
    const ready = await request(`${admin}/readyz`);
    assert.equal(ready.statusCode, 200);
    const routes = await (await request(`${admin}/api/routes`)).body.json() as {
      routes: { name: string; destinations: { key: string; weight: number; endpoints: { id: string; state: string }[] }[] }[];
    };
    const route = routes.routes.find((r) => r.name === 'api-users')!;
    assert.deepEqual(route.destinations.map((d) => [d.key, d.weight]), [['users:v1', 3], ['users:v2', 1]]);
    assert.deepEqual(route.destinations[0]!.endpoints.map((e) => e.id), ['users/users-0', 'users/users-1']);
    assert.equal((await request(`${admin}/healthz`)).statusCode, 200);
  });

  it('splits exactly by template weights, then by KV route and instance weights', async () => {
    // 3:1 across destinations, 1:1 inside v1: over 400 requests 150/150/100.
    assert.deepEqual(await split('/users', 400), { 'users-0': 150, 'users-1': 150, 'users-2': 100 });

    await changeServices(services(instance(0) + instance(1) + instance(2)) +
      `kv:\n  switchyard/routes/api-users/weights: '{"users:v1": 1, "users:v2": 1}'\n  switchyard/services/users/weights: '{"users-0": 3, "users-1": 1}'\n`);
    const r = await (await request(`${admin}/api/routes`)).body.json() as { routes: { destinations: { weight: number }[] }[] };
    assert.deepEqual(r.routes[0]!.destinations.map((d) => d.weight), [1, 1]);
    // 1:1 across destinations; 3:1 inside v1: over 800 → v1 400 (300/100), v2 400.
    assert.deepEqual(await split('/users', 800), { 'users-0': 300, 'users-1': 100, 'users-2': 400 });
  });

  it('drains an instance with weight 0: its in-flight request finishes, no new request reaches it', async () => {
    await changeServices(services(instance(0) + instance(1) + instance(2)) +
      `kv:\n  switchyard/routes/api-users/weights: '{"users:v2": 0}'\n`);
    assert.equal((await split('/users', 4))['users-2'], undefined, 'v2 is weighted 0');
    // A slow request on users-0, then drain users-0 while it is in flight.
    const slow = request(`${proxy}/users/slow`, { headers: { 'x-test-delay-ms': '400' } });
    await waitFor('the slow request to be in flight', () => upstreams[0]!.inflight > 0 || upstreams[1]!.inflight > 0);
    const slowTarget = upstreams[0]!.inflight > 0 ? 0 : 1;
    const other = 1 - slowTarget;
    await changeServices(services(instance(0) + instance(1) + instance(2)) +
      `kv:\n  switchyard/routes/api-users/weights: '{"users:v2": 0}'\n  switchyard/services/users/weights: '{"users-${slowTarget}": 0}'\n`);
    assert.deepEqual(await split('/users', 4), { [`users-${other}`]: 4 }, 'the drain applied');
    const res = await slow;
    assert.equal(res.statusCode, 200);
    assert.equal((JSON.parse(await res.body.text()) as EchoReply).upstream, `users-${slowTarget}`);
    assert.deepEqual(await split('/users', 20), { [`users-${other}`]: 20 });
  });

  it('maps health to weight: critical and maintenance out, warning takes its warning weight', async () => {
    // The previous test left v2 weighted 0, so "no request reaches users-2" holds before this
    // change too: wait for the new table itself, then count.
    await changeServices(services(
      instance(0, ', status: warning, weights: { passing: 5, warning: 1 }') +
      instance(1, ', status: passing, weights: { passing: 3, warning: 1 }') +
      instance(2, ', status: critical'),
    ));
    // v2 has no healthy endpoint: its destination weighs 0, all traffic to v1 at 1:3.
    assert.deepEqual(await split('/users', 400), { 'users-0': 100, 'users-1': 300 });
    await changeServices(services(instance(0, ', status: maintenance') + instance(1, ', status: critical') + instance(2, ', status: critical')));
    const body = JSON.parse((await get('/users')).body) as { error: string };
    assert.equal(body.error, 'SY_NO_ENDPOINT');
  });

  it('ignores bad JSON in one KV key with a log line and a metric; the other keys still apply', async () => {
    const before = await metric('switchyard_config_errors_total', 'kind="kv"');
    await changeServices(services(instance(0) + instance(1) + instance(2)) +
      `kv:\n  switchyard/routes/api-users/weights: '{"users:v1": 1, "users:v2": 1'\n  switchyard/services/users/weights: '{"users-1": 0}'\n`);
    assert.equal(await metric('switchyard_config_errors_total', 'kind="kv"'), before + 1);
    // The broken route weights are ignored: the template's 3:1 holds, users-1 drained.
    assert.deepEqual(await split('/users', 400), { 'users-0': 300, 'users-2': 100 });
  });

  it('follows template changes, and keeps the last good table when a change is broken', async () => {
    await changeTemplate('extra.yaml', 'routes:\n  - name: extra\n    match: { host: Extra.Example, path: /x }\n    strip: /x\n    to: [ { service: users, tag: v2 } ]\n');
    assert.equal((await get('/x/y', 'extra.example:8080')).status, 200);
    const echoed = JSON.parse((await get('/x/y?q=1', 'EXTRA.example')).body) as EchoReply;
    assert.equal(echoed.url, '/y?q=1');
    assert.equal(echoed.upstream, 'users-2');

    const swaps = app.store.version;
    const buildErrors = await metric('switchyard_config_errors_total', 'kind="build"');
    // A second route named api-users: the whole build is rejected, the live table stays.
    await workspace.writeTemplate('clash.yaml', 'routes:\n  - name: api-users\n    match: { path: /clash }\n    to: [ { service: users } ]\n');
    await waitFor('the rejected build to be counted', async () => (await metric('switchyard_config_errors_total', 'kind="build"')) > buildErrors, 3000)
      .catch(async (err: Error) => {
        throw new Error(`${err.message}; metrics: ${(await (await request(`${admin}/metrics`)).body.text()).split('\n').filter((l) => l.startsWith('switchyard_config')).join(' | ')}`);
      });
    assert.equal(app.store.version, swaps);
    const config = await (await request(`${admin}/api/config`)).body.json() as { lastRejectedBuild: { message: string } | null };
    assert.match(config.lastRejectedBuild?.message ?? '', /api-users/);
    assert.equal((await get('/users')).status, 200);
    assert.equal((await get('/clash')).status, 404);

    // A broken YAML file: rejected, counted, and the previous version of that file stays.
    const templateErrors = await metric('switchyard_config_errors_total', 'kind="template"');
    await workspace.writeTemplate('clash.yaml', 'routes: [ {\n');
    await waitFor('the broken template to be counted', async () => (await metric('switchyard_config_errors_total', 'kind="template"')) > templateErrors, 3000);
    assert.equal((await get('/x/y', 'extra.example')).status, 200);

    // Fixing the file heals the build.
    await changeTemplate('clash.yaml', 'routes:\n  - name: clash\n    match: { path: /clash }\n    to: [ { service: users, tag: v2 } ]\n');
    assert.equal((await get('/clash')).status, 200);
    const healed = await (await request(`${admin}/api/config`)).body.json() as { lastRejectedBuild: unknown };
    assert.equal(healed.lastRejectedBuild, null);
  });

  it('keeps serving the last good services file when a new version is broken', async () => {
    const destinations = async (): Promise<unknown> => {
      const view = await (await request(`${admin}/api/routes`)).body.json() as { routes: { name: string; destinations: unknown }[] };
      return view.routes.find((r) => r.name === 'api-users')?.destinations;
    };
    // The table version is what a swap moves: it must not move for the broken file (a count of
    // swaps ">= 1" was already true from the earlier tests, so it could not fail).
    const version = app.store.version;
    const swaps = await metric('switchyard_table_swaps_total', '');
    const liveBefore = await destinations();
    const errors = await metric('switchyard_config_errors_total', 'kind="services"');
    await workspace.writeServices('services:\n  users: "not a list"\n');
    await waitFor('the broken services file to be counted', async () => (await metric('switchyard_config_errors_total', 'kind="services"')) === errors + 1, 10_000);
    assert.equal(app.store.version, version, 'the broken file swapped no table');

    // A rebuild the broken file had caused could still be pending (builds are coalesced), so the
    // check above alone could pass too early. Barrier: a template change swaps a table built
    // from the newest input of every provider, so whatever the broken file made is in it by
    // then. Exactly one swap (the barrier's; identical inputs are never rebuilt) and the same
    // destinations as before (users-1 drained by the last good file's KV).
    await changeTemplate('barrier.yaml', 'routes:\n  - name: barrier\n    match: { path: /barrier }\n    to: [ { service: users, tag: v2 } ]\n');
    assert.equal(app.store.version, version + 1, 'only the barrier swapped a table');
    assert.equal(await metric('switchyard_table_swaps_total', ''), swaps + 1);
    assert.deepEqual(await destinations(), liveBefore, 'the last good services file still serves');
    assert.deepEqual(await split('/users', 8), { 'users-0': 6, 'users-2': 2 });

    // A following good file moves the version (the watcher was not wedged by the bad one) and
    // applies: no KV now, so the template's 3:1 with users-1 back in.
    await changeServices(services(instance(0) + instance(1) + instance(2)));
    assert.equal(app.store.version, version + 2);
    assert.deepEqual(await split('/users', 400), { 'users-0': 150, 'users-1': 150, 'users-2': 100 });
  });
});
