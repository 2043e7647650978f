/**
 * Trace context by hand (W3C Trace Context §3.2), the settings from the standard OpenTelemetry
 * variables, and propagation without an exporter (the SDK never loaded).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostname } from 'node:os';
import { captureLogger } from '../support/capture-logger.js';
import { Registry } from 'prom-client';
import { parseTraceparent, startTracing, Tracing, tracingSettings, type Traced } from '../../src/observability/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

function traced(traceparent?: string, tracestate?: string): Traced {
  return { traceparent, tracestate, traceId: '', upstreamTraceparent: '', span: undefined };
}

describe('parseTraceparent', () => {
  const valid: [string, string, number][] = [
    [`00-${TRACE}-${SPAN}-01`, 'version 00, sampled', 1],
    [`00-${TRACE}-${SPAN}-00`, 'version 00, not sampled', 0],
    [`cc-${TRACE}-${SPAN}-01`, 'a higher version, same length', 1],
    [`cc-${TRACE}-${SPAN}-01-what-the-future-holds`, 'a higher version with more fields', 1],
  ];
  for (const [value, what, flags] of valid) {
    it(`accepts ${what}`, () => {
      const parsed = parseTraceparent(value);
      assert.ok(parsed);
      assert.equal(parsed.traceId, TRACE);
      assert.equal(parsed.spanId, SPAN);
      assert.equal(parsed.flags, flags);
    });
  }
  const invalid: [string, string][] = [
    [`ff-${TRACE}-${SPAN}-01`, 'version ff'],
    [`00-${TRACE}-${SPAN}-01-extra`, 'version 00 with more fields'],
    [`cc-${TRACE}-${SPAN}-01x`, 'a higher version whose extra part does not start with -'],
    [`00-${TRACE.toUpperCase()}-${SPAN}-01`, 'upper-case hex'],
    [`00-${'0'.repeat(32)}-${SPAN}-01`, 'an all-zero trace id'],
    [`00-${TRACE}-${'0'.repeat(16)}-01`, 'an all-zero parent id'],
    [`00-${TRACE}-${SPAN}-0g`, 'bad flags'],
    [`00_${TRACE}-${SPAN}-01`, 'a wrong separator'],
    [`00-${TRACE}-${SPAN}`, 'too short'],
    ['', 'empty'],
  ];
  for (const [value, what] of invalid) {
    it(`refuses ${what}`, () => assert.equal(parseTraceparent(value), undefined));
  }
});

describe('tracingSettings', () => {
  it('exports nothing without an endpoint, and samples new traces at 1.0 by default all the same', () => {
    const s = tracingSettings({});
    assert.equal(s.url, undefined);
    assert.equal(s.sampler, 'parentbased_traceidratio');
    assert.equal(s.ratio, 1);
    assert.equal(s.serviceName, 'switchyard');
    const off = tracingSettings({ OTEL_TRACES_SAMPLER: 'always_off' });
    assert.deepEqual([off.sampler, off.warnings.length], ['always_off', 0], 'OTEL_TRACES_SAMPLER applies without an endpoint');
  });

  it('builds the resource: host.name, service.instance.id, OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME wins for service.name', () => {
    const plain = tracingSettings({});
    assert.equal(plain.resource['host.name'], hostname());
    assert.match(plain.resource['service.instance.id']!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(plain.resource['service.name'], 'switchyard');
    const s = tracingSettings({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod, team=edge%20ops,service.name=from-attrs,host.name=edge-1', OTEL_SERVICE_NAME: 'edge' });
    assert.deepEqual({ ...s.resource }, {
      'host.name': 'edge-1', 'service.instance.id': plain.resource['service.instance.id'], 'deployment.environment.name': 'prod', team: 'edge ops', 'service.name': 'edge',
    });
    assert.equal(s.serviceName, 'edge');
    const fromAttrs = tracingSettings({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' });
    assert.equal(fromAttrs.serviceName, 'from-attrs', 'service.name of OTEL_RESOURCE_ATTRIBUTES without OTEL_SERVICE_NAME');
    const bad = tracingSettings({ OTEL_RESOURCE_ATTRIBUTES: 'novalue,ok=1,bad=%zz' });
    assert.equal(bad.resource['ok'], '1');
    assert.equal(bad.warnings.length, 2, bad.warnings.join('; '));
  });

  it('logs the sampler in force at start: no ratio for always_off', async () => {
    for (const [env, expected] of [
      [{ OTEL_TRACES_SAMPLER: 'always_off' }, { sampler: 'always_off' }],
      [{ OTEL_TRACES_SAMPLER_ARG: '0.25' }, { sampler: 'parentbased_traceidratio', ratio: 0.25 }],
    ] as const) {
      const { logger, lines } = captureLogger();
      // An endpoint nobody listens on: nothing is exported before the shutdown.
      const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', ...env }, new Registry(), logger);
      await tracing.shutdown(0);
      const line = lines.find((l) => l['msg'] === 'exporting trace spans (OTLP/HTTP)');
      assert.ok(line, JSON.stringify(lines));
      assert.deepEqual([line['sampler'], line['ratio']], [expected.sampler, 'ratio' in expected ? expected.ratio : undefined]);
    }
  });

  it('samples everything by default with an endpoint; the traces endpoint wins over the base one', () => {
    const base = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
    assert.equal(base.url, 'http://collector:4318/v1/traces');
    assert.equal(base.sampler, 'parentbased_traceidratio');
    assert.equal(base.ratio, 1);
    const both = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' });
    assert.equal(both.url, 'http://b:4318/custom');
  });

  it('reads the sampler, its ratio and the service name; an unknown sampler or bad ratio is a warning', () => {
    const s = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25', OTEL_SERVICE_NAME: 'edge' });
    assert.deepEqual([s.sampler, s.ratio, s.serviceName, s.warnings.length], ['traceidratio', 0.25, 'edge', 0]);
    const bad = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_TRACES_SAMPLER_ARG: '2' });
    assert.equal(bad.sampler, 'parentbased_traceidratio');
    assert.equal(bad.ratio, 1);
    assert.equal(bad.warnings.length, 2);
    assert.match(bad.warnings[0]!, /OTEL_TRACES_SAMPLER=jaeger_remote is not supported/);
  });

  it('sends http/protobuf by default; http/json on request; the traces variable wins; grpc or anything else is a warning and http/protobuf', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    assert.deepEqual([tracingSettings(endpoint).protocol, tracingSettings(endpoint).warnings.length], ['http/protobuf', 0]);
    assert.equal(tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).protocol, 'http/json');
    assert.equal(tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }).protocol, 'http/protobuf');
    assert.equal(tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }).protocol, 'http/json');
    assert.equal(tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '' }).protocol, 'http/json');
    const grpc = tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' });
    assert.equal(grpc.protocol, 'http/protobuf');
    assert.deepEqual(grpc.warnings, ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc is not supported (Switchyard ships no gRPC exporter); spans are sent as http/protobuf']);
    const bogus = tracingSettings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' });
    assert.equal(bogus.protocol, 'http/protobuf');
    assert.deepEqual(bogus.warnings, ['OTEL_EXPORTER_OTLP_PROTOCOL=thrift is not supported (supported: http/protobuf, http/json); spans are sent as http/protobuf']);
    assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).warnings, [], 'no warning when nothing is exported');
  });

  it('OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn the export off', () => {
    assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).url, undefined);
    assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).url, undefined);
  });
});

describe('propagation without an exporter', () => {
  const tracing = new Tracing();

  it("passes a caller's traceparent on unchanged (its span stays the parent) with tracestate", () => {
    const t = traced(`00-${TRACE}-${SPAN}-01`, 'a=1');
    tracing.begin(t, 'GET', 0);
    assert.equal(t.traceId, TRACE);
    assert.equal(t.upstreamTraceparent, `00-${TRACE}-${SPAN}-01`);
    assert.equal(t.tracestate, 'a=1');
    assert.equal(t.span, undefined);
  });

  it('rewrites a higher version as 00', () => {
    const t = traced(`cc-${TRACE}-${SPAN}-01-more`);
    tracing.begin(t, 'GET', 0);
    assert.equal(t.upstreamTraceparent, `00-${TRACE}-${SPAN}-01`);
  });

  it('starts a new sampled trace (default ratio 1.0) for an invalid or absent one, dropping tracestate', () => {
    const seen = new Set<string>();
    for (const incoming of [undefined, '', `00-${TRACE}-${SPAN}-01-x`]) {
      const t = traced(incoming, 'a=1');
      tracing.begin(t, 'GET', 0);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(t.upstreamTraceparent);
      assert.ok(m, t.upstreamTraceparent);
      assert.equal(t.traceId, m[1]);
      assert.notEqual(t.traceId, TRACE);
      assert.equal(t.tracestate, undefined);
      seen.add(t.traceId);
    }
    assert.equal(seen.size, 3, 'a new id each time');
    for (const sampler of ['always_off', 'parentbased_always_off']) {
      const t = traced();
      new Tracing(tracingSettings({ OTEL_TRACES_SAMPLER: sampler })).begin(t, 'GET', 0);
      assert.ok(t.upstreamTraceparent.endsWith('-00'), `${sampler}: ${t.upstreamTraceparent}`);
    }
  });

  it('an unsampled request never reaches the exporter side: only sampled ones start a span', () => {
    let started = 0;
    const sink = {
      start: (): never => {
        started += 1;
        return { spanContext: () => ({}) } as never;
      },
      shutdown: (): Promise<void> => Promise.resolve(),
    };
    const off = new Tracing(tracingSettings({ OTEL_TRACES_SAMPLER: 'always_off' }), sink);
    for (let i = 0; i < 100; i++) off.begin(traced(), 'GET', 0);
    assert.equal(started, 0);
    const tenth = new Tracing(tracingSettings({ OTEL_TRACES_SAMPLER_ARG: '0.1' }), sink);
    let spans = 0;
    for (let i = 0; i < 1000; i++) {
      const t = traced();
      tenth.begin(t, 'GET', 0);
      if (t.span !== undefined) spans += 1;
    }
    assert.equal(started, spans);
    assert.ok(spans > 40 && spans < 200, `${spans} of 1000 at 0.1`);
  });

  it('the ratio sampler samples about its share of new traces', () => {
    const sampler = new Tracing(tracingSettings({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }));
    let sampled = 0;
    for (let i = 0; i < 10_000; i++) {
      const t = traced();
      sampler.begin(t, 'GET', 0);
      if (t.upstreamTraceparent.endsWith('-01')) sampled += 1;
    }
    assert.ok(sampled > 800 && sampled < 1200, `${sampled} of 10000 sampled at 0.1`);
    // A caller's decision wins with a parent-based sampler.
    const t = traced(`00-${TRACE}-${SPAN}-00`);
    new Tracing(tracingSettings({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' })).begin(t, 'GET', 0);
    assert.ok(t.upstreamTraceparent.endsWith('-00'));
  });
});
