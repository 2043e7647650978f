/**
 * Two workers, many swaps: the zero-downtime test's core (test/integration/zero-downtime.test.ts)
 * against the built CLI with --workers 2, and every change reaching every worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { appServicesFile, seededBelow } from '../support/churn.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { Workspace } from '../support/switchyard.js';
import { freshRequest, ROUND_ROBIN, startCluster, type RunningCluster } from './cluster-process.js';

const INSTANCES = 4;
const CLIENTS = 8;
const MIN_REQUESTS = 1500;
const MIN_REWRITES = 30;
const DEADLINE_MS = 90_000;

const APP_TEMPLATE = 'routes:\n  - name: app\n    match: { path: /work }\n    to: [ { service: app } ]\n';

/** Upstreams app-0..3, a workspace routing /work to them (app-0 and app-1 first), and the cluster. */
class Setup {
  workspace!: Workspace;
  cluster!: RunningCluster;
  readonly upstreams: TestUpstream[] = [];

  async start(env: Record<string, string>): Promise<void> {
    for (let i = 0; i < INSTANCES; i++) this.upstreams.push(await startUpstream({ name: `app-${i}` }));
    this.workspace = await Workspace.create();
    await this.workspace.writeTemplate('app.yaml', APP_TEMPLATE);
    await this.workspace.writeServices(appServicesFile(this.upstreams.map((u) => u.port), [0, 1], [1, 1, 1, 1]));
    this.cluster = await startCluster(this.workspace, [], env);
    await this.cluster.everyWorkerPast(0);
  }

  async stop(): Promise<void> {
    await this.cluster?.kill();
    for (const u of this.upstreams) await u.close();
    await this.workspace?.remove();
  }
}

describe('--workers 2 (round-robin): every change reaches every worker', () => {
  const setup = new Setup();
  // Round-robin: consecutive new connections alternate, so 8 of them reach both workers.
  before(() => setup.start(ROUND_ROBIN));
  after(() => setup.stop());

  it('every change reaches both workers: after each, requests on new connections all see it', async () => {
    const { cluster, workspace } = setup;
    for (let n = 1; n <= 4; n++) {
      const before = (await cluster.workers()).tableVersion;
      await workspace.writeTemplate('extra.yaml', `routes:\n  - name: extra-${n}\n    match: { path: /extra-${n} }\n    to: [ { service: app } ]\n`);
      await cluster.everyWorkerPast(before);
      // Consecutive new connections go to alternate workers (round-robin): 8 reach both.
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await freshRequest(`${cluster.origin}/extra-${n}/x`)).status);
      assert.deepEqual(statuses, Array(8).fill(200), `change ${n}: every connection sees route extra-${n}`);
      // Without the change a worker answers 404 SY_NO_ROUTE (no route but /work).
    }
  });
});

describe('--workers 2 (default scheduling): swaps under load', () => {
  const setup = new Setup();
  before(() => setup.start({}));
  after(() => setup.stop());

  it(`${CLIENTS} keep-alive clients and a new-connection client, ${MIN_REWRITES}+ rewrites: no failed request`, async (t) => {
    const { cluster, workspace, upstreams } = setup;
    const deadline = Date.now() + DEADLINE_MS;
    const agent = new Agent({ connections: CLIENTS, pipelining: 1 });
    const failures: string[] = [];
    let answered = 0;
    let rewrites = 0;
    let rewriting = true;
    const random = seededBelow(11);
    let live = '';
    const rewriter = (async () => {
      try {
        while (rewrites < MIN_REWRITES && Date.now() < deadline) {
          const members = [...Array(INSTANCES).keys()].filter(() => random(2) === 0);
          if (members.length === 0) members.push(random(INSTANCES));
          const weights = [...Array(INSTANCES)].map(() => 1 + random(4));
          const expected = members.map((i) => `${i}=${weights[i]}`).join(',');
          if (expected === live) continue;
          const before = (await cluster.workers()).tableVersion;
          await workspace.writeServices(appServicesFile(upstreams.map((u) => u.port), members, weights));
          // Live in every worker before the next rewrite.
          await cluster.everyWorkerPast(before);
          live = expected;
          rewrites += 1;
        }
      } finally {
        rewriting = false;
      }
    })();
    const client = async (n: number, fresh: boolean): Promise<void> => {
      let mine = 0;
      while ((rewriting || answered < MIN_REQUESTS) && Date.now() < deadline && mine < MIN_REQUESTS * 4) {
        mine += 1;
        try {
          const res = fresh
            ? await freshRequest(`${cluster.origin}/work/${n}`)
            : await request(`${cluster.origin}/work/${n}`, { dispatcher: agent }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
          if (res.status !== 200) failures.push(`status ${res.status}: ${res.text.slice(0, 200)}`);
          else answered += 1;
        } catch (err) {
          failures.push(`error: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([rewriter, client(-1, true), ...[...Array(CLIENTS).keys()].map((n) => client(n, false))]);
    await agent.close();
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);
    assert.ok(rewrites >= MIN_REWRITES, `only ${rewrites} rewrites before the deadline`);
    assert.ok(answered >= MIN_REQUESTS, `only ${answered} requests before the deadline`);
    const served = upstreams.filter((u) => u.requests > 0).length;
    assert.equal(served, INSTANCES, 'every instance served at some point');
    t.diagnostic(`${answered} requests, ${rewrites} rewrites (each live in both workers), 0 failures`);
  });
});
