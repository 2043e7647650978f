import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCommandLine, type Config } from '../../src/config/config.js';

const ROOT = new URL('../../', import.meta.url).pathname;

const config = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
  const action = parseCommandLine(argv, env);
  assert.equal(action.kind, 'run');
  return (action as Extract<typeof action, { kind: 'run' }>).config;
};

/** The CLI from source (no build needed), as a child process. */
function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'], SWITCHYARD_LOG_LEVEL: 'silent' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('TLS flags', () => {
  it('are off by default', () => {
    assert.equal(config([]).tls, undefined);
  });

  it('take --tls-listen with --tls-cert-dir, from flags or the environment', () => {
    assert.deepEqual(config(['--tls-listen', ':8443', '--tls-cert-dir', '/etc/switchyard/certs']).tls, {
      listen: { host: '0.0.0.0', port: 8443 },
      certDir: '/etc/switchyard/certs',
    });
    assert.deepEqual(config([], { SWITCHYARD_TLS_LISTEN: '127.0.0.1:9443', SWITCHYARD_TLS_CERT_DIR: '/certs' }).tls, {
      listen: { host: '127.0.0.1', port: 9443 },
      certDir: '/certs',
    });
  });

  const invalid: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--tls-listen', ':8443'], {}, /--tls-listen needs --tls-cert-dir/],
    [['--tls-cert-dir', '/certs'], {}, /--tls-cert-dir needs --tls-listen/],
    [[], { SWITCHYARD_TLS_CERT_DIR: '/certs' }, /--tls-cert-dir needs --tls-listen/],
    [['--tls-listen', 'nope', '--tls-cert-dir', '/certs'], {}, /--tls-listen: expected HOST:PORT/],
  ];
  for (const [argv, env, reason] of invalid) {
    it(`rejects ${JSON.stringify(argv)} ${JSON.stringify(env)} with a one-line usage error`, () => {
      assert.throws(() => parseCommandLine(argv, env), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_USAGE');
        assert.match(err.message, reason);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    });
  }
});

describe('switchyard with TLS flags, as a process', () => {
  let empty: string;

  before(async () => {
    empty = await mkdtemp(join(tmpdir(), 'sy-tls-empty-'));
  });

  after(async () => {
    await rm(empty, { recursive: true, force: true });
  });

  const common = ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'];

  it('exits 2 with the reason when only one of the two flags is given', async () => {
    const result = await cli([...common, '--tls-listen', '127.0.0.1:0']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^switchyard: --tls-listen needs --tls-cert-dir/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });

  it('fails to start, naming the directory, when it is missing or holds no certificate pair', async () => {
    const missing = join(empty, 'nope');
    const gone = await cli([...common, '--tls-listen', '127.0.0.1:0', '--tls-cert-dir', missing]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`${missing}: cannot read the TLS certificate directory: ENOENT`));
    const none = await cli([...common, '--tls-listen', '127.0.0.1:0', '--tls-cert-dir', empty]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no usable certificate pair \(NAME\.crt \+ NAME\.key\)/);
  });
});
