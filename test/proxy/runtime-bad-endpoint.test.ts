import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, type RouteSpec, type TestProxy } from './harness.js';
import { waitFor } from '../support/wait.js';

/**
 * Consul accepts any string as Service.Address. An address undici cannot parse used to make pool
 * creation throw inside the swap: the table stayed at its old version and no later change, on any
 * route, ever applied. Now the model leaves such an instance out (a problem of kind endpoint), and
 * the runtime, should one reach it anyway, leaves the endpoint out instead of failing the swap.
 */
describe('runtime: one bad instance never freezes the table', () => {
  let good: TestUpstream;
  let other: TestUpstream;

  before(async () => {
    good = await startUpstream({ name: 'good' });
    other = await startUpstream({ name: 'other' });
  });

  after(async () => {
    await Promise.all([good.close(), other.close()]);
  });

  describe('a table that reaches the runtime with an origin undici refuses (the model is bypassed)', () => {
    let p: TestProxy;
    after(async () => p?.close());

    const routes = (otherPort: number): RouteSpec[] => [
      { name: 'app', path: '/app', to: [{ service: 'app', endpoints: [{ id: 'bad', port: 80, address: 'bad host' }, { id: 'good', port: good.port }] }] },
      { name: 'zone', path: '/zone', to: [{ service: 'zone', endpoints: [{ id: 'z', port: 80, address: 'fe80::1%eth0' }] }] },
      { name: 'other', path: '/other', to: [{ service: 'other', endpoints: [{ id: 'o', port: otherPort }] }] },
    ];

    it('swaps anyway: the bad endpoint is left out, counted and logged; the rest serves; later swaps apply', async () => {
      p = await startProxy(undefined);
      p.store.swap(makeTable(routes(good.port)));
      assert.equal(p.store.version, 1);
      for (let i = 0; i < 4; i++) assert.equal((await send(p.port, { path: '/app' })).json<EchoReply>().upstream, 'good');
      const zone = await send(p.port, { path: '/zone' });
      assert.equal(zone.status, 503, zone.text());
      assert.equal(await metricValue(p.metrics, 'switchyard_config_errors_total', { kind: 'endpoint' }), 2);
      assert.ok(p.logs.some((l) => l.msg === 'cannot create an upstream pool; endpoint left out of its route' && l['origin'] === 'http://bad host:80'));

      // The next change, on another route, applies; the same bad origin is not counted twice.
      p.store.swap(makeTable(routes(other.port)));
      assert.equal(p.store.version, 2);
      assert.equal((await send(p.port, { path: '/other' })).json<EchoReply>().upstream, 'other');
      assert.equal(await metricValue(p.metrics, 'switchyard_config_errors_total', { kind: 'endpoint' }), 2);
    });

    it('a swap aborted while preparing leaves no pool behind: the pools made for the rejected table are retired', async () => {
      const q = await startProxy(makeTable(routes(good.port).slice(0, 1)));
      try {
        const live = q.upstreams.origins();
        assert.deepEqual(live, [good.origin]);
        // A later prepare hook fails (the runtime's own ran first and made other's pool).
        q.store.onPrepare(() => {
          throw new Error('boom');
        });
        assert.throws(() => q.store.swap(makeTable(routes(other.port))), /table swap aborted while preparing: boom/);
        assert.equal(q.store.version, 1);
        assert.deepEqual(q.upstreams.origins(), live, 'only the live table pools stay open');
        assert.equal((await send(q.port, { path: '/app' })).json<EchoReply>().upstream, 'good');
      } finally {
        await q.close();
      }
    });
  });

  describe('end to end: a services file with a bad address among good ones', () => {
    let workspace: Workspace;
    let app: Switchyard;
    let proxy = '';
    let admin = '';

    const services = (otherPort: number, bad = true): string => [
      'services:',
      '  users:',
      `    - { id: users-good, address: 127.0.0.1, port: ${good.port} }`,
      ...(bad ? [
        '    - { id: users-space, address: "bad host", port: 80 }',
        '    - { id: users-zone, address: "fe80::1%eth0", port: 80 }',
        '    - { id: users-hostport, address: "users.internal:8080", port: 80 }',
      ] : []),
      '  other:',
      `    - { id: other-1, address: 127.0.0.1, port: ${otherPort} }`,
      '',
    ].join('\n');

    before(async () => {
      workspace = await Workspace.create();
      await workspace.writeTemplate('routes.yaml', [
        'routes:',
        '  - { name: users, match: { path: /users }, to: [ { service: users } ] }',
        '  - { name: other, match: { path: /other }, to: [ { service: other } ] }',
        '',
      ].join('\n'));
      await workspace.writeServices(services(good.port, false));
      app = await startTestSwitchyard(workspace);
      proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
      admin = `http://127.0.0.1:${app.adminAddress.port}`;
    });

    after(async () => {
      await app?.stop();
      await workspace?.remove();
    });

    it('bad instances appear: the good ones serve, the bad ones show as problems, and a later change to another route still applies', async () => {
      const first = app.store.version;
      await workspace.writeServices(services(good.port));
      await waitFor('the table with the bad instances to swap', () => app.store.version > first, 5_000);
      const users = await request(`${proxy}/users`);
      assert.equal(users.statusCode, 200);
      assert.equal((await users.body.json() as EchoReply).upstream, 'good');

      const view = await (await request(`${admin}/api/routes`)).body.json() as {
        routes: { name: string; destinations: { endpoints: { id: string }[] }[] }[];
        problems: { kind: string; source: string; message: string }[];
      };
      assert.deepEqual(view.routes.find((r) => r.name === 'users')?.destinations[0]?.endpoints.map((e) => e.id), ['users/users-good']);
      const endpointProblems = view.problems.filter((q) => q.kind === 'endpoint');
      assert.deepEqual(endpointProblems.map((q) => q.source).sort(), ['users/users-hostport', 'users/users-space', 'users/users-zone']);
      assert.match(endpointProblems.find((q) => q.source === 'users/users-zone')!.message, /IPv6 zones/);
      const metrics = await (await request(`${admin}/metrics`)).body.text();
      assert.match(metrics, /switchyard_config_errors_total\{kind="endpoint"\} 3/);
      assert.equal(app.watcher.lastFailure, undefined);
      const config = await (await request(`${admin}/api/config`)).body.json() as { problems: { kind: string; source: string }[] };
      assert.deepEqual(config.problems.filter((q) => q.kind === 'endpoint').map((q) => q.source).sort(), ['users/users-hostport', 'users/users-space', 'users/users-zone']);

      // A change to the other route: it applies (a new table version), the bad instances notwithstanding.
      const version = app.store.version;
      await workspace.writeServices(services(other.port));
      await waitFor('a new table version after the change', () => app.store.version > version, 5_000);
      const moved = await request(`${proxy}/other`);
      assert.equal((await moved.body.json() as EchoReply).upstream, 'other');
      assert.equal(app.watcher.lastFailure, undefined);
      assert.match(await (await request(`${admin}/metrics`)).body.text(), /switchyard_config_errors_total\{kind="endpoint"\} 3/,
        'a problem is counted once, when it first appears');
    });
  });
});
