/**
 * Micro-measure of the tracing work per request, in-process, no network to the proxy:
 *   node --import tsx bench/tracing-micro.ts
 * - begin(): the propagation step every request pays (no exporter; with and without an incoming traceparent)
 * - OTLP serialisation alone, per span, in batches of 512 (what the BatchSpanProcessor hands the
 *   exporter): protobuf (exporter-trace-otlp-proto, the default) and JSON (exporter-trace-otlp-http)
 * - a sampled span end to end per protocol: begin() with an exporter + the span's attributes and
 *   end, batches sent over HTTP to a sink in this process that only drains the bodies (spans are
 *   counted by switchyard_trace_spans_exported_total, so neither protocol pays for decoding)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { startTracing, Tracing, type OtlpProtocol, type Traced } from '../src/observability/tracing.js';

function traced(traceparent?: string): Traced {
  return { traceparent, tracestate: undefined, traceId: '', upstreamTraceparent: '', span: undefined };
}

/** Wall and CPU µs per call of `fn` (per item when each call handles `items`). */
function perCall(label: string, n: number, fn: (i: number) => void, items = 1): void {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const unit = items === 1 ? 'call' : 'span';
  process.stdout.write(`${label.padEnd(72)} ${((wall * 1000) / n / items).toFixed(3).padStart(8)} µs wall/${unit}  ${(((cpu.user + cpu.system)) / n / items).toFixed(3).padStart(8)} µs cpu/${unit}\n`);
}

const off = new Tracing();
const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
perCall('begin(), no exporter, no incoming traceparent', 1_000_000, () => off.begin(traced(), 'GET', 0));
perCall('begin(), no exporter, incoming traceparent', 1_000_000, () => off.begin(traced(incoming), 'GET', 0));

const attrs = {
  // What trace-span.ts sets for a plain request.
  'http.request.method': 'GET', 'url.path': '/a/b', 'url.scheme': 'http',
  'network.peer.address': '127.0.0.1', 'client.address': '127.0.0.1', 'server.address': 'app.example', 'server.port': 8080,
  'http.response.status_code': 200, 'http.route': '/', 'switchyard.route': 'app', 'switchyard.endpoint': 'app/a1', 'switchyard.upstream': 'http://127.0.0.1:9000',
};

// Serialisation alone: one batch of 512 finished spans, encoded by each exporter's serializer
// (@opentelemetry/otlp-transformer, which both exporter packages use and bring).
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'switchyard' }),
  spanProcessors: [new SimpleSpanProcessor(memory)],
});
const tracer = provider.getTracer('switchyard');
for (let i = 0; i < 512; i++) {
  const span = tracer.startSpan('GET', { kind: SpanKind.SERVER });
  span.setAttributes(attrs);
  span.updateName('GET /');
  span.end();
}
const batch = memory.getFinishedSpans();
const { JsonTraceSerializer, ProtobufTraceSerializer } = await import('@opentelemetry/otlp-transformer');
for (const [label, serializer] of [['protobuf', ProtobufTraceSerializer], ['JSON', JsonTraceSerializer]] as const) {
  const bytes = serializer.serializeRequest(batch)!.length;
  perCall(`OTLP/${label} serialisation, batches of 512 (${(bytes / batch.length).toFixed(0)} bytes/span)`, 200, () => serializer.serializeRequest(batch), batch.length);
}
await provider.shutdown();

let bytes = 0;
const server = createServer((req, res) => {
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => res.end());
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;

async function exported(registry: Registry): Promise<number> {
  const metric = registry.getSingleMetric('switchyard_trace_spans_exported_total');
  return metric === undefined ? 0 : (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function endToEnd(protocol: OtlpProtocol, n: number, print = true): Promise<void> {
  const registry = new Registry();
  const on = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: protocol }, registry, undefined, { maxQueueSize: 1_000_000, maxExportBatchSize: 512, scheduledDelayMillis: 1 });
  bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = traced();
    on.begin(t, 'GET', performance.now());
    t.span!.setAttributes(attrs);
    t.span!.updateName('GET /');
    t.span!.end();
    if (i % 512 === 0) await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 30_000;
  let spans = 0;
  while ((spans = await exported(registry)) < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (print) process.stdout.write(`${`sampled span, exported (OTLP/HTTP ${protocol}; sink in this process)`.padEnd(72)} ${((wall * 1000) / n).toFixed(3).padStart(8)} µs wall/span  ${((cpu.user + cpu.system) / n).toFixed(3).padStart(8)} µs cpu/span, ${spans} exported, ${(bytes / n).toFixed(0)} bytes/span\n`);
  await on.shutdown(1000);
}

// A warm-up run of each first (the process's first exports also pay for compiling the SDK's code), then alternating.
for (const protocol of ['http/json', 'http/protobuf'] as const) await endToEnd(protocol, 5_000, false);
for (const protocol of ['http/protobuf', 'http/json', 'http/protobuf', 'http/json'] as const) await endToEnd(protocol, 20_000);
server.close();
