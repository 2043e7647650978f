/**
 * --workers 2: what holds for the machine, not per process. /metrics sums both workers; a route's
 * rate limit, concurrency limit and upstream connection cap are divided between the workers (each enforces 1/N, exact when
 * connections spread evenly, as round-robin does exactly for new connections); an ejection
 * decided in one worker shows in /api/routes and /api/match and is applied by the other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { freshRequest, ROUND_ROBIN, sample, startCluster, type RunningCluster } from './cluster-process.js';

const TEMPLATE = `routes:
  - name: counted
    match: { path: /counted }
    to: [ { service: app } ]
  - name: limited
    match: { path: /limited }
    to: [ { service: app } ]
    policy: { rateLimit: { requestsPerSecond: 0.01, burst: 10 } }
  - name: capped
    match: { path: /capped }
    to: [ { service: app } ]
    policy: { concurrency: { max: 4 } }
  - name: pooled
    match: { path: /pooled }
    to: [ { service: pooled } ]
    policy: { upstream: { maxConnections: 2 } }
  - name: flaky
    match: { path: /flaky }
    to: [ { service: pair } ]
    policy: { retries: { count: 0 }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60s, maxEjectionMs: 120s } }
`;

describe('--workers 2: metrics, limits and ejections hold for the machine', () => {
  let workspace: Workspace;
  let app: TestUpstream;
  let good: TestUpstream;
  let bad: TestUpstream;
  let pooled: TestUpstream;
  let cluster: RunningCluster;

  before(async () => {
    app = await startUpstream({ name: 'app' });
    good = await startUpstream({ name: 'good' });
    bad = await startUpstream({ name: 'bad' });
    pooled = await startUpstream({ name: 'pooled' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', TEMPLATE);
    await workspace.writeServices(`services:
  app:
    - { id: app-1, address: 127.0.0.1, port: ${app.port} }
  pair:
    - { id: good, address: 127.0.0.1, port: ${good.port} }
    - { id: bad, address: 127.0.0.1, port: ${bad.port} }
  pooled:
    - { id: pooled-1, address: 127.0.0.1, port: ${pooled.port} }
`);
    // Round-robin: the limit tests count on new connections alternating over the workers.
    cluster = await startCluster(workspace, [], ROUND_ROBIN);
    await cluster.everyWorkerPast(0);
  });

  after(async () => {
    await cluster?.kill();
    for (const u of [app, good, bad, pooled]) await u?.close();
    await workspace?.remove();
  });

  it('/metrics: the request counter equals the requests sent, over both workers', async () => {
    const SENT = 20;
    for (let i = 0; i < SENT; i++) assert.equal((await freshRequest(`${cluster.origin}/counted/${i}`)).status, 200);
    const metrics = (await cluster.adminGet('/metrics')).text;
    assert.equal(sample(metrics, 'switchyard_requests_total{route="counted",code="200"}'), SENT, metrics.split('\n').filter((l) => l.includes('counted')).join('\n'));
    // The primary's own metrics are in the same exposition.
    assert.ok(sample(metrics, 'switchyard_table_swaps_total') >= 1, 'the primary\'s table swaps');
    assert.equal(sample(metrics, 'switchyard_workers_serving'), 2);
  });

  it('a rate limit holds machine-wide: burst 10 admits 10 of 40 requests, not 10 per worker', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await freshRequest(`${cluster.origin}/limited`)).status);
    const admitted = statuses.filter((s) => s === 200).length;
    // Each worker: burst 5, 0.005 tokens/s (under one more token per worker in 100 s).
    assert.equal(admitted, 10, `admitted ${admitted}: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 30);
  });

  it('a concurrency limit holds machine-wide: max 4 admits at most 4 of 10 concurrent requests', async () => {
    const answers = await Promise.all([...Array(10).keys()].map(() => freshRequest(`${cluster.origin}/capped`, { 'x-test-delay-ms': '1500' })));
    const admitted = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 503).length;
    // 2 per worker: 4 when each worker got at least 2 of the 10 connections (round-robin gives 5 and 5).
    assert.ok(admitted >= 2 && admitted <= 4, `admitted ${admitted}`);
    assert.equal(admitted + refused, 10);
    // /api/match (asked of one worker) names the machine's limit and that worker's share.
    const match = JSON.parse((await cluster.adminGet('/api/match?path=/capped')).text) as { route: { admission: string[] } };
    assert.ok(match.route.admission.some((n) => n.startsWith('concurrency: at most 4 in flight (this worker: at most 2, ')), match.route.admission.join(' | '));
  });

  it('an upstream connection cap holds machine-wide: maxConnections 2 opens 2 connections over both workers, not 2 each', async () => {
    const SENT = 8;
    const answers = await Promise.all([...Array(SENT).keys()].map(() => freshRequest(`${cluster.origin}/pooled`, { 'x-test-delay-ms': '500' })));
    assert.deepEqual(answers.map((a) => a.status), Array(SENT).fill(200), 'every request waits its turn and succeeds');
    assert.equal(pooled.requests, SENT);
    // Round-robin gives each worker 4 of the 8; each may open floor(2 / 2) = 1 connection.
    assert.ok(pooled.connections <= 2, `upstream connections ${pooled.connections}`);
  });

  it('an ejection decided in one worker shows in /api/routes and /api/match and is applied by the other', async () => {
    // One keep-alive connection: one worker sees the failures and ejects `bad`.
    const agent = new Agent({ connections: 1 });
    const failing = { 'x-test-only': 'bad', 'x-test-status': '500' };
    type Routes = { routes: { name: string; ejectedEndpoints: { endpoint: string }[] }[] };
    const ejected = async (): Promise<string[]> => {
      const routes = JSON.parse((await cluster.adminGet('/api/routes')).text) as Routes;
      return routes.routes.find((r) => r.name === 'flaky')!.ejectedEndpoints.map((e) => e.endpoint);
    };
    for (let i = 0; i < 8 && (await ejected()).length === 0; i++) {
      await (await request(`${cluster.origin}/flaky`, { dispatcher: agent, headers: failing })).body.text();
    }
    await agent.close();
    assert.deepEqual(await waitFor('the ejection in /api/routes', async () => {
      const list = await ejected();
      return list.length > 0 && list;
    }), ['pair/bad']);
    const match = JSON.parse((await cluster.adminGet('/api/match?path=/flaky')).text) as { route: { destinations: { endpoints: { id: string; ejected: boolean }[] }[] } };
    assert.deepEqual(match.route.destinations[0]!.endpoints.map((e) => [e.id, e.ejected]).sort(), [['pair/bad', true], ['pair/good', false]]);

    // New connections reach both workers: neither sends to `bad` any more.
    const before = bad.requests;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await freshRequest(`${cluster.origin}/flaky`, failing)).status);
    assert.deepEqual(statuses, Array(20).fill(200), 'every request went to good');
    assert.equal(bad.requests, before, 'no worker sent a request to the ejected endpoint');
    const metrics = (await cluster.adminGet('/metrics')).text;
    assert.equal(sample(metrics, 'switchyard_ejections_total{route="flaky"}'), 1, 'one ejection decided');
    assert.equal(sample(metrics, 'switchyard_ejected_endpoints{route="flaky"}'), 1, 'one endpoint out, as each worker reports it');
  });
});
