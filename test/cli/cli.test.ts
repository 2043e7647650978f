import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { CLI, runCli as run } from './run-cli.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';

describe('switchyard command line', () => {
  it('prints help and version', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    for (const flag of ['--listen', '--admin', '--templates', '--services', '--consul', 'SWITCHYARD_LISTEN', '--workers N|auto', 'SWITCHYARD_WORKERS']) assert.ok(help.stdout.includes(flag), flag);
    const version = await run(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^switchyard \d+\.\d+\.\d+\n$/);
  });

  const bad: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--frobnicate'], {}, /frobnicate/],
    [['--listen', 'nowhere'], {}, /--listen/],
    [[], { SWITCHYARD_ADMIN: 'x:y' }, /--admin/],
    [['--consul', 'ftp://x:1'], {}, /--consul/],
    [['--workers', '0'], {}, /--workers: expected auto or a whole number/],
    [['--workers', 'many'], {}, /--workers/],
    [[], { SWITCHYARD_WORKERS: '2.5' }, /--workers/],
  ];
  for (const [args, env, reason] of bad) {
    it(`exits 2 with a one-line reason for ${JSON.stringify(args)} ${JSON.stringify(env)}`, async () => {
      const result = await run(args, env);
      assert.equal(result.code, 2);
      assert.match(result.stderr, reason);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    });
  }
});

describe('switchyard process: SIGHUP reloads, SIGTERM drains and exits 0', () => {
  let workspace: Workspace;
  let child: ChildProcess;
  let slowPort = 0;
  let release: (() => void) | undefined;
  const slow = createServer((req, res) => {
    if (req.url === '/slow') {
      release = () => res.end('finished');
      res.writeHead(200);
      res.write('started ');
      return;
    }
    res.end('quick');
  });
  let output = '';

  before(async () => {
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    slowPort = (slow.address() as AddressInfo).port;
    workspace = await Workspace.create();
    await workspace.writeTemplate('r.yaml', 'routes:\n  - name: r\n    to: [ { service: s } ]\n');
    await workspace.writeServices(`services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: ${slowPort} }\n`);
  });

  after(async () => {
    child?.kill('SIGKILL');
    slow.closeAllConnections();
    slow.close();
    await workspace?.remove();
  });

  it('serves, reloads on SIGHUP, and finishes an in-flight request before exiting 0 on SIGTERM', async () => {
    child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile, '--drain-timeout', '5s'], { env: { PATH: process.env['PATH'] } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const listening = await waitFor('the listening log line', () => {
      const line = output.split('\n').find((l) => l.includes('switchyard listening'));
      return line === undefined ? undefined : JSON.parse(line) as { proxy: AddressInfo; admin: AddressInfo };
    }, 10_000);
    const proxy = `http://127.0.0.1:${listening.proxy.port}`;
    await waitFor('ready', async () => (await request(`http://127.0.0.1:${listening.admin.port}/readyz`)).statusCode === 200);
    assert.equal(await (await request(`${proxy}/`)).body.text(), 'quick');

    // SIGHUP with nothing changed on disk: the file watcher sees no event, so only the signal can
    // make the services file be read again (its provider's lastSyncAt moves forward) and a table be
    // rebuilt (the watcher rebuilds after every SIGHUP: src/control/watcher.ts reload()).
    const admin = `http://127.0.0.1:${listening.admin.port}`;
    type ConfigView = { tableVersion: number; providers: { name: string; lastSyncAt: number | null }[] };
    const readConfig = async (): Promise<ConfigView> => (await (await request(`${admin}/api/config`)).body.json()) as ConfigView;
    const fileSync = (config: ConfigView): number => {
      const file = config.providers.find((p) => p.name === 'file');
      assert.ok(file !== undefined && typeof file.lastSyncAt === 'number', JSON.stringify(config.providers));
      return file.lastSyncAt;
    };
    const swapLines = (): number => output.split('\n').filter((l) => l.includes('routing table swapped')).length;
    const routesBefore = JSON.stringify(((await (await request(`${admin}/api/routes`)).body.json()) as { routes: unknown }).routes);
    const configBefore = await readConfig();
    const syncBefore = fileSync(configBefore);
    const swapsBefore = swapLines();
    assert.equal(swapsBefore, configBefore.tableVersion, 'one swap log line per table version so far');
    child.kill('SIGHUP');
    await waitFor('the SIGHUP log line', () => output.includes('SIGHUP: reloading'));
    await waitFor('the services file to be read again (lastSyncAt moves forward)', async () => fileSync(await readConfig()) > syncBefore, 10_000);
    const after = await waitFor('the rebuild that follows the re-read', async () => {
      const config = await readConfig();
      return config.tableVersion > configBefore.tableVersion && config;
    }, 10_000);
    assert.equal(after.tableVersion, configBefore.tableVersion + 1, 'one SIGHUP, one rebuild');
    await waitFor('its swap log line', () => swapLines() === swapsBefore + 1);
    // Same content on disk: the rebuilt table routes exactly as before.
    const routesAfter = JSON.stringify(((await (await request(`${admin}/api/routes`)).body.json()) as { routes: unknown }).routes);
    assert.equal(routesAfter, routesBefore);
    assert.equal(await (await request(`${proxy}/`)).body.text(), 'quick');

    const inflight = request(`${proxy}/slow`);
    await waitFor('the slow request to reach the upstream', () => release !== undefined);
    const res = await inflight;
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    await waitFor('the drain log line', () => output.includes('draining and stopping'));
    release!();
    assert.equal(await res.body.text(), 'started finished');
    assert.equal(await exited, 0);
  });
});

describe('switchyard process: start-up waits for the first table; SIGTERM meanwhile exits 0', () => {
  let workspace: Workspace;
  let child: ChildProcess | undefined;
  let closedPort = 0;

  before(async () => {
    workspace = await Workspace.create();
    await workspace.writeTemplate('r.yaml', 'routes:\n  - name: r\n    to: [ { service: s } ]\n');
    // A port nothing listens on: Consul is down at start (connections refused).
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  after(async () => {
    child?.kill('SIGKILL');
    await workspace?.remove();
  });

  it('keeps the proxy listener closed while Consul is down, and exits 0 on SIGTERM without listening', async () => {
    let output = '';
    child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--consul', `http://127.0.0.1:${closedPort}`], { env: { PATH: process.env['PATH'] } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
    await waitFor('Consul to refuse the first reads', () => output.includes('consul catalog watch failed') && output.includes('consul kv watch failed'), 10_000);
    assert.ok(!output.includes('proxy listening'), `no listener before the first table: ${output}`);
    assert.match(output, /waiting for the first routing table/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    assert.match(output, /stopping during start-up/);
    assert.ok(!output.includes('proxy listening'), 'the listener never opened');
  });

  it('--startup-wait bounds that wait: the listener opens with a warning and /readyz stays 503', async () => {
    let output = '';
    child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--consul', `http://127.0.0.1:${closedPort}`, '--startup-wait', '1s'], { env: { PATH: process.env['PATH'] } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
    // Without the flag the wait is 15 s: this deadline is shorter, so only the flag can open the listener in time.
    await waitFor('the listener to open after the start-up wait', () => output.includes('proxy listening'), 10_000);
    // With workers the warning (primary) and "proxy listening" (a worker) come from two processes
    // with buffered loggers, so either line can reach the pipe first.
    await waitFor('the start-up wait warning', () => /no routing table from every source after 1000 ms/.test(output), 10_000);
    await waitFor('the start-up line', () => output.includes('switchyard listening'), 10_000);
    const line = output.split('\n').find((l) => l.includes('switchyard listening'))!;
    const { admin } = JSON.parse(line) as { admin: { port: number } };
    const ready = await fetch(`http://127.0.0.1:${admin.port}/readyz`);
    assert.equal(ready.status, 503, 'Consul never delivered: not ready');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output);
  });
});
