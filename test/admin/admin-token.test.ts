import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { AdminServer } from '../../src/admin/admin-server.js';
import type { Switchyard } from '../../src/app.js';
import { parseCommandLine, type Config } from '../../src/config/config.js';
import { TableStore } from '../../src/control/table-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { captureLogger } from '../support/capture-logger.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

const TOKEN = 'sy-admin-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4';

async function get(url: string, authorization?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(url, { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

describe('admin: bearer token', () => {
  let admin: AdminServer;
  let base = '';

  before(async () => {
    admin = new AdminServer({
      store: new TableStore(),
      metrics: new Metrics({ defaultMetrics: false }),
      logger: createLogger({ level: 'silent' }),
      ready: () => true,
      readiness: () => ({ lifecycle: 'serving' }),
      config: () => ({ adminToken: 'set (hidden)', consul: { address: 'consul.internal:8500' } }),
      token: TOKEN,
    });
    const address = await admin.listen('127.0.0.1', 0);
    base = `http://127.0.0.1:${address.port}`;
  });

  after(() => admin.close());

  it('/readyz is open without the token (load-balancer health checks send no headers), with a minimal body and no configuration', async () => {
    for (const authorization of [undefined, 'Bearer wrong']) {
      const res = await get(`${base}/readyz`, authorization);
      assert.equal(res.status, 200, String(authorization));
      assert.deepEqual(JSON.parse(res.body), { status: 'ready', lifecycle: 'serving' });
      assert.ok(!res.body.includes('consul.internal') && !res.body.includes('adminToken'), res.body);
    }
  });

  for (const path of ['/metrics', '/api/routes', '/api/config', '/api/status', '/api/match?path=/', '/nope']) {
    it(`${path}: 401 without the token, with a wrong one, with another scheme`, async () => {
      for (const authorization of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
        const res = await get(`${base}${path}`, authorization);
        assert.equal(res.status, 401, `${path} ${authorization}`);
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="switchyard-admin"');
        assert.equal(JSON.parse(res.body).error, 'SY_UNAUTHORIZED');
        assert.ok(!res.body.includes(TOKEN));
      }
    });
  }

  it('answers with the token (scheme case-insensitive)', async () => {
    for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER  ${TOKEN}`]) {
      assert.equal((await get(`${base}/api/config`, authorization)).status, 200, authorization);
    }
    assert.equal((await get(`${base}/metrics`, `Bearer ${TOKEN}`)).status, 200);
    assert.equal((await get(`${base}/nope`, `Bearer ${TOKEN}`)).status, 404);
  });

  it('checks the token before the method', async () => {
    const res = await request(`${base}/api/config`, { method: 'POST' });
    await res.body.dump();
    assert.equal(res.statusCode, 401);
  });

  it('serves the status page files without the token (they hold no data) and tells the page to ask for it', async () => {
    const page = await get(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<body data-auth="token">/);
    assert.ok(!page.body.includes(TOKEN));
    for (const path of ['/status.js', '/status.css', '/favicon.svg']) assert.equal((await get(`${base}${path}`)).status, 200, path);
    const post = await request(`${base}/`, { method: 'POST' });
    await post.body.dump();
    assert.equal(post.statusCode, 401);
  });

  it('keeps /healthz open for orchestrators', async () => {
    assert.equal((await get(`${base}/healthz`)).status, 200);
    assert.equal((await get(`${base}/healthz?probe=1`, 'Bearer wrong')).status, 200);
  });
});

describe('admin: loopback unless a token is set', () => {
  const config = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
    const action = parseCommandLine(argv, env);
    assert.equal(action.kind, 'run');
    return (action as { config: Config }).config;
  };

  it('runs on loopback without a token', () => {
    for (const admin of ['127.0.0.1:8081', '127.1.2.3:0', 'localhost:8081', '[::1]:8081']) {
      assert.equal(config(['--admin', admin]).adminToken, undefined, admin);
    }
  });

  for (const admin of ['0.0.0.0:8081', ':8081', '10.0.0.5:8081', '[::]:8081', 'admin.internal:8081']) {
    it(`refuses --admin ${admin} without a token, with a one-line reason`, () => {
      assert.throws(() => parseCommandLine(['--admin', admin], {}), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_USAGE');
        assert.match(err.message, /not a loopback address: set --admin-token/);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    });
  }

  it('takes the token from the flag, the environment or a file (flag and variable win)', async () => {
    assert.equal(config(['--admin', '0.0.0.0:8081', '--admin-token', TOKEN]).adminToken, TOKEN);
    assert.equal(config(['--admin', '0.0.0.0:8081'], { SWITCHYARD_ADMIN_TOKEN: TOKEN }).adminToken, TOKEN);
    const dir = await mkdtemp(join(tmpdir(), 'sy-admin-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, `${TOKEN}\n`);
      assert.equal(config(['--admin', '0.0.0.0:8081', '--admin-token-file', file]).adminToken, TOKEN);
      assert.equal(config(['--admin', '0.0.0.0:8081'], { SWITCHYARD_ADMIN_TOKEN_FILE: file }).adminToken, TOKEN);
      assert.equal(config(['--admin-token', 'other-token', '--admin-token-file', file]).adminToken, 'other-token');
      await writeFile(file, '\n');
      assert.throws(() => config(['--admin-token-file', file]), /is empty/);
      assert.throws(() => config(['--admin-token-file', join(dir, 'missing')]), /cannot read .*ENOENT/);
      assert.throws(() => config(['--admin-token', '   ']), /--admin-token: empty value/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the process exits 2 with one line when bound off loopback without a token', async () => {
    const root = new URL('../../', import.meta.url).pathname;
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--admin', '0.0.0.0:0', '--listen', '127.0.0.1:0'], {
        cwd: root,
        env: { PATH: process.env['PATH'] },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^switchyard: --admin 0\.0\.0\.0:0 is not a loopback address: set --admin-token/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });
});

describe('admin: the token stays secret in a running Switchyard', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let upstream: TestUpstream;
  const capture = captureLogger('trace');

  before(async () => {
    upstream = await startUpstream({ name: 'app' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', 'routes:\n  - name: app\n    match: { path: / }\n    to:\n      - { service: app }\n');
    await workspace.writeServices(`services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${upstream.port} }\n`);
    app = await startTestSwitchyard(workspace, ['--admin-token', TOKEN, '--log-level', 'trace'], capture.logger);
  });

  after(async () => {
    await app.stop();
    await upstream.close();
    await workspace.remove();
  });

  it('requires it on the admin API, never shows it, never logs it', async () => {
    const admin = `http://127.0.0.1:${app.adminAddress.port}`;
    assert.equal((await get(`${admin}/api/config`)).status, 401);
    assert.equal((await get(`${admin}/api/config`, 'Bearer nope')).status, 401);
    const shown = await get(`${admin}/api/config`, `Bearer ${TOKEN}`);
    assert.equal(shown.status, 200);
    assert.equal(JSON.parse(shown.body).adminToken, 'set (hidden)');
    const ready = await get(`${admin}/readyz`, `Bearer ${TOKEN}`);
    assert.equal(ready.status, 200);
    assert.equal((await get(`${admin}/healthz`)).status, 200);
    // Traffic through the proxy with the token in a header must not put it in a log line either.
    const proxied = await get(`http://127.0.0.1:${app.proxyAddress.port}/x`, `Bearer ${TOKEN}`);
    assert.equal(proxied.status, 200);
    // The access line of /x is written once the exchange ends, possibly after the client has its
    // answer: wait for it, so that the check below covers the one line that saw the header.
    const access = await waitFor('the access line of the proxied /x', () => capture.lines.find((l) => l['kind'] === 'access' && l['path'] === '/x'));
    assert.equal(access['status'], 200);
    app.logger.flush();
    for (const text of [shown.body, ready.body]) assert.ok(!text.includes(TOKEN), 'token absent from the admin API');
    const text = capture.text();
    assert.ok(text.includes(`"path":"/x"`), 'the checked text holds the access line');
    const leaking = text.split('\n').filter((line) => line.includes(TOKEN) || line.includes(TOKEN.slice(3, 19)));
    assert.deepEqual(leaking, [], 'no log line holds the token (or a part of it)');
  });
});
