/**
 * An in-process Switchyard fed by the Consul API test server, after real traffic that makes most
 * of its metric series exist: requests (2xx, 4xx, 5xx), retries (connect failure, 503), an outlier
 * ejection, an upstream timeout, a rate-limited request, a request over the body limit, one over
 * the concurrency limit, a retry refused by the retry budget, a rejected KV policy, a Consul
 * error, and a change after start-up (change → swap delay, a second table version). Process metrics are on, as in production. Shared by the promtool and dashboard
 * tests: both ask what a real `/metrics` exposes.
 */
import { startSwitchyard, type Switchyard } from '../../src/app.js';
import { parseCommandLine, type Config } from '../../src/config/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { ConsulTestServer } from './consul/server.js';
import { Workspace } from './switchyard.js';
import { startUpstream, type TestUpstream } from './upstream.js';
import { waitFor } from './wait.js';

const TEMPLATES = `routes:
  - name: api
    match: { path: /api }
    to: [ { service: app } ]
    policy:
      retries: { count: 2, on: [connect-failure, reset, 503] }
      outlier: { consecutiveFailures: 1, baseEjectionMs: 1m, maxEjectionMs: 2m, maxEjectionPercent: 50 }
      timeouts: { connectMs: 1s, headersMs: 300ms }
  - name: limited
    match: { path: /limited }
    to: [ { service: ok } ]
    policy:
      rateLimit: { requestsPerSecond: 0.01, burst: 2 }
      maxBodyBytes: 8b
      upstream: { maxConnections: 2 }
  - name: tight
    match: { path: /tight }
    to: [ { service: ok } ]
    policy:
      retries: { count: 1, on: [503], budgetPercent: 0, minPerSecond: 0 }
      concurrency: { max: 1 }
      timeouts: { headersMs: 300ms }
  - name: mirrored
    match: { path: /mirrored }
    to: [ { service: ok } ]
    mirror: { service: ok }
`;

export interface MetricTraffic {
  readonly app: Switchyard;
  readonly consul: ConsulTestServer;
  /** GET /metrics from the admin listener: the exposition text. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Is there a sample of `name` (a series line, not only HELP/TYPE) in the exposition? */
export function hasSample(exposition: string, name: string): boolean {
  return exposition.split('\n').some((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

export async function startWithMetricTraffic(): Promise<MetricTraffic> {
  const upstreams: TestUpstream[] = [];
  const consul = await ConsulTestServer.start();
  const workspace = await Workspace.create();
  let app: Switchyard | undefined;
  const stop = async (): Promise<void> => {
    await app?.stop();
    await consul.stop();
    await Promise.all(upstreams.map((u) => u.close()));
    await workspace.remove();
  };
  try {
    for (const name of ['a', 'b']) upstreams.push(await startUpstream({ name }));
    // A port nobody listens on: connections to it are refused (connect failure, retry, ejection).
    const dead = await startUpstream({ name: 'dead' });
    await dead.close();
    const register = (name: string, id: string, port: number): void =>
      consul.registerService({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Check: { TTL: '1h', Status: 'passing' } });
    register('app', 'app-a', upstreams[0]!.port);
    register('app', 'app-b', upstreams[1]!.port);
    register('app', 'app-dead', dead.port);
    register('ok', 'ok-a', upstreams[0]!.port);
    // Not JSON: ignored with a log line and switchyard_config_errors_total{kind="kv"}.
    consul.kvPut('switchyard/routes/limited/policy', '{not json');
    await workspace.writeTemplate('routes.yaml', TEMPLATES);

    const action = parseCommandLine([
      '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--consul', consul.address, '--drain-timeout', '2s',
    ], {});
    app = await startSwitchyard((action as { config: Config }).config, { logger: createLogger({ level: 'silent' }), defaultMetrics: true });
    const running = app;
    await waitFor('switchyard to be ready', () => running.watcher.ready);

    const proxy = `http://127.0.0.1:${running.proxyAddress.port}`;
    const send = async (path: string, init: RequestInit = {}): Promise<number> => {
      const res = await fetch(`${proxy}${path}`, init);
      await res.arrayBuffer();
      return res.status;
    };
    // Round robin over a, b and the dead endpoint: a refused connection retried elsewhere, then ejected.
    for (let i = 0; i < 6; i++) await send(`/api/${i}`);
    await waitFor('an ejection', async () => hasSample(await scrape(running), 'switchyard_ejections_total'), 5_000, 50);
    await send('/api/503', { headers: { 'x-test-status': '503' } });
    await send('/api/slow', { headers: { 'x-test-action': 'hang' } });
    // Burst 2: the first spends a token and is over the body limit (413), then 200, then 429.
    await send('/limited/big', { method: 'POST', body: 'more than eight bytes' });
    await send('/limited/1');
    await send('/limited/2');
    await send('/nowhere');
    // A mirrored request: its copy is counted in switchyard_mirror_total once the mirror answered.
    await send('/mirrored/1');
    await waitFor('a mirrored copy', async () => hasSample(await scrape(running), 'switchyard_mirror_total'), 5_000, 50);
    // Concurrency 1: a second request while one hangs is refused (503 overloaded); no retry budget.
    const before = upstreams[0]!.requests;
    const hanging = send('/tight/hang', { headers: { 'x-test-action': 'hang' } });
    await waitFor('the hanging request upstream', () => upstreams[0]!.requests > before, 5_000, 5);
    await send('/tight/second');
    await hanging;

    // A change after start-up (change → swap delay, table version 2), then a Consul error.
    const version = running.store.version;
    consul.registerService({ ID: 'ok-b', Name: 'ok', Address: '127.0.0.1', Port: upstreams[1]!.port, Check: { TTL: '1h', Status: 'passing' } });
    await waitFor('the change to be swapped in', () => running.store.version > version);
    // A 503 the route would retry on its other endpoint (ok-b, new), but its retry budget is 0.
    await send('/tight/503', { headers: { 'x-test-status': '503' } });
    consul.failNext(1);
    consul.kvPut('switchyard/unrelated', 'x');
    await waitFor('a Consul error to be counted', async () => hasSample(await scrape(running), 'switchyard_consul_errors_total'), 5_000, 50);
    return { app: running, consul, metrics: () => scrape(running), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function scrape(app: Switchyard): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${app.adminAddress.port}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  return res.text();
}
