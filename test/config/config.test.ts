import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { helpText, parseCommandLine, parseDuration, parseGoBool } from '../../src/config/config.js';
import { parseHostPort } from '../../src/config/host-port.js';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const action = parseCommandLine(argv, env);
  assert.equal(action.kind, 'run');
  return (action as Extract<typeof action, { kind: 'run' }>).config;
};

describe('command line', () => {
  it('applies the documented defaults', () => {
    const config = run([]);
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 8081 });
    assert.equal(config.templatesDir, './templates');
    assert.equal(config.servicesFile, undefined);
    assert.equal(config.drainTimeoutMs, 10_000);
    assert.equal(config.shutdownDelayMs, 0);
    assert.equal(config.startupWaitMs, 15_000);
  });

  it('reads the lifecycle durations from flags and environment', () => {
    const config = run(['--shutdown-delay', '5s'], { SWITCHYARD_STARTUP_WAIT: '2m' });
    assert.equal(config.shutdownDelayMs, 5_000);
    assert.equal(config.startupWaitMs, 120_000);
  });

  it('takes flags over environment variables, and environment over defaults', () => {
    const env = { SWITCHYARD_LISTEN: '127.0.0.1:9000', SWITCHYARD_SERVICES: '/env.yaml', SWITCHYARD_TEMPLATES: '/tpl' };
    const fromEnv = run([], env);
    assert.deepEqual(fromEnv.listen, { host: '127.0.0.1', port: 9000 });
    assert.equal(fromEnv.servicesFile, '/env.yaml');
    const fromFlags = run(['--listen', '[::1]:7000', '--services=/flag.yaml'], env);
    assert.deepEqual(fromFlags.listen, { host: '::1', port: 7000 });
    assert.equal(fromFlags.servicesFile, '/flag.yaml');
    assert.equal(fromFlags.templatesDir, '/tpl');
  });

  it('recognises --help and --version', () => {
    assert.equal(parseCommandLine(['--help'], {}).kind, 'help');
    assert.equal(parseCommandLine(['--version'], {}).kind, 'version');
  });

  const invalid: [string[], RegExp][] = [
    [['--bogus'], /bogus/],
    [['--listen', 'nope'], /--listen: expected HOST:PORT/],
    [['--listen', '1.2.3.4:70000'], /out of range/],
    [['--admin', '[zz]:80'], /--admin/],
    [['--drain-timeout', 'soon'], /--drain-timeout: expected a duration/],
    [['--startup-wait', 'forever'], /--startup-wait: expected a duration/],
    [['--shutdown-delay', 'later'], /--shutdown-delay: expected a duration/],
    [['--log-level', 'loud'], /--log-level/],
    [['--services', ''], /empty value/],
    [['positional'], /positional|Unexpected argument/i],
    // Consul settings are checked even when --consul is not given.
    [['--consul-wait', 'bogus'], /--consul-wait: expected a duration/],
    [['--consul-wait', '500ms'], /--consul-wait: must be between 1s and 10m/],
    [['--consul-consistency', 'nope'], /--consul-consistency: expected default, stale or consistent/],
  ];
  for (const [argv, reason] of invalid) {
    it(`rejects ${argv.join(' ')} with a usage error`, () => {
      assert.throws(() => parseCommandLine(argv, {}), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_USAGE');
        assert.match(err.message, reason);
        assert.ok(!err.message.includes('\n'), 'one-line reason');
        return true;
      });
    });
  }

  it('parses durations and host:port forms', () => {
    assert.equal(parseDuration('x', '250ms'), 250);
    assert.equal(parseDuration('x', '1.5s'), 1500);
    assert.equal(parseDuration('x', '2m'), 120_000);
    assert.equal(parseDuration('x', '40'), 40);
    assert.deepEqual(parseHostPort('--x', ':80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseHostPort('--x', 'localhost:0'), { host: 'localhost', port: 0 });
  });
});

describe('Consul environment, read as Consul\'s api/api.go reads it', () => {
  const consul = (env: NodeJS.ProcessEnv, argv: string[] = []) => {
    const settings = run(argv, { CONSUL_HTTP_ADDR: '127.0.0.1:8500', ...env }).consul;
    assert.ok(settings !== undefined);
    return settings;
  };
  const TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
  const FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

  it('CONSUL_HTTP_SSL takes every spelling of Go\'s strconv.ParseBool', () => {
    for (const value of TRUE) assert.equal(consul({ CONSUL_HTTP_SSL: value }).url, 'https://127.0.0.1:8500', value);
    for (const value of FALSE) assert.equal(consul({ CONSUL_HTTP_SSL: value }).url, 'http://127.0.0.1:8500', value);
    assert.equal(parseGoBool('yes'), undefined);
    assert.equal(parseGoBool('tRUE'), undefined);
  });

  it('CONSUL_HTTP_SSL_VERIFY takes every spelling of ParseBool', () => {
    for (const value of TRUE) assert.equal(consul({ CONSUL_HTTP_SSL_VERIFY: value }).tlsVerify, true, value);
    for (const value of FALSE) assert.equal(consul({ CONSUL_HTTP_SSL_VERIFY: value }).tlsVerify, false, value);
    assert.equal(consul({}).tlsVerify, true);
  });

  it('a value ParseBool refuses is a usage error naming the variable (api.go would turn verification off)', () => {
    for (const name of ['CONSUL_HTTP_SSL', 'CONSUL_HTTP_SSL_VERIFY']) {
      for (const value of ['yes', 'no', 'on', 'tRue', ' true']) {
        assert.throws(() => consul({ [name]: value }), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'SY_USAGE');
          assert.match(err.message, new RegExp(`^${name}: expected a boolean as Consul reads it \\(1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False\\), got "${value}"$`));
          return true;
        }, `${name}=${value}`);
      }
    }
  });

  it('CONSUL_HTTP_SSL=true is not reverted by an http:// address; https:// is https without it', () => {
    assert.equal(consul({ CONSUL_HTTP_ADDR: 'http://consul:8500', CONSUL_HTTP_SSL: 'true' }).url, 'https://consul:8500');
    assert.equal(consul({ CONSUL_HTTP_ADDR: 'https://consul:8501' }).url, 'https://consul:8501');
    assert.equal(consul({ CONSUL_HTTP_ADDR: 'http://consul:8500/consul-api/' }).url, 'http://consul:8500/consul-api', 'a path prefix is kept');
  });

  it('CONSUL_HTTP_TOKEN_FILE wins over CONSUL_HTTP_TOKEN; an empty file falls back to the variable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-config-'));
    try {
      writeFileSync(join(dir, 'token'), '  from-file\n');
      writeFileSync(join(dir, 'empty'), '\n');
      assert.equal(consul({ CONSUL_HTTP_TOKEN: 'from-env', CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') }).token, 'from-file');
      assert.equal(consul({ CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') }).token, 'from-file');
      assert.equal(consul({ CONSUL_HTTP_TOKEN: 'from-env' }).token, 'from-env');
      assert.equal(consul({ CONSUL_HTTP_TOKEN: 'from-env', CONSUL_HTTP_TOKEN_FILE: join(dir, 'empty') }).token, 'from-env');
      assert.throws(() => consul({ CONSUL_HTTP_TOKEN: 'from-env', CONSUL_HTTP_TOKEN_FILE: join(dir, 'missing') }), /CONSUL_HTTP_TOKEN_FILE: cannot read .*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('unix:// addresses; unknown schemes refused like api.go', () => {
    const unix = consul({ CONSUL_HTTP_ADDR: 'unix:///var/run/consul/http.sock' });
    assert.equal(unix.url, 'unix:///var/run/consul/http.sock');
    assert.equal(unix.socketPath, '/var/run/consul/http.sock');
    assert.equal(unix.secure, false);
    assert.equal(consul({ CONSUL_HTTP_ADDR: 'unix:///s.sock', CONSUL_HTTP_SSL: '1' }).secure, true, 'TLS over the socket');
    assert.throws(() => consul({ CONSUL_HTTP_ADDR: 'unix://' }), /unix socket address needs a path/);
    assert.throws(() => consul({ CONSUL_HTTP_ADDR: 'ftp://consul:21' }), /unknown protocol scheme ftp/);
  });

  it('CONSUL_CAPATH, CONSUL_TLS_SERVER_NAME (port dropped), CONSUL_NAMESPACE, CONSUL_PARTITION, CONSUL_HTTP_AUTH', () => {
    const settings = consul({
      CONSUL_CAPATH: '/etc/consul/ca.d', CONSUL_TLS_SERVER_NAME: 'server.dc1.consul:8501',
      CONSUL_NAMESPACE: 'team-a', CONSUL_PARTITION: 'part-1', CONSUL_HTTP_AUTH: 'user:pw',
    });
    assert.equal(settings.caPath, '/etc/consul/ca.d');
    assert.equal(settings.tlsServerName, 'server.dc1.consul');
    assert.equal(settings.namespace, 'team-a');
    assert.equal(settings.partition, 'part-1');
    assert.equal(settings.httpAuth, 'user:pw');
    assert.equal(consul({ CONSUL_TLS_SERVER_NAME: 'consul.local' }).tlsServerName, 'consul.local');
    const none = consul({});
    assert.equal(none.namespace, undefined);
    assert.equal(none.partition, undefined);
  });

  it('--help names every variable it reads', () => {
    const help = helpText();
    for (const name of ['CONSUL_HTTP_ADDR', 'CONSUL_HTTP_TOKEN_FILE', 'CONSUL_HTTP_TOKEN', 'CONSUL_HTTP_AUTH', 'CONSUL_HTTP_SSL', 'CONSUL_HTTP_SSL_VERIFY',
      'CONSUL_CACERT', 'CONSUL_CAPATH', 'CONSUL_CLIENT_CERT', 'CONSUL_CLIENT_KEY', 'CONSUL_TLS_SERVER_NAME', 'CONSUL_NAMESPACE', 'CONSUL_PARTITION', 'unix://']) {
      assert.ok(help.includes(name), name);
    }
  });
});

describe('--kv-prefix with Consul', () => {
  it('a prefix Consul 1.21.5+ would refuse (validateKVKey) is a usage error; without Consul it is not checked', () => {
    for (const [prefix, reason] of [['sw:yard/', /the character ":"/], ['/switchyard/', /a leading "\/"/], ['a/../b/', /"\.\.\/"/], ['my prefix', /the character " "/]] as const) {
      assert.throws(() => parseCommandLine(['--kv-prefix', prefix], { CONSUL_HTTP_ADDR: '127.0.0.1:8500' }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_USAGE');
        assert.match(err.message, /^--kv-prefix: Consul 1\.21\.5\+ refuses KV keys with /);
        assert.match(err.message, reason);
        return true;
      }, prefix);
    }
    assert.equal(run(['--kv-prefix', 'sw:yard'], {}).kvPrefix, 'sw:yard/');
    assert.equal(run(['--kv-prefix', 'team-a/switchyard'], { CONSUL_HTTP_ADDR: '127.0.0.1:8500' }).kvPrefix, 'team-a/switchyard/');
  });
});

describe('--access-log', () => {
  it('stdout by default; off; a path made absolute; from SWITCHYARD_ACCESS_LOG; a directory refused', () => {
    assert.deepEqual(run([]).accessLog, { kind: 'stdout' });
    assert.deepEqual(run(['--access-log', 'off']).accessLog, { kind: 'off' });
    assert.deepEqual(run(['--access-log', 'logs/access.log']).accessLog, { kind: 'file', path: join(process.cwd(), 'logs/access.log') });
    assert.deepEqual(run([], { SWITCHYARD_ACCESS_LOG: '/var/log/sy.log' }).accessLog, { kind: 'file', path: '/var/log/sy.log' });
    assert.throws(() => parseCommandLine(['--access-log', '/var/log/'], {}), /--access-log: expected stdout, off or a file path/);
    assert.match(helpText(), /--access-log stdout\|off\|PATH.*\[SWITCHYARD_ACCESS_LOG\]/);
  });

  it('--help lists the commands', () => {
    for (const command of ['check', 'explain', 'routes']) assert.match(helpText(), new RegExp(`^  ${command} `, 'm'));
  });
});
