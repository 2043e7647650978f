/**
 * Tracing end to end: a real proxy, a recording upstream and a local OTLP/HTTP collector (a node
 * server on 127.0.0.1 decoding the exporter's JSON; the default protobuf encoding and the protocol
 * choice are checked on the wire). W3C propagation (trace id kept, the exported
 * span as the upstream's parent, tracestate passed, sampled flag followed, a new trace without a
 * valid traceparent), span attributes, a retry as a span event, trace ids in access lines and error
 * bodies, upgrades carrying traceparent, an unreachable collector changing nothing for clients,
 * debug headers per route, and the upstream TTFB / connect histograms.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startTracing, type Tracing } from '../../src/observability/tracing.js';
import { captureLogger } from '../support/capture-logger.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { refusedPort } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { makeTable, metricValue, send, startProxy, type TestProxy } from './harness.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string; boolValue?: boolean } }[];
  events?: { name: string; attributes: { key: string; value: { stringValue?: string } }[] }[];
  status?: { code?: number };
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  traceState?: string;
  flags?: number;
}

/** One export request as the collector received it. */
interface Post {
  path: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}

interface Collector {
  url: string;
  /** Spans of the JSON exports, decoded. */
  spans: OtlpSpan[];
  posts: Post[];
  close(): Promise<void>;
}

async function startCollector(): Promise<Collector> {
  const spans: OtlpSpan[] = [];
  const posts: Post[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const post = { path: req.url, contentType: req.headers['content-type'], body: Buffer.concat(chunks) };
      posts.push(post);
      if (post.path === '/v1/traces' && post.contentType === 'application/json') {
        const body = JSON.parse(post.body.toString('utf8')) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      // An empty ExportTraceServiceResponse in either encoding.
      res.writeHead(200, { 'content-type': post.contentType === 'application/json' ? 'application/json' : 'application/x-protobuf' });
      res.end(post.contentType === 'application/json' ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    posts,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function attr(span: OtlpSpan, key: string): string | number | boolean | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.boolValue;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

function parts(value: string | string[] | undefined): { traceId: string; spanId: string; flags: string } {
  const m = TRACEPARENT.exec(String(value));
  assert.ok(m, `a valid traceparent upstream: ${String(value)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

describe('tracing through the proxy (OTLP to a local collector)', () => {
  let collector: Collector;
  let up: RecordingUpstream;
  let dead: number;
  let t: TestProxy;
  let tracing: Tracing;

  before(async () => {
    collector = await startCollector();
    up = await startRecordingUpstream('app');
    dead = await refusedPort();
    t = await startProxy(makeTable([
      { name: 'app', path: '/', to: [{ service: 'app', endpoints: [{ id: 'a1', port: up.port }] }] },
      { name: 'debug', path: '/debug', policy: { debugHeaders: true }, to: [{ service: 'app', endpoints: [{ id: 'a1', port: up.port }] }] },
      {
        name: 'retrying', path: '/retry', policy: { retries: { count: 1, on: ['connect-failure'] } },
        to: [{ service: 'flaky', endpoints: [{ id: 'dead', port: dead }, { id: 'live', port: up.port }] }],
      },
    ]));
    // JSON, so that the collector can decode the spans (the default, protobuf, is tested below).
    tracing = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, t.metrics.registry, undefined, { scheduledDelayMillis: 20 });
    t.proxy.handler.tracing = tracing;
  });

  after(async () => {
    await t.close();
    await tracing.shutdown(1_000);
    await up.close();
    await collector.close();
  });

  const lastUpstream = (): string | string[] | undefined => up.requests.at(-1)!.headers['traceparent'];
  const spanOf = (traceId: string): Promise<OtlpSpan> => waitFor(`the span of trace ${traceId} at the collector`, () => collector.spans.find((s) => s.traceId === traceId), 5_000);

  it('keeps an incoming trace: same trace id upstream, the exported span as parent, tracestate passed, attributes set', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const before = Date.now();
    const reply = await send(t.port, {
      path: '/x/y?q=1',
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=abc,other=1', host: 'app.example:8080' },
    });
    assert.equal(reply.status, 200);
    const upstream = parts(lastUpstream());
    assert.equal(upstream.traceId, traceId);
    assert.notEqual(upstream.spanId, '00f067aa0ba902b7', 'a new parent id');
    assert.equal(upstream.flags, '01');
    assert.equal(up.requests.at(-1)!.headers['tracestate'], 'vendor=abc,other=1');
    const span = await spanOf(traceId);
    assert.equal(span.spanId, upstream.spanId, "the upstream's parent is the exported span");
    assert.equal(span.parentSpanId, '00f067aa0ba902b7');
    assert.equal(span.kind, 2, 'SERVER');
    assert.equal(span.traceState, 'vendor=abc,other=1');
    // Start and end in epoch nanoseconds, within the request (1 ms slack: the clocks' rounding).
    const startMs = Number(span.startTimeUnixNano) / 1e6;
    const endMs = Number(span.endTimeUnixNano) / 1e6;
    assert.ok(startMs >= before - 1 && startMs <= endMs && endMs <= Date.now() + 1, `${before} ≤ ${startMs} ≤ ${endMs} ≤ now`);
    assert.equal(span.name, 'GET /');
    assert.equal(attr(span, 'http.request.method'), 'GET');
    assert.equal(attr(span, 'url.path'), '/x/y');
    assert.equal(attr(span, 'http.route'), '/');
    assert.equal(attr(span, 'http.response.status_code'), 200);
    assert.equal(attr(span, 'server.address'), 'app.example');
    assert.equal(attr(span, 'server.port'), t.port);
    assert.equal(attr(span, 'client.address'), '127.0.0.1');
    assert.equal(attr(span, 'network.peer.address'), '127.0.0.1');
    assert.equal(attr(span, 'switchyard.route'), 'app');
    assert.equal(attr(span, 'switchyard.endpoint'), 'app/a1');
    const line = t.accessLines().find((l) => l.traceId === traceId);
    assert.ok(line, 'the access line carries the trace id');
  });

  it('starts a new trace without a valid traceparent; tracestate of an invalid one is dropped', async () => {
    for (const incoming of [undefined, '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', '00-00000000000000000000000000000000-00f067aa0ba902b7-01']) {
      const headers: Record<string, string> = { tracestate: 'vendor=abc' };
      if (incoming !== undefined) headers['traceparent'] = incoming;
      const reply = await send(t.port, { path: '/new', headers });
      assert.equal(reply.status, 200);
      const upstream = parts(lastUpstream());
      assert.ok(incoming === undefined || !incoming.toLowerCase().includes(upstream.traceId));
      assert.equal(upstream.flags, '01', 'sampled by the default ratio 1.0');
      assert.equal(up.requests.at(-1)!.headers['tracestate'], undefined);
      const span = await spanOf(upstream.traceId);
      assert.equal(span.parentSpanId ?? '', '', 'a root span');
      assert.equal(span.spanId, upstream.spanId);
    }
  });

  it('follows an unsampled caller: flag 00 upstream, no span exported', async () => {
    const traceId = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    assert.equal((await send(t.port, { path: '/u', headers: { traceparent: `00-${traceId}-bbbbbbbbbbbbbbbb-00` } })).status, 200);
    const upstream = parts(lastUpstream());
    assert.equal(upstream.traceId, traceId);
    assert.equal(upstream.flags, '00');
    assert.notEqual(upstream.spanId, 'bbbbbbbbbbbbbbbb');
    // A sampled request after it: once its span arrived, the unsampled one would have too.
    const marker = 'cccccccccccccccccccccccccccccccc';
    await send(t.port, { path: '/u', headers: { traceparent: `00-${marker}-bbbbbbbbbbbbbbbb-01` } });
    await spanOf(marker);
    assert.equal(collector.spans.some((s) => s.traceId === traceId), false);
  });

  it('records a retry as a span event', async () => {
    let traceId = '';
    // The balancer may pick the live endpoint first: go until an attempt hit the dead one.
    for (let i = 0; i < 4 && traceId === ''; i++) {
      const reply = await send(t.port, { path: '/retry' });
      assert.equal(reply.status, 200);
      const line = t.accessLines().at(-1)!;
      if (line.attempts === 2) traceId = String(line.traceId);
    }
    assert.notEqual(traceId, '', 'a request was retried');
    const span = await spanOf(traceId);
    const retry = span.events?.find((e) => e.name === 'retry');
    assert.ok(retry, 'a retry event');
    assert.equal(retry.attributes.find((a) => a.key === 'switchyard.retry.reason')?.value.stringValue, 'connect-failure');
    assert.equal(attr(span, 'switchyard.attempts'), 2);
  });

  it('puts the trace id in error bodies and access lines; a 5xx span has error status', async () => {
    // A proxy of its own: its only route is host-specific, so another host matches nothing.
    const t2 = await startProxy(makeTable([{ name: 'hosted', host: 'only.example', to: [{ service: 'app', endpoints: [{ id: 'x', port: dead }] }] }]));
    try {
      const miss = await send(t2.port, { path: '/', headers: { host: 'other.example' } });
      assert.equal(miss.status, 404);
      const body = miss.json<{ error: string; message: string; requestId: string; traceId: string }>();
      assert.equal(body.error, 'SY_NO_ROUTE');
      assert.match(body.traceId, /^[0-9a-f]{32}$/);
      assert.equal(body.requestId, miss.headers['x-request-id']);
      assert.equal(t2.accessLines().at(-1)!.traceId, body.traceId);
      t2.proxy.handler.tracing = tracing;
      const failed = await send(t2.port, { path: '/', headers: { host: 'only.example' } });
      assert.equal(failed.status, 502);
      const span = await spanOf(failed.json<{ traceId: string }>().traceId);
      assert.equal(span.status?.code, 2, 'ERROR');
      assert.equal(attr(span, 'error.type'), 'SY_UPSTREAM_CONNECT');
    } finally {
      await t2.close();
    }
  });

  it('sends traceparent with an upgrade request', async () => {
    const traceId = 'dddddddddddddddddddddddddddddddd';
    const ttfb = (): Promise<number> => metricValue(t.metrics, 'switchyard_upstream_first_byte_duration_seconds', { route: 'app' }, 'switchyard_upstream_first_byte_duration_seconds_count');
    const connects = (): Promise<number> => metricValue(t.metrics, 'switchyard_upstream_connect_duration_seconds', { route: 'app' }, 'switchyard_upstream_connect_duration_seconds_count');
    const [ttfbBefore, connectsBefore] = [await ttfb(), await connects()];
    const socket = connect(t.port, '127.0.0.1');
    socket.write(`GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\ntraceparent: 00-${traceId}-eeeeeeeeeeeeeeee-01\r\n\r\n`);
    socket.resume();
    try {
      const raw = await waitFor('the upgrade request at the upstream', () => new RegExp(`traceparent: (00-${traceId}-[0-9a-f]{16}-[0-9a-f]{2})`).exec(up.rawText())?.[1], 5_000);
      const upstream = parts(raw);
      assert.equal(upstream.traceId, traceId);
      assert.notEqual(upstream.spanId, 'eeeeeeeeeeeeeeee');
    } finally {
      socket.destroy();
    }
    const span = await spanOf(traceId);
    assert.equal(attr(span, 'switchyard.upgrade'), true);
    // The tunnel's own connection and the time to the upstream's answer are observed too.
    assert.equal(await connects(), connectsBefore + 1);
    assert.equal(await ttfb(), ttfbBefore + 1);
  });

  it('debug headers only on routes that ask for them', async () => {
    const plain = await send(t.port, { path: '/plain' });
    assert.equal(plain.headers['x-switchyard-route'], undefined);
    assert.equal(plain.headers['x-switchyard-upstream-ms'], undefined);
    const debug = await send(t.port, { path: '/debug/x' });
    assert.equal(debug.status, 200);
    assert.equal(debug.headers['x-switchyard-route'], 'debug');
    assert.equal(debug.headers['x-switchyard-endpoint'], 'app/a1');
    assert.match(String(debug.headers['x-switchyard-upstream-ms']), /^\d+$/);
  });

  it('observes upstream time to first byte and connect time per route', async () => {
    await send(t.port, { path: '/debug/y' });
    assert.ok(await metricValue(t.metrics, 'switchyard_upstream_first_byte_duration_seconds', { route: 'debug' }, 'switchyard_upstream_first_byte_duration_seconds_count') >= 1);
    assert.ok(await metricValue(t.metrics, 'switchyard_upstream_first_byte_duration_seconds', { route: 'app' }, 'switchyard_upstream_first_byte_duration_seconds_count') >= 1);
    // The pool to the recording upstream is shared by the routes with its origin: labelled by the first.
    assert.ok(await metricValue(t.metrics, 'switchyard_upstream_connect_duration_seconds', {}, 'switchyard_upstream_connect_duration_seconds_count') >= 1);
    assert.ok(await metricValue(t.metrics, 'switchyard_upstream_connect_duration_seconds', { route: 'app' }, 'switchyard_upstream_connect_duration_seconds_count') >= 1);
  });
});

describe('the OTLP encoding on the wire', () => {
  const cases: { what: string; env: Record<string, string>; contentType: string; warning?: RegExp }[] = [
    { what: 'protobuf by default', env: {}, contentType: 'application/x-protobuf' },
    { what: 'JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json', env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, contentType: 'application/json' },
    {
      what: 'protobuf and a warning for grpc', env: { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, contentType: 'application/x-protobuf',
      warning: /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc is not supported \(Switchyard ships no gRPC exporter\); spans are sent as http\/protobuf/,
    },
  ];
  for (const c of cases) {
    it(`sends ${c.what}: every sampled request's span reaches /v1/traces`, async () => {
      const collector = await startCollector();
      const up = await startRecordingUpstream('app');
      const t = await startProxy(makeTable([{ name: 'app', to: [{ service: 'app', endpoints: [{ id: 'a1', port: up.port }] }] }]));
      const { logger, lines } = captureLogger();
      const tracing = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url, OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=bench-env', ...c.env }, t.metrics.registry, logger, { scheduledDelayMillis: 10 });
      t.proxy.handler.tracing = tracing;
      const exported = (): Promise<number> => metricValue(t.metrics, 'switchyard_trace_spans_exported_total');
      try {
        const warnings = lines.filter((l) => l['level'] === 40).map((l) => String(l['msg']));
        if (c.warning === undefined) assert.deepEqual(warnings, []);
        else assert.ok(warnings.length === 1 && c.warning.test(warnings[0]!), warnings.join('; '));
        assert.equal(lines.find((l) => l['msg'] === 'exporting trace spans (OTLP/HTTP)')?.['protocol'], c.contentType === 'application/json' ? 'http/json' : 'http/protobuf');
        const traceIds = ['1', '2', '3'].map((d) => d.repeat(32));
        for (const traceId of traceIds) {
          assert.equal((await send(t.port, { path: '/p', headers: { traceparent: `00-${traceId}-${'f'.repeat(16)}-01` } })).status, 200);
        }
        await waitFor('the collector to accept the 3 spans', async () => await exported() === traceIds.length, 5_000);
        assert.ok(collector.posts.length > 0);
        for (const post of collector.posts) {
          assert.equal(post.path, '/v1/traces');
          assert.equal(post.contentType, c.contentType);
          assert.ok(post.body.length > 0);
        }
        // Protobuf carries a trace id as its 16 raw bytes, JSON as 32 hex characters.
        const bodies = Buffer.concat(collector.posts.map((p) => p.body));
        for (const traceId of traceIds) {
          const raw = Buffer.from(traceId, 'hex');
          assert.ok(c.contentType === 'application/json' ? bodies.includes(traceId) : bodies.includes(raw), `trace ${traceId} in an export`);
        }
        // The resource: OTEL_RESOURCE_ATTRIBUTES and the instance attributes (strings in both encodings).
        for (const text of ['deployment.environment.name', 'bench-env', 'service.instance.id', 'host.name', hostname()]) assert.ok(bodies.includes(text), `${text} in the resource`);
      } finally {
        await t.close();
        await tracing.shutdown(500);
        await up.close();
        await collector.close();
      }
    });
  }
});

describe('an unreachable collector', () => {
  it('changes nothing for clients; the lost spans are counted', async () => {
    const up = await startRecordingUpstream('app');
    const closed = await refusedPort();
    const t = await startProxy(makeTable([{ name: 'app', to: [{ service: 'app', endpoints: [{ id: 'a1', port: up.port }] }] }]));
    const { logger, lines } = captureLogger();
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}` }, t.metrics.registry, logger, { scheduledDelayMillis: 10, timeoutMillis: 300 });
    t.proxy.handler.tracing = tracing;
    try {
      for (let i = 0; i < 20; i++) {
        const reply = await send(t.port, { path: `/r${i}` });
        assert.equal(reply.status, 200);
        parts(up.requests.at(-1)!.headers['traceparent']);
      }
      await waitFor('the failed export to be counted', async () => await metricValue(t.metrics, 'switchyard_trace_spans_dropped_total', { reason: 'export_failed' }) > 0, 10_000);
      // The collector is down: the shutdown does not wait for the flush (SIGTERM exits promptly).
      await tracing.shutdown(60_000);
      assert.ok(lines.some((l) => l['msg'] === 'trace export is failing; not waiting to flush the queued spans at shutdown'), JSON.stringify(lines));
    } finally {
      await t.close();
      await tracing.shutdown(500);
      await up.close();
    }
  });
});
