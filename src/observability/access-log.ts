import { pino, type Logger } from 'pino';

/** Characters that force JSON escaping; everything else is copied into the line as it is. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** A JSON string literal; the common case (no quote, backslash or control character) skips JSON.stringify. */
export function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

export interface AccessRecord {
  readonly reqId: string;
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
 */
export class AccessLog {
  private readonly stream: { write(line: string): unknown };
  private readonly prefix: string;
  private lastMs = 0;
  private lastTime = '';

  constructor(private readonly logger: Logger, bindings: Readonly<Record<string, string>>) {
    this.stream = (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym]!;
    const all = { ...logger.bindings(), ...bindings };
    this.prefix = Object.entries(all).map(([k, v]) => `,${jsonString(k)}:${JSON.stringify(v)}`).join('');
  }

  get enabled(): boolean {
    return this.logger.isLevelEnabled('info');
  }

  write(r: AccessRecord): void {
    if (!this.logger.isLevelEnabled('info')) return;
    const now = Date.now();
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastTime = new Date(now).toISOString();
    }
    let line = `{"level":30,"time":"${this.lastTime}"${this.prefix},"reqId":${jsonString(r.reqId)},"route":${r.routeJson}`;
    if (r.upstream !== undefined) line += `,"upstream":${jsonString(r.upstream)}`;
    if (r.endpoint !== undefined) line += `,"endpoint":${jsonString(r.endpoint)}`;
    line += `,"method":${jsonString(r.method)},"path":${jsonString(r.path)},"status":${r.status},"ms":${Math.round(r.ms * 1000) / 1000}`;
    if (r.error !== undefined) line += `,"error":${jsonString(r.error)}`;
    if (r.reason !== undefined) line += `,"reason":${jsonString(r.reason)}`;
    if (r.end !== undefined) line += `,"end":"${r.end}"`;
    if (r.upgrade === true) line += ',"upgrade":true';
    if (r.attempts !== undefined) line += `,"attempts":${r.attempts}`;
    this.stream.write(`${line}}\n`);
  }
}
