import type { Logger } from 'pino';
import { cutText, fitsLine } from './line-bound.js';
import { lineWriter } from './logger.js';

/** Characters that force JSON escaping; everything else is copied into the line as it is. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** A JSON string literal; the common case (no quote, backslash or control character) skips JSON.stringify. */
export function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

export interface AccessRecord {
  readonly reqId: string;
  /** W3C trace id (32 lower-case hex digits); undefined for records made before tracing began. */
  readonly traceId?: string | undefined;
  /** Already a JSON literal (see jsonString): precomputed per route at table build time. */
  readonly routeJson: string;
  readonly upstream: string | undefined;
  readonly endpoint: string | undefined;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly ms: number;
  readonly error: string | undefined;
  readonly reason: string | undefined;
  readonly attempts: number | undefined;
  /** A WebSocket (or other upgrade) tunnel. */
  readonly upgrade?: boolean;
  /** How the exchange ended when not with a complete response (src/proxy/http/access-record.ts). */
  readonly end?: string | undefined;
}

/**
 * The per-request access line, written straight to the logger's destination in the same JSON shape
 * pino writes (`level`, `time`, the logger's bindings, then the fields). pino's generic object
 * serialisation and its per-line ISO timestamp were a fifth of the proxy's CPU per request in
 * profiles; here the fixed prefix is built once, the timestamp once per millisecond, and strings
 * are escaped only when they need it. Respects the logger's level (access lines are `info`).
 * Every line is at most LINE_LIMIT_BYTES (4096), so that it is one atomic write(2) on a pipe that
 * several worker processes share; a longer one (a client's long URL) has its path cut and marked.
 */
export class AccessLog {
  private readonly writeLine: (line: string) => void;
  private readonly prefix: string;
  private lastMs = 0;
  private lastTime = '';

  constructor(private readonly logger: Logger, bindings: Readonly<Record<string, string>>) {
    this.writeLine = lineWriter(logger);
    const all = { ...logger.bindings(), ...bindings };
    this.prefix = Object.entries(all).map(([k, v]) => `,${jsonString(k)}:${JSON.stringify(v)}`).join('');
  }

  get enabled(): boolean {
    return this.logger.isLevelEnabled('info');
  }

  write(r: AccessRecord): void {
    if (!this.logger.isLevelEnabled('info')) return;
    const line = this.format(r, r.path, r.reason);
    this.writeLine(fitsLine(line) ? line : this.formatCut(r));
  }

  /**
   * A line over LINE_LIMIT_BYTES (a client's long URL): the path, then the reason, cut and marked,
   * so that every access line stays one atomic write(2) on a pipe shared by several workers.
   */
  private formatCut(r: AccessRecord): string {
    for (const keep of [2048, 512, 0]) {
      const line = this.format(r, cutText(r.path, keep), r.reason);
      if (fitsLine(line)) return line;
    }
    return this.format(r, cutText(r.path, 0), r.reason === undefined ? undefined : cutText(r.reason, 200));
  }

  private format(r: AccessRecord, path: string, reason: string | undefined): string {
    const now = Date.now();
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastTime = new Date(now).toISOString();
    }
    let line = `{"level":30,"time":"${this.lastTime}"${this.prefix},"reqId":${jsonString(r.reqId)}`;
    // Always 32 hex digits (tracing.ts makes or validates it): no escaping needed.
    if (r.traceId !== undefined && r.traceId !== '') line += `,"traceId":"${r.traceId}"`;
    line += `,"route":${r.routeJson}`;
    if (r.upstream !== undefined) line += `,"upstream":${jsonString(r.upstream)}`;
    if (r.endpoint !== undefined) line += `,"endpoint":${jsonString(r.endpoint)}`;
    line += `,"method":${jsonString(r.method)},"path":${jsonString(path)},"status":${r.status},"ms":${Math.round(r.ms * 1000) / 1000}`;
    if (r.error !== undefined) line += `,"error":${jsonString(r.error)}`;
    if (reason !== undefined) line += `,"reason":${jsonString(reason)}`;
    if (r.end !== undefined) line += `,"end":"${r.end}"`;
    if (r.upgrade === true) line += ',"upgrade":true';
    if (r.attempts !== undefined) line += `,"attempts":${r.attempts}`;
    return `${line}}\n`;
  }
}
