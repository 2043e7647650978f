import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { binOf, binUpperMs, EndpointWindow, LATENCY_BINS, mergeSamples, percentileMs } from '../../src/proxy/runtime/endpoint-window.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

/** The parts of /api/status these tests read. */
export interface Traffic {
  inflight: number; requests: number; rps: number; errorRate: number | null; failures: number; p50: number | null; p99: number | null;
}
export interface StatusEndpoint {
  id: string; status: string; state: string; weight: number; ejected: boolean; traffic: Traffic | null;
}
export interface StatusRoute {
  name: string; host: string | null; path: string; traffic: Traffic | null;
  destinations: { key: string; weight: number; configuredWeight: number; endpoints: StatusEndpoint[] }[];
}
export interface Status {
  version: number; ready: boolean; lifecycle: string | null; workers: { asked: number; answered: number } | null;
  sources: { name: string; synced: boolean; healthy: boolean; ageSeconds: number | null; lastError: string | null; rejectedFiles: { file: string; message: string }[] }[];
  lastRejectedBuild: { code: string; message: string } | null;
  routes: StatusRoute[];
}

describe('endpoint window (the last minute of one endpoint)', () => {
  it('counts requests and errors (5xx and 0) per second and forgets what is older than 60 s', () => {
    const w = new EndpointWindow();
    assert.equal(w.summary(0), undefined);
    const t0 = 1_000_000;
    for (let i = 0; i < 10; i++) w.record(t0 + i * 100, 5, 200);
    w.record(t0 + 500, 5, 503);
    w.record(t0 + 600, 5, 0);
    w.record(t0 + 700, 5, 499);
    w.record(t0 + 30_000, -1, 101); // an upgrade: counted, no latency
    let s = w.summary(t0 + 30_000)!;
    assert.equal(s.requests, 14);
    assert.equal(s.errors, 2);
    assert.equal(s.latency.reduce((a, b) => a + b, 0), 13);
    // 60 s after the first second, only the upgrade's second is left.
    s = w.summary(t0 + 60_000)!;
    assert.equal(s.requests, 1);
    assert.equal(w.summary(t0 + 91_000), undefined);
    // A slot reused a minute later starts from zero.
    w.record(t0 + 60_100, 5, 200);
    assert.equal(w.summary(t0 + 60_100)!.requests, 2);
  });

  it('reads p50 and p99 from the log-scale histogram within a bin (√2) of the truth', () => {
    const w = new EndpointWindow();
    const t = 5_000;
    for (let i = 1; i <= 1000; i++) w.record(t, i / 10, 200); // 0.1 .. 100 ms, uniform
    const s = w.summary(t)!;
    const p50 = percentileMs(s.latency, 0.5)!;
    const p99 = percentileMs(s.latency, 0.99)!;
    assert.ok(p50 > 50 / Math.SQRT2 && p50 < 50 * Math.SQRT2, `p50 ${p50}`);
    assert.ok(p99 > 99 / Math.SQRT2 && p99 < 99 * Math.SQRT2, `p99 ${p99}`);
    assert.equal(binOf(0.2), 0);
    assert.equal(binOf(1e9), LATENCY_BINS - 1);
    for (const ms of [0.6, 1, 3, 7.5, 100, 2500]) assert.ok(ms <= binUpperMs(binOf(ms)) && ms > binUpperMs(binOf(ms) - 1), String(ms));
  });

  it('merges samples of several processes by adding them', () => {
    const latency = (bin: number, n: number): number[] => Array.from({ length: LATENCY_BINS }, (_, i) => (i === bin ? n : 0));
    const merged = mergeSamples([
      { endpoints: [{ route: 'r', endpoint: 'e', requests: 3, errors: 1, failures: 2, inflight: 2, latency: latency(4, 3) }], routeInflight: { r: 2 } },
      { endpoints: [{ route: 'r', endpoint: 'e', requests: 5, errors: 0, failures: 1, inflight: 1, latency: latency(4, 5) }, { route: 'r', endpoint: 'f', requests: 1, errors: 0, failures: 0, inflight: 0, latency: null }], routeInflight: { r: 1 } },
    ]);
    const e = merged.endpoints.find((x) => x.endpoint === 'e')!;
    assert.deepEqual([e.requests, e.errors, e.failures, e.inflight, e.latency![4]], [8, 1, 3, 3, 8]);
    assert.equal(merged.endpoints.length, 2);
    assert.deepEqual(merged.routeInflight, { r: 3 });
  });
});

describe('/api/status (single process)', () => {
  let workspace: Workspace;
  let app: Switchyard;
  const ups: TestUpstream[] = [];
  let admin = '';
  let proxy = '';

  const status = async (): Promise<Status> => {
    const res = await request(`${admin}/api/status`);
    assert.equal(res.statusCode, 200);
    return await res.body.json() as Status;
  };

  before(async () => {
    for (const name of ['a', 'b']) ups.push(await startUpstream({ name }));
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', [
      'routes:',
      '  - name: app',
      '    match: { host: app.example, path: /app }',
      '    to: [ { service: app, weight: 2 } ]',
      '',
    ].join('\n'));
    await workspace.writeServices([
      'services:',
      '  app:',
      ...ups.map((u) => `    - { id: ${u.name}, address: 127.0.0.1, port: ${u.port} }`),
      'kv:',
      "  switchyard/routes/app/weights: '{\"app\": 5}'",
      '',
    ].join('\n'));
    app = await startTestSwitchyard(workspace);
    admin = `http://127.0.0.1:${app.adminAddress.port}`;
    proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await Promise.all(ups.map((u) => u.close()));
    await workspace?.remove();
  });

  it('shows each route with its match, weights, endpoints and the sources', async () => {
    const s = await status();
    assert.equal(s.ready, true);
    assert.equal(s.lifecycle, 'serving');
    assert.equal(s.workers, null);
    assert.equal(s.lastRejectedBuild, null);
    assert.ok(s.sources.some((src) => src.synced && src.ageSeconds !== null), JSON.stringify(s.sources));
    const route = s.routes.find((r) => r.name === 'app')!;
    assert.equal(route.host, 'app.example');
    assert.equal(route.path, '/app');
    assert.deepEqual(route.destinations.map((d) => [d.key, d.configuredWeight, d.weight]), [['app', 2, 5]]);
    assert.deepEqual(route.destinations[0]!.endpoints.map((e) => [e.id, e.status, e.traffic]), [['app/a', 'passing', null], ['app/b', 'passing', null]]);
  });

  it('counts the requests of the last minute per endpoint, errors included, with percentiles', async () => {
    const N = 20;
    for (let i = 0; i < N; i++) {
      const res = await request(`${proxy}/app/x`, { headers: { host: 'app.example', ...(i < 4 ? { 'x-test-status': '500' } : {}) } });
      await res.body.dump();
    }
    const s = await status();
    const route = s.routes.find((r) => r.name === 'app')!;
    const endpoints = route.destinations[0]!.endpoints;
    assert.equal(endpoints.reduce((n, e) => n + e.traffic!.requests, 0), N);
    assert.equal(route.traffic!.requests, N);
    assert.equal(route.traffic!.errorRate, 4 / N);
    for (const e of endpoints) {
      const t = e.traffic!;
      assert.equal(t.requests, N / 2, e.id);
      assert.ok(t.p50 !== null && t.p99 !== null && t.p50 <= t.p99, JSON.stringify(e));
      assert.equal(t.rps, Math.round((N / 2 / 60) * 100) / 100);
    }
  });

  it('shows the last rejected build with its error', async () => {
    const version = app.store.version;
    await workspace.writeTemplate('bad.yaml', 'routes:\n  - name: app\n    match: { path: /other }\n    to: [ { service: app } ]\n');
    const s = await waitFor('the rejected build on /api/status', async () => {
      const now = await status();
      return now.lastRejectedBuild !== null && now;
    }, 10_000);
    assert.match(s.lastRejectedBuild!.message, /duplicate route name/);
    assert.equal(s.version, version);
  });

  it('shows a rejected template file with its error on its source', async () => {
    await workspace.writeTemplate('broken.yaml', 'routes:\n  - name: x\n    match: { path: /x\n');
    const s = await waitFor('the broken file on /api/status', async () => {
      const now = (await status()).sources.find((src) => src.name === 'templates')!;
      return now.rejectedFiles.length > 0 && now;
    }, 10_000);
    assert.deepEqual(s.rejectedFiles.map((f) => f.file), ['broken.yaml']);
    assert.match(s.rejectedFiles[0]!.message, /broken\.yaml: line \d+, column \d+: /);
    assert.match(s.lastError!, /^1 file\(s\) rejected: .*broken\.yaml: line \d+, column \d+: /);
  });

  it('shows a rejected services file as its source\'s last error', async () => {
    await workspace.writeServices('services:\n  app: [ { id: a\n');
    const s = await waitFor('the services file\'s error on /api/status', async () => {
      const now = (await status()).sources.find((src) => src.name === 'file')!;
      return now.lastError !== null && now;
    }, 10_000);
    assert.equal(s.healthy, false);
    assert.match(s.lastError!, /services\.yaml: line \d+, column \d+: /);
  });

  it('serves the page without the token material: HTML, CSS and JS with a strict CSP', async () => {
    for (const [path, type] of [['/', 'text/html'], ['/status.css', 'text/css'], ['/status.js', 'text/javascript']] as const) {
      const res = await request(`${admin}${path}`);
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, path);
      assert.ok(String(res.headers['content-type']).startsWith(type), path);
      assert.match(String(res.headers['content-security-policy']), /script-src 'self'/);
      assert.ok(text.length > 100, path);
    }
  });
});
