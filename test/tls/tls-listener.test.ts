import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { request } from 'undici';
import WebSocket from 'ws';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { CertDir, HAVE_OPENSSL, makePair, type Pair } from './certs.js';
import { handshake, peerSerial, TlsHttpClient } from './tls-client.js';

/**
 * TLS termination end to end: Switchyard in-process with `--tls-listen` and `--tls-cert-dir`, real
 * certificates made by openssl, real sockets. SNI selection, proxying with X-Forwarded-Proto https,
 * keep-alive, WebSocket, protocol floor, and reloads that reach new connections while established
 * ones carry on.
 */
describe('TLS termination', { skip: HAVE_OPENSSL ? false : 'openssl is not installed' }, () => {
  let workspace: Workspace;
  let certs: CertDir;
  let up: TestUpstream;
  let app: Switchyard;
  let port = 0;
  const pairs: Record<string, Pair> = {};

  const metric = async (name: string, labels = ''): Promise<number> => {
    const text = await (await request(`http://127.0.0.1:${app.adminAddress.port}/metrics`)).body.text();
    const prefix = labels === '' ? `${name} ` : `${name}{${labels}}`;
    const line = text.split('\n').find((l) => l.startsWith(prefix));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };
  const tlsErrors = (): Promise<number> => metric('switchyard_config_errors_total', 'kind="tls"');

  before(async () => {
    const [def, a, b, wild] = await Promise.all([
      makePair({ cn: 'default.test' }),
      makePair({ cn: 'a.test', dns: ['a.test'] }),
      makePair({ cn: 'b.test', dns: ['b.test', 'www.b.test'] }),
      makePair({ cn: '*.wild.test', dns: ['*.wild.test'] }),
    ]);
    Object.assign(pairs, { default: def!, a: a!, b: b!, wild: wild! });
    certs = await CertDir.create();
    for (const [name, pair] of Object.entries(pairs)) await certs.install(name, pair);

    up = await startUpstream({ name: 'web', websocket: true });
    workspace = await Workspace.create();
    await workspace.writeTemplate('web.yaml', 'routes:\n  - name: web\n    match: { path: / }\n    to:\n      - { service: web }\n');
    await workspace.writeServices(`services:\n  web:\n    - { id: web-1, address: 127.0.0.1, port: ${up.port} }\n`);
    app = await startTestSwitchyard(workspace, ['--tls-listen', '127.0.0.1:0', '--tls-cert-dir', certs.dir]);
    port = app.tlsAddress!.port;
  });

  after(async () => {
    await app?.stop();
    await up?.close();
    await workspace?.remove();
    await certs?.cleanup();
  });

  it('picks the certificate by SNI: exact names, SANs, wildcards one label deep, the default otherwise', async () => {
    const cases: [string | undefined, string][] = [
      ['a.test', 'a'],
      ['A.Test', 'a'],
      ['b.test', 'b'],
      ['www.b.test', 'b'],
      ['x.wild.test', 'wild'],
      ['deep.x.wild.test', 'default'],
      ['wild.test', 'default'],
      ['unknown.example', 'default'],
      [undefined, 'default'],
    ];
    for (const [servername, expected] of cases) {
      assert.equal(await peerSerial(port, servername), pairs[expected]!.serial, `${servername ?? '(no SNI)'} → ${expected}`);
    }
    assert.equal(await metric('switchyard_tls_certificates'), 4);
  });

  it('negotiates TLS 1.3 with ALPN http/1.1 and verifies against the certificate for the name', async () => {
    const { protocol, alpn, socket } = await handshake(port, 'a.test', { rejectUnauthorized: true, ca: pairs['a']!.cert });
    socket.destroy();
    assert.equal(protocol, 'TLSv1.3');
    assert.equal(alpn, 'http/1.1');
  });

  it('refuses TLS 1.1 and below', async (t) => {
    // node's OpenSSL 3 client refuses TLS 1.0/1.1 on its own at the default security level
    // ("legacy sigalg disallowed"), whatever the server allows: a plain `maxVersion: 'TLSv1.1'`
    // client fails against any server, and this test passed with the server's floor lowered to
    // TLS 1.0. So the client allows legacy algorithms, a control proves it does complete TLS 1.0
    // and 1.1 where a server allows them, and the refusal must be the server's protocol alert.
    const legacy = { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
    const permissive = createTlsServer({ cert: pairs['a']!.cert, key: pairs['a']!.key, ...legacy }, (socket) => socket.end());
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    try {
      for (const version of ['TLSv1', 'TLSv1.1'] as const) {
        let control: Awaited<ReturnType<typeof handshake>>;
        try {
          control = await handshake((permissive.address() as AddressInfo).port, 'a.test', { ...legacy, maxVersion: version });
        } catch (err) {
          t.skip(`this OpenSSL cannot speak ${version} at all (${(err as Error).message}): nothing to refuse`);
          return;
        }
        control.socket.destroy();
        assert.equal(control.protocol, version, `control: the client speaks ${version}`);
        await assert.rejects(handshake(port, 'a.test', { ...legacy, maxVersion: version }), (err: NodeJS.ErrnoException) => {
          assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', `${version}: refused by the server's protocol_version alert (${err.message})`);
          return true;
        });
      }
    } finally {
      permissive.close();
    }
    const { protocol, socket } = await handshake(port, 'a.test', { maxVersion: 'TLSv1.2' });
    socket.destroy();
    assert.equal(protocol, 'TLSv1.2');
  });

  it('refuses renegotiation on a TLS 1.2 connection: the server closes it', async () => {
    const { socket } = await handshake(port, 'a.test', { maxVersion: 'TLSv1.2' });
    let closed = false;
    socket.once('close', () => { closed = true; });
    socket.on('error', () => { /* the server tears the connection down */ });
    socket.resume(); // read what the server sends, its end included
    assert.equal(socket.renegotiate({ rejectUnauthorized: false }, () => { /* outcome seen as the close */ }), true);
    try {
      await waitFor('the server to close the renegotiating connection', () => closed);
    } finally {
      socket.destroy();
    }
  });

  it('proxies HTTP/1.1 over one keep-alive TLS connection with X-Forwarded-Proto https', async () => {
    const client = new TlsHttpClient(port, 'a.test', pairs['a']!.cert);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await client.get(`/hello/${i}`, { host: 'a.test' });
        assert.equal(res.status, 200, res.body);
        const echo = JSON.parse(res.body) as EchoReply;
        assert.equal(echo.url, `/hello/${i}`);
        assert.equal(echo.headers['x-forwarded-proto'], 'https');
        assert.equal(echo.headers['x-forwarded-host'], 'a.test');
        assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
      }
      assert.equal(client.sockets.length, 1, 'one connection for three requests');
    } finally {
      await client.close();
    }
    const plain = await request(`http://127.0.0.1:${app.proxyAddress.port}/plain`);
    assert.equal((JSON.parse(await plain.body.text()) as EchoReply).headers['x-forwarded-proto'], 'http', 'the plain listener still says http');
  });

  it('proxies WebSocket upgrades over TLS', async () => {
    // ws hands these to tls.connect: SNI b.test, verified against b's certificate.
    const options: WebSocket.ClientOptions & ConnectionOptions = { ca: pairs['b']!.cert, servername: 'b.test', headers: { host: 'b.test' } };
    const ws = new WebSocket(`wss://127.0.0.1:${port}/chat`, options);
    const messages: string[] = [];
    ws.on('message', (data) => messages.push((data as Buffer).toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      await waitFor('the upgrade echo', () => messages.length >= 1);
      const hello = JSON.parse(messages[0]!) as EchoReply;
      assert.equal(hello.url, '/chat');
      assert.equal(hello.headers['x-forwarded-proto'], 'https');
      ws.send('ping');
      await waitFor('the echoed message', () => messages.length >= 2);
      assert.equal(messages[1], 'web:ping');
    } finally {
      ws.terminate();
    }
  });

  it('serves a renewed certificate to new connections while an established keep-alive connection carries on', async () => {
    const renewed = await makePair({ cn: 'a.test', dns: ['a.test'] });
    const client = new TlsHttpClient(port, 'a.test', [pairs['a']!.cert, renewed.cert]);
    try {
      assert.equal((await client.get('/before', { host: 'a.test' })).status, 200);
      assert.equal(client.serial, pairs['a']!.serial);
      const reloads = await metric('switchyard_tls_reloads_total');
      const errors = await tlsErrors();

      await certs.install('a', renewed);
      await waitFor('new connections to get the renewed certificate', async () => await peerSerial(port, 'a.test') === renewed.serial);

      for (let i = 0; i < 3; i++) {
        const res = await client.get(`/after/${i}`, { host: 'a.test' });
        assert.equal(res.status, 200, res.body);
        assert.equal((JSON.parse(res.body) as EchoReply).headers['x-forwarded-proto'], 'https');
      }
      assert.equal(client.sockets.length, 1, 'the established connection was kept');
      assert.equal(client.serial, pairs['a']!.serial, 'and it runs on the certificate it negotiated before the renewal');
      assert.equal(await metric('switchyard_tls_reloads_total'), reloads + 1);
      assert.equal(await tlsErrors(), errors, 'a renewal by rename is no error');
      assert.equal(await peerSerial(port, 'b.test'), pairs['b']!.serial, 'other certificates unchanged');
      pairs['a'] = renewed;
    } finally {
      await client.close();
    }
  });

  it('renews the default certificate for clients without SNI', async () => {
    const renewed = await makePair({ cn: 'default.test' });
    await certs.install('default', renewed);
    await waitFor('clients without SNI to get the renewed default', async () => await peerSerial(port, undefined) === renewed.serial);
    assert.equal(await peerSerial(port, 'nobody.example'), renewed.serial);
    pairs['default'] = renewed;
  });

  it('rejects a broken pair with a metric and keeps serving its last good version', async () => {
    // The count goes up in the middle of a directory read; the index that read builds is swapped
    // in at its end, after the other pairs are read. A reload queues behind that read: once it
    // resolves, what a handshake sees is the outcome of the read that rejected the pair (not the
    // index from before it, which has the old b whatever the rejection does).
    const readDone = (): Promise<void> => app.certificates!.reload();
    const errors = await tlsErrors();
    await certs.write('b.crt', '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    await waitFor('the bad PEM to be counted', async () => await tlsErrors() === errors + 1);
    await readDone();
    assert.equal(await peerSerial(port, 'b.test'), pairs['b']!.serial);
    assert.match(app.certificates!.status().broken['b'] ?? '', /not a PEM certificate/);

    const other = await makePair({ cn: 'b.test', dns: ['b.test'] });
    await certs.write('b.crt', other.cert); // the key on disk is still the old one: mismatch
    await waitFor('the mismatched key to be counted', async () => await tlsErrors() === errors + 2);
    await readDone();
    assert.equal(await peerSerial(port, 'b.test'), pairs['b']!.serial);
    assert.match(app.certificates!.status().broken['b'] ?? '', /b\.key/);

    await certs.remove('b.key');
    await waitFor('the missing key to be counted', async () => await tlsErrors() === errors + 3);
    await readDone();
    assert.equal(await peerSerial(port, 'b.test'), pairs['b']!.serial);

    await certs.write('b.key', other.key);
    await waitFor('the repaired pair to be served', async () => await peerSerial(port, 'b.test') === other.serial);
    assert.deepEqual(app.certificates!.status().broken, {});
    assert.equal(await tlsErrors(), errors + 3);
    pairs['b'] = other;
  });

  it('drops a pair whose files are both removed; its names fall back to the default', async () => {
    await certs.remove('wild.crt');
    await certs.remove('wild.key');
    await waitFor('the wildcard certificate to be gone', async () => await peerSerial(port, 'x.wild.test') === pairs['default']!.serial);
    assert.equal(await metric('switchyard_tls_certificates'), 3);
    const config = await (await request(`http://127.0.0.1:${app.adminAddress.port}/api/config`)).body.json() as { tls: { certificates: { name: string }[]; default: string } };
    assert.deepEqual(config.tls.certificates.map((c) => c.name), ['a', 'b', 'default']);
    assert.equal(config.tls.default, 'default');
  });
});
