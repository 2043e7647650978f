/**
 * --workers 2 with a TLS listener: both workers serve it, and a renewed certificate reaches every
 * worker (each watches the certificate directory itself).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CertDir, HAVE_OPENSSL, makePair, type Pair } from '../tls/certs.js';
import { peerSerial } from '../tls/tls-client.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { ROUND_ROBIN, startCluster, type RunningCluster } from './cluster-process.js';

describe('--workers 2: TLS in every worker', { skip: HAVE_OPENSSL ? false : 'openssl is not installed' }, () => {
  let workspace: Workspace;
  let certs: CertDir;
  let up: TestUpstream;
  let cluster: RunningCluster;
  let first: Pair;

  before(async () => {
    first = await makePair({ cn: 'first.test', dns: ['first.test'] });
    certs = await CertDir.create();
    await certs.install('default', first);
    up = await startUpstream({ name: 'web' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('web.yaml', 'routes:\n  - name: web\n    match: { path: / }\n    to: [ { service: web } ]\n');
    await workspace.writeServices(`services:\n  web:\n    - { id: web-1, address: 127.0.0.1, port: ${up.port} }\n`);
    cluster = await startCluster(workspace, ['--tls-listen', '127.0.0.1:0', '--tls-cert-dir', certs.dir], ROUND_ROBIN);
  });

  after(async () => {
    await cluster?.kill();
    await up?.close();
    await workspace?.remove();
    await certs?.cleanup();
  });

  it('a renewed certificate is served by every worker (new connections alternate over both)', async () => {
    assert.ok(cluster.tls !== undefined, 'the start-up line names the TLS listener');
    const port = cluster.tls.port;
    const serials = async (): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < 6; i++) out.push(await peerSerial(port, undefined));
      return out;
    };
    assert.deepEqual(await serials(), Array(6).fill(first.serial));
    const renewed = await makePair({ cn: 'renewed.test', dns: ['renewed.test'] });
    await certs.install('default', renewed);
    // Both workers reloaded: six handshakes in a row (three per worker) all show the new one.
    await waitFor('every worker to serve the renewed certificate', async () => (await serials()).every((s) => s === renewed.serial), 15_000);
  });
});
