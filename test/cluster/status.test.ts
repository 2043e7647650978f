/**
 * --workers 2: /api/status asks every worker for its traffic windows and merges them (sums of
 * buckets, percentiles from the merged histograms), so the page shows the machine, not one process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Status } from '../admin/status.test.js';
import { Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { freshRequest, ROUND_ROBIN, startCluster, type RunningCluster } from './cluster-process.js';

describe('--workers 2: /api/status merges every worker', () => {
  let workspace: Workspace;
  const ups: TestUpstream[] = [];
  let cluster: RunningCluster;

  before(async () => {
    for (const name of ['a', 'b']) ups.push(await startUpstream({ name }));
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', 'routes:\n  - name: merged\n    match: { path: /merged }\n    to: [ { service: app } ]\n');
    await workspace.writeServices(`services:\n  app:\n${ups.map((u) => `    - { id: ${u.name}, address: 127.0.0.1, port: ${u.port} }\n`).join('')}`);
    // Round-robin: consecutive new connections alternate over the workers, so both take traffic.
    cluster = await startCluster(workspace, [], ROUND_ROBIN);
    await cluster.everyWorkerPast(0);
  });

  after(async () => {
    await cluster?.kill();
    await Promise.all(ups.map((u) => u.close()));
    await workspace?.remove();
  });

  it('N requests over both workers count N in the window, errors and percentiles included', async () => {
    const N = 24;
    const errors = 6;
    for (let i = 0; i < N; i++) {
      const res = await freshRequest(`${cluster.origin}/merged/${i}`, i < errors ? { 'x-test-status': '503' } : {});
      assert.equal(res.status, i < errors ? 503 : 200, res.text);
    }
    const res = await cluster.adminGet('/api/status');
    assert.equal(res.status, 200, res.text);
    const status = JSON.parse(res.text) as Status;
    assert.deepEqual(status.workers, { asked: 2, answered: 2 });
    const route = status.routes.find((r) => r.name === 'merged')!;
    assert.equal(route.traffic!.requests, N, res.text);
    assert.equal(route.traffic!.errorRate, errors / N);
    const endpoints = route.destinations[0]!.endpoints;
    assert.equal(endpoints.reduce((n, e) => n + (e.traffic?.requests ?? 0), 0), N);
    for (const { traffic: t } of endpoints) assert.ok(t !== null && t.p50 !== null && t.p99 !== null && t.p50 <= t.p99, JSON.stringify(t));
    assert.ok(status.sources.some((s) => s.name === 'file' && s.synced), JSON.stringify(status.sources));
  });
});
