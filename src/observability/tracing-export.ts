import { ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Span, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, TraceState, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from './logger.js';
import type { OtlpProtocol, ParentContext, SpanSink, TracingSettings } from './tracing.js';

/**
 * The OpenTelemetry SDK side of tracing, loaded by `startTracing` (a dynamic import) only when an
 * OTLP endpoint is configured. The proxy decides sampling itself (tracing.ts) and starts spans
 * only for sampled requests, so the SDK's own sampler is AlwaysOn. Spans go through a
 * BatchSpanProcessor (bounded queue; `OTEL_BSP_*` variables apply) to the OTLP/HTTP exporter of
 * `settings.protocol`: protobuf (exporter-trace-otlp-proto, the default: about 40% of the JSON
 * exporter's serialisation time and bytes per span, bench/tracing-micro.ts) or JSON
 * (exporter-trace-otlp-http). Only the chosen exporter's package is loaded.
 * An unreachable or slow collector costs the request path nothing: `span.end()` only appends to
 * the queue; a full queue drops the span, and a failed export drops its batch, both counted in
 * `switchyard_trace_spans_dropped_total{reason}` and logged once per outage.
 */

export interface SinkOptions {
  /** BatchSpanProcessor settings (defaults: the SDK's, or OTEL_BSP_* variables). */
  readonly scheduledDelayMillis?: number;
  readonly maxQueueSize?: number;
  readonly maxExportBatchSize?: number;
  readonly exportTimeoutMillis?: number;
  /** Exporter HTTP timeout per export (default 10 s). */
  readonly timeoutMillis?: number;
}

/** Spans dropped (queue full, export failed) and exported, on the process's registry. */
function spanCounters(registry: Registry): { dropped: Counter<'reason'>; exported: Counter } {
  const dropped = (registry.getSingleMetric('switchyard_trace_spans_dropped_total') as Counter<'reason'> | undefined) ?? new Counter({
    name: 'switchyard_trace_spans_dropped_total',
    help: 'Trace spans not exported: the export queue was full (queue_full) or the collector did not take them (export_failed)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const exported = (registry.getSingleMetric('switchyard_trace_spans_exported_total') as Counter | undefined) ?? new Counter({
    name: 'switchyard_trace_spans_exported_total',
    help: 'Trace spans the OTLP collector accepted',
    registers: [registry],
  });
  return { dropped, exported };
}

/**
 * Counts what leaves the queue: spans handed to the exporter, and whether the collector took them.
 * With QueueGate it mirrors the BatchSpanProcessor's queue length exactly (the processor removes
 * spans from its queue only to export them).
 */
class CountingExporter implements SpanExporter {
  queued = 0;
  /** The last export failed (the collector is down or refused it). */
  failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly counters: ReturnType<typeof spanCounters>,
    private readonly logger: Logger | undefined,
    private readonly url: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.queued -= spans.length;
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this.counters.exported.inc(spans.length);
        if (this.failing) {
          this.failing = false;
          this.logger?.info({ url: this.url }, 'trace export recovered');
        }
      } else {
        this.counters.dropped.inc({ reason: 'export_failed' }, spans.length);
        if (!this.failing) {
          this.failing = true;
          this.logger?.warn({ url: this.url, err: result.error?.message, spans: spans.length }, 'trace export failed; spans are dropped until the collector answers (switchyard_trace_spans_dropped_total)');
        }
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** In front of the BatchSpanProcessor: drops (and counts) a span its full queue would drop silently. */
class QueueGate implements SpanProcessor {
  constructor(
    private readonly inner: SpanProcessor,
    private readonly exporter: CountingExporter,
    private readonly maxQueueSize: number,
    private readonly dropped: Counter<'reason'>,
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.exporter.queued >= this.maxQueueSize) {
      this.dropped.inc({ reason: 'queue_full' });
      return;
    }
    this.exporter.queued += 1;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

class OtelSink implements SpanSink {
  constructor(
    private readonly provider: BasicTracerProvider,
    private readonly tracer: Tracer,
    private readonly exporter: CountingExporter,
    private readonly logger: Logger | undefined,
  ) {}

  start(name: string, startTime: number, parent: ParentContext | undefined): Span {
    const context = parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.flags & TraceFlags.SAMPLED,
      isRemote: true,
      traceState: parent.tracestate === undefined ? undefined : new TraceState(parent.tracestate),
    });
    return this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime }, context);
  }

  /**
   * Flush and stop within `timeoutMs`; when the last export failed, no wait at all: the collector is
   * down or hanging, and waiting for it would only delay the exit (the spans are dropped, and counted).
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.exporter.failing) {
      this.logger?.warn({ spans: this.exporter.queued }, 'trace export is failing; not waiting to flush the queued spans at shutdown');
      this.provider.shutdown().catch(() => undefined);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), deadline]);
    clearTimeout(timer);
  }
}

/** The OTLP/HTTP exporter of `protocol`; only its package is imported. */
async function otlpExporter(protocol: OtlpProtocol, config: { url: string; timeoutMillis: number | undefined }): Promise<SpanExporter> {
  const { OTLPTraceExporter } = protocol === 'http/json'
    ? await import('@opentelemetry/exporter-trace-otlp-http')
    : await import('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter(config);
}

/** The SDK's exporter and processor for `settings.url` (which must be set). */
export async function createSpanSink(settings: TracingSettings, registry: Registry, logger: Logger | undefined, options: SinkOptions = {}): Promise<SpanSink> {
  const url = settings.url!;
  const counters = spanCounters(registry);
  const inner = await otlpExporter(settings.protocol, { url, timeoutMillis: options.timeoutMillis });
  const exporter = new CountingExporter(inner, counters, logger, url);
  // The gate and the processor must agree on the bound: one value, given to both.
  const maxQueueSize = options.maxQueueSize ?? positiveEnv('OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048;
  const batch = new BatchSpanProcessor(exporter, {
    scheduledDelayMillis: options.scheduledDelayMillis,
    maxQueueSize,
    maxExportBatchSize: options.maxExportBatchSize,
    exportTimeoutMillis: options.exportTimeoutMillis,
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes(settings.resource),
    sampler: new AlwaysOnSampler(),
    spanProcessors: [new QueueGate(batch, exporter, maxQueueSize, counters.dropped)],
  });
  return new OtelSink(provider, provider.getTracer('switchyard'), exporter, logger);
}

function positiveEnv(name: string): number | undefined {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
