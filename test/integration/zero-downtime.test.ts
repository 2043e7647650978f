import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { startSwitchyard, type Switchyard } from '../../src/app.js';
import { parseCommandLine, type Config } from '../../src/config/config.js';
import { createLogger } from '../../src/observability/logger.js';
import type { RoutingTable } from '../../src/model/types.js';
import { captureLogger } from '../support/capture-logger.js';
import { appServicesFile, seededBelow } from '../support/churn.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';

const INSTANCES = 6;
const CLIENTS = 20;
const MIN_REQUESTS = 5000;
const MIN_REWRITES = 100;
const DEADLINE_MS = 90_000;

interface Version {
  at: number;
  ids: Set<string>;
}

/** Upstreams that name themselves in a header and echo the body length. */
async function startUpstreams(): Promise<{ servers: Server[]; ports: number[] }> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const id = `app-${i}`;
    const server = createServer((req, res) => {
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        length += chunk.length;
      });
      req.on('end', () => {
        // A little latency so that requests are in flight across swaps.
        setTimeout(() => {
          res.writeHead(200, { 'x-instance': id, 'content-type': 'text/plain' });
          res.end(`${id} ${length}`);
        }, i % 3);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  return { servers, ports };
}

/** The live table's endpoints as `id=weight`, sorted: what a rewrite must produce to count as live. */
function liveMembers(table: RoutingTable): string {
  const out: string[] = [];
  for (const route of table.routes) for (const d of route.active) for (const e of d.active) out.push(`${e.instanceId}=${e.weight}`);
  return out.sort().join(',');
}

function activeIds(table: RoutingTable): Set<string> {
  const ids = new Set<string>();
  for (const route of table.routes) for (const d of route.active) for (const e of d.active) ids.add(e.instanceId);
  return ids;
}

describe('hot swap under load', () => {
  let workspace: Workspace;
  let app: Switchyard;
  let upstreams: { servers: Server[]; ports: number[] };
  const versions: Version[] = [];

  before(async () => {
    upstreams = await startUpstreams();
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', 'routes:\n  - name: app\n    match: { path: / }\n    to: [ { service: app } ]\n');
    await workspace.writeServices(appServicesFile(upstreams.ports, [0, 1, 2], [1, 1, 1, 1, 1, 1]));
    app = await startTestSwitchyard(workspace);
    versions.push({ at: performance.now(), ids: activeIds(app.store.current!) });
    app.store.onSwapped((next) => versions.push({ at: performance.now(), ids: activeIds(next) }));
  });

  after(async () => {
    await app?.stop();
    for (const s of upstreams?.servers ?? []) {
      s.closeAllConnections();
      s.close();
    }
    await workspace?.remove();
  });

  it(`${CLIENTS} keep-alive clients, ${MIN_REQUESTS}+ requests, ${MIN_REWRITES}+ rewrites: no failure, every answer from a live endpoint`, async (t) => {
    const deadline = Date.now() + DEADLINE_MS;
    const agent = new Agent({ connections: CLIENTS, pipelining: 1 });
    const origin = `http://127.0.0.1:${app.proxyAddress.port}`;
    const failures: string[] = [];
    const answers: { start: number; end: number; id: string }[] = [];
    let sent = 0;
    let rewrites = 0;
    let rewriting = true;

    // Rewriter: random members (never empty) and weights, waiting for each version to go live.
    const random = seededBelow(7);
    let previous = [0, 1, 2];
    let live = liveMembers(app.store.current!);
    /** Instances some rewrite took out of the pool (in the previous member set, not in the next). */
    const removed = new Set<number>();
    const rewriter = (async () => {
      while (rewrites < MIN_REWRITES && Date.now() < deadline) {
        const members = [...Array(INSTANCES).keys()].filter(() => random(2) === 0);
        if (members.length === 0) members.push(random(INSTANCES));
        const weights = [...Array(INSTANCES)].map(() => 1 + random(5));
        const expected = members.map((i) => `app-${i}=${weights[i]}`).sort().join(',');
        // The same members and weights again would change nothing (no new version to wait for): draw again.
        if (expected === live) continue;
        const before = app.store.version;
        await workspace.writeServices(appServicesFile(upstreams.ports, members, weights));
        // Only this rewrite's table shows exactly these members with these weights.
        await waitFor(`rewrite ${rewrites} to go live`, () => app.store.version > before && liveMembers(app.store.current!) === expected, 5000, 2);
        for (const i of previous) if (!members.includes(i)) removed.add(i);
        previous = members;
        live = expected;
        rewrites += 1;
      }
      rewriting = false;
    })();

    const client = async (n: number): Promise<void> => {
      while ((rewriting || sent < MIN_REQUESTS) && Date.now() < deadline && sent < MIN_REQUESTS * 20) {
        sent += 1;
        const post = (sent + n) % 4 === 0;
        const start = performance.now();
        try {
          const res = await request(`${origin}/work/${n}`, {
            dispatcher: agent,
            method: post ? 'POST' : 'GET',
            ...(post ? { body: 'x'.repeat(100 + n) } : {}),
          });
          const text = await res.body.text();
          const end = performance.now();
          if (res.statusCode !== 200) {
            failures.push(`status ${res.statusCode}: ${text}`);
            continue;
          }
          if (post && !text.endsWith(` ${100 + n}`)) failures.push(`body not forwarded whole: ${text}`);
          answers.push({ start, end, id: String(res.headers['x-instance']) });
        } catch (err) {
          failures.push(`error: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([rewriter, ...[...Array(CLIENTS).keys()].map(client)]);
    await agent.close();

    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);
    assert.ok(rewrites >= MIN_REWRITES, `only ${rewrites} rewrites before the deadline`);
    assert.ok(answers.length >= MIN_REQUESTS, `only ${answers.length} requests before the deadline`);

    // Every answer came from an endpoint that was in a table live at some moment of that request.
    const stray: string[] = [];
    for (const answer of answers) {
      let live = 0;
      for (let v = 0; v < versions.length; v++) if (versions[v]!.at <= answer.start) live = v;
      let ok = false;
      for (let v = live; v < versions.length && versions[v]!.at <= answer.end; v++) {
        if (versions[v]!.ids.has(answer.id)) ok = true;
      }
      if (!ok) stray.push(answer.id);
    }
    assert.deepEqual(stray.slice(0, 5), [], `${stray.length} answers from endpoints not in the table during the request`);
    assert.ok(versions.length > MIN_REWRITES, `${versions.length} table versions`);
    const served = new Set(answers.map((a) => a.id));
    assert.equal(served.size, INSTANCES, 'every instance served at some point');
    // The run exercised what it claims: every instance was taken out of the pool at least once.
    assert.deepEqual([...removed].sort(), [...Array(INSTANCES).keys()], 'every instance removed by some rewrite');
    t.diagnostic(`${answers.length} requests, ${rewrites} rewrites, ${versions.length} table versions, 0 failures`);
  });
});

describe('start-up: the proxy listener opens only once the first table is live', () => {
  let workspace: Workspace;
  let upstream: Server;
  let app: Switchyard | undefined;

  before(async () => {
    upstream = createServer((_req, res) => res.end('up'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    workspace = await Workspace.create();
    await workspace.writeTemplate('app.yaml', 'routes:\n  - name: app\n    match: { path: / }\n    to: [ { service: app } ]\n');
    await workspace.writeServices(`services:\n  app:\n    - { id: app-0, address: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }\n`);
  });

  after(async () => {
    await app?.stop();
    upstream.closeAllConnections();
    upstream.close();
    await workspace?.remove();
  });

  it('serves the first request once start resolves, even when the first build is slow to come', async () => {
    // The watcher builds 400 ms after the sources delivered: the window in which a listener
    // opened right after the sources' first read answered 404 SY_NO_ROUTE.
    const config = (parseCommandLine(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile], {}) as { config: Config }).config;
    app = await startSwitchyard(config, { logger: createLogger({ level: 'silent' }), defaultMetrics: false, watcher: { coalesceMs: 400, minIntervalMs: 0 } });
    const res = await request(`http://127.0.0.1:${app.proxyAddress.port}/`);
    assert.equal(res.statusCode, 200, 'the first request is routed (was 404 SY_NO_ROUTE)');
    assert.equal(await res.body.text(), 'up');
    assert.equal(app.store.version, 1, 'the first table was live when start resolved');
    assert.equal(app.lifecycle, 'serving');
    const readyz = await request(`http://127.0.0.1:${app.adminAddress.port}/readyz`);
    assert.equal(readyz.statusCode, 200);
    await readyz.body.dump();
  });

  it('stop() turns /readyz to 503 at once, and start-up aborted by a signal releases everything', async () => {
    const running = app!;
    const stopped = running.stop();
    assert.equal(running.lifecycle, 'draining');
    await stopped;
    app = undefined;

    // A source that never delivers (a services file that is not there yet): the wait is aborted.
    const config = (parseCommandLine(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', `${workspace.dir}/missing.yaml`], {}) as { config: Config }).config;
    const aborter = new AbortController();
    const log = captureLogger('info');
    const starting = startSwitchyard(config, { logger: log.logger, defaultMetrics: false, signal: aborter.signal });
    let outcome = 'pending';
    starting.then(() => (outcome = 'started'), (err: unknown) => (outcome = (err as Error).name));
    await waitFor('the wait for the first table', () => log.lines.some((l) => String(l['msg']).startsWith('waiting for the first routing table')));
    aborter.abort();
    await waitFor('start-up to end', () => outcome !== 'pending');
    assert.equal(outcome, 'AbortError');
    assert.ok(!log.lines.some((l) => l['msg'] === 'proxy listening'), 'the proxy listener never opened');
    assert.ok(log.lines.some((l) => l['msg'] === 'switchyard stopped'), 'what was started is released');
  });

  it('a source that never delivers delays the listener by the bound only: it opens with a warning, /readyz stays 503', async () => {
    const config = (parseCommandLine(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', `${workspace.dir}/missing.yaml`], {}) as { config: Config }).config;
    const log = captureLogger('info');
    const bounded = await startSwitchyard(config, { logger: log.logger, defaultMetrics: false, firstTableWaitMs: 300 });
    try {
      const warning = log.lines.find((l) => String(l['msg']).startsWith('no routing table from every source after 300 ms'));
      assert.deepEqual((warning?.['waiting'] as { source: string }[] | undefined)?.map((w) => w.source), ['file'], 'the warning names the source');
      assert.equal(bounded.lifecycle, 'serving');
      const readyz = await request(`http://127.0.0.1:${bounded.adminAddress.port}/readyz`);
      assert.equal(readyz.statusCode, 503);
      // Serving, but not ready: the body says why, and nothing of the configuration.
      const body = await readyz.body.json();
      assert.deepEqual(body, { status: 'not ready', lifecycle: 'serving', reason: 'a configuration source has not synced yet (see /api/config)' });
      // The listener is open: the template's route answers, without data (503 SY_NO_ENDPOINT).
      const res = await request(`http://127.0.0.1:${bounded.proxyAddress.port}/`);
      assert.equal(res.statusCode, 503);
      await res.body.dump();
    } finally {
      await bounded.stop();
    }
  });
});

describe('stop() leaves nothing behind', () => {
  it('after stop() with a shutdown delay, every handle and timer Switchyard opened is released', async () => {
    const workspace = await Workspace.create();
    const upstream = createServer((_req, res) => res.end('up'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    await workspace.writeTemplate('app.yaml', 'routes:\n  - name: app\n    match: { path: / }\n    to: [ { service: app } ]\n');
    await workspace.writeServices(`services:\n  app:\n    - { id: app-0, address: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }\n`);
    const count = (): Map<string, number> => {
      const counts = new Map<string, number>();
      for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
      return counts;
    };
    const baseline = count();
    const app = await startTestSwitchyard(workspace, ['--shutdown-delay', '200ms']);
    const agent = new Agent();
    const res = await request(`http://127.0.0.1:${app.proxyAddress.port}/`, { dispatcher: agent });
    assert.equal(await res.body.text(), 'up');
    assert.ok((count().get('TCPServerWrap') ?? 0) > (baseline.get('TCPServerWrap') ?? 0), 'the listeners show as handles');
    await app.stop();
    await agent.close();
    // Handles close asynchronously (a closed socket or file watcher is freed a tick later).
    const leftover = await waitFor('every handle to be released', () => {
      const now = count();
      const extra = [...now].filter(([kind, n]) => kind !== 'FSReqCallback' && kind !== 'FSReqPromise' && n > (baseline.get(kind) ?? 0));
      return extra.length === 0 ? 'none' : undefined;
    }, 5_000).catch(() => JSON.stringify([...count()]));
    assert.equal(leftover, 'none', `left behind: ${leftover} (baseline ${JSON.stringify([...baseline])})`);
    upstream.close();
    await workspace.remove();
  });
});
