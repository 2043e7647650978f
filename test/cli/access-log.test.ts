import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { Workspace } from '../support/switchyard.js';
import { CLI } from './run-cli.js';
import { waitFor } from '../support/wait.js';

/** A running `switchyard` process and everything it printed. */
interface Running {
  readonly child: ChildProcess;
  readonly proxy: string;
  output(): string;
  exited: Promise<number | null>;
}

async function start(workspace: Workspace, args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
    '--services', workspace.servicesFile, '--drain-timeout', '2s', ...args], { env: { PATH: process.env['PATH'] } });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = await waitFor('the listening log line', () => {
    const line = output.split('\n').find((l) => l.includes('switchyard listening'));
    return line === undefined ? undefined : JSON.parse(line) as { proxy: AddressInfo };
  }, 20_000);
  return { child, proxy: `http://127.0.0.1:${listening.proxy.port}`, output: () => output, exited };
}

/** `n` requests, one after the other, each answered 200. */
async function send(proxy: string, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 1) {
    const res = await request(`${proxy}/r/${tag}/${i}`);
    assert.equal(res.statusCode, 200);
    await res.body.text();
  }
}

/** The access lines in a file (every line must be one whole JSON object). */
function accessLines(path: string): { path: string; worker?: number }[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'the file ends with a whole line');
  return text.slice(0, -1).split('\n').map((line) => {
    const parsed = JSON.parse(line) as { kind: string; path: string; worker?: number };
    assert.equal(parsed.kind, 'access');
    return parsed;
  });
}

describe('--access-log PATH: a file, reopened on SIGUSR1 (logrotate)', () => {
  let workspace: Workspace;
  const children: ChildProcess[] = [];
  const upstream = createServer((req, res) => res.end('ok'));

  before(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    workspace = await Workspace.create();
    await workspace.writeTemplate('r.yaml', 'routes:\n  - name: r\n    to: [ { service: s } ]\n');
    await workspace.writeServices(`services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }\n`);
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    upstream.closeAllConnections();
    upstream.close();
    await workspace?.remove();
  });

  for (const workers of [1, 2]) {
    it(`--workers ${workers}: lines go to the file; after mv and SIGUSR1 new lines go to a new file at PATH, none lost`, async () => {
      const path = join(workspace.dir, `access-${workers}.log`);
      const rotated = `${path}.1`;
      const sy = await start(workspace, ['--access-log', path, '--workers', String(workers)]);
      children.push(sy.child);
      await send(sy.proxy, 20, 'before');
      await waitFor('20 lines in the file', () => accessLines(path).length === 20, 10_000);
      assert.ok(!sy.output().includes('"kind":"access"'), 'no access line on stdout');

      renameSync(path, rotated);
      sy.child.kill('SIGUSR1');
      // Every process that writes the file logs its reopen (the primary of --workers N passes the signal on).
      await waitFor(`${workers} process(es) to reopen the file`, () => sy.output().split('\n')
        .filter((l) => l.includes('SIGUSR1: reopening') && l.includes(path)).length === workers, 10_000);
      await send(sy.proxy, 15, 'after');
      await waitFor('15 lines in the new file', () => accessLines(path).length === 15, 10_000);
      sy.child.kill('SIGTERM');
      assert.equal(await sy.exited, 0, sy.output());

      const old = accessLines(rotated);
      const fresh = accessLines(path);
      assert.equal(old.length + fresh.length, 35, 'every request has its line, in one file or the other');
      assert.deepEqual(old.map((l) => l.path.split('/')[2]), Array(20).fill('before'));
      assert.deepEqual(fresh.map((l) => l.path.split('/')[2]), Array(15).fill('after'));
      if (workers > 1) assert.ok(fresh.every((l) => typeof l.worker === 'number'), 'worker lines carry their worker');
    });
  }

  it('off: no access line anywhere', async () => {
    const sy = await start(workspace, ['--access-log', 'off', '--workers', '1']);
    children.push(sy.child);
    await send(sy.proxy, 5, 'off');
    sy.child.kill('SIGTERM');
    assert.equal(await sy.exited, 0, sy.output());
    assert.match(sy.output(), /switchyard stopped/, 'the log was flushed to the end');
    assert.ok(!sy.output().includes('"kind":"access"'), sy.output());
  });

  /** Run the CLI to its exit with the workspace's sources and `args`; its exit code and stderr. */
  const runToExit = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile, ...args], { env: { PATH: process.env['PATH'] } });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stdout, stderr };
  };

  for (const workers of [1, 2]) {
    it(`--workers ${workers}: a file that cannot be opened stops the start with its reason, in one line`, async () => {
      const { code, stdout, stderr } = await runToExit(['--admin', '127.0.0.1:0', '--workers', String(workers), '--access-log', join(workspace.dir, 'no-such-dir', 'access.log')]);
      assert.equal(code, 1);
      // Checked before anything starts: no worker is forked to fail on it (a level-60 line each).
      assert.ok(!stdout.includes('"level":60') && !stdout.includes('"level":50'), stdout);
      assert.match(stderr, /^switchyard: --access-log: cannot open .*no-such-dir\/access\.log for appending: ENOENT\n$/);
    });
  }

  it('a taken admin port with an access log file: exit 1 with one line, no stack trace', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const { code, stderr } = await runToExit(['--admin', `127.0.0.1:${port}`, '--workers', '1', '--access-log', join(workspace.dir, 'taken.log')]);
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`^switchyard: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}\n$`));
    } finally {
      taken.close();
    }
  });

  it('exiting before the file is open (a SIGTERM early in start-up) exits with its own code', async () => {
    // What a SIGTERM in the first milliseconds of start-up does: the access log file was just
    // created, its asynchronous open has not completed, and the process exits 0.
    const logger = new URL('../../src/observability/logger.ts', import.meta.url).href;
    const script = `import { accessLogger, createLogger } from ${JSON.stringify(logger)};
      accessLogger({ kind: 'file', path: ${JSON.stringify(join(workspace.dir, 'early.log'))} }, createLogger({ sync: true })).info('x');
      process.exit(0);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { PATH: process.env['PATH'] } });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
  });
});
