/**
 * --workers 2 process lifecycle against the built CLI: start-up readiness waits for every worker,
 * a worker killed with SIGKILL is replaced while the other serves, SIGHUP re-reads the sources and
 * reaches every worker, SIGTERM drains every worker (an in-flight request completes) and exits 0.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { startCli } from '../compat/cli-process.js';
import { freshRequest, startCluster, type RunningCluster } from './cluster-process.js';

const TEMPLATE = 'routes:\n  - name: app\n    match: { path: / }\n    to: [ { service: app } ]\n';

function services(upstreams: readonly TestUpstream[]): string {
  return `services:\n  app:\n${upstreams.map((u, i) => `    - { id: app-${i}, address: 127.0.0.1, port: ${u.port} }\n`).join('')}`;
}

describe('--workers 2: start-up, replacement, SIGHUP, SIGTERM', () => {
  let workspace: Workspace;
  let upstreams: TestUpstream[];
  let cluster: RunningCluster | undefined;

  before(async () => {
    upstreams = [await startUpstream({ name: 'a' }), await startUpstream({ name: 'b' })];
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', TEMPLATE);
    await workspace.writeServices(services(upstreams));
  });

  after(async () => {
    await cluster?.kill();
    for (const u of upstreams) await u.close();
    await workspace?.remove();
  });

  it('ready only once every worker serves the first table; the proxy port is closed until then', async () => {
    // A services file that does not exist yet: the file source has not delivered, so no first table, no listener.
    const late = join(workspace.dir, 'late.yaml');
    const adminPort = await freePort();
    const cli = startCli(['--workers', '2', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${adminPort}`, '--templates', workspace.templatesDir,
      '--services', late, '--drain-timeout', '3s']);
    try {
      const readyz = async (): Promise<{ status: number; body: { lifecycle?: string } }> => {
        const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
        return { status: res.statusCode, body: await res.body.json() as { lifecycle?: string } };
      };
      const starting = await waitFor('the admin server', () => readyz().catch(() => undefined), 20_000);
      assert.deepEqual([starting.status, starting.body.lifecycle], [503, 'starting']);
      const workers = async (): Promise<{ workers: { state: string; tableVersion: number }[] }> =>
        JSON.parse(await (await request(`http://127.0.0.1:${adminPort}/api/workers`)).body.text()) as { workers: { state: string; tableVersion: number }[] };
      await waitFor('both workers to have started', async () => (await workers()).workers.every((w) => w.state === 'starting'), 20_000);
      assert.ok(!cli.output().includes('proxy listening'), 'no worker listens before the first table');

      await workspace.write(late, services(upstreams));
      await waitFor('ready', async () => (await readyz()).status === 200, 20_000);
      // The moment it is ready, every worker serves the first table.
      const view = await workers();
      assert.deepEqual(view.workers.map((w) => [w.state, w.tableVersion > 0]), [['serving', true], ['serving', true]]);
      // Log lines are buffered (100 ms): wait for the second worker's.
      await waitFor('both workers\' listening lines', () => cli.output().split('\n').filter((l) => l.includes('"msg":"proxy listening"')).length === 2);
    } finally {
      cli.child.kill('SIGTERM');
      assert.equal(await cli.exited, 0, cli.output());
    }
  });

  it('a worker killed with SIGKILL is replaced; requests on new connections never fail meanwhile', async () => {
    cluster = await startCluster(workspace);
    const running = cluster;
    await running.everyWorkerPast(0);
    const victim = (await running.workers()).workers[0]!;
    const survivor = (await running.workers()).workers[1]!;
    // A keep-alive connection, to whichever worker; it is re-made if it was on the victim.
    const agent = new Agent({ connections: 1 });
    assert.equal((await request(`${running.origin}/x`, { dispatcher: agent })).statusCode, 200);

    process.kill(victim.pid!, 'SIGKILL');
    // Once the primary saw the exit it hands new connections to the survivor only: none fails.
    await waitFor('the primary to see the exit', async () => (await running.workers()).workers[0]!.restarts === 1, 10_000);
    const statuses: number[] = [];
    const replaced = (async () => waitFor('the replacement to serve', async () => {
      const w = (await running.workers()).workers[0]!;
      return w.state === 'serving' && w.pid !== victim.pid && w.tableVersion > 0;
    }, 20_000))();
    for (let i = 0; i < 30; i++) statuses.push((await freshRequest(`${running.origin}/x`)).status);
    await replaced;
    for (let i = 0; i < 30; i++) statuses.push((await freshRequest(`${running.origin}/x`)).status);
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every request on a new connection answered 200');
    const after = await running.workers();
    assert.equal(after.workers[1]!.pid, survivor.pid, 'the other worker kept running');
    assert.equal(after.workers[1]!.restarts, 0);
    assert.ok(running.cli.output().includes('worker exited; the others keep serving; replacing it'));
    await agent.close();
  });

  it('SIGHUP re-reads the sources (one rebuild) and the new version reaches both workers', async () => {
    const running = cluster!;
    type Config = { tableVersion: number; providers: { name: string; lastSyncAt: number | null }[] };
    const config = async (): Promise<Config> => JSON.parse((await running.adminGet('/api/config')).text) as Config;
    const before = await config();
    const syncBefore = before.providers.find((p) => p.name === 'file')!.lastSyncAt!;
    running.cli.child.kill('SIGHUP');
    await waitFor('the file to be read again', async () => (await config()).providers.find((p) => p.name === 'file')!.lastSyncAt! > syncBefore, 10_000);
    const view = await running.everyWorkerPast(before.tableVersion);
    assert.equal(view.tableVersion, before.tableVersion + 1, 'one SIGHUP, one rebuild');
  });

  it('SIGTERM: every worker drains, the in-flight request completes, /readyz 503, exit 0', async () => {
    const running = cluster!;
    // Two slow requests on two new connections: one on each worker (round-robin).
    const slow = [0, 1].map(() => freshRequest(`${running.origin}/slow`, { 'x-test-delay-ms': '1500' }));
    await waitFor('both slow requests at the upstreams', () => upstreams[0]!.inflight + upstreams[1]!.inflight === 2, 10_000);
    running.cli.child.kill('SIGTERM');
    await waitFor('/readyz 503', async () => (await running.adminGet('/readyz')).status === 503, 5_000);
    const answers = await Promise.all(slow);
    assert.deepEqual(answers.map((a) => a.status), [200, 200], 'both in-flight requests completed');
    assert.equal(await running.cli.exited, 0, running.cli.output().slice(-2000));
    const stopped = running.cli.output().split('\n').filter((l) => l.includes('"msg":"worker stopped"')).length;
    assert.equal(stopped, 2, 'both workers drained and stopped');
  });
});

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
