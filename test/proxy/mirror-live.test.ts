/**
 * Mirroring end to end, as an operator sets it up: a template's `mirror:` and the services file,
 * through the whole chain (template parse, build, the mirror service watched and resolved, pools,
 * runtime, exchange). The copies follow a services-file change of the mirror service live.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { mirrorCount, startMirrorServer, type MirrorServer } from './mirror-support.js';

describe('mirror: from a template, live', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let main: TestUpstream;
  let first: MirrorServer;
  let second: MirrorServer;
  let proxy = '';

  const services = (shadowPort: number): string => [
    'services:',
    '  api:',
    `    - { id: api-1, address: 127.0.0.1, port: ${main.port} }`,
    '  api-shadow:',
    `    - { id: shadow-1, address: 127.0.0.1, port: ${shadowPort} }`,
    '',
  ].join('\n');

  before(async () => {
    main = await startUpstream({ name: 'main' });
    first = await startMirrorServer();
    second = await startMirrorServer();
    workspace = await Workspace.create();
    await workspace.writeTemplate('api.yaml', [
      'routes:',
      '  - name: api',
      '    match: { host: api.example.com, path: /api }',
      '    rewrite: { path: /v2 }',
      '    mirror: { service: api-shadow, maxBodyBytes: 1kb, removeHeaders: [X-Api-Key] }',
      '    to: [ { service: api } ]',
      '',
    ].join('\n'));
    await workspace.writeServices(services(first.port));
    app = await startTestSwitchyard(workspace);
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
  });
  after(async () => {
    await app.stop();
    await workspace.remove();
    await main.close();
    await first.close();
    await second.close();
  });

  it('copies go to the mirror service with the rewritten path, without credentials and removeHeaders, and follow it when it moves', async () => {
    const res = await request(`${proxy}/api/items?q=1`, { method: 'POST', body: 'payload', headers: { host: 'api.example.com', authorization: 'Bearer x', 'x-api-key': 'k123' } });
    assert.equal(res.statusCode, 200);
    const echo = await res.body.json() as { headers: Record<string, string> };
    assert.equal(echo.headers['x-api-key'], 'k123', 'the main upstream gets the key');
    const copy = await waitFor('the copy at the mirror', () => first.requests.find((r) => r.complete));
    assert.equal(copy.url, '/v2/items?q=1');
    assert.equal(copy.method, 'POST');
    assert.equal(copy.body.toString(), 'payload');
    assert.equal(copy.headers.host, 'api.example.com-shadow');
    assert.equal(copy.headers.authorization, undefined);
    assert.equal(copy.headers['x-api-key'], undefined, 'removeHeaders from the template');

    // The mirror service moves to another instance: the next copy goes there.
    const version = app.store.version;
    await workspace.writeServices(services(second.port));
    await waitFor('the services change to swap a new table', () => app.store.version > version);
    const again = await request(`${proxy}/api/again`, { headers: { host: 'api.example.com' } });
    assert.equal(again.statusCode, 200);
    await again.body.dump();
    await waitFor('the copy at the new mirror instance', () => second.requests.some((r) => r.url === '/v2/again'));
    assert.equal(first.requests.some((r) => r.url === '/v2/again'), false);
    await waitFor('2 ok', async () => (await mirrorCount(app.metrics, 'api', 'ok')) === 2);
  });
});
