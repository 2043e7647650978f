/**
 * Tests of the Consul API test server (test/support/consul/), over real HTTP: the response
 * shapes against the samples in Consul's API docs, blocking queries, index rules, KV, ACLs,
 * maintenance, ?passing, restarts and injected faults.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Agent, fetch } from 'undici';
import Consul from 'consul';
import { ConsulTestServer, type ConsulTestServerOptions } from './consul/server.js';
import { parseGoDuration, parseBlockingParams } from './consul/blocking.js';
import { kvKeyProblem } from './consul/routes.js';
import { waitFor } from './wait.js';

// ---------------------------------------------------------------------------- fixtures
// Sample responses copied from Consul's API docs (website/content/api-docs/*.mdx).

/** health.mdx, "List Service Instances for Service", Sample Response. */
const DOCS_HEALTH_SERVICE = [
  {
    Node: {
      ID: '40e4a748-2192-161a-0510-9bf59fe950b5',
      Node: 'foobar',
      Address: '10.1.10.12',
      Datacenter: 'dc1',
      TaggedAddresses: { lan: '10.1.10.12', wan: '10.1.10.12' },
      Meta: { instance_type: 't2.medium' },
    },
    Service: {
      ID: 'redis',
      Service: 'redis',
      Tags: ['primary'],
      Address: '10.1.10.12',
      TaggedAddresses: {
        lan: { address: '10.1.10.12', port: 8000 },
        wan: { address: '198.18.1.2', port: 80 },
      },
      Meta: { redis_version: '4.0' },
      Port: 8000,
      Weights: { Passing: 10, Warning: 1 },
      Namespace: 'default',
    },
    Checks: [
      {
        Node: 'foobar',
        CheckID: 'service:redis',
        Name: "Service 'redis' check",
        Status: 'passing',
        Notes: '',
        Output: '',
        ServiceID: 'redis',
        ServiceName: 'redis',
        ServiceTags: ['primary'],
        Namespace: 'default',
      },
      {
        Node: 'foobar',
        CheckID: 'serfHealth',
        Name: 'Serf Health Status',
        Status: 'passing',
        Notes: '',
        Output: '',
        ServiceID: '',
        ServiceName: '',
        ServiceTags: [],
        Namespace: 'default',
      },
    ],
  },
];

/** catalog.mdx, "List Services", Sample Response. */
const DOCS_CATALOG_SERVICES = { consul: [], redis: [], postgresql: ['primary', 'secondary'] };

/** kv.mdx, "Read Key", Metadata Response. */
const DOCS_KV_ENTRY = [
  {
    CreateIndex: 100,
    ModifyIndex: 200,
    LockIndex: 200,
    Key: 'zip',
    Flags: 0,
    Value: 'dGVzdA==',
    Session: 'adf4238a-882b-9ddc-4a9d-5b6758e4159e',
  },
];

/** kv.mdx, "Keys Response". */
const DOCS_KV_KEYS = ['/web/bar', '/web/foo', '/web/subdir/'];

/** Fields of the docs' samples that Consul OSS leaves out (enterprise) or omits when empty. */
const ENTERPRISE_ONLY = ['Namespace', 'Partition'];

// ---------------------------------------------------------------------------- helpers

/** No keep-alive: a restarted or dropped server never meets a stale pooled socket. */
const dispatcher = new Agent({ pipelining: 0 });
after(() => dispatcher.close());

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: <T = unknown>() => T;
}

interface CallOptions {
  body?: string | Buffer;
  token?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

async function call(server: ConsulTestServer, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers['X-Consul-Token'] = opts.token;
  const res = await fetch(`${server.url}${path}`, {
    method,
    body: opts.body,
    headers,
    signal: opts.signal,
    dispatcher,
  });
  const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
  return { status: res.status, headers: res.headers as unknown as Headers, text, json: <T>() => JSON.parse(text) as T };
}

const get = (s: ConsulTestServer, path: string, opts?: CallOptions): Promise<Reply> => call(s, 'GET', path, opts);
const put = (s: ConsulTestServer, path: string, opts?: CallOptions): Promise<Reply> => call(s, 'PUT', path, opts);

function indexOf(reply: Reply): number {
  const raw = reply.headers.get('x-consul-index');
  assert.ok(raw !== null, 'X-Consul-Index header present');
  return Number(raw);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Every field of the docs' sample is present with the same JSON type (enterprise-only aside). */
function assertMatchesDocs(actual: unknown, sample: unknown, label: string, ignore: string[] = ENTERPRISE_ONLY): void {
  assert.equal(kind(actual), 'object', `${label} is an object`);
  const got = actual as Record<string, unknown>;
  for (const [key, value] of Object.entries(sample as Record<string, unknown>)) {
    if (ignore.includes(key)) continue;
    assert.ok(key in got, `${label}.${key} present (docs sample has it)`);
    assert.equal(kind(got[key]), kind(value), `${label}.${key} has the docs' JSON type`);
  }
}

function track<T>(promise: Promise<T>): { settled: () => boolean; at: () => number } {
  let settledAt = 0;
  promise.then(
    () => (settledAt = performance.now()),
    () => (settledAt = performance.now()),
  );
  return { settled: () => settledAt > 0, at: () => settledAt };
}

async function withServer(opts: ConsulTestServerOptions, body: (s: ConsulTestServer) => Promise<void>): Promise<void> {
  const server = await ConsulTestServer.start({ jitter: false, ...opts });
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/** Let the server run every wake-up queued by a write (no fixed sleep). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await nextTurn();
}

// ---------------------------------------------------------------------------- tests

describe('Consul test server: lifecycle and headers', () => {
  it('listens on 127.0.0.1 with address and url, and the catalog holds the consul service', async () => {
    await withServer({}, async (s) => {
      assert.match(s.address, /^127\.0\.0\.1:\d+$/);
      assert.equal(s.url, `http://${s.address}`);
      const reply = await get(s, '/v1/catalog/services');
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json(), { consul: [] });
      assert.equal(reply.headers.get('content-type'), 'application/json');
      assert.ok(indexOf(reply) >= 1);
      assert.equal(reply.headers.get('x-consul-knownleader'), 'true');
      assert.equal(reply.headers.get('x-consul-lastcontact'), '0');
    });
  });

  it('reports settable X-Consul-KnownLeader and X-Consul-LastContact', async () => {
    await withServer({}, async (s) => {
      s.setKnownLeader(false);
      s.setLastContact(1234);
      const reply = await get(s, '/v1/health/service/consul');
      assert.equal(reply.headers.get('x-consul-knownleader'), 'false');
      assert.equal(reply.headers.get('x-consul-lastcontact'), '1234');
    });
  });

  it('without a leader: default and consistent reads answer 500, stale reads work', async () => {
    await withServer({}, async (s) => {
      s.setLeaderless(true);
      const plain = await get(s, '/v1/health/service/consul');
      assert.equal(plain.status, 500);
      assert.equal(plain.text, 'No cluster leader');
      assert.equal((await get(s, '/v1/health/service/consul?consistent')).status, 500);
      const stale = await get(s, '/v1/health/service/consul?stale');
      assert.equal(stale.status, 200);
      assert.equal(stale.headers.get('x-consul-knownleader'), 'false');
      assert.equal(stale.headers.get('x-consul-effective-consistency'), 'stale');
      assert.equal((await put(s, '/v1/kv/a', { body: 'x' })).status, 500);
      s.setLeaderless(false);
      assert.equal((await get(s, '/v1/health/service/consul')).status, 200);
    });
  });

  it('rejects ?stale with ?consistent, an unknown ?dc, unknown routes and wrong methods like Consul', async () => {
    await withServer({}, async (s) => {
      const both = await get(s, '/v1/catalog/services?stale&consistent');
      assert.equal(both.status, 400);
      assert.equal(both.text, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
      const dc = await get(s, '/v1/catalog/services?dc=elsewhere');
      assert.equal(dc.status, 500);
      assert.equal(dc.text, 'No path to datacenter');
      assert.equal((await get(s, '/v1/catalog/services?dc=dc1')).status, 200);
      const unknown = await get(s, '/v1/nope');
      assert.equal(unknown.status, 404);
      assert.match(unknown.text, /404 page not found/);
      const wrong = await get(s, '/v1/agent/service/register');
      assert.equal(wrong.status, 405);
    });
  });
});

describe('Consul test server: response shapes match the API docs', () => {
  it('GET /v1/health/service/:name has the docs sample fields, plus the index fields', async () => {
    await withServer({}, async (s) => {
      const reg = await put(s, '/v1/agent/service/register', {
        body: JSON.stringify({
          ID: 'redis',
          Name: 'redis',
          Tags: ['primary'],
          Address: '10.1.10.12',
          Port: 8000,
          Meta: { redis_version: '4.0' },
          Weights: { Passing: 10, Warning: 1 },
          Check: { TTL: '30s' },
        }),
      });
      assert.equal(reg.status, 200);
      assert.equal((await put(s, '/v1/agent/check/pass/service:redis')).status, 200);
      const reply = await get(s, '/v1/health/service/redis');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('content-type'), 'application/json');
      const body = reply.json<Array<Record<string, unknown>>>();
      assert.equal(body.length, 1);
      const [entry] = body;
      const [sample] = DOCS_HEALTH_SERVICE;
      assert.deepEqual(Object.keys(entry ?? {}).sort(), ['Checks', 'Node', 'Service']);
      assertMatchesDocs(entry?.Node, sample?.Node, 'Node');
      assertMatchesDocs(entry?.Service, sample?.Service, 'Service');
      const checks = entry?.Checks as Array<Record<string, unknown>>;
      const serf = checks.find((c) => c.CheckID === 'serfHealth');
      const svc = checks.find((c) => c.CheckID === 'service:redis');
      assertMatchesDocs(svc, sample?.Checks[0], 'Checks[service]');
      assertMatchesDocs(serf, sample?.Checks[1], 'Checks[serfHealth]');

      // The fields the brief asks for beyond the docs sample, with their types.
      const node = entry?.Node as Record<string, unknown>;
      for (const key of ['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'Meta', 'CreateIndex', 'ModifyIndex']) {
        assert.ok(key in node, `Node.${key}`);
      }
      assert.equal(typeof node.CreateIndex, 'number');
      const service = entry?.Service as Record<string, unknown>;
      for (const key of ['ID', 'Service', 'Tags', 'Address', 'Meta', 'Port', 'Weights', 'EnableTagOverride', 'CreateIndex', 'ModifyIndex']) {
        assert.ok(key in service, `Service.${key}`);
      }
      assert.deepEqual(service.Weights, { Passing: 10, Warning: 1 });
      assert.equal(service.EnableTagOverride, false);
      for (const check of [serf, svc]) {
        for (const key of ['Node', 'CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'ServiceName', 'ServiceTags', 'Type', 'CreateIndex', 'ModifyIndex']) {
          assert.ok(key in (check ?? {}), `Check.${key}`);
        }
      }
      // Values as Consul fills them.
      assert.equal(serf?.Name, 'Serf Health Status');
      assert.equal(serf?.Status, 'passing');
      assert.deepEqual(serf?.ServiceTags, []);
      assert.equal(svc?.Name, "Service 'redis' check");
      assert.equal(svc?.Type, 'ttl');
      assert.deepEqual(svc?.ServiceTags, ['primary']);
      assert.equal(svc?.ServiceName, 'redis');
      assert.equal(node.Datacenter, 'dc1');
    });
  });

  it('GET /v1/catalog/services has the docs sample shape: name → array of tags', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'pg-1', Name: 'postgresql', Tags: ['primary'], Port: 5432 });
      s.registerService({ ID: 'pg-2', Name: 'postgresql', Tags: ['secondary', 'primary'], Port: 5432 });
      s.registerService({ ID: 'redis', Name: 'redis', Port: 6379 });
      const body = (await get(s, '/v1/catalog/services')).json<Record<string, string[]>>();
      assert.deepEqual(body, DOCS_CATALOG_SERVICES);
      assertMatchesDocs(body, DOCS_CATALOG_SERVICES, 'catalog', []);
    });
  });

  it('GET /v1/kv/:key has the docs sample fields (Session only when locked) and ?keys a string array', async () => {
    await withServer({}, async (s) => {
      s.kvPut('zip', 'test');
      const body = (await get(s, '/v1/kv/zip')).json<Array<Record<string, unknown>>>();
      assert.equal(body.length, 1);
      assertMatchesDocs(body[0], DOCS_KV_ENTRY[0], 'kv', ['Session']);
      assert.deepEqual(Object.keys(body[0] ?? {}).sort(), ['CreateIndex', 'Flags', 'Key', 'LockIndex', 'ModifyIndex', 'Value']);
      assert.equal(body[0]?.Value, 'dGVzdA==');
      assert.equal(body[0]?.Key, 'zip');

      s.kvPut('web/bar', '1');
      s.kvPut('web/foo', '2');
      s.kvPut('web/subdir/x', '3');
      const keys = (await get(s, '/v1/kv/web/?keys&separator=/')).json<string[]>();
      assert.deepEqual(keys, DOCS_KV_KEYS.map((k) => k.slice(1)));
      assert.equal(kind(keys), kind(DOCS_KV_KEYS));
    });
  });
});

describe('Consul test server: blocking queries', () => {
  it('parses wait and index like Consul (Go durations, default 5m, max 10m)', () => {
    assert.equal(parseGoDuration('10s'), 10_000);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('250ms'), 250);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('10'), undefined);
    assert.equal(parseGoDuration('abc'), undefined);
    const q = (s: string): ReturnType<typeof parseBlockingParams> => parseBlockingParams(new URLSearchParams(s));
    assert.deepEqual(q('index=5'), { ok: true, minIndex: 5, waitMs: 300_000 });
    assert.deepEqual(q('index=5&wait=1h'), { ok: true, minIndex: 5, waitMs: 600_000 });
    assert.deepEqual(q('index=x'), { ok: false, message: 'Invalid index' });
    assert.deepEqual(q('index=-1'), { ok: false, message: 'Invalid index' });
    assert.deepEqual(q('wait=5'), { ok: false, message: 'Invalid wait time' });
  });

  it('answers 400 "Invalid index" / "Invalid wait time" over HTTP', async () => {
    await withServer({}, async (s) => {
      const badIndex = await get(s, '/v1/health/service/web?index=abc');
      assert.equal(badIndex.status, 400);
      assert.equal(badIndex.text, 'Invalid index');
      const badWait = await get(s, '/v1/kv/a?index=1&wait=forever');
      assert.equal(badWait.status, 400);
      assert.equal(badWait.text, 'Invalid wait time');
    });
  });

  it('returns at once when the client index is older than the resource', async () => {
    await withServer({}, async (s) => {
      s.kvPut('cfg/a', '1');
      s.kvPut('cfg/b', '2');
      const current = indexOf(await get(s, '/v1/kv/cfg/?recurse'));
      const started = performance.now();
      const reply = await get(s, `/v1/kv/cfg/?recurse&index=${current - 1}&wait=30s`);
      assert.equal(reply.status, 200);
      assert.equal(indexOf(reply), current);
      // 10 s: room for a loaded CI machine; a held query would take the 30 s wait.
      assert.ok(performance.now() - started < 10_000, 'did not wait');
      assert.notEqual(s.requests.at(-1)?.blocked, true, 'was not held');
    });
  });

  it('holds until a write touches the resource, and not for writes elsewhere', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '10s', Status: 'passing' } });
      const first = await get(s, '/v1/health/service/web');
      const index = indexOf(first);
      const pending = get(s, `/v1/health/service/web?index=${index}&wait=30s`);
      const state = track(pending);
      await s.waitForBlocked(1);

      s.kvPut('unrelated', 'x'); // another resource: wakes the loop, which goes back to waiting
      s.registerService({ ID: 'api-1', Name: 'api', Port: 81 });
      await settle();
      assert.equal(state.settled(), false, 'still held after writes to other resources');
      assert.equal(s.blockedQueries, 1);

      const writeAt = performance.now();
      s.setCheck('service:web-1', 'critical', { output: 'down' });
      const reply = await pending;
      assert.ok(state.at() >= writeAt, 'returned after the write');
      // 10 s: room for a loaded CI machine; a query not woken by the write would take the 30 s wait.
      assert.ok(state.at() - writeAt < 10_000, 'returned promptly after the write');
      assert.ok(indexOf(reply) > index);
      const checks = reply.json<Array<{ Checks: Array<{ CheckID: string; Status: string; Output: string }> }>>()[0]?.Checks;
      assert.equal(checks?.find((c) => c.CheckID === 'service:web-1')?.Status, 'critical');
      assert.equal(s.blockedQueries, 0);
    });
  });

  it('returns at the wait timeout with the same index and the current state', async () => {
    await withServer({}, async (s) => {
      s.kvPut('k', 'v');
      const index = indexOf(await get(s, '/v1/kv/k'));
      const started = performance.now();
      const reply = await get(s, `/v1/kv/k?index=${index}&wait=300ms`);
      const elapsed = performance.now() - started;
      assert.equal(reply.status, 200);
      assert.equal(indexOf(reply), index);
      assert.ok(elapsed >= 290, `waited ${elapsed} ms`);
      // 10 s: room for a loaded CI machine; ignoring ?wait would hold for the default 5 minutes.
      assert.ok(elapsed < 10_000, `did not wait much longer than asked (${elapsed} ms)`);
      assert.equal(s.requests.at(-1)?.blocked, true);
    });
  });

  // The jitter is random, so one timed request cannot show it: it passed with the jitter always 0
  // and with it always the whole wait. The server records the hold it chose for every parked
  // query (LoggedRequest.holdMs); over many queries each extra lies in [0, wait/16], and at least
  // one is above 0 exactly when jitter is on (all 40 drawing 0 from Math.random() cannot happen).
  const JITTER_SAMPLES = 40;
  async function holdsChosen(jitter: boolean): Promise<Array<{ waitMs: number; extra: number }>> {
    const holds: Array<{ waitMs: number; extra: number }> = [];
    await withServer({ jitter }, async (s) => {
      const index = indexOf(await get(s, '/v1/kv/missing'));
      const mark = s.requestCount;
      // Short waits keep the test quick; the hold chosen does not depend on the length.
      const replies = await Promise.all(
        Array.from({ length: JITTER_SAMPLES }, () => get(s, `/v1/kv/missing?index=${index}&wait=320ms`)),
      );
      for (const reply of replies) {
        assert.equal(reply.status, 404);
        assert.equal(indexOf(reply), index, 'answered at the timeout, same index');
      }
      const held = s.requests.filter((r) => r.seq > mark);
      assert.equal(held.length, JITTER_SAMPLES);
      for (const r of held) {
        assert.equal(r.blocked, true, 'every query was parked');
        assert.equal(r.waitMs, 320);
        assert.ok(r.holdMs !== undefined && r.endedAt !== undefined);
        // The hold is a ceiling the server honours: never answered before the wait is over.
        assert.ok(r.endedAt - r.at >= 320 - 10, `answered after ${r.endedAt - r.at} ms`);
        holds.push({ waitMs: r.waitMs, extra: r.holdMs - r.waitMs });
      }
    });
    return holds;
  }

  it('adds at most wait/16 of jitter when enabled, and some jitter', async () => {
    const holds = await holdsChosen(true);
    for (const { waitMs, extra } of holds) {
      assert.ok(extra >= 0 && extra <= waitMs / 16, `extra ${extra} ms for wait ${waitMs} ms`);
    }
    assert.ok(holds.some((h) => h.extra > 0), `some jitter drawn: ${holds.map((h) => h.extra).join(', ')}`);
  });

  it('adds no jitter when disabled', async () => {
    const holds = await holdsChosen(false);
    assert.equal(holds.length, JITTER_SAMPLES);
    for (const { extra } of holds) assert.equal(extra, 0);
  });

  it('health index is at least 1 and moves with the service checks; catalog index ignores checks', async () => {
    await withServer({}, async (s) => {
      const none = await get(s, '/v1/health/service/ghost');
      assert.deepEqual(none.json(), []);
      assert.ok(indexOf(none) >= 1);
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '10s' } });
      const catalogBefore = indexOf(await get(s, '/v1/catalog/services'));
      const healthBefore = indexOf(await get(s, '/v1/health/service/web'));
      s.setCheck('service:web-1', 'passing');
      assert.ok(indexOf(await get(s, '/v1/health/service/web')) > healthBefore);
      assert.equal(indexOf(await get(s, '/v1/catalog/services')), catalogBefore);
      s.touchService('web');
      assert.ok(indexOf(await get(s, '/v1/health/service/web')) > healthBefore + 1);
    });
  });

  it('a dropped connection ends a held query', async () => {
    await withServer({}, async (s) => {
      const index = indexOf(await get(s, '/v1/catalog/services'));
      const pending = get(s, `/v1/catalog/services?index=${index}&wait=30s`);
      await s.waitForBlocked(1);
      s.dropConnections();
      await assert.rejects(pending);
      assert.equal((await get(s, '/v1/catalog/services')).status, 200);
      await settle();
      assert.equal(s.blockedQueries, 0);
    });
  });
});

describe('Consul test server: restart', () => {
  it('restart({resetIndex: true}) comes back on the same port with data kept and a lower index', async () => {
    await withServer({}, async (s) => {
      const port = s.port;
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '10s' } });
      for (let i = 0; i < 10; i += 1) s.kvPut('switchyard/w', String(i));
      s.setCheck('service:web-1', 'passing');
      s.setCheck('service:web-1', 'warning');
      const before = indexOf(await get(s, '/v1/health/service/web'));
      const kvBefore = indexOf(await get(s, '/v1/kv/switchyard/?recurse'));

      const held = get(s, `/v1/health/service/web?index=${before}&wait=30s`);
      await s.waitForBlocked(1);
      await s.restart({ resetIndex: true });
      await assert.rejects(held, 'the restart cut the held query');

      assert.equal(s.port, port);
      const after = await get(s, '/v1/health/service/web');
      assert.equal(after.status, 200);
      assert.ok(indexOf(after) < before, `health index went back: ${indexOf(after)} < ${before}`);
      assert.ok(s.index < before);
      const entry = after.json<Array<{ Checks: Array<{ CheckID: string; Status: string }> }>>()[0];
      assert.equal(entry?.Checks.find((c) => c.CheckID === 'service:web-1')?.Status, 'warning', 'data kept');
      const kv = await get(s, '/v1/kv/switchyard/?recurse');
      assert.ok(indexOf(kv) < kvBefore);
      assert.equal(Buffer.from(kv.json<Array<{ Value: string }>>()[0]?.Value ?? '', 'base64').toString(), '9');

      // A client still sending the old, higher index is held until its wait ends, then sees the
      // lower index (its cue to reset to 0), as with a real snapshot restore.
      const stale = await get(s, `/v1/health/service/web?index=${before}&wait=200ms`);
      assert.ok(indexOf(stale) < before);
      assert.equal(s.requests.at(-1)?.blocked, true);
    });
  });

  it('restart({keepData: false, resetIndex: true}) forgets services and KV; restart clears faults', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80 });
      s.kvPut('a', '1');
      s.setFailing(500);
      await s.restart({ keepData: false, resetIndex: true, downMs: 20 });
      const catalog = await get(s, '/v1/catalog/services');
      assert.equal(catalog.status, 200);
      assert.deepEqual(catalog.json(), { consul: [] });
      assert.equal((await get(s, '/v1/kv/a')).status, 404);
      assert.ok(s.index <= 3);
    });
  });

  it('stop() then start({port}) serves again on the same port', async () => {
    const first = await ConsulTestServer.start({ jitter: false });
    const port = first.port;
    const held = get(first, `/v1/catalog/services?index=${first.index}&wait=30s`);
    await first.waitForBlocked(1);
    await first.stop();
    await assert.rejects(held);
    const second = await ConsulTestServer.start({ port, jitter: false });
    try {
      assert.equal(second.port, port);
      assert.equal((await get(second, '/v1/catalog/services')).status, 200);
    } finally {
      await second.stop();
    }
  });
});

describe('Consul test server: KV', () => {
  it('PUT/GET/DELETE with raw, recurse, keys, flags, cas and 404s that carry the index', async () => {
    await withServer({}, async (s) => {
      const put1 = await put(s, '/v1/kv/switchyard/routes/web/weights', { body: '{"web:v1":90}' });
      assert.equal(put1.status, 200);
      assert.equal(put1.text, 'true');
      assert.equal(put1.headers.get('content-type'), 'application/json');

      const raw = await get(s, '/v1/kv/switchyard/routes/web/weights?raw');
      assert.equal(raw.status, 200);
      assert.equal(raw.text, '{"web:v1":90}');
      assert.equal(raw.headers.get('content-type'), 'text/plain');

      const entry = (await get(s, '/v1/kv/switchyard/routes/web/weights')).json<Array<{ ModifyIndex: number; Value: string }>>()[0];
      assert.ok(entry);
      assert.equal(Buffer.from(entry.Value, 'base64').toString(), '{"web:v1":90}');

      // cas: a stale index fails, the current one wins, 0 only creates.
      assert.equal((await put(s, `/v1/kv/switchyard/routes/web/weights?cas=${entry.ModifyIndex - 1}`, { body: 'x' })).text, 'false');
      assert.equal((await put(s, `/v1/kv/switchyard/routes/web/weights?cas=${entry.ModifyIndex}`, { body: '{}' })).text, 'true');
      assert.equal((await put(s, '/v1/kv/switchyard/routes/web/weights?cas=0', { body: 'x' })).text, 'false');
      assert.equal((await put(s, '/v1/kv/switchyard/new?cas=0', { body: 'x' })).text, 'true');

      // flags and an empty value (null).
      await put(s, '/v1/kv/switchyard/flagged?flags=42');
      const flagged = (await get(s, '/v1/kv/switchyard/flagged')).json<Array<{ Flags: number; Value: unknown }>>()[0];
      assert.equal(flagged?.Flags, 42);
      assert.equal(flagged?.Value, null);

      const list = await get(s, '/v1/kv/switchyard/?recurse');
      const entries = list.json<Array<{ Key: string; ModifyIndex: number }>>();
      assert.deepEqual(entries.map((e) => e.Key), ['switchyard/flagged', 'switchyard/new', 'switchyard/routes/web/weights']);
      assert.equal(indexOf(list), Math.max(...entries.map((e) => e.ModifyIndex)), 'index = newest ModifyIndex under the prefix');

      assert.deepEqual((await get(s, '/v1/kv/switchyard/?keys')).json(), entries.map((e) => e.Key));
      assert.deepEqual((await get(s, '/v1/kv/switchyard/?keys&separator=/')).json(), ['switchyard/flagged', 'switchyard/new', 'switchyard/routes/']);

      // 404s: empty body, index headers (the KV table index).
      const missing = await get(s, '/v1/kv/nothing/here');
      assert.equal(missing.status, 404);
      assert.equal(missing.text, '');
      assert.ok(indexOf(missing) >= 1);
      assert.ok(missing.headers.get('x-consul-knownleader'));
      const emptyPrefix = await get(s, '/v1/kv/nothing/?recurse');
      assert.equal(emptyPrefix.status, 404);
      assert.ok(indexOf(emptyPrefix) >= 1);
      assert.equal((await get(s, '/v1/kv/nothing/?keys')).status, 404);

      // DELETE: a key, cas, then a whole prefix; the list index never goes back (tombstones).
      const newest = indexOf(list);
      const del = await call(s, 'DELETE', '/v1/kv/switchyard/new');
      assert.equal(del.text, 'true');
      assert.ok(indexOf(await get(s, '/v1/kv/switchyard/?recurse')) > newest);
      const flaggedIndex = indexOf(await get(s, '/v1/kv/switchyard/flagged'));
      assert.equal((await call(s, 'DELETE', `/v1/kv/switchyard/flagged?cas=${flaggedIndex + 100}`)).text, 'false');
      assert.equal((await call(s, 'DELETE', `/v1/kv/switchyard/flagged?cas=${flaggedIndex}`)).text, 'true');
      assert.equal((await call(s, 'DELETE', '/v1/kv/switchyard/?recurse')).text, 'true');
      const gone = await get(s, '/v1/kv/switchyard/?recurse');
      assert.equal(gone.status, 404);
      assert.equal(indexOf(gone), s.index, 'the 404 carries the index of the deletion');
    });
  });

  it('rejects what Consul rejects: missing key, conflicting flags, oversized values', async () => {
    await withServer({}, async (s) => {
      const noKey = await get(s, '/v1/kv/');
      assert.equal(noKey.status, 400);
      assert.equal(noKey.text, 'Missing key name');
      assert.equal((await put(s, '/v1/kv/', { body: 'x' })).status, 400);
      assert.equal((await call(s, 'DELETE', '/v1/kv/a?recurse&cas=1')).status, 400);
      const big = await put(s, '/v1/kv/big', { body: Buffer.alloc(512 * 1024 + 1) });
      assert.equal(big.status, 413);
      assert.equal((await put(s, '/v1/kv/ok', { body: Buffer.alloc(512 * 1024) })).status, 200);
    });
  });

  it('reaping tombstones lets a list index go backwards, as Consul documents', async () => {
    await withServer({}, async (s) => {
      s.kvPut('p/a', '1');
      s.kvPut('p/b', '2');
      s.kvDelete('p/b');
      const withTombstone = indexOf(await get(s, '/v1/kv/p/?recurse'));
      s.reapTombstones();
      assert.ok(indexOf(await get(s, '/v1/kv/p/?recurse')) < withTombstone);
    });
  });
});

describe('Consul test server: agent endpoints, checks and maintenance', () => {
  it('registers with TTL checks that start critical and move with pass/warn/fail (?note)', async () => {
    await withServer({}, async (s) => {
      const reg = await put(s, '/v1/agent/service/register', {
        body: JSON.stringify({ ID: 'web-1', Name: 'web', Tags: ['v1'], Address: '10.0.0.1', Port: 8080, Check: { TTL: '15s' } }),
      });
      assert.equal(reg.status, 200);
      const status = async (): Promise<{ Status: string; Output: string } | undefined> => {
        const entry = (await get(s, '/v1/health/service/web')).json<Array<{ Checks: Array<{ CheckID: string; Status: string; Output: string }> }>>()[0];
        return entry?.Checks.find((c) => c.CheckID === 'service:web-1');
      };
      assert.equal((await status())?.Status, 'critical');
      await put(s, '/v1/agent/check/pass/service:web-1?note=all%20good');
      assert.deepEqual(await status(), { ...(await status()), Status: 'passing', Output: 'all good' });
      await put(s, '/v1/agent/check/warn/service:web-1');
      assert.equal((await status())?.Status, 'warning');
      await put(s, '/v1/agent/check/fail/service:web-1?note=boom');
      assert.equal((await status())?.Output, 'boom');
      const update = await put(s, '/v1/agent/check/update/service:web-1', { body: JSON.stringify({ Status: 'passing', Output: 'ok' }) });
      assert.equal(update.status, 200);
      assert.equal((await status())?.Status, 'passing');

      const unknown = await put(s, '/v1/agent/check/pass/web-1');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.text, 'Unknown check ID "web-1". Ensure that the check ID is passed, not the check name.');
    });
  });

  it('defaults Weights to {1, 1}, numbers multiple checks, validates like Consul, and deregisters', async () => {
    await withServer({}, async (s) => {
      await put(s, '/v1/agent/service/register', {
        body: JSON.stringify({ Name: 'api', Port: 9000, Checks: [{ TTL: '10s' }, { TTL: '20s', Status: 'passing' }] }),
      });
      const entry = (await get(s, '/v1/health/service/api')).json<
        Array<{ Service: { ID: string; Weights: unknown; Address: string; Meta: unknown }; Checks: Array<{ CheckID: string; Status: string }> }>
      >()[0];
      assert.equal(entry?.Service.ID, 'api', 'ID defaults to Name');
      assert.deepEqual(entry?.Service.Weights, { Passing: 1, Warning: 1 });
      assert.equal(entry?.Service.Address, '', 'empty: use Node.Address');
      assert.equal(entry?.Service.Meta, null);
      assert.deepEqual(
        entry?.Checks.map((c) => [c.CheckID, c.Status]),
        [['serfHealth', 'passing'], ['service:api:1', 'critical'], ['service:api:2', 'passing']],
      );

      const badWeights = await put(s, '/v1/agent/service/register', { body: JSON.stringify({ Name: 'x', Weights: { Passing: 0, Warning: 1 } }) });
      assert.equal(badWeights.status, 400);
      assert.equal(badWeights.text, 'Invalid Weights: Passing must be greater than 0');
      const noName = await put(s, '/v1/agent/service/register', { body: JSON.stringify({ Port: 1 }) });
      assert.equal(noName.status, 400);
      assert.equal(noName.text, 'Missing service name');
      assert.equal((await put(s, '/v1/agent/service/register', { body: '{not json' })).status, 400);

      assert.equal((await put(s, '/v1/agent/service/deregister/api')).status, 200);
      assert.deepEqual((await get(s, '/v1/health/service/api')).json(), []);
      assert.deepEqual((await get(s, '/v1/catalog/services')).json(), { consul: [] });
      const again = await put(s, '/v1/agent/service/deregister/api');
      assert.equal(again.status, 404);
      assert.match(again.text, /^Unknown service ID "api"/);
    });
  });

  it('service maintenance adds a critical _service_maintenance:<id> check; node maintenance hits every service', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '10s', Status: 'passing' } });
      s.registerService({ ID: 'web-2', Name: 'web', Port: 81, Check: { TTL: '10s', Status: 'passing' } });
      type Entry = { Service: { ID: string }; Checks: Array<{ CheckID: string; Status: string; Notes: string; ServiceID: string; Name: string }> };
      const health = async (q = ''): Promise<Entry[]> => (await get(s, `/v1/health/service/web${q}`)).json<Entry[]>();

      assert.equal((await put(s, '/v1/agent/service/maintenance/web-1?enable=true&reason=deploy')).status, 200);
      const maint = (await health()).find((e) => e.Service.ID === 'web-1')?.Checks.find((c) => c.CheckID === '_service_maintenance:web-1');
      assert.equal(maint?.Status, 'critical');
      assert.equal(maint?.Notes, 'deploy');
      assert.equal(maint?.Name, 'Service Maintenance Mode');
      assert.equal(maint?.ServiceID, 'web-1');
      assert.deepEqual((await health('?passing')).map((e) => e.Service.ID), ['web-2']);

      assert.equal((await put(s, '/v1/agent/service/maintenance/web-1?enable=false')).status, 200);
      assert.equal((await health('?passing')).length, 2);

      const index = indexOf(await get(s, '/v1/health/service/web'));
      const held = get(s, `/v1/health/service/web?index=${index}&wait=30s`);
      await s.waitForBlocked(1);
      assert.equal((await put(s, '/v1/agent/maintenance?enable=true')).status, 200);
      const woke = await held;
      assert.ok(indexOf(woke) > index, 'node maintenance wakes the service watch');
      for (const entry of woke.json<Entry[]>()) {
        const node = entry.Checks.find((c) => c.CheckID === '_node_maintenance');
        assert.equal(node?.Status, 'critical');
        assert.equal(node?.ServiceID, '');
        assert.match(node?.Notes ?? '', /no reason was provided/);
      }
      assert.deepEqual(await health('?passing'), []);
      await put(s, '/v1/agent/maintenance?enable=false');
      assert.equal((await health('?passing')).length, 2);

      const missing = await put(s, '/v1/agent/service/maintenance/web-1');
      assert.equal(missing.status, 400);
      assert.equal(missing.text, 'Missing value for enable');
      assert.equal((await put(s, '/v1/agent/service/maintenance/nope?enable=true')).status, 404);
    });
  });

  it('?passing keeps only entries whose checks all pass (warning and serfHealth included); ?tag filters', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'a', Name: 'svc', Tags: ['blue'], Port: 1, Check: { TTL: '10s', Status: 'passing' } });
      s.registerService({ ID: 'b', Name: 'svc', Tags: ['green'], Port: 2, Check: { TTL: '10s', Status: 'warning' } });
      s.registerService({ ID: 'c', Name: 'svc', Tags: ['blue', 'green'], Port: 3, Check: { TTL: '10s', Status: 'critical' } });
      const ids = async (q: string): Promise<string[]> =>
        (await get(s, `/v1/health/service/svc${q}`)).json<Array<{ Service: { ID: string } }>>().map((e) => e.Service.ID);
      assert.deepEqual(await ids(''), ['a', 'b', 'c']);
      assert.deepEqual(await ids('?passing'), ['a']);
      assert.deepEqual(await ids('?passing=true'), ['a']);
      assert.deepEqual(await ids('?passing=false'), ['a', 'b', 'c']);
      assert.deepEqual(await ids('?tag=blue'), ['a', 'c']);
      assert.deepEqual(await ids('?tag=blue&tag=green'), ['c']);
      assert.equal((await get(s, '/v1/health/service/svc?passing=maybe')).status, 400);
      s.setCheck('serfHealth', 'critical');
      assert.deepEqual(await ids('?passing'), [], 'a failing node check fails every instance');
    });
  });

  it('other nodes: an empty Service.Address means the node address', async () => {
    await withServer({}, async (s) => {
      s.addNode('node-2', '10.0.0.2', { rack: 'r1' });
      s.registerService({ ID: 'db-1', Name: 'db', Port: 5432 }, { node: 'node-2' });
      s.registerService({ ID: 'db-2', Name: 'db', Address: '10.0.0.9', Port: 5432 });
      const entries = (await get(s, '/v1/health/service/db')).json<Array<{ Node: { Node: string; Address: string }; Service: { Address: string } }>>();
      const addrs = entries.map((e) => e.Service.Address || e.Node.Address).sort();
      assert.deepEqual(addrs, ['10.0.0.2', '10.0.0.9']);
      const rack = (await get(s, '/v1/health/service/db?node-meta=rack:r1')).json<unknown[]>();
      assert.equal(rack.length, 1);
    });
  });
});

describe('Consul test server: ACLs', () => {
  const TOKEN = 'b1gs33cr3t';

  it('unknown token → 403 "ACL not found"; anonymous KV → 403 "Permission denied"; lists filtered', async () => {
    await withServer({ aclToken: TOKEN }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80 });
      s.kvPut('switchyard/x', '1');

      const bogus = await get(s, '/v1/catalog/services', { token: 'wrong' });
      assert.equal(bogus.status, 403);
      assert.equal(bogus.text, 'ACL not found');
      assert.equal((await get(s, '/v1/kv/switchyard/x', { token: 'wrong' })).text, 'ACL not found');

      const kvRead = await get(s, '/v1/kv/switchyard/x');
      assert.equal(kvRead.status, 403);
      assert.equal(kvRead.text, 'Permission denied');
      const kvWrite = await put(s, '/v1/kv/switchyard/x', { body: '2' });
      assert.equal(kvWrite.status, 403);
      assert.equal(kvWrite.text, 'Permission denied');
      // Lists are filtered; without a token the flag saying so is masked (agent/consul/rpc.go
      // maskResultsFilteredByACLs): an anonymous client cannot tell "hidden" from "empty".
      const kvList = await get(s, '/v1/kv/switchyard/?recurse');
      assert.equal(kvList.status, 404, 'recurse filters, like KVS.List');
      assert.equal(kvList.headers.get('x-consul-results-filtered-by-acls'), null);

      const health = await get(s, '/v1/health/service/web');
      assert.equal(health.status, 200);
      assert.deepEqual(health.json(), []);
      assert.equal(health.headers.get('x-consul-results-filtered-by-acls'), null);
      const catalog = await get(s, '/v1/catalog/services');
      assert.deepEqual(catalog.json(), {});
      assert.equal(catalog.headers.get('x-consul-results-filtered-by-acls'), null);
      // With a token (one that may read nothing) the same answers say they were filtered.
      s.addToken('nothing', {});
      assert.equal((await get(s, '/v1/kv/switchyard/?recurse', { token: 'nothing' })).headers.get('x-consul-results-filtered-by-acls'), 'true');
      assert.equal((await get(s, '/v1/health/service/web', { token: 'nothing' })).headers.get('x-consul-results-filtered-by-acls'), 'true');
      assert.equal((await get(s, '/v1/catalog/services', { token: 'nothing' })).headers.get('x-consul-results-filtered-by-acls'), 'true');

      const register = await put(s, '/v1/agent/service/register', { body: JSON.stringify({ Name: 'api', Port: 1 }) });
      assert.equal(register.status, 403);
      assert.match(register.text, /^Permission denied: anonymous token lacks permission 'service:write' on "api"/);
      assert.equal((await put(s, '/v1/agent/maintenance?enable=true')).status, 403);
    });
  });

  it('the token works in X-Consul-Token, Authorization: Bearer and ?token=, and is logged for tests', async () => {
    await withServer({ aclToken: TOKEN }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80 });
      const viaHeader = await get(s, '/v1/health/service/web', { token: TOKEN });
      assert.equal(viaHeader.json<unknown[]>().length, 1);
      assert.equal(viaHeader.headers.get('x-consul-results-filtered-by-acls'), null);
      const viaBearer = await get(s, '/v1/catalog/services', { headers: { Authorization: `Bearer ${TOKEN}` } });
      assert.deepEqual(viaBearer.json(), { consul: [], web: [] });
      assert.equal((await put(s, `/v1/kv/a?token=${TOKEN}`, { body: '1' })).text, 'true');
      assert.equal((await put(s, '/v1/agent/service/register', { token: TOKEN, body: JSON.stringify({ Name: 'api' }) })).status, 200);
      const logged = s.requests.filter((r) => r.path === '/v1/health/service/web');
      assert.equal(logged.at(-1)?.headers['x-consul-token'], TOKEN);
    });
  });

  it('limited tokens and anonymous read', async () => {
    await withServer({ aclToken: TOKEN }, async (s) => {
      s.addToken('reader', { key: 'read', keyPrefix: 'switchyard/', service: 'read', node: 'read' });
      s.kvPut('switchyard/a', '1');
      s.kvPut('secret/b', '2');
      assert.equal((await get(s, '/v1/kv/switchyard/a', { token: 'reader' })).status, 200);
      assert.equal((await get(s, '/v1/kv/secret/b', { token: 'reader' })).status, 403);
      const write = await put(s, '/v1/kv/switchyard/a', { token: 'reader', body: 'x' });
      assert.equal(write.status, 403);
      const all = await get(s, '/v1/kv/?recurse', { token: 'reader' });
      assert.deepEqual(all.json<Array<{ Key: string }>>().map((e) => e.Key), ['switchyard/a']);
      assert.equal(all.headers.get('x-consul-results-filtered-by-acls'), 'true');
      const reg = await put(s, '/v1/agent/service/register', { token: 'reader', body: JSON.stringify({ Name: 'x' }) });
      assert.match(reg.text, /^Permission denied: token with AccessorID '[0-9a-f-]+' lacks permission 'service:write' on "x"$/);

      s.grantAnonymousRead();
      assert.equal((await get(s, '/v1/kv/secret/b')).status, 200);
      assert.deepEqual((await get(s, '/v1/catalog/services')).json(), { consul: [] });
      assert.equal((await put(s, '/v1/kv/secret/b', { body: 'x' })).status, 403);
    });
  });
});

describe('Consul test server: fault injection and observation', () => {
  it('failNext(n) answers n failures then recovers; setFailing holds until cleared', async () => {
    await withServer({}, async (s) => {
      s.failNext(2);
      const first = await get(s, '/v1/catalog/services');
      assert.equal(first.status, 500);
      assert.ok(first.text.length > 0, 'a body');
      assert.equal((await get(s, '/v1/catalog/services')).status, 500);
      assert.equal((await get(s, '/v1/catalog/services')).status, 200);
      s.failNext(1, 502, 'bad gateway');
      assert.equal((await get(s, '/v1/kv/a')).text, 'bad gateway');
      s.setFailing(503);
      for (let i = 0; i < 3; i += 1) assert.equal((await get(s, '/v1/health/service/web')).status, 503);
      s.setFailing(null);
      assert.equal((await get(s, '/v1/health/service/web')).status, 200);
      assert.equal(s.requests.filter((r) => r.fault === 'fail').length, 6);
    });
  });

  it('setHang accepts requests but answers none: a client timeout aborts; unsetting serves the rest', async () => {
    await withServer({}, async (s) => {
      s.setHang(true);
      await assert.rejects(get(s, '/v1/catalog/services', { signal: AbortSignal.timeout(150) }), { name: 'TimeoutError' });
      const arrived = s.waitForRequest((r) => r.path === '/v1/catalog/services', 2_000);
      const waiting = get(s, '/v1/catalog/services');
      const state = track(waiting);
      await arrived;
      await settle();
      assert.equal(state.settled(), false);
      s.setHang(false);
      assert.equal((await waiting).status, 200);
      assert.equal(s.requests.filter((r) => r.fault === 'hang').length, 2);
    });
  });

  it('stop() closes hung requests too', async () => {
    const s = await ConsulTestServer.start({ jitter: false });
    s.setHang(true);
    const arrived = s.waitForRequest((r) => r.path === '/v1/kv/a', 2_000);
    const hung = get(s, '/v1/kv/a');
    await arrived;
    await s.stop();
    await assert.rejects(hung);
  });

  it('logs method, path, query and headers so tests can check index/wait/token and call rates', async () => {
    await withServer({}, async (s) => {
      s.clearRequests();
      const before = s.requestCount;
      await get(s, '/v1/health/service/web?index=1&wait=100ms&passing', { headers: { 'X-Consul-Token': 't' } });
      const entry = s.requests.at(-1);
      assert.equal(s.requestCount, before + 1);
      assert.equal(entry?.method, 'GET');
      assert.equal(entry?.path, '/v1/health/service/web');
      assert.deepEqual(entry?.query, { index: '1', wait: '100ms', passing: '' });
      assert.equal(entry?.headers['x-consul-token'], 't');
      assert.equal(entry?.status, 200);
      assert.ok((entry?.endedAt ?? 0) >= (entry?.at ?? Infinity));
    });
  });

  it('streaming (the default): blocking health reads carry KnownLeader false, LastContact 0, Query-Backend streaming', async () => {
    await withServer({}, async (s) => {
      s.setLastContact(25);
      const reply = await get(s, `/v1/health/service/consul?index=1&wait=50ms`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('x-consul-knownleader'), 'false', 'setMeta writes the streaming view\'s zero value');
      assert.equal(reply.headers.get('x-consul-lastcontact'), '0');
      assert.equal(reply.headers.get('x-consul-query-backend'), 'streaming');
      assert.ok(indexOf(reply) >= 1);
      // The same cluster, asked without blocking, or for the catalog, or the leader: a leader.
      const fresh = await get(s, '/v1/health/service/consul');
      assert.equal(fresh.headers.get('x-consul-knownleader'), 'true');
      assert.equal(fresh.headers.get('x-consul-lastcontact'), '25');
      assert.equal(fresh.headers.get('x-consul-query-backend'), 'blocking-query');
      const catalog = await get(s, '/v1/catalog/services?index=1&wait=50ms');
      assert.equal(catalog.headers.get('x-consul-query-backend'), 'blocking-query');
      assert.equal(catalog.headers.get('x-consul-knownleader'), 'true');
      assert.equal((await get(s, '/v1/status/leader')).json(), '127.0.0.1:8300');
      // use_streaming_backend = false: blocking health reads are plain blocking queries again.
      s.setStreaming(false);
      const plain = await get(s, `/v1/health/service/consul?index=1&wait=50ms`);
      assert.equal(plain.headers.get('x-consul-knownleader'), 'true');
      assert.equal(plain.headers.get('x-consul-query-backend'), 'blocking-query');
    });
  });

  it('streaming answers never carry X-Consul-Results-Filtered-By-ACLs, even with a token', async () => {
    await withServer({ aclToken: 'root' }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80 });
      s.addToken('services-only', { service: 'read' });
      const first = await get(s, '/v1/health/service/web', { token: 'services-only' });
      assert.deepEqual(first.json(), [], 'no node:read: the instance is filtered out');
      assert.equal(first.headers.get('x-consul-results-filtered-by-acls'), 'true');
      const blocking = await get(s, `/v1/health/service/web?index=${indexOf(first)}&wait=20ms`, { token: 'services-only' });
      assert.deepEqual(blocking.json(), []);
      assert.equal(blocking.headers.get('x-consul-query-backend'), 'streaming');
      assert.equal(blocking.headers.get('x-consul-results-filtered-by-acls'), null);
    });
  });
});

describe('Consul test server: many watchers', () => {
  let s: ConsulTestServer;
  before(async () => {
    s = await ConsulTestServer.start({ jitter: false });
  });
  after(() => s.stop());

  it('a burst of registrations wakes every watcher once it changes, each with the newest index', async () => {
    const index = indexOf(await get(s, '/v1/health/service/burst'));
    const watchers = Array.from({ length: 5 }, () => get(s, `/v1/health/service/burst?index=${index}&wait=30s`));
    await s.waitForBlocked(5);
    // Synchronous writes: the watchers wake after the last one and all see the newest index.
    for (let i = 0; i < 20; i += 1) s.registerService({ ID: `burst-${i}`, Name: 'burst', Port: 10_000 + i });
    const newest = s.index;
    const replies = await Promise.all(watchers);
    for (const reply of replies) {
      assert.equal(indexOf(reply), newest);
      assert.equal(reply.json<unknown[]>().length, 20);
    }
    const final = await get(s, '/v1/health/service/burst');
    assert.equal(final.json<unknown[]>().length, 20);
    assert.equal(indexOf(final), s.index);
  });
});

describe('Consul test server: the consul npm client', () => {
  it('serves register, check pass, health, KV, ACL errors and a watch', async () => {
    await withServer({ aclToken: 'tok' }, async (s) => {
      const client = new Consul({ host: '127.0.0.1', port: s.port, defaults: { token: 'tok' } });
      // The package's typings leave out fields it supports, hence the casts.
      await client.agent.service.register({ id: 'web-1', name: 'web', tags: ['x'], port: 80, check: { ttl: '10s' } } as never);
      await client.agent.check.pass({ id: 'service:web-1', note: 'ok' } as never);
      const healthy = (await client.health.service({ service: 'web', passing: true } as never)) as unknown as unknown[];
      assert.equal(healthy.length, 1);
      await client.kv.set('switchyard/a', 'hello');
      const entries = (await client.kv.get({ key: 'switchyard/', recurse: true } as never)) as unknown as Array<{ Value: string }>;
      assert.equal(entries[0]?.Value, 'hello');
      assert.equal(await client.kv.get('missing'), undefined, '404 is "no value"');
      const anonymous = new Consul({ host: '127.0.0.1', port: s.port });
      await assert.rejects(anonymous.kv.get('switchyard/a'), /Permission denied/);

      const watch = client.watch({ method: client.health.service, options: { service: 'web', wait: '5s' } as never });
      const sizes: number[] = [];
      const secondChange = new Promise<void>((resolve, reject) => {
        watch.on('change', (data: unknown[]) => {
          sizes.push(data.length);
          if (sizes.length === 2) resolve();
        });
        watch.on('error', reject);
      });
      await s.waitForBlocked(1);
      s.registerService({ ID: 'web-2', Name: 'web', Port: 81 });
      await secondChange;
      watch.end();
      assert.deepEqual(sizes, [1, 2]);
      const watched = s.requests.filter((r) => r.path === '/v1/health/service/web' && r.query.index !== undefined);
      assert.ok(watched.every((r) => r.query.wait === '5s' && r.headers['x-consul-token'] === 'tok'));
    });
  });
});

describe('Consul test server: real-Consul behaviours (docs/consul.md, "What the test server pins")', () => {
  it('KV keys as Consul 1.21.5+ validates them (agent/kvs_endpoint.go validateKVKey): 400 with its reason, every method', async () => {
    await withServer({}, async (s) => {
      const refused: [string, string][] = [
        ['switchyard/routes/tag:web:/weights', "key contains invalid character ':' at position 21. Only alphanumeric characters and ,-_./ are allowed"],
        ['a b', "key contains invalid character ' ' at position 1. Only alphanumeric characters and ,-_./ are allowed"],
        ['switchyard/config.json', "key contains suspicious file extension '.json' that may be cached by proxies"],
        ['switchyard/app.JS', "key contains suspicious file extension '.js' that may be cached by proxies"],
      ];
      for (const [key, reason] of refused) {
        const written = await put(s, `/v1/kv/${encodeURIComponent(key).replace(/%2F/g, '/')}`, { body: '1' });
        assert.equal(written.status, 400, key);
        assert.equal(written.text, reason, key);
        assert.equal((await get(s, `/v1/kv/${encodeURIComponent(key).replace(/%2F/g, '/')}`)).status, 400, `GET ${key}`);
        assert.equal((await call(s, 'DELETE', `/v1/kv/${encodeURIComponent(key).replace(/%2F/g, '/')}`)).status, 400, `DELETE ${key}`);
      }
      for (const key of ['switchyard/routes/tag.web.2f/weights', 'a,b-c_d.e/f', 'switchyard/services/users/weights']) {
        const written = await put(s, `/v1/kv/${key}`, { body: '1' });
        assert.equal(written.status, 200, key);
        assert.equal(written.text, 'true');
      }
      // Dot segments never reach a server through fetch (the URL is normalised): checked directly.
      assert.equal(kvKeyProblem('x/../y'), 'key contains path traversal sequence');
      assert.equal(kvKeyProblem('/x'), "key must not begin with a '/'");
      assert.equal(kvKeyProblem('x.html?v=1'), "key contains invalid character '?' at position 6. Only alphanumeric characters and ,-_./ are allowed");
      // Keys written before the upgrade (in-process helper, as raft data) are still listed.
      s.kvPut('switchyard/old:key', 'v');
      const listed = await get(s, '/v1/kv/switchyard/?recurse');
      assert.ok(listed.json<{ Key: string }[]>().some((e) => e.Key === 'switchyard/old:key'));
      // Consul before 1.21.5 took them.
      s.setKvKeyValidation(false);
      assert.equal((await put(s, '/v1/kv/switchyard/routes/tag:web:/weights', { body: '1' })).status, 200);
    });
  });

  it('/v1/acl/token/self: 401 "ACL support disabled" with ACLs off; 403 "ACL not found" without a token; 200 with one', async () => {
    await withServer({}, async (s) => {
      const off = await get(s, '/v1/acl/token/self');
      assert.equal(off.status, 401);
      assert.equal(off.text, 'ACL support disabled');
    });
    await withServer({ aclToken: 'root' }, async (s) => {
      const anonymous = await get(s, '/v1/acl/token/self');
      assert.equal(anonymous.status, 403);
      assert.equal(anonymous.text, 'ACL not found');
      assert.equal((await get(s, '/v1/acl/token/self', { token: 'wrong' })).status, 403);
      const self = await get(s, '/v1/acl/token/self', { token: 'root' });
      assert.equal(self.status, 200);
      assert.equal(self.json<{ SecretID: string }>().SecretID, 'root');
    });
  });

  it('/v1/status/leader: the leader\'s address, "" without one', async () => {
    await withServer({}, async (s) => {
      assert.equal((await get(s, '/v1/status/leader')).json(), '127.0.0.1:8300');
      s.setLeaderless(true);
      assert.equal((await get(s, '/v1/status/leader')).json(), '');
      s.setLeaderless(false);
      s.setKnownLeader(false);
      assert.equal((await get(s, '/v1/status/leader')).json(), '', 'the server that knows no leader says so here too');
    });
  });

  it('limits.http_max_conns_per_client: past the limit a connection gets go-connlimit\'s raw 429 and is closed', async () => {
    await withServer({ maxConnsPerClient: 3 }, async (s) => {
      const { connect } = await import('node:net');
      const open = async (): Promise<{ socket: import('node:net').Socket; data: () => string; closed: Promise<void> }> => {
        const socket = connect(s.port, '127.0.0.1');
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
        });
        const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
        socket.on('error', () => undefined);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        return { socket, data: () => text, closed };
      };
      const kept = [await open(), await open(), await open()];
      await waitFor('s.openConnections === 3', () => s.openConnections === 3);
      const fourth = await open();
      await fourth.closed;
      assert.equal(fourth.data(), 'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 81\r\nConnection: close\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n');
      assert.equal(s.refusedConnections, 1);
      // The kept ones still work, and a freed slot takes a new connection.
      kept[0]!.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('kept[0]!.data().includes(127.0.0.1:8300)', () => kept[0]!.data().includes('127.0.0.1:8300'));
      kept[1]!.socket.destroy();
      await waitFor('s.openConnections === 2', () => s.openConnections === 2);
      const again = await open();
      again.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('again.data().startsWith(HTTP/1.1 200)', () => again.data().startsWith('HTTP/1.1 200'));
      for (const c of [...kept, again]) c.socket.destroy();
    });
  });

  it('the default limit is 200 per client (agent/config/default.go)', async () => {
    const { DEFAULT_MAX_CONNS_PER_CLIENT } = await import('./consul/server.js');
    assert.equal(DEFAULT_MAX_CONNS_PER_CLIENT, 200);
  });

  it('listens on a unix socket (CONSUL_HTTP_ADDR=unix:///path)', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { request } = await import('node:http');
    const dir = mkdtempSync(join(tmpdir(), 'sy-consul-sock-'));
    const socketPath = join(dir, 'consul.sock');
    try {
      await withServer({ socketPath }, async (s) => {
        assert.equal(s.address, `unix://${socketPath}`);
        const body = await new Promise<string>((resolve, reject) => {
          request({ socketPath, path: '/v1/status/leader' }, (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => {
              text += chunk.toString();
            });
            res.on('end', () => resolve(text));
          }).on('error', reject).end();
        });
        assert.equal(JSON.parse(body), '127.0.0.1:8300');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Consul test server: health state, catalog nodes and connection peaks (issue 8)', () => {
  it('GET /v1/health/state/:state: every check (node checks with ServiceID ""), by state; index is the checks table; never streaming', async () => {
    await withServer({ streaming: true }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      s.registerService({ ID: 'api-1', Name: 'api', Port: 81, Check: { TTL: '30s', Status: 'warning' } });
      const any = await get(s, '/v1/health/state/any');
      assert.equal(any.status, 200);
      const checks = any.json<Array<Record<string, unknown>>>();
      assert.deepEqual(checks.map((c) => c['CheckID']), ['serfHealth', 'service:api-1', 'service:web-1'], 'by node then check ID');
      assert.equal(checks[0]?.['ServiceID'], '', 'a node check has no service');
      assert.deepEqual(checks[2]?.['ServiceTags'], []);
      assert.ok(typeof checks[2]?.['ModifyIndex'] === 'number');
      assert.deepEqual((await get(s, '/v1/health/state/warning')).json<Array<Record<string, unknown>>>().map((c) => c['CheckID']), ['service:api-1']);
      assert.deepEqual((await get(s, '/v1/health/state/bogus')).json(), [], 'Consul does not validate the state: none match');
      assert.equal((await get(s, '/v1/health/state/')).text, 'Missing check state');
      const index = indexOf(any);
      assert.equal(index, Math.max(...checks.map((c) => Number(c['ModifyIndex']))), 'the checks table index');
      // A blocking read: a KV write does not end it, a check change does; the answer is a plain RPC's.
      const held = get(s, `/v1/health/state/any?index=${index}&wait=5s`);
      const tracked = track(held);
      await s.waitForBlocked(1);
      s.kvPut('x', 'y');
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      await settle();
      assert.equal(tracked.settled(), false, 'a KV write and an identical re-registration move no check');
      s.setCheck('service:web-1', 'critical');
      const answer = await held;
      assert.ok(indexOf(answer) > index);
      assert.equal(answer.headers.get('x-consul-query-backend'), 'blocking-query', 'not streaming');
      assert.equal(answer.headers.get('x-consul-knownleader'), 'true', 'a fact, unlike a streaming answer');
    });
  });

  it('GET /v1/health/state/any with ACLs: node checks need node:read, service checks service:read too', async () => {
    await withServer({ aclToken: 'root' }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      s.addToken('svc-only', { service: 'read' });
      s.addToken('all', { service: 'read', node: 'read' });
      assert.deepEqual((await get(s, '/v1/health/state/any', { token: 'svc-only' })).json(), []);
      assert.equal((await get(s, '/v1/health/state/any', { token: 'svc-only' })).headers.get('x-consul-results-filtered-by-acls'), 'true');
      assert.equal((await get(s, '/v1/health/state/any', { token: 'all' })).json<unknown[]>().length, 2);
    });
  });

  it('GET /v1/health/state/any?filter= (go-bexpr subset): the non-passing checks, the same index; and, or, not, parentheses', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      s.registerService({ ID: 'api-1', Name: 'api', Port: 81, Check: { TTL: '30s', Status: 'warning' } });
      s.registerService({ ID: 'db-1', Name: 'db', Port: 82, Check: { TTL: '30s', Status: 'critical' } });
      const ids = async (filter: string): Promise<unknown[]> => (await get(s, `/v1/health/state/any?filter=${encodeURIComponent(filter)}`)).json<Array<Record<string, unknown>>>().map((c) => c['CheckID']);
      const all = await get(s, '/v1/health/state/any');
      const nonPassing = await get(s, `/v1/health/state/any?filter=${encodeURIComponent('Status != "passing"')}`);
      assert.deepEqual(nonPassing.json<Array<Record<string, unknown>>>().map((c) => c['CheckID']), ['service:api-1', 'service:db-1']);
      assert.equal(indexOf(nonPassing), indexOf(all), 'the index is the checks table\'s whatever the filter');
      assert.deepEqual(await ids('Status == "critical" or ServiceName == `api`'), ['service:api-1', 'service:db-1']);
      assert.deepEqual(await ids('Status != "passing" and not (ServiceName == "api")'), ['service:db-1']);
      assert.deepEqual(await ids('Node == "consul-test" and ServiceID == ""'), ['serfHealth']);
      assert.deepEqual(await ids(''), ['serfHealth', 'service:api-1', 'service:db-1', 'service:web-1'], 'an empty filter is no filter');
      // A check that becomes passing leaves the filtered answer; a blocking read on it wakes.
      const held = get(s, `/v1/health/state/any?index=${indexOf(nonPassing)}&wait=5s&filter=${encodeURIComponent('Status != "passing"')}`);
      await s.waitForBlocked(1);
      s.setCheck('service:db-1', 'passing');
      const woke = await held;
      assert.ok(indexOf(woke) > indexOf(nonPassing));
      assert.deepEqual(woke.json<Array<Record<string, unknown>>>().map((c) => c['CheckID']), ['service:api-1']);
      // A check added, then one removed, after answers were given: in order, and gone (the server
      // keeps the sorted list between answers).
      s.registerService({ ID: 'aaa-1', Name: 'aaa', Port: 83, Check: { TTL: '30s', Status: 'critical' } });
      assert.deepEqual(await ids('Status != "passing"'), ['service:aaa-1', 'service:api-1']);
      s.deregisterService('api-1');
      assert.deepEqual(await ids('Status != "passing"'), ['service:aaa-1']);
    });
  });

  it('GET /v1/health/state/any?filter=: a bad expression fails at once as Consul does (500, "Failed to create boolean expression evaluator"), one it cannot evaluate is 400, never ignored', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      const index = indexOf(await get(s, '/v1/health/state/any'));
      for (const bad of ['Status', 'Status == ', 'Status = "passing"', 'Status == "passing" and', '(Status == "passing"', 'Status == "unterminated']) {
        const reply = await get(s, `/v1/health/state/any?index=${index}&wait=5s&filter=${encodeURIComponent(bad)}`);
        assert.equal(reply.status, 500, bad);
        assert.match(reply.text, /^Failed to create boolean expression evaluator: /, bad);
      }
      const unknown = await get(s, `/v1/health/state/any?filter=${encodeURIComponent('Bogus == "x"')}`);
      assert.equal(unknown.status, 500);
      assert.equal(unknown.text, 'Failed to create boolean expression evaluator: Selector "Bogus" is not valid');
      for (const unsupported of ['Status in "passing"', 'ServiceName contains "we"', 'Output matches ".*"', 'Notes is empty', 'Status not in "x"']) {
        const reply = await get(s, `/v1/health/state/any?filter=${encodeURIComponent(unsupported)}`);
        assert.equal(reply.status, 400, unsupported);
        assert.match(reply.text, /does not implement/, unsupported);
      }
    });
  });

  it('GET /v1/health/state/any?filter= with ACLs: the filter runs before the ACL filter (a check the filter drops is not "filtered by ACLs")', async () => {
    await withServer({ aclToken: 'root' }, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'passing' } });
      s.addToken('svc-only', { service: 'read' });
      const filtered = (filter: string): Promise<string | null> => get(s, `/v1/health/state/any?filter=${encodeURIComponent(filter)}`, { token: 'svc-only' }).then((r) => r.headers.get('x-consul-results-filtered-by-acls'));
      assert.equal(await filtered('Status != "passing"'), null, 'every check is passing: nothing left for the ACLs to hide');
      assert.equal(await filtered('Status == "passing"'), 'true', 'hidden checks that match the filter');
    });
  });

  it('deregisterCheck: the checks table and the service index move, the services table does not', async () => {
    await withServer({}, async (s) => {
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80, Check: { TTL: '30s', Status: 'critical' } });
      const services = indexOf(await get(s, '/v1/catalog/services'));
      const checks = indexOf(await get(s, '/v1/health/state/any'));
      assert.equal(s.deregisterCheck('service:web-1'), true);
      assert.equal(s.deregisterCheck('service:web-1'), false);
      assert.equal(indexOf(await get(s, '/v1/catalog/services')), services);
      assert.ok(indexOf(await get(s, '/v1/health/state/any')) > checks);
      const health = await get(s, '/v1/health/service/web');
      assert.ok(indexOf(health) > checks);
      assert.deepEqual(health.json<Array<{ Checks: unknown[] }>>()[0]?.Checks.length, 1, 'only serfHealth is left');
    });
  });

  it('GET /v1/catalog/nodes: nodes with their address; the index moves on a node change and on service writes', async () => {
    await withServer({}, async (s) => {
      s.addNode('n2', '10.0.0.2');
      const first = await get(s, '/v1/catalog/nodes');
      assert.deepEqual(first.json<Array<Record<string, unknown>>>().map((n) => [n['Node'], n['Address']]), [['consul-test', '127.0.0.1'], ['n2', '10.0.0.2']]);
      const held = get(s, `/v1/catalog/nodes?index=${indexOf(first)}&wait=5s`);
      await s.waitForBlocked(1);
      s.addNode('n2', '10.0.0.3');
      const moved = await held;
      assert.ok(indexOf(moved) > indexOf(first));
      assert.equal(moved.json<Array<Record<string, unknown>>>()[1]?.['Address'], '10.0.0.3');
      s.registerService({ ID: 'web-1', Name: 'web', Port: 80 }, { node: 'n2' });
      assert.ok(indexOf(await get(s, '/v1/catalog/nodes')) > indexOf(moved), 'catalogInsertService raises the nodes index');
    });
  });

  it('records the most connections a client held at once', async () => {
    await withServer({}, async (s) => {
      const agents = [new Agent(), new Agent(), new Agent()];
      try {
        await Promise.all(agents.map((a) => fetch(`${s.url}/v1/status/leader`, { dispatcher: a }).then((r) => r.arrayBuffer())));
        assert.equal(s.peakConnections(), 3);
        assert.equal(s.connectionsFrom(), 3);
      } finally {
        await Promise.all(agents.map((a) => a.close()));
      }
      await waitFor('connections closed', () => s.connectionsFrom() === 0);
      s.resetPeakConnections();
      assert.equal(s.peakConnections(), 0);
    });
  });
});
