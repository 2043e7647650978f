/**
 * Micro-measure of the tracing work per request, in-process, no network to the proxy:
 *   node --import tsx bench/tracing-micro.ts
 * - begin(): the propagation step every request pays (no exporter; with and without an incoming traceparent)
 * - a sampled span: begin() with an exporter + the span's attributes and end, exported to a local
 *   sink (OTLP/HTTP JSON) or to an exporter that drops everything (the SDK without serialisation).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { startTracing, Tracing, type Traced } from '../src/observability/tracing.js';

function traced(traceparent?: string): Traced {
  return { traceparent, tracestate: undefined, traceId: '', upstreamTraceparent: '', span: undefined };
}

function perCall(label: string, n: number, fn: (i: number) => void): void {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${label.padEnd(58)} ${((wall * 1000) / n).toFixed(3).padStart(8)} µs wall/call  ${(((cpu.user + cpu.system)) / n).toFixed(3).padStart(8)} µs cpu/call\n`);
}

const off = new Tracing();
const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
perCall('begin(), no exporter, no incoming traceparent', 1_000_000, () => off.begin(traced(), 'GET', 0));
perCall('begin(), no exporter, incoming traceparent', 1_000_000, () => off.begin(traced(incoming), 'GET', 0));

let spans = 0;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] };
    for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
    res.end('{}');
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
const on = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url }, new Registry(), undefined, { maxQueueSize: 1_000_000, maxExportBatchSize: 512, scheduledDelayMillis: 1 });
const attrs = {
  // What trace-span.ts sets for a plain request.
  'http.request.method': 'GET', 'url.path': '/a/b', 'url.scheme': 'http',
  'network.peer.address': '127.0.0.1', 'client.address': '127.0.0.1', 'server.address': 'app.example', 'server.port': 8080,
  'http.response.status_code': 200, 'http.route': '/', 'switchyard.route': 'app', 'switchyard.endpoint': 'app/a1', 'switchyard.upstream': 'http://127.0.0.1:9000',
};
const n = 20_000;
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
while (spans < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${'sampled span, exported (OTLP/HTTP JSON; sink in this process)'.padEnd(58)} ${((wall * 1000) / n).toFixed(3).padStart(8)} µs wall/span  ${((cpu.user + cpu.system) / n).toFixed(3).padStart(8)} µs cpu/span (sink's JSON.parse included), ${spans} received\n`);
await on.shutdown(1000);
server.close();
