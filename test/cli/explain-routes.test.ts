import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Switchyard } from '../../src/app.js';
import { requestOf } from '../../src/commands/explain.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { runCli as run } from './run-cli.js';
import { request } from 'undici';
import { waitFor } from '../support/wait.js';


const TOKEN = 'admin-secret-token';

describe('switchyard explain and routes, against a running Switchyard', () => {
  let ws: Workspace;
  let sy: Switchyard;
  let admin: string;
  const env = { SWITCHYARD_ADMIN_TOKEN: TOKEN };

  before(async () => {
    ws = await Workspace.create();
    await ws.writeTemplate('r.yaml', [
      'routes:',
      '  - name: api',
      '    match: { path: /api }',
      '    to:',
      '      - { service: users, tag: v1, weight: 3 }',
      '      - { service: users, tag: v2, weight: 1 }',
      '  - name: api-host',
      '    match: { host: api.example.com, path: /api/special }',
      '    to: [ { service: users } ]',
      '  - name: root',
      '    match: { path: / }',
      '    to: [ { service: users, tag: v2 } ]',
      '  - name: "evil\\u001b[31m"',
      '    match: { path: /evil }',
      '    to: [ { service: users } ]',
      '',
    ].join('\n'));
    await ws.writeServices([
      'services:',
      '  users:',
      '    - { id: u1, address: 10.0.0.1, port: 9001, tags: [v1] }',
      '    - { id: u2, address: 10.0.0.2, port: 9002, tags: [v1] }',
      '    - { id: u3, address: 10.0.0.3, port: 9003, tags: [v2], status: critical }',
      '    - { id: u4, address: 10.0.0.4, port: 9004, tags: [v2] }',
      '',
    ].join('\n'));
    sy = await startTestSwitchyard(ws, ['--admin-token', TOKEN]);
    admin = `127.0.0.1:${sy.adminAddress.port}`;
  });

  after(async () => {
    await sy?.stop();
    await ws?.remove();
  });

  it('explain: the route and why, the candidates that lost, each endpoint with its share', async () => {
    const result = await run(['explain', 'http://other.example.com/api/users/7?x=1', '--admin', admin], env);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.match(out, /^Request\s+GET \/api\/users\/7\?x=1 Host: other\.example\.com$/m);
    assert.match(out, /^Answer\s+forwarded by route "api" to \/api\/users\/7\?x=1$/m);
    assert.match(out, /^Why\s+route "api" serves any host and has the longest prefix/m);
    // The candidates whose prefix matches: the winner and the one that lost to a longer prefix.
    assert.match(out, /^\s+\*\s+api\s+\(any\)\s+\/api\s+chosen$/m);
    assert.match(out, /^\s+root\s+\(any\)\s+\/\s+lost: a longer prefix matched \(\/api\)$/m);
    assert.match(out, /and 1 other route\(s\) whose prefix the path does not fall under/);
    // Shares: v1 has 3 of 4, split over two endpoints; v2's critical endpoint takes nothing.
    assert.match(out, /^\s+users:v1\s+3\s+75%\s+users\/u1\s+10\.0\.0\.1:9001\s+passing\s+1\s+37\.5%\s+in rotation with weight 1$/m);
    assert.match(out, /^\s+users\/u2\s+10\.0\.0\.2:9002\s+passing\s+1\s+37\.5%/m);
    assert.match(out, /^\s+users:v2\s+1\s+25%\s+users\/u3\s+10\.0\.0\.3:9003\s+critical\s+0\s+0%\s+health is critical/m);
    assert.match(out, /^\s+users\/u4\s+10\.0\.0\.4:9004\s+passing\s+1\s+25%/m);
    assert.ok(!out.includes(TOKEN) && !result.stderr.includes(TOKEN));
  });

  it('explain: a route for the Host wins over a longer prefix for any host; --method and --header are sent along', async () => {
    const result = await run(['explain', '/api/special/x', '--header', 'Host: API.example.com', '--method', 'post', '--header', 'x-canary: 1', '--all', '--admin', admin], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Request\s+POST \/api\/special\/x Host: API\.example\.com$/m);
    assert.match(result.stdout, /^\s+\*\s+api-host\s+api\.example\.com\s+\/api\/special\s+chosen$/m);
    assert.match(result.stdout, /^\s+api\s+\(any\)\s+\/api\s+lost: routes for the Host come before routes for any host$/m);
    assert.match(result.stdout, /lost: the path is not under its prefix/, '--all lists the others');
    // The server echoes the method: no note that it routes on host and path only; the header is shown.
    assert.doesNotMatch(result.stdout, /^Note/m);
    assert.match(result.stdout, /^\s+x-canary: 1$/m);
  });

  it('explain: no route is an answer too (404), exit 0', async () => {
    await ws.writeTemplate('r.yaml', 'routes:\n  - name: only\n    match: { host: a.example.com, path: /a }\n    to: [ { service: users } ]\n');
    const swapped = sy.store.version;
    for (let i = 0; i < 400 && sy.store.version === swapped; i += 1) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.notEqual(sy.store.version, swapped, 'the new template applied');
    const result = await run(['explain', 'http://b.example.com/a', '--admin', admin], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Answer\s+Switchyard answers 404 itself: no route$/m);
  });

  it('routes: the live table, aligned, with KV weights and endpoint states', async () => {
    const result = await run(['routes', '--admin', admin], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^Switchyard at ${admin.replace(/\./g, '\\.')}: table version \\d+, swapped \\S+, 1 route\\(s\\)$`, 'm'));
    assert.match(result.stdout, /^ROUTE\s+MATCH\s+DESTINATION\s+WEIGHT\s+ENDPOINT\s+ADDRESS\s+HEALTH\s+STATE\s+WEIGHT$/m);
    assert.match(result.stdout, /^only\s+a\.example\.com\/a\s+users\s+1\s+users\/u1\s+10\.0\.0\.1:9001\s+passing\s+active\s+1$/m);
    assert.match(result.stdout, /^\s+users\/u3\s+10\.0\.0\.3:9003\s+critical\s+unhealthy\s+0$/m);
  });

  it('a route name with control characters is shown escaped, never sent to the terminal', async () => {
    await ws.writeTemplate('r.yaml', 'routes:\n  - name: "evil\\e[31m"\n    match: { path: /evil }\n    to: [ { service: users } ]\n');
    const swapped = sy.store.version;
    for (let i = 0; i < 400 && sy.store.version === swapped; i += 1) await new Promise((resolve) => setTimeout(resolve, 25));
    const routes = await run(['routes', '--admin', admin], env);
    assert.match(routes.stdout, /^evil\\x1b\[31m\s+\/evil/m);
    const explain = await run(['explain', '/evil', '--admin', admin], env);
    assert.match(explain.stdout, /forwarded by route "evil\\x1b\[31m"/);
    assert.ok(!routes.stdout.includes('\u001b') && !explain.stdout.includes('\u001b'));
  });

  it('routes: lists sources with rejected files and the last rejected build after the table', async () => {
    await ws.writeTemplate('broken.yaml', 'routes:\n  - name: x\n    match: { path: /x\n');
    await ws.writeTemplate('dup.yaml', 'routes:\n' + '  - name: dup\n    match: { path: /dup }\n    to: [ { service: users } ]\n'.repeat(2));
    const config = async (): Promise<{ lastRejectedBuild: unknown; providers: { lastError?: string }[] }> => {
      const res = await request(`http://${admin}/api/config`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return await res.body.json() as { lastRejectedBuild: unknown; providers: { lastError?: string }[] };
    };
    await waitFor('the rejected file and build', async () => {
      const c = await config();
      return c.lastRejectedBuild !== null && c.providers.some((p) => p.lastError !== undefined);
    }, 10_000);
    const routes = await run(['routes', '--admin', admin], env);
    assert.equal(routes.code, 0, routes.stderr);
    assert.match(routes.stdout, /^Sources with errors \(1\):\n {2}templates: 1 file\(s\) rejected: \S*broken\.yaml: line \d+, column \d+: /m);
    assert.match(routes.stdout, /^Last rejected build \(\S+; in the table above the rejected part is at its last good version, the rest is current\):\n {2}\S+: .*duplicate route name/m);
    assert.ok(!routes.stdout.includes('\u001b'));
  });

  it('401 says the token is needed; a wrong one is refused; a token file works; --admin-token is refused', async () => {
    const missing = await run(['routes', '--admin', admin]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^switchyard routes: the admin API at 127\.0\.0\.1:\d+ needs the admin token \(401\): set SWITCHYARD_ADMIN_TOKEN or pass --admin-token-file FILE\n$/);
    const wrong = await run(['explain', '/a', '--admin', admin], { SWITCHYARD_ADMIN_TOKEN: 'nope' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the admin token \(401\)/);
    assert.ok(!wrong.stderr.includes('nope'));
    const file = join(ws.dir, 'token');
    await writeFile(file, `${TOKEN}\n`);
    assert.equal((await run(['routes', '--admin', admin, '--admin-token-file', file])).code, 0);
    assert.equal((await run(['routes'], { SWITCHYARD_ADMIN: admin, SWITCHYARD_ADMIN_TOKEN_FILE: file })).code, 0);
    const flag = await run(['routes', '--admin', admin, '--admin-token', TOKEN]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--admin-token is not taken by the client commands/);
  });

  it('the proxy port given as --admin: the no-route answer says it looks like the proxy listener', async () => {
    const result = await run(['explain', '/api/x', '--admin', `127.0.0.1:${sy.proxyAddress.port}`], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /answered 404: no route matches this host and path; that is the answer of Switchyard's proxy listener: is 127\.0\.0\.1:\d+ its proxy port, not its admin address\?/);
  });

  it('connection refused: a clear message, exit 1', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    for (const command of [['routes'], ['explain', '/x']]) {
      const result = await run([...command, '--admin', `127.0.0.1:${port}`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`cannot reach the admin API at 127\\.0\\.0\\.1:${port} \\(connection refused\\): is Switchyard running`));
    }
  });

  it('the request target is sent as a client sends it', () => {
    assert.deepEqual(requestOf('http://user@Example.com:8080/a b/%2e?q=1#frag', []), { host: 'Example.com:8080', target: '/a%20b/%2e?q=1' });
    assert.deepEqual(requestOf('example.com', []), { host: 'example.com', target: '/' });
    assert.deepEqual(requestOf('/x/ü', [['host', 'h']]), { host: 'h', target: '/x/%C3%BC' });
    assert.throws(() => requestOf('ftp://x/y', []), /only http and https/);
  });
});
