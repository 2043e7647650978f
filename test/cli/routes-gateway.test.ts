import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { runCli as run } from './run-cli.js';

/**
 * `switchyard check` and `switchyard routes` show the gateway options (issue 10): conditions in
 * the MATCH cell, a redirect's status and target as its destination, and a `↳` line with the
 * rewrite, header edits, sticky session and mirror. Both commands print the same table.
 */

const TOKEN = 'admin-secret-token';

const TEMPLATE = [
  'routes:',
  '  - name: api',
  '    match: { host: api.example.com, path: /api }',
  '    to: [ { service: users, tag: v1 } ]',
  '  - name: api-canary',
  '    match: { host: api.example.com, path: /api, headers: { x-canary: "1" } }',
  '    to: [ { service: users, tag: v2 } ]',
  '  - name: partner-api',
  '    match:',
  '      host: ["partners.example.com", "*.partners.example.com"]',
  '      path: /api',
  '      methods: [GET, POST]',
  '      headers: { x-tenant: "*" }',
  '      query: { beta: "true" }',
  '    rewrite: { path: /v2, host: internal.example.com }',
  '    headers:',
  '      request: { set: { x-gateway: switchyard, authorization: "Bearer do-not-print" }, remove: [x-debug] }',
  '      response: { set: { a: "1", b: "2", c: "3" }, remove: [server] }',
  '    sticky: { cookie: sy_affinity, ttlMs: 1h }',
  '    mirror: { service: api-shadow, percent: 10 }',
  '    to: [ { service: users, tag: v2 } ]',
  '  - name: users-legacy',
  '    match: { path: /legacy }',
  '    rewrite: { regex: "^/legacy/users/([0-9]+)$", to: "/users/$1" }',
  '    to: [ { service: users, tag: v1 } ]',
  '  - name: old-home',
  '    match: { host: www.example.com, path: /home.php }',
  '    redirect: { to: "https://www.example.com/home{path}", status: 301, keepQuery: true }',
  '',
].join('\n');

// The mirror's service and a Fabio redirect tag (a relative `/$path`) beside the routes' users.
const SERVICES = [
  'services:',
  '  api-shadow:',
  '    - { id: s1, address: 10.0.0.9, port: 9009 }',
  '  legacy-fr:',
  '    - { id: f1, address: 10.0.0.5, port: 9005, tags: ["urlprefix-fr.example.com/ redirect=302,/$path"] }',
  '  users:',
  '    - { id: u1, address: 10.0.0.1, port: 9001, tags: [v1] }',
  '    - { id: u2, address: 10.0.0.2, port: 9002, tags: [v2] }',
  '',
].join('\n');

/** What both commands must show; `out` is the whole stdout. */
function assertGatewayTable(out: string): void {
  assert.match(out, /^api\s+api\.example\.com\/api\s+users:v1\s+1\s+users\/u1\s+10\.0\.0\.1:9001\s+passing\s+active\s+1$/m);
  assert.match(out, /^api-canary\s+api\.example\.com\/api \[x-canary=1\]\s+users:v2\s+1\s+users\/u2/m);
  assert.match(out, /^partner-api\s+\{partners\.example\.com,\*\.partners\.example\.com\}\/api \[GET,POST\] \[x-tenant=\*\] \[\?beta=true\]\s+users:v2\s+1\s+users\/u2/m);
  // The options line follows the route's rows, under MATCH; header names only, counts above three.
  const at = (out.split('\n').find((l) => l.startsWith('ROUTE')) ?? '').indexOf('MATCH');
  assert.ok(at > 0, out);
  const note = `${' '.repeat(at)}↳ rewrite /v2; Host → internal.example.com; headers request +x-gateway +authorization -x-debug, response +3 -1; sticky sy_affinity 1h; mirror api-shadow 10%`;
  assert.match(out, new RegExp(`^partner-api .*\\n${note.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.ok(!out.includes('do-not-print'), 'a header value set is never printed');
  assert.match(out, /^users-legacy\s+\/legacy\s+users:v1.*\n\s+↳ rewrite \^\/legacy\/users\/\(\[0-9\]\+\)\$ → \/users\/\$1$/m);
  assert.match(out, /^old-home\s+www\.example\.com\/home\.php\s+→ 301 https:\/\/www\.example\.com\/home\{path\} \(query kept\)$/m);
  // Fabio's relative `redirect=302,/$path` is accepted: `/{path}` (the proxy collapses the `//`).
  assert.match(out, /^tag:legacy-fr:fr\.example\.com\/\s+fr\.example\.com\/\s+→ 302 \/\{path\} \(query kept\)$/m);
  assert.doesNotMatch(out, /\(none\)/);
}

describe('switchyard check and routes: gateway options in the table', () => {
  let ws: Workspace;
  let sy: Switchyard | undefined;

  before(async () => {
    ws = await Workspace.create();
    await ws.writeTemplate('gateway.yaml', TEMPLATE);
    await ws.writeServices(SERVICES);
  });

  after(async () => {
    await sy?.stop();
    await ws?.remove();
  });

  it('check: conditions, redirects and options; the Fabio relative redirect tag is no problem', async () => {
    const result = await run(['check', '--strict', '--templates', ws.templatesDir, '--services', ws.servicesFile]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.stderr, '');
    assertGatewayTable(result.stdout);
    assert.match(result.stdout, /switchyard check: OK: 6 routes, 2 endpoints\n$/);
  });

  it('routes: the live table shows the same', async () => {
    sy = await startTestSwitchyard(ws, ['--admin-token', TOKEN]);
    const result = await run(['routes', '--admin', `127.0.0.1:${sy.adminAddress.port}`], { SWITCHYARD_ADMIN_TOKEN: TOKEN });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /, 6 route\(s\)$/m);
    assert.doesNotMatch(result.stdout, /^Problems/m);
    assertGatewayTable(result.stdout);
    // The tag's redirect as Fabio sends it: the request's path, query kept, one leading slash.
    const res = await request(`http://127.0.0.1:${sy.proxyAddress.port}/fr/page?q=1`, { headers: { host: 'fr.example.com' } });
    await res.body.dump();
    assert.deepEqual([res.statusCode, res.headers['location']], [302, '/fr/page?q=1']);
  });
});
