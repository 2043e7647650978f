/**
 * The table as it crosses from the primary to a worker (src/model/table-wire.ts): a round trip
 * keeps every field and the lookup; unchanged routes decode to the same objects; the encoder
 * serialises a Route object once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serialize, deserialize } from 'node:v8';
import { buildTable } from '../../src/model/build-table.js';
import { DEFAULT_POLICY } from '../../src/model/policy.js';
import { parseRouteOptions } from '../../src/model/route-options.js';
import { decodeRoute, encodeRoute, TableDecoder, TableEncoder, type TableWire } from '../../src/model/table-wire.js';
import type { RouteOptions, RouteTemplate, RoutingTable } from '../../src/model/types.js';
import { discovery, instance, template } from '../model/fixtures.js';

function table(webStatus: 'passing' | 'critical' = 'passing'): RoutingTable {
  return buildTable(
    discovery([
      instance('web', 'web-1', { port: 9001, tags: ['v1'] }),
      instance('web', 'web-2', { port: 9002, tags: ['v2'], status: webStatus }),
      instance('api', 'api-1', { address: '::1', port: 9003 }),
      instance('api', 'api-2', { port: 9004, status: 'warning', warning: 0 }),
    ]),
    { 'routes/split/weights': '{"web:v1": 3}', 'routes/api/policy': '{"rateLimit": {"requestsPerSecond": 5}}' },
    [
      template('split', '/split', [{ service: 'web', tag: 'v1', weight: 1 }, { service: 'web', tag: 'v2', weight: 1 }], { host: 'Example.COM', strip: '/split' }),
      template('api', '/api', [{ service: 'api', weight: 1 }]),
      template('quote "q" \\ r', '/q', [{ service: 'api', weight: 1 }]),
    ],
  );
}

/** A template route with gateway options given as in YAML (route-options.ts parses them). */
function withOptions(base: RouteTemplate, input: Record<string, unknown>): RouteTemplate {
  const options = parseRouteOptions(input, 'template');
  assert.ok(typeof options !== 'string', String(options));
  return { ...base, options: options as RouteOptions, ...(options.redirect === undefined ? {} : { to: [] }) };
}

/** Routes with every gateway option (issue 10), the KV layer over one of them included. */
function gatewayTable(): RoutingTable {
  return buildTable(
    discovery([
      instance('api', 'api-1', { port: 9001, tags: ['v2'] }),
      instance('shadow', 'shadow-1', { port: 9101, tags: ['canary'] }),
      instance('shadow', 'shadow-2', { port: 9102 }),
    ]),
    { 'routes/sticky/route': '{"headers": {"response": {"set": {"x-kv": "1"}}}}' },
    [
      withOptions(template('full', '/api', [{ service: 'api', tag: 'v2', weight: 1 }], { host: 'api.example.com' }), {
        match: { methods: ['GET', 'post'], headers: { 'x-canary': '1', 'x-tenant': '*' }, query: { beta: 'true', q: '*' } },
        rewrite: { regex: '^/api/users/([0-9]+)$', to: '/users/$1?src=gw', host: 'internal.example.com:8443' },
        headers: { request: { set: { 'x-gateway': 'switchyard', 'x-quote': 'a "b" \\ c' }, remove: ['x-debug'] }, response: { set: { 'strict-transport-security': 'max-age=31536000' }, remove: ['server'] } },
        mirror: { service: 'shadow', tag: 'canary', percent: 12.5, keepAuth: true, maxBodyBytes: '1kb', timeoutMs: '250ms', maxInFlight: 3, removeHeaders: ['x-api-key'] },
      }),
      withOptions(template('sticky', '/s', [{ service: 'api', weight: 1 }]), {
        rewrite: { path: '/v2' }, headers: { request: { remove: ['cookie2'] } }, sticky: { cookie: 'sy_affinity', ttlMs: '1h' }, mirror: { service: 'shadow' },
      }),
      withOptions(template('old-home', '/home.php', [], { host: 'www.example.com' }), {
        redirect: { to: 'https://{host}/home{path}', status: 308, keepQuery: true }, match: { methods: ['GET', 'HEAD'] },
      }),
    ],
  );
}

/** What node's 'advanced' IPC does to a message. */
function overTheWire(wire: TableWire): TableWire {
  return deserialize(serialize(wire)) as TableWire;
}

describe('table wire', () => {
  it('a round trip keeps every route field, shares endpoints between endpoints and active, and freezes', () => {
    const built = table();
    for (const route of built.routes) {
      const decoded = decodeRoute(encodeRoute(route));
      assert.deepEqual(decoded, route);
      assert.ok(Object.isFrozen(decoded) && Object.isFrozen(decoded.destinations[0]!.endpoints[0]));
      for (const d of decoded.destinations) for (const a of d.active) assert.ok(d.endpoints.includes(a), 'active entries are the endpoints themselves');
    }
    const api = decodeRoute(encodeRoute(built.routes.find((r) => r.name === 'api')!));
    assert.equal(api.policy.rateLimit?.requestsPerSecond, 5, 'a KV policy crosses');
    const split = decodeRoute(encodeRoute(built.routes.find((r) => r.name === 'split')!));
    assert.equal(split.policy, DEFAULT_POLICY, 'the default policy is the shared object');
  });

  it('a round trip keeps every gateway option: conditions, regex rewrite and host, header edits (one direction or both), sticky, mirror pool, redirect', () => {
    const built = gatewayTable();
    assert.deepEqual(built.problems, []);
    const full = built.routes.find((r) => r.name === 'full')!;
    assert.equal(full.mirror?.destination.endpoints.length, 1, 'the mirror pool narrowed to its tag');
    assert.equal(built.routes.find((r) => r.name === 'sticky')!.headers?.response?.set[0]?.[0], 'x-kv', 'the KV layer is in the table');
    assert.equal(built.routes.find((r) => r.name === 'sticky')!.headers?.request?.remove[0], 'cookie2', 'and kept the template\'s request edits');
    for (const route of built.routes) {
      const decoded = decodeRoute(encodeRoute(route));
      assert.deepEqual(decoded, route, route.name);
      for (const part of [decoded.conditions, decoded.rewrite, decoded.headers?.response?.set, decoded.sticky, decoded.mirror?.target, decoded.redirect]) {
        assert.ok(part === undefined || Object.isFrozen(part), `${route.name}: options are frozen`);
      }
    }
    const decoded = new TableDecoder().decode(overTheWire(new TableEncoder().encode(built)));
    const request = { method: 'POST', rawHeaders: ['X-Canary', '1', 'x-tenant', 't'] };
    for (const [host, path, facts] of [
      ['api.example.com', '/api/users/1?beta=true&q', request], ['api.example.com', '/api/users/1?beta=true', request],
      ['api.example.com', '/api/users/1?beta=true&q', { ...request, method: 'PUT' }], [undefined, '/s/x', undefined], ['www.example.com', '/home.php', { method: 'HEAD', rawHeaders: [] }],
    ] as const) {
      assert.equal(decoded.lookup(host, path, facts)?.name, built.lookup(host, path, facts)?.name, `${host} ${path}`);
    }
    assert.equal(decoded.lookup('api.example.com', '/api/users/1?beta=true&q', request)?.name, 'full', 'conditions hold after decoding');
    assert.deepEqual(decoded.services, ['api', 'shadow']);
  });

  it('the decoded table looks up as the built one', () => {
    const built = table();
    const decoded = new TableDecoder().decode(overTheWire(new TableEncoder().encode(built)));
    for (const [host, path] of [['example.com', '/split/x'], ['EXAMPLE.com:8080', '/split'], [undefined, '/api/1?q'], [undefined, '/q'], [undefined, '/none'], ['other', '/split']] as const) {
      assert.equal(decoded.lookup(host, path)?.name, built.lookup(host, path)?.name, `${host} ${path}`);
    }
    assert.deepEqual(decoded.services, built.services);
    assert.deepEqual(decoded.problems, built.problems);
    assert.ok(Object.isFrozen(decoded) && Object.isFrozen(decoded.routes));
  });

  it('unchanged routes decode to the same objects; only the changed one is parsed', () => {
    const encoder = new TableEncoder();
    const decoder = new TableDecoder();
    const first = decoder.decode(overTheWire(encoder.encode(table())));
    assert.equal(decoder.lastStats.parsed, 3);
    // web-2 goes critical: only route split changes.
    const second = decoder.decode(overTheWire(encoder.encode(table('critical'))));
    assert.deepEqual(decoder.lastStats, { routes: 3, parsed: 1 });
    const byName = (t: RoutingTable, name: string) => t.routes.find((r) => r.name === name)!;
    assert.equal(byName(second, 'api'), byName(first, 'api'));
    assert.equal(byName(second, 'quote "q" \\ r'), byName(first, 'quote "q" \\ r'));
    assert.notEqual(byName(second, 'split'), byName(first, 'split'));
    assert.equal(byName(second, 'split').destinations[1]!.active.length, 0, 'the new state arrived');
  });

  it('the encoder serialises a Route object once', () => {
    const route = table().routes[0]!;
    let reads = 0;
    // The same route, counting reads of its name (encodeRoute reads it once per serialisation).
    const counted = Object.create(route, { name: { get: () => { reads += 1; return route.name; } } }) as typeof route;
    const shell = { ...table(), routes: [counted] } as RoutingTable;
    const encoder = new TableEncoder();
    encoder.encode(shell);
    encoder.encode(shell);
    assert.equal(reads, 1);
  });
});
