/**
 * Draining as a keep-alive client (python3 http.client) sees it, against the built CLI: from
 * SIGTERM on, every answer carries `Connection: close` (Envoy's HTTP/1.1 drain, HAProxy's
 * soft-stop), so the client opens a new connection for its next request, which is served during
 * --shutdown-delay; when the delay ends the client holds no idle connection the listener's close
 * could drop under a request (RemoteDisconnected, unsafe to retry for a POST): its next connection
 * is refused, which any client may retry elsewhere.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { listening, startCli, type Cli } from './cli-process.js';
import { missing, run } from './real-clients.js';


/**
 * One keep-alive http.client connection: GET, GET again, then wait until the listener is closed
 * (a probe connection is refused: the delay is over) and POST. Prints what each step saw as JSON.
 */
const PYTHON_KEEPALIVE = `
import http.client, json, socket, sys, time
port = int(sys.argv[1])
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
out = {}
def get(name):
    c.request('GET', '/')
    local = c.sock.getsockname()[1]
    r = c.getresponse()
    body = r.read().decode()
    out[name] = {'status': r.status, 'connection': r.getheader('connection'), 'port': local, 'body': body}
get('first')
get('second')
deadline = time.time() + 60
while time.time() < deadline:
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
        time.sleep(0.05)
    except ConnectionRefusedError:
        break
try:
    c.request('POST', '/', body=b'payload')
    out['post'] = c.getresponse().status
except Exception as e:
    out['post'] = type(e).__name__
print(json.dumps(out))
`;

describe('compat: keep-alive clients during --shutdown-delay (python3 http.client)', { skip: missing('python3') }, () => {
  let workspace: Workspace;
  let upstream: Server;
  let cli: Cli | undefined;

  before(async () => {
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('quick'));
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

  it('every answer from SIGTERM on says Connection: close; the next request reconnects and is served; none is cut', async () => {
    // 10 s of delay: room for python3 to start and make two requests on a loaded machine.
    // An admin token is set: /readyz must stay open to load-balancer health checks regardless.
    cli = startCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile, '--shutdown-delay', '10s', '--drain-timeout', '30s'],
    { SWITCHYARD_ADMIN_TOKEN: 'sy-drain-test-token-0123456789abcdef' });
    const current = cli;
    const { proxy, admin } = await listening(current);
    // /readyz without the token (as an ALB or GCP health check asks): status only, no configuration.
    const readyz = async (): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`http://127.0.0.1:${admin.port}/readyz`);
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await readyz(), { status: 200, body: { status: 'ready', lifecycle: 'serving' } });

    current.child.kill('SIGTERM');
    await waitFor('the draining log line', () => current.output().includes('draining'), 10_000);
    assert.deepEqual(await readyz(), { status: 503, body: { status: 'not ready', lifecycle: 'draining', reason: 'shutting down (SIGTERM): take this instance out of rotation' } });
    const result = await run('python3', ['-c', PYTHON_KEEPALIVE, String(proxy.port)], 90_000);
    assert.equal(result.code, 0, result.stderr);
    const seen = JSON.parse(result.stdout) as {
      first: { status: number; connection: string | null; port: number; body: string };
      second: { status: number; connection: string | null; port: number; body: string };
      post: number | string;
    };
    // Both GETs were answered during the delay (the listener had not closed: the POST phase proves it).
    assert.equal(seen.first.status, 200, JSON.stringify(seen));
    assert.equal(seen.first.connection, 'close', `the first answer while draining: ${JSON.stringify(seen)}`);
    assert.equal(seen.second.status, 200, JSON.stringify(seen));
    assert.notEqual(seen.second.port, seen.first.port, 'the second request used a new connection');
    assert.equal(seen.second.connection, 'close', JSON.stringify(seen));
    // After the delay the client had no idle connection to lose: its POST finds the port closed
    // (safe to retry elsewhere), never a connection dropped under it (RemoteDisconnected).
    assert.equal(seen.post, 'ConnectionRefusedError', JSON.stringify(seen));
    assert.ok(!current.output().includes('"status":5'), 'no 5xx in the access log');
    assert.equal(await current.exited, 0, current.output());
  });
});
