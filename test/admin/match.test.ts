/**
 * /api/match: what the proxy would do with a request, and why. Each answer is checked against what
 * the running proxy actually does with the same request (status, route in the access log).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { AdminServer } from '../../src/admin/admin-server.js';
import { makeTable, send, startProxy, type TestProxy } from '../proxy/harness.js';
import { startMatchAdmin } from './match-admin.js';
import { waitFor } from '../support/wait.js';
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

  /** `path` goes last and raw, exactly as a client would send it. */
  async function match(path: string, host?: string): Promise<MatchJson> {
    const res = await request(`${base}/api/match?${host === undefined ? '' : `host=${encodeURIComponent(host)}&`}path=${path}`);
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
      {
        name: 'split',
        path: '/split',
        to: [
          { service: 'stable', weight: 1, endpoints: [{ id: 's1', port: a.port }, { id: 's2', port: b.port }] },
          { service: 'canary', weight: 1, endpoints: [{ id: 'c1', port: deadPort }] },
        ],
        policy: { outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionPercent: 100 }, rateLimit: { requestsPerSecond: 1000 } },
      },
      { name: 'files', path: '/files', to: [{ service: 'files', endpoints: [{ id: 'f1', port: a.port }] }] },
      { name: 'admin', path: '/admin', to: [{ service: 'admin', endpoints: [{ id: 'ad1', port: a.port }] }] },
      { name: 'root', path: '/', to: [{ service: 'web', endpoints: [{ id: 'w1', port: b.port }] }] },
    ]));
    ({ admin, base } = await startMatchAdmin(p));
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
    await waitFor('the dead endpoint (and only it) to be ejected', () => {
      const ejected = p.proxy.runtimes.ejectedEndpoints();
      return ejected.length === 1 && ejected[0]!.endpoint === 'flaky/dead';
    });
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

  it('shares follow what can take traffic: an ejected endpoint\'s share goes to its pool, a pool with none left gives its share away', async () => {
    // The canary's only endpoint refuses connections: connect failures are retried on stable and
    // eject the canary endpoint (maxEjectionPercent 100 allows the last one of its pool).
    for (let i = 0; i < 4; i++) assert.equal((await send(p.port, { path: '/split/x' })).status, 200);
    await waitFor('the canary endpoint to be ejected', () => p.proxy.runtimes.ejectedEndpoints().some((e) => e.endpoint === 'canary/c1'));
    const m = await match('/split/x');
    const [stable, canary] = m.route!.destinations;
    assert.deepEqual([stable!.share, canary!.share], [1, 0]);
    assert.deepEqual(stable!.endpoints.map((e) => e.share), [0.5, 0.5]);
    assert.equal(canary!.endpoints[0]!.takesTraffic, false);
    // The proxy agrees: every request goes to stable.
    const before = a.requests + b.requests;
    for (let i = 0; i < 6; i++) assert.equal((await send(p.port, { path: '/split/y' })).status, 200);
    assert.equal(a.requests + b.requests - before, 6);
    assert.deepEqual((m.route as unknown as { admission: string[] }).admission, ['rateLimit: 1000/s, burst 1000; over it, 429']);
  });

  it('the target is taken raw, as the proxy sees it: encoded slashes and + are not decoded twice', async () => {
    for (const [target, route] of [['/files%2F..%2Fadmin', 'root'], ['/files/a%25zz', 'files'], ['/admin/a+b?x=1&y=2', 'admin']] as const) {
      const m = await match(target);
      assert.equal(m.request.target, target);
      assert.equal(m.route?.name, route, target);
      const reply = await send(p.port, { path: target });
      assert.equal(reply.status, 200, target);
      assert.equal(reply.json<{ url: string }>().url, target, 'the upstream got the same target');
    }
  });

  it('a Host the proxy refuses is refused here too; without a Host the reason says HTTP/1.1 needs one', async () => {
    for (const host of ['bad host', 'a/b', 'ex@mple.com']) {
      const m = await match('/users/1', host);
      assert.equal(m.outcome, 'refused', host);
      assert.equal(m.status, 400);
      assert.equal((await send(p.port, { path: '/users/1', headers: { host } })).status, 400, host);
    }
    assert.match((await match('/users/1')).reason, /HTTP\/1\.1 one gets 400/);
  });

  it('without a path: 400 with the usage', async () => {
    const res = await request(`${base}/api/match?host=x`);
    assert.equal(res.statusCode, 400);
    assert.match(((await res.body.json()) as { message: string }).message, /usage: \/api\/match\?\[host=example\.com&\]\[method=POST&\]\[header=NAME:VALUE&\]\.\.\.path=/);
  });
});
