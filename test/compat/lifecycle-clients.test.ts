/**
 * The process lifecycle as real clients (curl, python3 http.client) see it, against the built CLI:
 * - start-up: a client polling the proxy port from before the listener exists never gets a 404 or
 *   503 for lack of data: connections are refused until the first table (Consul's data included)
 *   is live, then every answer is 200;
 * - SIGTERM: /readyz answers 503 at once; during --shutdown-delay new connections are still
 *   accepted and served; then the listener closes, the in-flight request finishes, and the process
 *   exits 0 as soon as it has (not when the drain timeout ends).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConsulTestServer } from '../support/consul/server.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { listening, startCli, type Cli } from './cli-process.js';


function run(file: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * A poller started now: its stdout lines as they come (`lines`), and all of stdout once it exits.
 * The test lets the listener open only after every poller has made its first attempt: on a loaded
 * machine python3 took longer to start than Switchyard took to open (CI saw [200, 200, 200]).
 */
function poller(file: string, args: string[], timeoutMs: number): { lines: string[]; done: Promise<string> } {
  const lines: string[] = [];
  let out = '';
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    lines.splice(0, lines.length, ...out.split('\n').filter((l) => l !== ''));
  });
  const done = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${file} exited ${code}`));
    });
  });
  return { lines, done };
}

/** curl's status code for a GET (`000`: no answer, e.g. connection refused). */
async function curlStatus(url: string): Promise<string> {
  return run('bash', ['-c', 'curl -s -o /dev/null -w "%{http_code}" --max-time 5 "$1" || true', 'curl', url]);
}

/**
 * Polls http://127.0.0.1:PORT/ with python3 http.client, a new connection each time, until WANT
 * answers 200 or DEADLINE seconds; prints every outcome (a status, or "refused") as one JSON line.
 */
const PYTHON_POLL = `
import http.client, json, sys, time
port, want, deadline = int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
ok = 0
while time.time() < deadline and ok < want:
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        c.request('GET', '/')
        r = c.getresponse()
        r.read()
        c.close()
        seen = r.status
        ok += r.status == 200
    except ConnectionRefusedError:
        seen = 'refused'
    except Exception as e:
        seen = type(e).__name__
    print(json.dumps(seen), flush=True)
    time.sleep(0.02)
`;

/** The same poll with curl in a shell loop; prints one status code per line (`000`: refused). */
const CURL_POLL = `
port=$1; want=$2; end=$((SECONDS + $3)); ok=0
while [ $SECONDS -lt $end ] && [ $ok -lt $want ]; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/")
  echo "$code"
  if [ "$code" = 200 ]; then ok=$((ok + 1)); fi
  sleep 0.02
done
`;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('compat: start-up, as curl and python3 polling from before the listener see it', () => {
  let workspace: Workspace;
  let consul: ConsulTestServer;
  let upstream: Server;
  let cli: Cli | undefined;

  before(async () => {
    upstream = createServer((_req, res) => res.end('up'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    consul = await ConsulTestServer.start();
    consul.registerService({ ID: 'web-1', Name: 'web', Address: '127.0.0.1', Port: (upstream.address() as AddressInfo).port });
    workspace = await Workspace.create();
    await workspace.writeTemplate('web.yaml', 'routes:\n  - name: web\n    match: { path: / }\n    to: [ { service: web } ]\n');
  });

  after(async () => {
    cli?.child.kill('SIGKILL');
    await consul?.stop();
    upstream.closeAllConnections();
    upstream.close();
    await workspace?.remove();
  });

  it('connections are refused until the first table is live, then every answer is 200 (never 404 or 503)', async () => {
    const port = await freePort();
    // Consul answers 500 at first: no source data, so no table worth serving yet.
    consul.setFailing(500);
    const python = poller('python3', ['-c', PYTHON_POLL, String(port), '3', '40'], 60_000);
    const curl = poller('bash', ['-c', CURL_POLL, 'poll', String(port), '3', '40'], 60_000);
    cli = startCli(['--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir, '--consul', consul.address]);
    const current = cli;
    await waitFor('Consul to fail the catalog read', () => current.output().includes('consul catalog watch failed'), 20_000);
    assert.ok(!current.output().includes('proxy listening'), 'no listener while Consul has not delivered');
    await waitFor('python3 and curl to poll once', () => python.lines.length > 0 && curl.lines.length > 0, 30_000);
    assert.ok(!current.output().includes('proxy listening'), 'still no listener once both clients polled');
    consul.setFailing(null);

    const pythonSeen = (await python.done).trim().split('\n').map((line) => JSON.parse(line) as number | string);
    const curlSeen = (await curl.done).trim().split('\n');
    for (const [client, seen, refused] of [['python3', pythonSeen, 'refused'], ['curl', curlSeen, '000']] as const) {
      const answers = seen.filter((s) => s !== refused);
      assert.equal(seen[0], refused, `${client} polled before the listener existed: ${JSON.stringify(seen.slice(0, 5))}`);
      assert.ok(answers.length >= 3, `${client} got answers: ${JSON.stringify(seen.slice(-10))}`);
      assert.deepEqual(answers, answers.map(() => (client === 'curl' ? '200' : 200)), `${client}: every answer is 200`);
    }
    current.child.kill('SIGTERM');
    assert.equal(await current.exited, 0);
  });
});

describe('compat: SIGTERM with --shutdown-delay, as curl and python3 see it', () => {
  let workspace: Workspace;
  let upstream: Server;
  let release: (() => void) | undefined;
  let cli: Cli | undefined;

  before(async () => {
    upstream = createServer((req, res) => {
      if (req.url === '/slow') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('started ');
        release = () => res.end('finished');
        return;
      }
      res.end('quick');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    workspace = await Workspace.create();
    await workspace.writeTemplate('r.yaml', 'routes:\n  - name: r\n    match: { path: / }\n    to: [ { service: s } ]\n');
    await workspace.writeServices(`services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }\n`);
  });

  after(async () => {
    cli?.child.kill('SIGKILL');
    upstream.closeAllConnections();
    upstream.close();
    await workspace?.remove();
  });

  it('/readyz 503 at once, new requests served during the delay, then exit 0 right after the last in-flight request', async () => {
    // A drain timeout far longer than the test: an exit that waited for it would time out the test.
    cli = startCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile, '--shutdown-delay', '10s', '--drain-timeout', '120s']);
    const current = cli;
    const { proxy, admin } = await listening(current);
    const proxyUrl = `http://127.0.0.1:${proxy.port}/`;
    const readyz = `http://127.0.0.1:${admin.port}/readyz`;
    assert.equal(await curlStatus(readyz), '200');

    // A request in flight across the whole shutdown: python3 on its own connection.
    const inflight = run('python3', ['-c', `
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=100)
c.request('GET', '/slow')
r = c.getresponse()
print(r.status, r.read().decode())
`, String(proxy.port)], 110_000);
    await waitFor('the slow request to reach the upstream', () => release !== undefined, 10_000);

    current.child.kill('SIGTERM');
    await waitFor('/readyz to answer 503', async () => (await curlStatus(readyz)) === '503', 10_000);
    // Still serving: a new connection from each client gets its answer during the delay (10 s: room
    // for a slow python3 start on a loaded machine; the assertion below proves the delay still ran).
    assert.equal(await curlStatus(proxyUrl), '200', 'curl is served during the shutdown delay');
    const python = await run('python3', ['-c', `
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)
c.request('GET', '/')
r = c.getresponse()
print(r.status, r.read().decode())
`, String(proxy.port)]);
    assert.equal(python.trim(), '200 quick', 'python3 is served during the shutdown delay');
    assert.ok(!current.output().includes('proxy closed'));

    // The delay ends: the listener closes (new connections refused); the slow request still runs.
    await waitFor('the listener to close', async () => (await curlStatus(proxyUrl)) === '000', 30_000);
    const releasedAt = performance.now();
    release!();
    assert.equal((await inflight).trim(), '200 started finished');
    assert.equal(await current.exited, 0, current.output());
    const exitAfterMs = performance.now() - releasedAt;
    // The drain timeout is 120 s: an exit within 10 s of the last response is the drain ending
    // because nothing is in flight, not a timer (a generous bound for a loaded 2-core machine).
    assert.ok(exitAfterMs < 10_000, `exited ${Math.round(exitAfterMs)} ms after the last in-flight request`);
  });
});
