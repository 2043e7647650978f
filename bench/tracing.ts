/**
 * The tracing phase (`--only tracing`): Switchyard with tracing off against Switchyard exporting
 * spans over OTLP/HTTP to a local sink, at ratio 0.1 and at 1.0 (`parentbased_traceidratio`; wrk
 * sends no traceparent, so the ratio decides every request). Goal (issue 9): requests/s at 0.1 ≥
 * 0.95 × tracing off. The sink is a node server on 127.0.0.1 in the orchestrator (on the load CPU),
 * answering 200 to /v1/traces and counting the spans it receives (protobuf, the default encoding,
 * or JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json).
 *
 * BENCH_TRACING_BEFORE_CLI=/path/to/old/dist/cli.js adds `switchyard-before`: a build from before
 * tracing existed, against which `switchyard-trace-off` shows what propagation alone costs.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSwitchyard } from './switchyard-target.js';
import type { Target } from './targets.js';

export interface TraceSink {
  readonly url: string;
  /** Spans received so far. */
  spans: number;
  batches: number;
  close(): Promise<void>;
}

/**
 * The spans in an OTLP ExportTraceServiceRequest encoded as protobuf (what the default
 * http/protobuf exporter sends): resource_spans (field 1) → scope_spans (2) → spans (2), counted
 * without decoding them. Throws on a body that is not protobuf.
 */
export function protobufSpanCount(buf: Uint8Array, start = 0, end = buf.length, depth = 0): number {
  let i = start;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (i >= end || shift > 63) throw new Error('bad varint');
      const b = buf[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  let count = 0;
  while (i < end) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const length = varint();
      if (i + length > end) throw new Error('field past the end');
      if (Math.floor(tag / 8) === (depth === 0 ? 1 : 2)) count += depth === 2 ? 1 : protobufSpanCount(buf, i, i + length, depth + 1);
      i += length;
    } else throw new Error(`wire type ${wire}`);
  }
  return count;
}

async function startSink(): Promise<TraceSink> {
  const sink = { url: '', spans: 0, batches: 0, close: (): Promise<void> => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const json = req.headers['content-type'] === 'application/json';
      if (req.url === '/v1/traces') {
        try {
          if (json) {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
            for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) sink.spans += ss.spans?.length ?? 0;
          } else {
            sink.spans += protobufSpanCount(Buffer.concat(chunks));
          }
          sink.batches += 1;
        } catch {
          // not OTLP: counted as nothing
        }
      }
      // An empty ExportTraceServiceResponse in either encoding.
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return sink;
}

let shared: Promise<TraceSink> | undefined;

/** The phase's one sink, started by the first target that needs it. */
export function traceSink(): Promise<TraceSink> {
  shared ??= startSink();
  return shared;
}

export async function closeTraceSink(): Promise<number> {
  const sink = shared;
  shared = undefined;
  if (sink === undefined) return 0;
  const s = await sink;
  await s.close();
  return s.spans;
}

/** Environment without OpenTelemetry variables (the orchestrator's must not leak into the targets). */
function withoutOtel(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) env[name] = undefined;
  return env;
}

/** Switchyard (one process) with tracing off (`ratio` undefined) or exporting at `ratio`; `cli`: another build. */
function tracingTarget(name: string, ratio: number | undefined, cli?: string): Target {
  return {
    name,
    start: async (ctx, placement) => {
      const env = withoutOtel();
      if (ratio !== undefined) {
        const sink = await traceSink();
        env['OTEL_EXPORTER_OTLP_ENDPOINT'] = sink.url;
        env['OTEL_TRACES_SAMPLER'] = 'parentbased_traceidratio';
        env['OTEL_TRACES_SAMPLER_ARG'] = String(ratio);
      }
      return startSwitchyard(ctx, name, { policies: false, workers: 1, env, cli }, placement);
    },
  };
}

const before = process.env['BENCH_TRACING_BEFORE_CLI'];

export const TRACING_TARGETS: readonly Target[] = [
  tracingTarget('switchyard-trace-off', undefined),
  tracingTarget('switchyard-trace-0.1', 0.1),
  tracingTarget('switchyard-trace-1.0', 1),
  ...(before === undefined || before === '' ? [] : [tracingTarget('switchyard-before', undefined, before)]),
];

/** Issue 9: tracing on at ratio 0.1 costs at most 5% of requests/s. */
export const TRACING_RATIO_GOAL = 0.95;
