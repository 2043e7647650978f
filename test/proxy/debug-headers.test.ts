/**
 * Debug headers end to end through a running Switchyard: the template `policy:` block turns them
 * on for one route only, and a KV `routes/<route>/policy` value turns them on and off for another
 * route, live (hot-swapped, no restart).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

describe('debugHeaders from templates and KV', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let up: TestUpstream;
  let proxy = '';

  const services = (kv: string): string =>
    `services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${up.port} }\n${kv === '' ? '' : `kv:\n${kv}`}`;

  async function debugRoute(path: string): Promise<string | undefined> {
    const res = await request(`${proxy}${path}`);
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    const value = res.headers['x-switchyard-route'];
    return value === undefined ? undefined : String(value);
  }

  before(async () => {
    up = await startUpstream({ name: 'app' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', [
      'routes:',
      '  - name: loud',
      '    match: { path: /loud }',
      '    to: [ { service: app } ]',
      '    policy: { debugHeaders: true }',
      '  - name: quiet',
      '    match: { path: / }',
      '    to: [ { service: app } ]',
      '',
    ].join('\n'));
    await workspace.writeServices(services(''));
    app = await startTestSwitchyard(workspace);
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await up?.close();
    await workspace?.remove();
  });

  it('the template turns them on for its route only', async () => {
    const res = await request(`${proxy}/loud/x`);
    await res.body.dump();
    assert.equal(res.headers['x-switchyard-route'], 'loud');
    assert.equal(res.headers['x-switchyard-endpoint'], 'app/app-1');
    assert.match(String(res.headers['x-switchyard-upstream-ms']), /^\d+$/);
    assert.equal(await debugRoute('/other'), undefined);
  });

  it('KV turns them on and off again, live', async () => {
    await workspace.writeServices(services('  switchyard/routes/quiet/policy: \'{"debugHeaders": true}\'\n'));
    await waitFor('KV debugHeaders on the quiet route', async () => await debugRoute('/other') === 'quiet', 5_000);
    await workspace.writeServices(services('  switchyard/routes/quiet/policy: \'{"debugHeaders": false}\'\n'));
    await waitFor('KV debugHeaders off again', async () => await debugRoute('/other') === undefined, 5_000);
    assert.equal(await debugRoute('/loud'), 'loud');
  });
});
