import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEMO_SERVICES } from '../../src/commands/check.js';
import { startDemoUpstreams } from '../../src/demo/demo-upstreams.js';
import { ConsulTestServer } from '../support/consul/server.js';
import { Workspace } from '../support/switchyard.js';
import { runCli as run } from './run-cli.js';


const GOOD_TEMPLATE = [
  'routes:',
  '  - name: api',
  '    match: { path: /api }',
  '    to:',
  '      - { service: users, tag: v1, weight: 90 }',
  '      - { service: users, tag: v2, weight: 10 }',
  '',
].join('\n');

const SERVICES = [
  'services:',
  '  users:',
  '    - { id: u1, address: 10.0.0.1, port: 9001, tags: [v1] }',
  '    - { id: u2, address: 10.0.0.2, port: 9002, tags: [v2], status: critical }',
  'kv:',
  '  switchyard/routes/api/weights: \'{"users:v1": 50, "users:v2": 50}\'',
  '',
].join('\n');

describe('switchyard check', () => {
  let ws: Workspace;

  before(async () => {
    ws = await Workspace.create();
  });

  after(async () => {
    await ws?.remove();
  });

  it('prints the table and exits 0 for valid sources; warnings do not fail it, --strict does', async () => {
    await ws.writeTemplate('api.yaml', GOOD_TEMPLATE);
    await ws.writeServices(SERVICES);
    const ok = await run(['check', '--templates', ws.templatesDir, '--services', ws.servicesFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr, '');
    // One line per endpoint: route, match, destination with its KV weight beside the template's.
    assert.match(ok.stdout, /^api\s+\/api\s+users:v1\s+50 \(configured 90\)\s+users\/u1\s+10\.0\.0\.1:9001\s+passing\s+active\s+1$/m);
    assert.match(ok.stdout, /^\s+users:v2\s+0 \(configured 10\)\s+users\/u2\s+10\.0\.0\.2:9002\s+critical\s+unhealthy\s+0$/m);
    assert.match(ok.stdout, /switchyard check: OK: 1 route, 2 endpoints\n$/);

    // A bad KV value: a warning (the build skips it), exit 0 as nginx -t; --strict fails on it.
    await ws.writeServices(SERVICES.replace('\'{"users:v1": 50, "users:v2": 50}\'', '"{not json"'));
    const warned = await run(['check'], { SWITCHYARD_TEMPLATES: ws.templatesDir, SWITCHYARD_SERVICES: ws.servicesFile });
    assert.equal(warned.code, 0, warned.stderr);
    // At its line in the services file.
    assert.match(warned.stderr, new RegExp(`^warning: ${ws.servicesFile}:6:\\d+: KV key switchyard/routes/api/weights: .*not valid JSON`, 'm'));
    assert.match(warned.stdout, /OK: 1 route, 2 endpoints, 1 warning/);
    const strict = await run(['check', '--strict', '--templates', ws.templatesDir, '--services', ws.servicesFile]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /FAILED: 0 errors, 1 warning \(--strict\)/);
  });

  it('a route to a service no source knows: a warning at the template line that names the service', async () => {
    await ws.writeServices(SERVICES);
    await ws.writeTemplate('ghost.yaml', 'routes:\n  - name: ghost\n    match: { path: /ghost }\n    to:\n      - { service: nowhere }\n');
    try {
      const result = await run(['check', '--templates', ws.templatesDir, '--services', ws.servicesFile]);
      assert.equal(result.code, 0, result.stderr);
      const file = join(ws.templatesDir, 'ghost.yaml');
      assert.match(result.stderr, new RegExp(`^warning: ${file.replace(/[.]/g, '\\.')}:5:\\d+: route "ghost": service "nowhere" is unknown`, 'm'));
    } finally {
      await rm(join(ws.templatesDir, 'ghost.yaml'));
    }
  });

  it('reports every problem with its file, line and column, and exits 1', async () => {
    await ws.writeServices(SERVICES.replace('port: 9002', 'port: 99999'));
    await ws.writeTemplate('api.yaml', GOOD_TEMPLATE);
    await ws.writeTemplate('bad.yaml', [
      'routes:',
      '  - name: b',
      '    bogus: true',
      '    match: { path: nope }',
      '    to: [ { service: users } ]',
      '',
    ].join('\n'));
    await ws.writeTemplate('broken.yaml', 'routes:\n  - name: x\n    name: y\n    to: [ { service: users } ]\n');
    await ws.writeTemplate('dup.yaml', [
      'routes:',
      '  - name: other',
      '    match: { path: /other }',
      '    to: [ { service: users } ]',
      '  - name: api',
      '    match: { path: /api2 }',
      '    to: [ { service: users } ]',
      '',
    ].join('\n'));
    const result = await run(['check', '--templates', ws.templatesDir, '--services', ws.servicesFile]);
    assert.equal(result.code, 1, result.stdout);
    const t = ws.templatesDir;
    const lines = result.stderr.trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.startsWith(`${t}/bad.yaml`)), [
      `${t}/bad.yaml:3:5: routes.0: Unrecognized key: "bogus"`,
      `${t}/bad.yaml:4:20: routes.0.match.path: Invalid string: must start with "/"`,
    ]);
    assert.match(result.stderr, new RegExp(`^${t}/broken\\.yaml:3:5: invalid YAML: Map keys must be unique`, 'm'));
    assert.match(result.stderr, new RegExp(`^${ws.servicesFile}:4:\\d+: services\\.users\\.1\\.port: Too big`, 'm'));
    // A route conflict: at the later route's name, in its file.
    assert.match(result.stderr, new RegExp(`^${t}/dup\\.yaml:5:11: route "api": duplicate route name \\(also defined in ${t}/api\\.yaml\\)$`, 'm'));
    assert.match(result.stdout, /switchyard check: FAILED: 5 errors, 0 warnings/);
    assert.doesNotMatch(result.stdout, /^ROUTE/m, 'no table for invalid sources');
  });

  it('gateway options: errors at their file:line, KV route values the proxy would ignore as warnings at their line', async () => {
    const ws3 = await Workspace.create();
    try {
      await ws3.writeTemplate('gw.yaml', [
        'routes:',
        '  - name: gw',
        '    match: { path: /gw, methods: [GET] }',
        '    headers:',
        '      request: { set: { x-forwarded-for: 1.2.3.4 } }',
        '    to: [ { service: users } ]',
        '  - name: re',
        '    match: { path: /re }',
        '    rewrite: { regex: "^/re/(?=x)", to: /x }',
        '    to: [ { service: users } ]',
        '',
      ].join('\n'));
      await ws3.writeServices(SERVICES);
      const bad = await run(['check', '--templates', ws3.templatesDir, '--services', ws3.servicesFile]);
      assert.equal(bad.code, 1, bad.stdout);
      const file = join(ws3.templatesDir, 'gw.yaml');
      assert.deepEqual(bad.stderr.trim().split('\n'), [
        `${file}:5:42: routes.0.headers.request.set.x-forwarded-for: header "x-forwarded-for" cannot be edited: the proxy writes the forwarding headers from the connection (--trusted-proxies)`,
        `${file}:9:23: routes.1.rewrite.regex: not a valid RE2 pattern (no backreferences or lookaround): error parsing regexp: invalid or unsupported Perl syntax: \`(?=\``,
      ]);

      await ws3.writeTemplate('gw.yaml', [
        'routes:',
        '  - name: gw',
        '    match: { path: /gw }',
        '    to: [ { service: users } ]',
        '  - name: other',
        '    match: { path: /other }',
        '    mirror: { service: shadow-nowhere }',
        '    to: [ { service: users } ]',
        '',
      ].join('\n'));
      await ws3.writeServices([
        ...SERVICES.split('\n').filter((l) => l !== ''),
        '  switchyard/routes/gw/route: \'{"mirror": {"percent": 5}}\'',
        '  switchyard/routes/other/route: \'{"match": {"path": "/gw"}}\'',
        '  switchyard/routes/api/route: \'{"headers": {"request": {"set": {"x-ok": "1"}}}}\'',
        '',
      ].join('\n'));
      const warned = await run(['check', '--templates', ws3.templatesDir, '--services', ws3.servicesFile]);
      assert.equal(warned.code, 0, warned.stderr);
      const services = ws3.servicesFile;
      const warnings = warned.stderr.trim().split('\n');
      assert.deepEqual(warnings, [
        `warning: ${services}:7:31: KV key switchyard/routes/gw/route: route "gw": mirror.service: required; key ignored, the route's own options apply`,
        `warning: ${services}:8:34: KV key switchyard/routes/other/route: route "other": matches /gw like route "gw" (${file}); key ignored, the route's own options apply`,
        `warning: ${file}:7:24: route "other": mirror service "shadow-nowhere" is unknown to discovery; no copies are sent`,
      ]);
      assert.match(warned.stdout, /OK: 2 routes, 2 endpoints, 3 warnings/);
    } finally {
      await ws3.remove();
    }
  });

  it('without --services or --consul: checks against the demo services and says so', async () => {
    const ws2 = await Workspace.create();
    try {
      await ws2.writeTemplate('api.yaml', GOOD_TEMPLATE);
      const result = await run(['check', '--templates', ws2.templatesDir]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /embedded default's demo services/);
      assert.match(result.stdout, /users\/users-3\s+127\.0\.0\.1:\*/);
    } finally {
      await ws2.remove();
    }
    // The list check uses is the demo's own.
    const demo = await startDemoUpstreams();
    try {
      assert.deepEqual(DEMO_SERVICES.map((d) => ({ service: d.service, id: d.id, tags: [...d.tags] })),
        demo.instances.map((i) => ({ service: i.service, id: i.id, tags: [...i.tags] })));
    } finally {
      await demo.close();
    }
  });

  it('reads Consul once with the token (catalog, KV, health of the needed services), never blocking', async () => {
    const consul = await ConsulTestServer.start({ aclToken: 'root-token' });
    try {
      consul.registerService({ ID: 'u1', Name: 'users', Tags: ['v1'], Address: '10.0.0.1', Port: 9001 });
      consul.registerService({ ID: 'u2', Name: 'users', Tags: ['v2'], Address: '10.0.0.2', Port: 9002 });
      consul.registerService({ ID: 'o1', Name: 'other', Address: '10.0.0.3', Port: 9003 });
      consul.kvPut('switchyard/routes/api/weights', '{"users:v1": 1, "users:v2": 3}');
      await ws.writeTemplate('bad.yaml', 'routes: []\n');
      await ws.writeTemplate('broken.yaml', 'routes: []\n');
      await ws.writeTemplate('dup.yaml', 'routes: []\n');
      consul.clearRequests();
      const result = await run(['check', '--templates', ws.templatesDir, '--consul', consul.address], { CONSUL_HTTP_TOKEN: 'root-token' });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^api\s+\/api\s+users:v1\s+1 \(configured 90\)\s+users\/u1\s+10\.0\.0\.1:9001/m);
      assert.match(result.stdout, /consul: http:\/\/127\.0\.0\.1:\d+ \(2 services, 3 instances|consul: http:\/\/127\.0\.0\.1:\d+ \(2 services, 2 instances/);
      const paths = consul.requests.map((r) => r.path).sort();
      assert.deepEqual(paths, ['/v1/catalog/services', '/v1/health/service/users', '/v1/kv/switchyard/'], 'one read each, only the needed service');
      assert.ok(consul.requests.every((r) => r.query['index'] === undefined && r.headers['x-consul-token'] === 'root-token'));
      assert.ok(!result.stdout.includes('root-token') && !result.stderr.includes('root-token'));

      // Without the token Consul hides everything (ACLs filter, they do not refuse): a warning says why.
      const denied = await run(['check', '--strict', '--templates', ws.templatesDir, '--consul', consul.address]);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /^warning: consul http:\/\/127\.0\.0\.1:\d+: the catalog is empty, Consul's ACLs are on and no token is set/m);
    } finally {
      await consul.stop();
    }
  });

  it('usage errors exit 2; help is printed by "help check" and "check --help"', async () => {
    const bad = await run(['check', '--bogus']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^switchyard check: Unknown option '--bogus' \(see: switchyard help check\)\n$/);
    const help = await run(['help', 'check']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: switchyard check/);
    assert.equal((await run(['check', '--help'])).stdout, help.stdout);
    const unknown = await run(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^switchyard: unknown command "frobnicate" \(commands: /);
  });
});
