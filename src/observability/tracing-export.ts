import type { Attributes, AttributeValue, Exception, HrTime, Link, Span, SpanContext, SpanStatus, TimeInput } from '@opentelemetry/api';
import { ExportResultCode, TraceState, type ExportResult, type InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter, type SpanProcessor, type TimedEvent } from '@opentelemetry/sdk-trace-base';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from './logger.js';
import type { OtlpProtocol, ParentContext, SpanSink, TracingSettings } from './tracing.js';

/**
 * The OpenTelemetry SDK side of tracing, loaded by `startTracing` (a dynamic import) only when an
 * OTLP endpoint is configured. The proxy decides sampling itself (tracing.ts) and starts spans
 * only for sampled requests. A span is a `RecordedSpan` here, not the SDK's tracer's: the SDK's
 * startSpan (contexts, sampler, id generator, span metrics, per-attribute validation and limits)
 * cost more than the export itself per span on the proxy's hot path, measured with a CPU profile
 * (docs/benchmarks.md, tracing); the ids come from tracing.ts, the attributes are the proxy's own
 * (valid by construction, a fixed small number). Spans go through a
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

/** performance.timeOrigin as [seconds, nanoseconds], and a performance.now() value as epoch HrTime. */
const ORIGIN_S = Math.floor(performance.timeOrigin / 1000);
const ORIGIN_NS = Math.round((performance.timeOrigin - ORIGIN_S * 1000) * 1e6);
function hrTime(perfNow: number): HrTime {
  const s = Math.floor(perfNow / 1000);
  const ns = ORIGIN_NS + Math.round((perfNow - s * 1000) * 1e6);
  return ns >= 1e9 ? [ORIGIN_S + s + 1, ns - 1e9] : [ORIGIN_S + s, ns];
}

/** A time of the Span API (performance.now() ms, epoch ms, Date or HrTime) as epoch HrTime. */
function toHrTime(time: TimeInput | undefined): HrTime {
  if (time === undefined) return hrTime(performance.now());
  if (Array.isArray(time)) return time as HrTime;
  const ms = time instanceof Date ? time.getTime() : time;
  if (ms <= performance.now()) return hrTime(ms);
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** STATUS_UNSET of the API's SpanStatusCode (a literal: the API module is not loaded for it). */
const STATUS_UNSET = 0;
/** SpanKind.SERVER of the API. */
const KIND_SERVER = 1;

/**
 * One exchange's SERVER span: the Span API for trace-span.ts (attributes, events, name, status,
 * end) and the ReadableSpan the BatchSpanProcessor and the OTLP exporters read. Ended once; after
 * that every change is ignored, as the SDK's span does.
 */
class RecordedSpan implements Span, ReadableSpan {
  readonly kind = KIND_SERVER;
  readonly startTime: HrTime;
  endTime: HrTime = [0, 0];
  duration: HrTime = [0, 0];
  status: SpanStatus = { code: STATUS_UNSET };
  readonly attributes: Attributes = {};
  readonly links: Link[] = [];
  readonly events: TimedEvent[] = [];
  ended = false;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;

  constructor(
    public name: string,
    start: number,
    private readonly context: SpanContext,
    readonly parentSpanContext: SpanContext | undefined,
    readonly resource: Resource,
    readonly instrumentationScope: InstrumentationScope,
    private readonly processor: SpanProcessor,
  ) {
    this.startTime = hrTime(start);
  }

  spanContext(): SpanContext {
    return this.context;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (!this.ended) this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    if (!this.ended) Object.assign(this.attributes, attributes);
    return this;
  }

  addEvent(name: string, attributes?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    const timeGiven = typeof attributes === 'number' || attributes instanceof Date || Array.isArray(attributes);
    this.events.push({
      name,
      attributes: timeGiven ? {} : (attributes as Attributes | undefined) ?? {},
      time: toHrTime(timeGiven ? attributes as TimeInput : time),
      droppedAttributesCount: 0,
    });
    return this;
  }

  addLink(link: Link): this {
    if (!this.ended) this.links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (!this.ended) this.status = status;
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.ended) return;
    this.ended = true;
    const end = toHrTime(endTime);
    this.endTime = end;
    let s = end[0] - this.startTime[0];
    let ns = end[1] - this.startTime[1];
    if (ns < 0) {
      s -= 1;
      ns += 1e9;
    }
    this.duration = s < 0 ? [0, 0] : [s, ns];
    this.processor.onEnd(this);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = typeof exception === 'string'
      ? { 'exception.message': exception }
      : { 'exception.type': exception.name, 'exception.message': exception.message, 'exception.stacktrace': exception.stack };
    this.addEvent('exception', attributes, time);
  }
}

const SCOPE: InstrumentationScope = { name: 'switchyard' };
/** TraceFlags.SAMPLED: every span here is sampled (only sampled requests get one). */
const FLAGS_SAMPLED = 1;

class OtelSink implements SpanSink {
  constructor(
    private readonly processor: SpanProcessor,
    private readonly resource: Resource,
    private readonly exporter: CountingExporter,
    private readonly logger: Logger | undefined,
  ) {}

  start(name: string, startTime: number, parent: ParentContext | undefined, traceId: string, spanId: string): Span {
    const traceState = parent?.tracestate === undefined ? undefined : new TraceState(parent.tracestate);
    const parentContext: SpanContext | undefined = parent === undefined ? undefined : {
      traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags & FLAGS_SAMPLED, isRemote: true, traceState,
    };
    const context: SpanContext = { traceId, spanId, traceFlags: FLAGS_SAMPLED, traceState };
    return new RecordedSpan(name, startTime, context, parentContext, this.resource, SCOPE, this.processor);
  }

  /**
   * Flush and stop within `timeoutMs`; when the last export failed, no wait at all: the collector is
   * down or hanging, and waiting for it would only delay the exit (the spans are dropped, and counted).
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.exporter.failing) {
      this.logger?.warn({ spans: this.exporter.queued }, 'trace export is failing; not waiting to flush the queued spans at shutdown');
      this.processor.shutdown().catch(() => undefined);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.processor.shutdown().catch(() => undefined), deadline]);
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
  return new OtelSink(new QueueGate(batch, exporter, maxQueueSize, counters.dropped), resourceFromAttributes(settings.resource), exporter, logger);
}

function positiveEnv(name: string): number | undefined {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
