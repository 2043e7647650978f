/**
 * Chaos under load: 20 clients send idempotent GETs through Switchyard to three upstreams; one
 * upstream is killed mid-run (server closed, every socket destroyed). Retries (connect failure,
 * reset) and outlier ejection must hide it completely: zero failed requests. Brought back on the
 * same port, it takes traffic again once its ejection time is over (short times from the template
 * policy). Bounded: each client stops at a request cap or when told, every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

const CLIENTS = 20;
const MAX_REQUESTS_PER_CLIENT = 3_000;
const MAX_RUN_MS = 45_000;

async function metric(app: Switchyard, name: string, labels: Record<string, string>): Promise<number> {
  const data = await app.metrics.registry.getSingleMetric(name)?.get();
  let total = 0;
  for (const value of data?.values ?? []) {
    if (Object.entries(labels).every(([k, v]) => String((value.labels as Record<string, unknown>)[k]) === v)) total += value.value;
  }
  return total;
}

describe('chaos: an upstream dies under load', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let pool: Pool;
  const ups: TestUpstream[] = [];
  let revived: TestUpstream | undefined;

  before(async () => {
    for (const name of ['a', 'b', 'c']) ups.push(await startUpstream({ name }));
    workspace = await Workspace.create();
    await workspace.writeTemplate('chaos.yaml', [
      'routes:',
      '  - name: chaos',
      '    match: { path: / }',
      '    to: [ { service: app } ]',
      '    policy:',
      '      retries: { count: 2, on: [connect-failure, reset, 502, 503] }',
      '      outlier: { consecutiveFailures: 3, baseEjectionMs: 300ms, maxEjectionMs: 1500ms, maxEjectionPercent: 50 }',
      '      timeouts: { connectMs: 1s, headersMs: 5s }',
      '',
    ].join('\n'));
    await workspace.writeServices(`services:\n  app:\n${ups.map((u) => `    - { id: ${u.name}, address: 127.0.0.1, port: ${u.port} }\n`).join('')}`);
    app = await startTestSwitchyard(workspace);
    pool = new Pool(`http://127.0.0.1:${app.proxyAddress.port}`, { connections: CLIENTS });
  });

  after(async () => {
    await pool?.close();
    await app?.stop();
    await Promise.all([...ups.map((u) => u.close()), revived?.close()]);
    await workspace?.remove();
  });

  it('zero failed requests while one of three upstreams is killed; it takes traffic again when it comes back', async () => {
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const startedAt = Date.now();

    async function client(id: number): Promise<void> {
      for (let i = 0; i < MAX_REQUESTS_PER_CLIENT && !stop && Date.now() - startedAt < MAX_RUN_MS; i++) {
        try {
          // A small upstream delay keeps requests in flight at the moment of the kill.
          const res = await pool.request({ method: 'GET', path: `/c${id}/${i}`, headers: { 'x-test-delay-ms': '2' } });
          const body = await res.body.text();
          if (res.statusCode === 200) ok += 1;
          else failures.push(`${res.statusCode} ${body.slice(0, 120)}`);
        } catch (err) {
          failures.push(`client error: ${(err as Error).message}`);
        }
      }
    }

    const clients = Array.from({ length: CLIENTS }, (_, id) => client(id));
    try {
      await waitFor('load to be flowing', () => ok >= 300, 15_000);
      const [victim] = ups as [TestUpstream];
      const port = victim.port;
      const beforeKill = ok;
      await victim.close();
      ups.shift();

      await waitFor('the dead upstream to be ejected', async () => (await metric(app, 'switchyard_ejections_total', { route: 'chaos' })) >= 1, 10_000);
      // The admin API says which endpoint is out and until when.
      const shown = await waitFor('/api/routes to list the ejected endpoint', async () => {
        const view = await (await fetch(`http://127.0.0.1:${app.adminAddress.port}/api/routes`)).json() as
          { routes: { name: string; ejectedEndpoints: { endpoint: string; until: string }[] }[] };
        return view.routes.find((r) => r.name === 'chaos')?.ejectedEndpoints.find(() => true);
      }, 10_000);
      assert.ok(!Number.isNaN(Date.parse(shown.until)), `until is a time: ${shown.until}`);
      await waitFor('load to continue through the outage', () => ok >= beforeKill + 1_000, 20_000);
      assert.deepEqual(failures, [], 'no request failed while the upstream was dead');

      revived = await startUpstream({ name: 'a', port });
      await waitFor('the revived upstream to take traffic again', () => (revived?.requests ?? 0) >= 20, 10_000);
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    assert.deepEqual(failures, [], 'no request failed at any point');
    assert.ok(ok >= 1_300, `requests served: ${ok}`);
    const retried = await metric(app, 'switchyard_retries_total', { route: 'chaos' });
    assert.ok(retried >= 1, `retries hid the failures (${retried})`);
    // One count per client request, retried or not (a request is counted when its response closes,
    // which may be just after the client read it: wait for the count to reach the client's).
    await waitFor('every 200 the clients got to be counted once', async () => (await metric(app, 'switchyard_requests_total', { route: 'chaos', code: '200' })) === ok, 5_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}: ${await metric(app, 'switchyard_requests_total', { route: 'chaos', code: '200' })} counted, ${ok} received`); });
    assert.equal(await metric(app, 'switchyard_requests_total', { route: 'chaos' }), ok, 'and no other status was counted');
    assert.equal(await metric(app, 'switchyard_ejected_endpoints', { route: 'chaos' }), 0, 'nothing is ejected once the upstream is back and healthy');
  });
});
