/**
 * /api/match: what the proxy would do with a request, and why. Each answer is checked against what
 * the running proxy actually does with the same request (status, route in the access log).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { AdminServer } from '../../src/admin/admin-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { explainRequest } from '../../src/proxy/explain.js';
import { makeTable, send, startProxy, waitFor, type TestProxy } from '../proxy/harness.js';
import { refusedPort, startUpstream, type TestUpstream } from '../support/upstream.js';

interface EndpointJson { id: string; weight: number; share: number; takesTraffic: boolean; ejected: boolean; ejectedUntil: string | null; why: string }
interface DestinationJson { key: string; weight: number; share: number; endpoints: EndpointJson[] }
interface MatchJson {
  outcome: string;
  status: number | null;
  reason: string;
  request: { host: string | null; target: string; normalizedTarget: string | null };
  route?: { name: string; upstreamTarget: string; destinations: DestinationJson[]; policy: { retries: { count: number } } };
  candidates?: { route: string; prefixMatches: boolean; chosen: boolean }[];
}

describe('admin: /api/match', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let deadPort: number;
  let p: TestProxy;
  let admin: AdminServer;
  let base = '';

  async function match(path: string, host?: string): Promise<MatchJson> {
    const query = new URLSearchParams({ path, ...(host === undefined ? {} : { host }) });
    const res = await request(`${base}/api/match?${query.toString()}`);
    assert.equal(res.statusCode, 200);
    return (await res.body.json()) as MatchJson;
  }

  before(async () => {
    [a, b] = await Promise.all([startUpstream({ name: 'a' }), startUpstream({ name: 'b' })]);
    deadPort = await refusedPort();
    p = await startProxy(makeTable([
      {
        name: 'users',
        host: 'api.example.com',
        path: '/users',
        strip: '/users',
        to: [
          { service: 'users', tag: 'v1', weight: 3, endpoints: [{ id: 'u1', port: a.port }, { id: 'u2', port: b.port, weight: 0 }] },
          { service: 'users', tag: 'v2', weight: 1, endpoints: [{ id: 'u3', port: b.port }] },
        ],
      },
      { name: 'drained', path: '/drained', to: [{ service: 'gone', endpoints: [{ id: 'g1', port: a.port, weight: 0 }] }] },
      {
        name: 'flaky',
        path: '/flaky',
        to: [{ service: 'flaky', endpoints: [{ id: 'dead', port: deadPort }, { id: 'live', port: a.port }] }],
        policy: { outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000 } },
      },
      { name: 'root', path: '/', to: [{ service: 'web', endpoints: [{ id: 'w1', port: b.port }] }] },
    ]));
    admin = new AdminServer({
      store: p.store,
      metrics: p.metrics,
      logger: createLogger({ level: 'silent' }),
      ready: () => true,
      config: () => ({}),
      matcher: { explain: (host, target) => explainRequest(p.proxy.runtimes.current, host, target) },
    });
    base = `http://127.0.0.1:${(await admin.listen('127.0.0.1', 0)).port}`;
  });

  after(async () => {
    await admin.close();
    await p.close();
    await Promise.all([a.close(), b.close()]);
  });

  it('a routed request: the route, why, the upstream target, shares and each endpoint\'s state; the proxy agrees', async () => {
    const m = await match('/users/7?x=1', 'API.example.com:8080');
    assert.equal(m.outcome, 'routed');
    assert.equal(m.status, null);
    assert.equal(m.route?.name, 'users');
    assert.equal(m.route?.upstreamTarget, '/7?x=1');
    assert.match(m.reason, /route "users" is for host "api\.example\.com"/);
    const [v1, v2] = m.route!.destinations;
    assert.deepEqual([v1!.key, v1!.share, v2!.key, v2!.share], ['users:v1', 0.75, 'users:v2', 0.25]);
    assert.deepEqual(v1!.endpoints.map((e) => [e.id, e.share, e.takesTraffic, e.why]), [
      ['users/u1', 1, true, 'in rotation with weight 1'],
      ['users/u2', 0, false, 'weight 0: draining (no new requests; requests in flight finish)'],
    ]);
    assert.deepEqual(m.candidates?.filter((c) => c.chosen).map((c) => c.route), ['users']);
    assert.equal(m.route?.policy.retries.count, 1, 'the effective policy is shown');

    const reply = await send(p.port, { path: '/users/7?x=1', headers: { host: 'API.example.com:8080' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.json<{ url: string }>().url, m.route?.upstreamTarget);
  });

  it('a path that normalises into another route is explained with the normalised target', async () => {
    const m = await match('/drained/../users/1', 'api.example.com');
    assert.equal(m.request.normalizedTarget, '/users/1');
    assert.equal(m.route?.name, 'users');
  });

  it('no route for the host falls back to the routes for any host', async () => {
    const m = await match('/users/7', 'other.example');
    assert.equal(m.route?.name, 'root');
    assert.match(m.reason, /serves any host .*host "other\.example" has no routes of its own/);
  });

  it('no endpoint can take the request: 503, as the proxy answers', async () => {
    const m = await match('/drained/x');
    assert.equal(m.outcome, 'no-endpoint');
    assert.equal(m.status, 503);
    assert.equal((await send(p.port, { path: '/drained/x' })).status, m.status);
  });

  it('an endpoint ejected by outlier detection is shown with why and until when', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await send(p.port, { path: '/flaky/x' })).status, 200);
    await waitFor(() => p.proxy.runtimes.ejectedEndpoints().length === 1, 'the dead endpoint to be ejected');
    const endpoints = (await match('/flaky/x')).route!.destinations[0]!.endpoints;
    const dead = endpoints.find((e) => e.id === 'flaky/dead')!;
    assert.equal(dead.ejected, true);
    assert.equal(dead.takesTraffic, false);
    assert.match(dead.why, /ejected by outlier detection/);
    assert.ok(Date.parse(dead.ejectedUntil ?? '') > Date.now());
    assert.equal(endpoints.find((e) => e.id === 'flaky/live')?.takesTraffic, true);
  });

  it('a target the proxy refuses, and an absolute URL routed by its authority', async () => {
    const refused = await match('/a/../../etc/passwd');
    assert.equal(refused.outcome, 'refused');
    assert.equal(refused.status, 400);
    assert.equal((await send(p.port, { path: '/a/../../etc/passwd' })).status, 400);
    const absolute = await match('http://api.example.com/users/1');
    assert.equal(absolute.route?.name, 'users');
    assert.equal(absolute.route?.upstreamTarget, '/1');
  });

  it('without a path: 400 with the usage', async () => {
    const res = await request(`${base}/api/match?host=x`);
    assert.equal(res.statusCode, 400);
    assert.match(((await res.body.json()) as { message: string }).message, /usage: \/api\/match\?path=/);
  });
});
