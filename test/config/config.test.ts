import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine, parseDuration } from '../../src/config/config.js';
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
