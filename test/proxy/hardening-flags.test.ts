import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { helpText, parseCommandLine, parseSize, type Config } from '../../src/config/config.js';
import { rawExchange } from '../support/raw-http.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
  const action = parseCommandLine(argv, env);
  assert.equal(action.kind, 'run');
  return (action as { config: Config }).config;
};

describe('hardening flags', () => {
  it('has the documented defaults', () => {
    const config = run([]);
    assert.deepEqual(config.listener, {
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
      maxConnections: 10_000,
      maxHeaderSize: 16_384,
      maxHeaderCount: 100,
    });
    assert.deepEqual(config.trustedProxies, []);
    assert.equal(config.adminToken, undefined);
  });

  it('reads flags and environment variables', () => {
    const fromFlags = run([
      '--header-timeout', '2s', '--request-timeout', '0', '--keepalive-timeout', '5s', '--max-connections', '500',
      '--max-header-size', '32KB', '--max-header-count', '50', '--trusted-proxies', '10.0.0.0/8, 192.0.2.1,fd00::/8',
    ]);
    assert.deepEqual(fromFlags.listener, {
      headersTimeoutMs: 2_000, requestTimeoutMs: 0, keepAliveTimeoutMs: 5_000, maxConnections: 500, maxHeaderSize: 32_768, maxHeaderCount: 50,
    });
    assert.deepEqual(fromFlags.trustedProxies, ['10.0.0.0/8', '192.0.2.1/32', 'fd00::/8']);
    const fromEnv = run([], {
      SWITCHYARD_HEADER_TIMEOUT: '3s', SWITCHYARD_REQUEST_TIMEOUT: '10m', SWITCHYARD_KEEPALIVE_TIMEOUT: '1m',
      SWITCHYARD_MAX_CONNECTIONS: '20', SWITCHYARD_MAX_HEADER_SIZE: '8192', SWITCHYARD_MAX_HEADER_COUNT: '64',
      SWITCHYARD_TRUSTED_PROXIES: '127.0.0.1',
    });
    assert.deepEqual(fromEnv.listener, {
      headersTimeoutMs: 3_000, requestTimeoutMs: 600_000, keepAliveTimeoutMs: 60_000, maxConnections: 20, maxHeaderSize: 8192, maxHeaderCount: 64,
    });
    assert.deepEqual(fromEnv.trustedProxies, ['127.0.0.1/32']);
  });

  it('parses sizes', () => {
    assert.equal(parseSize('x', '16384'), 16_384);
    assert.equal(parseSize('x', '16k'), 16_384);
    assert.equal(parseSize('x', '16KB'), 16_384);
    assert.equal(parseSize('x', '1MiB'), 1_048_576);
    assert.equal(parseSize('x', '2 kb'), 2048);
    assert.throws(() => parseSize('x', '1.5KB'), /expected a size/);
    assert.throws(() => parseSize('x', 'big'), /expected a size/);
  });

  const invalid: [string[], RegExp][] = [
    [['--header-timeout', '0'], /--header-timeout: must be above 0/],
    [['--header-timeout', 'soon'], /--header-timeout: expected a duration/],
    [['--header-timeout', '20s', '--request-timeout', '10s'], /--request-timeout: must be 0 \(none\) or at least --header-timeout/],
    [['--keepalive-timeout', '0'], /--keepalive-timeout: must be above 0/],
    [['--max-connections', '0'], /--max-connections: expected a whole number/],
    [['--max-connections', 'lots'], /--max-connections: expected a whole number/],
    [['--max-header-size', '512'], /--max-header-size: must be from 1KB to 1MB/],
    [['--max-header-size', '2MB'], /--max-header-size: must be from 1KB to 1MB/],
    [['--max-header-count', '0'], /--max-header-count/],
    [['--trusted-proxies', 'nope'], /--trusted-proxies: "nope" is not an IP address or CIDR/],
    [['--trusted-proxies', '10.0.0.0/40'], /--trusted-proxies: "10.0.0.0\/40": prefix length must be 0-32/],
  ];
  for (const [argv, reason] of invalid) {
    it(`rejects ${argv.join(' ')} with a one-line usage error`, () => {
      assert.throws(() => parseCommandLine(argv, {}), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_USAGE');
        assert.match(err.message, reason);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    });
  }

  it('lists every new flag in --help with its variable', () => {
    const help = helpText();
    for (const flag of ['--header-timeout', '--request-timeout', '--keepalive-timeout', '--max-connections', '--max-header-size',
      '--max-header-count', '--trusted-proxies', '--admin-token', '--admin-token-file', 'SWITCHYARD_ADMIN_TOKEN', 'SWITCHYARD_TRUSTED_PROXIES']) {
      assert.ok(help.includes(flag), flag);
    }
  });
});

describe('hardening flags reach a running Switchyard', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let upstream: TestUpstream;
  let proxyPort = 0;

  before(async () => {
    upstream = await startUpstream({ name: 'app' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', 'routes:\n  - name: app\n    match: { path: /public }\n    to:\n      - { service: app }\n');
    await workspace.writeServices(`services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${upstream.port} }\n`);
    app = await startTestSwitchyard(workspace, [
      '--header-timeout', '300ms', '--request-timeout', '30s', '--max-header-size', '2KB', '--max-header-count', '20',
      '--trusted-proxies', '127.0.0.0/8',
    ]);
    proxyPort = app.proxyAddress.port;
  });

  after(async () => {
    await app.stop();
    await upstream.close();
    await workspace.remove();
  });

  it('enforces the header size and count', async () => {
    const big = await rawExchange(proxyPort, `GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(3000)}\r\n\r\n`);
    assert.deepEqual(big.responses.map((r) => r.status), [431]);
    const many = await rawExchange(proxyPort, `GET /public/x HTTP/1.1\r\nHost: a\r\n${'X-A: b\r\n'.repeat(20)}\r\n`);
    assert.deepEqual(many.responses.map((r) => r.status), [431]);
  });

  it('enforces the header timeout', async () => {
    // ~330 bytes at one byte per 20 ms: the head would be complete after >= 6.6 s (and answered 200).
    const slow = await rawExchange(proxyPort, `GET /public/x HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(300)}\r\n\r\n`, { paceMs: 20, deadlineMs: 15_000 });
    assert.deepEqual(slow.responses.map((r) => r.status), [408]);
    assert.equal(slow.closed, true);
    // < 5 s rules out every other way to a 408 or a close: the default 10 s header timeout (the
    // flag not applied), the 30 s request timeout, the 6.6 s the head takes to arrive. The margin
    // over 300 ms is for a loaded machine.
    assert.ok(slow.ms < 5_000, `${slow.ms} ms`);
  });

  it('trusts the configured proxies, resolves dot segments (keeping //) and refuses traversal', async () => {
    const res = await request(`http://127.0.0.1:${proxyPort}/public/./a//b`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    const echo = await res.body.json() as EchoReply;
    assert.equal(echo.url, '/public/a//b');
    assert.equal(echo.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    const escape = await rawExchange(proxyPort, 'GET /public/../etc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.deepEqual(escape.responses.map((r) => r.status), [404]);
  });

  it('shows the settings in /api/config', async () => {
    const res = await request(`http://127.0.0.1:${app.adminAddress.port}/api/config`);
    const config = await res.body.json() as Record<string, unknown>;
    assert.deepEqual(config['listener'], {
      headersTimeoutMs: 300, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, maxConnections: 10_000, maxHeaderSize: 2048, maxHeaderCount: 20,
    });
    assert.deepEqual(config['trustedProxies'], ['127.0.0.0/8']);
    assert.equal(config['adminToken'], 'not set');
  });
});
