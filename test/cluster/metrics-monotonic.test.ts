/**
 * --workers 2: /metrics counters never go down while the machine runs. A worker that does not
 * answer the primary in time (SIGSTOP) counts with its last answer, flagged by
 * switchyard_worker_metrics_stale{slot}; a worker that dies (SIGKILL) and is replaced keeps its
 * last counters in the machine's totals. Without that, Prometheus reads each drop as a counter
 * reset and rate()/increase() jump by the other workers' whole totals.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';
import { freshRequest, ROUND_ROBIN, sample, startCluster, type RunningCluster, type WorkersView } from './cluster-process.js';

const PLAIN = 'switchyard_requests_total{route="plain",code="200"}';
const DURATION_COUNT = 'switchyard_request_duration_seconds_count{route="plain"}';

describe('--workers 2: /metrics counters never decrease across a stopped or a replaced worker', () => {
  let workspace: Workspace;
  let app: TestUpstream;
  let cluster: RunningCluster;
  let sent = 0;

  const send = async (count: number): Promise<void> => {
    // Round-robin: consecutive new connections alternate over the workers, so both count some.
    for (let i = 0; i < count; i++) assert.equal((await freshRequest(`${cluster.origin}/plain/${i}`)).status, 200);
    sent += count;
  };
  const scrape = async (): Promise<string> => {
    const res = await cluster.adminGet('/metrics');
    assert.equal(res.status, 200);
    return res.text;
  };
  const serving = (view: WorkersView, slot: number): number => {
    const w = view.workers.find((v) => v.slot === slot)!;
    assert.ok(w.pid !== null && w.state === 'serving', `slot ${slot}: ${JSON.stringify(w)}`);
    return w.pid;
  };

  before(async () => {
    app = await startUpstream({ name: 'app' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', 'routes:\n  - name: plain\n    match: { path: /plain }\n    to: [ { service: app } ]\n');
    await workspace.writeServices(`services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${app.port} }\n`);
    cluster = await startCluster(workspace, [], ROUND_ROBIN);
    await cluster.everyWorkerPast(0);
  });

  after(async () => {
    await cluster?.kill();
    await app?.close();
    await workspace?.remove();
  });

  it('a stopped worker counts with its last answer, flagged stale, until it answers again', async () => {
    await send(20);
    const before = await scrape();
    assert.equal(sample(before, PLAIN), sent, 'both workers answered');
    assert.equal(sample(before, 'switchyard_worker_metrics_stale{slot="1"}'), 0);
    const pid = serving(await cluster.workers(), 1);
    process.kill(pid, 'SIGSTOP');
    let during: string;
    try {
      during = await scrape();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal(sample(during, PLAIN), sent, 'the stopped worker\'s requests are still counted');
    assert.equal(sample(during, DURATION_COUNT), sent, 'and in the histogram');
    assert.equal(sample(during, 'switchyard_worker_metrics_stale{slot="1"}'), 1, 'slot 1 is served from its last answer');
    assert.equal(sample(during, 'switchyard_worker_metrics_stale{slot="2"}'), 0);
    // Continued, it answers again: fresh.
    await waitFor('slot 1 answering again', async () => sample(await scrape(), 'switchyard_worker_metrics_stale{slot="1"}') === 0, 10_000);
  });

  it('a killed worker\'s counts stay in the totals after it is replaced: N sent, kill, M more, N + M counted', async () => {
    await send(20);
    const before = await scrape();
    assert.equal(sample(before, PLAIN), sent);
    const pid = serving(await cluster.workers(), 2);
    process.kill(pid, 'SIGKILL');
    const afterKill = await scrape();
    assert.ok(sample(afterKill, PLAIN) >= sample(before, PLAIN), `after the kill ${sample(afterKill, PLAIN)} < before ${sample(before, PLAIN)}`);
    // The replacement serves (round-robin hands it half of the next connections).
    await waitFor('slot 2 replaced and serving', async () => {
      const w = (await cluster.workers()).workers.find((v) => v.slot === 2)!;
      return w.state === 'serving' && w.pid !== pid && w.restarts >= 1;
    }, 20_000);
    await send(20);
    const final = await scrape();
    assert.equal(sample(final, PLAIN), sent, 'every request ever answered is counted');
    assert.equal(sample(final, DURATION_COUNT), sent);
    assert.equal(sample(final, 'switchyard_worker_restarts_total'), 1);
    // Gauges of the dead worker are not kept: each live worker has one pool (to app-1), the dead one's is gone.
    assert.equal(sample(final, 'switchyard_upstream_pools'), 2);
    const run = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: final, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, `promtool: ${run.stdout}${run.stderr}`);
  });
});
