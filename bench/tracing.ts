/**
 * The tracing phase (`--only tracing`): Switchyard with tracing off against Switchyard exporting
 * spans over OTLP/HTTP to a local sink, at ratio 0.1 and at 1.0 (`parentbased_traceidratio`; wrk
 * sends no traceparent, so the ratio decides every request). Goal (issue 9): requests/s at 0.1 ≥
 * 0.95 × tracing off. The sink is a node server on 127.0.0.1 in the orchestrator (on the load CPU),
 * answering 200 to /v1/traces and counting the spans it receives.
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

async function startSink(): Promise<TraceSink> {
  const sink = { url: '', spans: 0, batches: 0, close: (): Promise<void> => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
          for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) sink.spans += ss.spans?.length ?? 0;
          sink.batches += 1;
        } catch {
          // not JSON: counted as nothing
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
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
