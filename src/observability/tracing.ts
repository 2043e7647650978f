import { randomFillSync, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Span } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.js';
import type { SinkOptions } from './tracing-export.js';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for every proxied request, and the
 * choice of which requests are recorded. Nothing here loads the OpenTelemetry SDK: that is
 * tracing-export.ts, imported dynamically only when an OTLP endpoint is configured, and only
 * sampled requests reach it (`SpanSink.start`). Per request without an exporter: one parse of an
 * incoming `traceparent` (a loop over 55 characters, no regex), at most two hex ids cut from a
 * pre-filled random buffer, and the outgoing header string.
 *
 * What goes upstream (`traceparent`, always; `tracestate` when the incoming `traceparent` was valid):
 * - Exporting, request sampled: the exported span's trace id and span id (the span's parent is the
 *   incoming span, if any), flags with the sampled bit set.
 * - Exporting, not sampled: the incoming trace id (or a new one) and a new span id, sampled bit
 *   clear: what the SDK does for a span it does not record.
 * - Not exporting: a valid incoming `traceparent` goes on with its trace id and parent id (no span
 *   of ours exists, so the upstream's parent stays the caller's span and the trace stays
 *   connected: what OpenTelemetry's no-op tracer does); without one, a new trace id and span id.
 *   The sampled bit is the sampler's decision either way (by default, parentbased_traceidratio at
 *   1.0: a new trace goes out sampled, so instrumented upstreams record it; their parent span, ours,
 *   is then not exported: a trace viewer shows them under a missing parent).
 */

/** Sampler names of OTEL_TRACES_SAMPLER that Switchyard implements. */
export const SAMPLERS = [
  'always_on', 'always_off', 'traceidratio',
  'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio',
] as const;
export type SamplerName = typeof SAMPLERS[number];

/** OTLP/HTTP encodings of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL that Switchyard ships an exporter for. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = typeof OTLP_PROTOCOLS[number];

export interface TracingSettings {
  /** OTLP/HTTP traces URL (`…/v1/traces`); undefined = no export (the SDK is never loaded). */
  readonly url: string | undefined;
  /** How spans are encoded: `http/protobuf` (the specification's default) or `http/json`. */
  readonly protocol: OtlpProtocol;
  readonly serviceName: string;
  /**
   * The spans' resource: `host.name`, `service.instance.id` (a random UUID per process), then
   * OTEL_RESOURCE_ATTRIBUTES (which may override those two), then `service.name` = serviceName.
   */
  readonly resource: Readonly<Record<string, string>>;
  readonly sampler: SamplerName;
  /** Ratio of the `traceidratio` samplers, 0..1. */
  readonly ratio: number;
  /** Problems with the environment (unknown sampler, bad ratio): logged as warnings at start. */
  readonly warnings: readonly string[];
}

/**
 * The settings from the standard OpenTelemetry variables:
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`),
 * `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
 * specification's default, or `http/json`; `grpc` is not shipped: a warning, and http/protobuf),
 * `OTEL_SERVICE_NAME` (default: `service.name` of OTEL_RESOURCE_ATTRIBUTES, else `switchyard`),
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
 * Default sampler: `parentbased_traceidratio` with ratio 1.0, with or without an endpoint: a new
 * trace goes upstream sampled (`01`), so an upstream with OpenTelemetry's default parent-based
 * sampler records it as it would as a root; without an endpoint the upstream's parent span (ours)
 * is not exported. A caller's decision is passed on. `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` turn the export off. As the OpenTelemetry specification asks of SDKs,
 * an unknown sampler or a bad ratio is a warning and the default applies, never a failed start.
 */
export function tracingSettings(env: Readonly<Record<string, string | undefined>>): TracingSettings {
  const warnings: string[] = [];
  const tracesEndpoint = nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const baseEndpoint = nonEmpty(env['OTEL_EXPORTER_OTLP_ENDPOINT']);
  let url = tracesEndpoint ?? (baseEndpoint === undefined ? undefined : `${baseEndpoint.replace(/\/+$/, '')}/v1/traces`);
  const exporter = nonEmpty(env['OTEL_TRACES_EXPORTER'])?.toLowerCase();
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true' || exporter === 'none') url = undefined;
  else if (exporter !== undefined && exporter !== 'otlp') warnings.push(`OTEL_TRACES_EXPORTER=${exporter} is not supported; only otlp (OTLP over HTTP) is`);
  let protocol: OtlpProtocol = 'http/protobuf';
  const protocolVariable = nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) === undefined ? 'OTEL_EXPORTER_OTLP_PROTOCOL' : 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL';
  const named = nonEmpty(env[protocolVariable])?.toLowerCase();
  if (named !== undefined) {
    if ((OTLP_PROTOCOLS as readonly string[]).includes(named)) protocol = named as OtlpProtocol;
    else if (url !== undefined) {
      const why = named === 'grpc' ? 'Switchyard ships no gRPC exporter' : `supported: ${OTLP_PROTOCOLS.join(', ')}`;
      warnings.push(`${protocolVariable}=${named} is not supported (${why}); spans are sent as http/protobuf`);
    }
  }
  if (url !== undefined) {
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      warnings.push(`the OTLP endpoint ${JSON.stringify(url)} is not an http(s) URL; spans are not exported`);
      url = undefined;
    }
  }
  const fallback: SamplerName = 'parentbased_traceidratio';
  const samplerName = nonEmpty(env['OTEL_TRACES_SAMPLER'])?.toLowerCase();
  let sampler: SamplerName = fallback;
  if (samplerName !== undefined) {
    if ((SAMPLERS as readonly string[]).includes(samplerName)) sampler = samplerName as SamplerName;
    else warnings.push(`OTEL_TRACES_SAMPLER=${samplerName} is not supported (supported: ${SAMPLERS.join(', ')}); using ${fallback}`);
  }
  let ratio = 1;
  const arg = nonEmpty(env['OTEL_TRACES_SAMPLER_ARG']);
  if (arg !== undefined && sampler.endsWith('traceidratio')) {
    const value = Number(arg);
    if (Number.isFinite(value) && value >= 0 && value <= 1) ratio = value;
    else warnings.push(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio between 0 and 1; using 1.0`);
  }
  const attributes = resourceAttributes(env['OTEL_RESOURCE_ATTRIBUTES'], warnings);
  const serviceName = nonEmpty(env['OTEL_SERVICE_NAME']) ?? nonEmpty(attributes['service.name']) ?? 'switchyard';
  const resource = Object.freeze({ 'host.name': hostname(), 'service.instance.id': PROCESS_INSTANCE_ID, ...attributes, 'service.name': serviceName });
  return Object.freeze({ url, protocol, serviceName, resource, sampler, ratio, warnings: Object.freeze(warnings) });
}

/** `service.instance.id` of this process (each worker is its own instance). */
const PROCESS_INSTANCE_ID = randomUUID();

/**
 * OTEL_RESOURCE_ATTRIBUTES: `key1=value1,key2=value2`, values percent-encoded (W3C Baggage
 * octets). A malformed entry is a warning and skipped; the others apply.
 */
export function resourceAttributes(value: string | undefined, warnings: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined || value.trim() === '') return out;
  for (const entry of value.split(',')) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    const key = eq === -1 ? '' : entry.slice(0, eq).trim();
    let decoded: string | undefined;
    try {
      decoded = decodeURIComponent(entry.slice(eq + 1).trim());
    } catch {
      decoded = undefined;
    }
    if (key === '' || decoded === undefined) warnings.push(`OTEL_RESOURCE_ATTRIBUTES: ${JSON.stringify(entry.trim())} is not key=value (percent-encoded); skipped`);
    else out[key] = decoded;
  }
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** The remote parent of a span: a parsed incoming `traceparent` (and its `tracestate`). */
export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  readonly tracestate: string | undefined;
}

/** The exporting side (tracing-export.ts): only sampled requests get here. */
export interface SpanSink {
  /**
   * A SERVER span with ids `traceId` (the parent's when given) and `spanId`, started at `startTime`
   * (a performance.now() value), child of `parent` when given.
   */
  start(name: string, startTime: number, parent: ParentContext | undefined, traceId: string, spanId: string): Span;
  /** Export what is queued and stop, within `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** What an exchange (or tunnel) carries for tracing: the incoming headers, and what `begin` decided. */
export interface Traced {
  /** The client's `traceparent` ('' when it sent several: invalid). Filled by scanRequestHeaders. */
  traceparent: string | undefined;
  /** The client's `tracestate` (several fields joined with `,`); cleared by `begin` when not passed on. */
  tracestate: string | undefined;
  /** The trace id of this exchange (set by `begin`). */
  traceId: string;
  /** The `traceparent` value sent upstream (set by `begin`). */
  upstreamTraceparent: string;
  /** The exchange's span, when the request is sampled and spans are exported. */
  span: Span | undefined;
}

const HEX = '0123456789abcdef';
/** Two-digit lower-case hex of every byte, for the flags field. */
const BYTE_HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => HEX[i >> 4]! + HEX[i & 15]!);
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Value of a lower-case hex digit, -1 for anything else (upper case is invalid in traceparent). */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Whether `v[from, to)` is lower-case hex with at least one non-zero digit. */
function nonZeroHex(v: string, from: number, to: number): boolean {
  let any = 0;
  for (let i = from; i < to; i++) {
    const d = hexValue(v.charCodeAt(i));
    if (d < 0) return false;
    any |= d;
  }
  return any !== 0;
}

/**
 * Parse a `traceparent` value by hand (spec §3.2): `version-traceid-parentid-flags`, lower-case
 * hex. Version `ff` is invalid; version `00` must be exactly 55 characters; a higher version is
 * parsed as 00 where its first four fields are (§3.2.4: more fields may follow after a `-`).
 * All-zero trace or parent ids are invalid. Returns undefined when invalid.
 */
export function parseTraceparent(v: string): { traceId: string; spanId: string; flags: number; version: number } | undefined {
  const n = v.length;
  if (n < 55) return undefined;
  const v0 = hexValue(v.charCodeAt(0));
  const v1 = hexValue(v.charCodeAt(1));
  if (v0 < 0 || v1 < 0) return undefined;
  const version = v0 * 16 + v1;
  if (version === 255) return undefined;
  if (version === 0 ? n !== 55 : n > 55 && v.charCodeAt(55) !== 45) return undefined;
  if (v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return undefined;
  if (!nonZeroHex(v, 3, 35) || !nonZeroHex(v, 36, 52)) return undefined;
  const f0 = hexValue(v.charCodeAt(53));
  const f1 = hexValue(v.charCodeAt(54));
  if (f0 < 0 || f1 < 0) return undefined;
  return { traceId: v.slice(3, 35), spanId: v.slice(36, 52), flags: f0 * 16 + f1, version };
}

/** Random bytes for ids, filled 4 KiB at a time (one crypto call per ~170 requests). */
class IdSource {
  private readonly buf = Buffer.allocUnsafe(4096);
  private off = 4096;

  private take(n: number): number {
    if (this.off + n > this.buf.length) {
      randomFillSync(this.buf);
      this.off = 0;
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  traceId(): string {
    for (;;) {
      const at = this.take(16);
      const id = this.buf.toString('hex', at, at + 16);
      if (id !== ZERO_TRACE) return id;
    }
  }

  spanId(): string {
    for (;;) {
      const at = this.take(8);
      const id = this.buf.toString('hex', at, at + 8);
      if (id !== ZERO_SPAN) return id;
    }
  }

  /** A uniform 32-bit number, for the ratio sampler. */
  uint32(): number {
    const at = this.take(4);
    return this.buf.readUInt32LE(at);
  }
}

const SAMPLED = 1;

/**
 * Per-proxy trace propagation and sampling (one per process: each worker has its own and exports
 * its own spans). `begin` is the per-request step; `sink` is set once the exporter is loaded.
 */
export class Tracing {
  readonly settings: TracingSettings;
  private readonly ids = new IdSource();
  private readonly parentBased: boolean;
  /** Root decision: 0 = never, 1 = always, 2 = by ratio. */
  private readonly rootMode: 0 | 1 | 2;
  /** Largest uint32 sampled by the ratio (as OpenTelemetry's TraceIdRatioBasedSampler's bound). */
  private readonly bound: number;
  private sink: SpanSink | undefined;

  constructor(settings: TracingSettings = tracingSettings({}), sink?: SpanSink) {
    this.settings = settings;
    this.sink = sink;
    const s = settings.sampler;
    this.parentBased = s.startsWith('parentbased_');
    const root = this.parentBased ? s.slice('parentbased_'.length) : s;
    this.rootMode = root === 'always_on' ? 1 : root === 'always_off' ? 0 : 2;
    this.bound = Math.floor(settings.ratio * 0xffffffff);
    if (this.rootMode === 2 && settings.ratio >= 1) this.rootMode = 1;
    if (this.rootMode === 2 && settings.ratio <= 0) this.rootMode = 0;
  }

  /** Spans are exported. */
  get exporting(): boolean {
    return this.sink !== undefined;
  }

  /** Attach the exporter (tracing-export.ts). */
  attach(sink: SpanSink): void {
    this.sink = sink;
  }

  /** A new trace's sampling decision. */
  private sampleRoot(): boolean {
    const mode = this.rootMode;
    return mode === 1 || (mode === 2 && this.ids.uint32() <= this.bound);
  }

  /**
   * Decide this exchange's trace: its trace id, the `traceparent` sent upstream, and its span
   * when sampled and exporting. `name` is the span's name; `start` the exchange's performance.now().
   */
  begin(t: Traced, name: string, start: number): void {
    const incoming = t.traceparent;
    const parsed = incoming === undefined || incoming === '' ? undefined : parseTraceparent(incoming);
    if (parsed === undefined) t.tracestate = undefined;
    const sampled = parsed !== undefined && this.parentBased ? (parsed.flags & SAMPLED) !== 0 : this.sampleRoot();
    const sink = this.sink;
    if (sink !== undefined && sampled) {
      const traceId = parsed === undefined ? this.ids.traceId() : parsed.traceId;
      const spanId = this.ids.spanId();
      t.span = sink.start(name, start, parsed === undefined ? undefined : {
        traceId: parsed.traceId, spanId: parsed.spanId, flags: parsed.flags, tracestate: t.tracestate,
      }, traceId, spanId);
      t.traceId = traceId;
      t.upstreamTraceparent = `00-${traceId}-${spanId}-${BYTE_HEX[(parsed === undefined ? 0 : parsed.flags) | SAMPLED]}`;
      return;
    }
    const flags = parsed === undefined ? (sampled ? SAMPLED : 0) : (parsed.flags & ~SAMPLED) | (sampled ? SAMPLED : 0);
    if (parsed === undefined) {
      const traceId = this.ids.traceId();
      t.traceId = traceId;
      t.upstreamTraceparent = `00-${traceId}-${this.ids.spanId()}-${BYTE_HEX[flags]}`;
      return;
    }
    t.traceId = parsed.traceId;
    if (sink !== undefined) {
      t.upstreamTraceparent = `00-${parsed.traceId}-${this.ids.spanId()}-${BYTE_HEX[flags]}`;
    } else {
      // Not exporting: the caller's span stays the parent. A version-00 value unchanged is sent as is.
      t.upstreamTraceparent = parsed.version === 0 && flags === parsed.flags
        ? incoming!
        : `00-${parsed.traceId}-${parsed.spanId}-${BYTE_HEX[flags]}`;
    }
  }

  /** Export what is queued and stop (bounded); nothing when not exporting. */
  async shutdown(timeoutMs: number): Promise<void> {
    const sink = this.sink;
    this.sink = undefined;
    if (sink !== undefined) await sink.shutdown(timeoutMs);
  }
}

/** The sampler in force for the start-up log: the ratio only for the ratio samplers. */
export function samplerInForce(settings: TracingSettings): { sampler: SamplerName; ratio?: number } {
  return settings.sampler.endsWith('traceidratio') ? { sampler: settings.sampler, ratio: settings.ratio } : { sampler: settings.sampler };
}

/** Longest wait at shutdown for the last spans to reach the collector. */
export const TRACE_FLUSH_MS = 2_000;

/**
 * Tracing for one process from the environment (tracingSettings): warnings logged, and with an
 * endpoint the OpenTelemetry SDK loaded (dynamic import: without one it is never loaded) and its
 * drop counters registered on `registry`. `sinkOptions` is for tests and the bench.
 */
export async function startTracing(
  env: Readonly<Record<string, string | undefined>>,
  registry: Registry,
  logger: Logger | undefined,
  sinkOptions?: SinkOptions,
): Promise<Tracing> {
  const settings = tracingSettings(env);
  for (const warning of settings.warnings) logger?.warn(warning);
  const tracing = new Tracing(settings);
  if (settings.url !== undefined) {
    const { createSpanSink } = await import('./tracing-export.js');
    tracing.attach(await createSpanSink(settings, registry, logger, sinkOptions));
    logger?.info({ url: settings.url, protocol: settings.protocol, serviceName: settings.serviceName, ...samplerInForce(settings) }, 'exporting trace spans (OTLP/HTTP)');
  } else {
    logger?.debug(samplerInForce(settings), 'trace spans are not exported (no OTLP endpoint); traceparent is propagated');
  }
  return tracing;
}
