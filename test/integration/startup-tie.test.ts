import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';

/**
 * A tie between two routes of one template file at START-UP (no last good table yet) costs that
 * file's routes only, like a file the schema rejects: the other files serve and /readyz says
 * ready (control/watcher.ts, the per-file step). Through the real app: files, proxy, admin API.
 */
describe('a tie in one template file at start-up', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let upstream: TestUpstream;
  let proxy = '';
  let admin = '';

  before(async () => {
    upstream = await startUpstream({ name: 'users-0' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('main.yaml', [
      'routes:',
      '  - name: api-users',
      '    match: { path: /users }',
      '    to: [{ service: users, weight: 1 }]',
      '',
    ].join('\n'));
    await workspace.writeTemplate('tie.yaml', [
      'routes:',
      '  - name: t-header',
      '    match: { host: tie.example.com, path: /t, headers: { x-a: "1" } }',
      '    to: [{ service: users, weight: 1 }]',
      '  - name: t-query',
      '    match: { host: tie.example.com, path: /t, query: { a: "1" } }',
      '    to: [{ service: users, weight: 1 }]',
      '',
    ].join('\n'));
    await workspace.writeServices(`services:\n  users:\n    - { id: users-0, address: 127.0.0.1, port: ${upstream.port} }\n`);
    app = await startTestSwitchyard(workspace);
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
    admin = `http://127.0.0.1:${app.adminAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await upstream?.close();
    await workspace?.remove();
  });

  it('serves the good file\'s routes, is ready, and reports the tie', async () => {
    assert.equal((await request(`${admin}/readyz`)).statusCode, 200);
    const res = await request(`${proxy}/users`);
    assert.equal(res.statusCode, 200);
    assert.equal((JSON.parse(await res.body.text()) as EchoReply).upstream, 'users-0');
    const tied = await request(`${proxy}/t?a=1`, { headers: { host: 'tie.example.com', 'x-a': '1' } });
    await tied.body.dump();
    assert.equal(tied.statusCode, 404, 'the tying file adds no routes');
    assert.deepEqual(app.store.current!.routes.map((r) => r.name), ['api-users']);
    assert.match(app.watcher.lastFailure?.message ?? '', /tie\.yaml: route "t-query": matches tie\.example\.com\/t like route "t-header"/);
  });
});
