/**
 * The Consul provider over HTTPS: CONSUL_CACERT, CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY (mutual TLS)
 * and CONSUL_HTTP_SSL_VERIFY=false. A TLS terminator (node:tls, certificates made by openssl at test
 * time) pipes to the Consul API test server. Skipped when openssl is not installed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:tls';
import { ConsulTestServer } from '../../support/consul/server.js';
import { waitFor } from '../../support/wait.js';
import { instance, ProviderHarness } from './harness.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=switchyard-test-ca');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:server.dc1.consul\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'switchyard'}`);
    run('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '2', '-extfile', `${who}.ext`);
  }
}

describe('consul provider over TLS', { skip: hasOpenssl() ? false : 'openssl not installed' }, () => {
  let dir: string;
  let consul: ConsulTestServer;
  let terminator: Server;
  let url: string;
  const sockets = new Set<Socket>();
  /** The SNI name of each TLS connection the terminator accepted (false: none sent). */
  const serverNames: (string | false | null)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sy-consul-tls-'));
    makeCertificates(dir);
    consul = await ConsulTestServer.start();
    consul.registerService(instance('web', 'web-1', 9001));
    const pem = (name: string): Buffer => readFileSync(join(dir, name));
    terminator = createServer({ key: pem('server.key'), cert: pem('server.crt'), ca: pem('ca.crt'), requestCert: true, rejectUnauthorized: true }, (socket) => {
      serverNames.push(socket.servername);
      const upstream = connect(consul.port, '127.0.0.1');
      sockets.add(socket).add(upstream);
      socket.on('close', () => sockets.delete(socket));
      upstream.on('close', () => sockets.delete(upstream));
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    terminator.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => terminator.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(terminator.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => terminator.close(() => resolve()));
    await consul.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('CONSUL_CACERT + client certificate: syncs over mutual TLS', async () => {
    const h = new ProviderHarness(url, { caCert: join(dir, 'ca.crt'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') });
    try {
      await h.start(['web']);
      await h.waitSynced();
      assert.equal(h.instances('web')?.length, 1);
      consul.setCheck('service:web-1', 'critical');
      await waitFor('a change over TLS', () => h.statuses('web')?.['web-1'] === 'critical');
      consul.setCheck('service:web-1', 'passing');
    } finally {
      await h.stop();
    }
  });

  it('an unknown CA with verification on: a tls error naming CONSUL_CACERT, not synced', async () => {
    const h = new ProviderHarness(url, { clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') });
    try {
      await h.start();
      assert.equal(h.provider.status().synced, false);
      assert.ok(await h.errors('catalog', 'tls') >= 1);
      assert.match(h.provider.status().lastError ?? '', /TLS with Consul at https:\/\/127\.0\.0\.1:\d+ failed .*CONSUL_CACERT/);
    } finally {
      await h.stop();
    }
  });

  it('CONSUL_HTTP_SSL_VERIFY=false: syncs without the CA', async () => {
    const h = new ProviderHarness(url, { tlsVerify: false, clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') });
    try {
      await h.start(['web']);
      await h.waitSynced();
    } finally {
      await h.stop();
    }
  });

  it('without the client certificate the server refuses: reported, not synced', async () => {
    const h = new ProviderHarness(url, { caCert: join(dir, 'ca.crt') });
    try {
      await h.start();
      assert.equal(h.provider.status().synced, false);
      assert.ok(await h.errors('catalog') >= 1);
      assert.match(h.provider.status().lastError ?? '', /Consul at https:\/\/127\.0\.0\.1:\d+/);
    } finally {
      await h.stop();
    }
  });

  it('CONSUL_CAPATH: a directory of PEM certificates, walked recursively, verifies the server', async () => {
    const caDir = join(dir, 'ca.d');
    mkdirSync(join(caDir, 'nested'), { recursive: true });
    copyFileSync(join(dir, 'ca.crt'), join(caDir, 'nested', 'switchyard-ca.pem'));
    const h = new ProviderHarness(url, { caPath: caDir, clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') });
    try {
      await h.start(['web']);
      await h.waitSynced();
    } finally {
      await h.stop();
    }
    writeFileSync(join(caDir, 'README'), 'not a certificate\n');
    assert.throws(() => new ProviderHarness(url, { caPath: caDir }), /CONSUL_CAPATH: no PEM certificate in .*README/);
    assert.throws(() => new ProviderHarness(url, { caPath: join(dir, 'nowhere') }), /CONSUL_CAPATH: cannot read .*nowhere: ENOENT/);
  });

  it('CONSUL_TLS_SERVER_NAME: sent as SNI and checked against the certificate', async () => {
    serverNames.length = 0;
    const tls = { caCert: join(dir, 'ca.crt'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') };
    const h = new ProviderHarness(url, { ...tls, tlsServerName: 'server.dc1.consul' });
    try {
      await h.start(['web']);
      await h.waitSynced();
    } finally {
      await h.stop();
    }
    assert.ok(serverNames.length > 0 && serverNames.every((name) => name === 'server.dc1.consul'), JSON.stringify(serverNames));
    const wrong = new ProviderHarness(url, { ...tls, tlsServerName: 'other.dc1.consul' });
    try {
      await wrong.start(['web']);
      await waitFor('a tls error', async () => (await wrong.errors('catalog', 'tls')) >= 1);
      assert.equal(wrong.provider.status().synced, false);
    } finally {
      await wrong.stop();
    }
  });

  it('an unreadable CONSUL_CACERT fails at construction with a clear message', () => {
    assert.throws(() => new ProviderHarness(url, { caCert: join(dir, 'missing.crt') }), /CONSUL_CACERT: cannot read .*missing\.crt: ENOENT/);
  });
});
