/**
 * Validation of policy input, shared by the template `policy:` block (YAML, already parsed) and the
 * KV value `routes/<route>/policy` (JSON text). Field names are those of RoutePolicy (camelCase,
 * the same in YAML and JSON), so the effective policy shown by /api/routes is itself valid input.
 *
 * - Durations (`…Ms` fields): a number of milliseconds or a string `<number><unit>` with unit
 *   `ms`, `s`, `m` or `h` (`500ms`, `2.5s`, `1m`). At most 24 h.
 * - `maxBodyBytes`: a number of bytes or a string with unit `b`, `kb`, `mb`, `gb` (binary:
 *   1kb = 1024 bytes), or null for no limit. `retries.bufferBytes`: the same units, at most 16 MiB.
 * - `upstream.maxConnections`: a positive integer, or null for no cap; `upstream.queueTimeoutMs`:
 *   a duration, at least 1 ms.
 * - `debugHeaders`, `redirectToHttps`: booleans.
 * - `retries.on`: a list from connect-failure, reset, 502, 503, 504 (numbers allowed for codes).
 * - Unknown fields are errors (a misspelt field silently doing nothing is worse than a rejection).
 *
 * The result is a PolicyInput (one layer); completeness across layers is resolvePolicy's job.
 * Parsing a valid PolicyInput again returns an equal one (numbers are valid input).
 */
import type {
  ConcurrencyPolicy, OutlierPolicy, PolicyInput, RateLimitPolicy, RetryCondition, RetryPolicy, TimeoutPolicy, UpstreamPolicy,
} from './policy.js';
import { RETRY_CONDITIONS } from './policy.js';

const DAY_MS = 86_400_000;
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i;
const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Thrown inside the parser and turned into the returned message; never escapes. */
class PolicyInputError extends Error {}

function fail(path: string, message: string): never {
  throw new PolicyInputError(`${path}: ${message}`);
}

const show = (value: unknown): string => (value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value));

/** A policy layer from an already parsed value (YAML or JSON), or the reason it is unusable. */
export function parsePolicyInput(value: unknown): PolicyInput | string {
  try {
    return parseLayer(value);
  } catch (err) {
    if (err instanceof PolicyInputError) return err.message;
    throw err;
  }
}

/** A policy layer from KV's JSON text, or the reason it is unusable. */
export function parsePolicyJson(raw: string): PolicyInput | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return 'value is not valid JSON';
  }
  return parsePolicyInput(value);
}

/** `500ms`, `2s`, `1.5m`, `1h` or a number of ms → ms, or undefined when unusable. */
export function parseDuration(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const m = DURATION.exec(value.trim());
    if (m === null) return undefined;
    ms = Number(m[1]) * DURATION_UNITS[m[2]!]!;
  } else return undefined;
  if (!Number.isFinite(ms) || ms < 0 || ms > DAY_MS) return undefined;
  return Math.round(ms);
}

/** `512`, `64kb`, `10mb`, `1gb` (binary units) → bytes, or undefined when unusable. */
export function parseByteSize(value: unknown): number | undefined {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else if (typeof value === 'string') {
    const m = SIZE.exec(value.trim());
    if (m === null) return undefined;
    bytes = Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]!;
  } else return undefined;
  if (!Number.isFinite(bytes) || bytes < 0 || bytes > Number.MAX_SAFE_INTEGER) return undefined;
  return Math.floor(bytes);
}

type Fields = Record<string, unknown>;

function object(value: unknown, path: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, `expected an object, got ${show(value)}`);
  return value as Fields;
}

function only(fields: Fields, path: string, known: readonly string[]): void {
  for (const key of Object.keys(fields)) {
    if (!known.includes(key)) fail(path === '' ? key : `${path}.${key}`, `unknown field (known: ${known.join(', ')})`);
  }
}

function duration(value: unknown, path: string, minMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined) fail(path, `expected a duration ('500ms', '5s', '1m') or a number of milliseconds, at most 24h, got ${show(value)}`);
  if (ms < minMs) fail(path, `must be at least ${minMs} ms, got ${show(value)}`);
  return ms;
}

function number(value: unknown, path: string, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    fail(path, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  }
  return value;
}

/** A retry buffer is held per request in flight: a few MiB at most. */
const MAX_RETRY_BUFFER_BYTES = 16 * 1024 * 1024;

function byteSize(value: unknown, path: string, max: number, alternatives = ''): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) fail(path, `expected a number of bytes or a size ('64kb', '10mb')${alternatives}, got ${show(value)}`);
  if (bytes > max) fail(path, `must be at most ${max} bytes, got ${bytes}`);
  return bytes;
}

function boolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') fail(path, `expected true or false, got ${show(value)}`);
  return value;
}

/** Copy the fields present in `fields` through their parsers; absent fields stay absent. */
function section<T>(value: unknown, path: string, parsers: { [K in keyof T]-?: (v: unknown, p: string) => T[K] }): Partial<T> {
  const fields = object(value, path);
  only(fields, path, Object.keys(parsers));
  const out: Partial<T> = {};
  for (const key of Object.keys(parsers) as (keyof T & string)[]) {
    if (fields[key] !== undefined) out[key] = parsers[key](fields[key], `${path}.${key}`);
  }
  return out;
}

function retryConditions(value: unknown, path: string): RetryCondition[] {
  if (!Array.isArray(value)) fail(path, `expected a list of ${RETRY_CONDITIONS.join(', ')}, got ${show(value)}`);
  const out: RetryCondition[] = [];
  for (const item of value as unknown[]) {
    const name = typeof item === 'number' ? String(item) : item;
    if (typeof name !== 'string' || !(RETRY_CONDITIONS as readonly string[]).includes(name)) {
      fail(path, `unknown retry condition ${show(item)} (known: ${RETRY_CONDITIONS.join(', ')})`);
    }
    if (!out.includes(name as RetryCondition)) out.push(name as RetryCondition);
  }
  return out;
}

const TIMEOUTS: { [K in keyof TimeoutPolicy]-?: (v: unknown, p: string) => number } = {
  connectMs: (v, p) => duration(v, p, 1),
  headersMs: (v, p) => duration(v, p, 0),
  bodyIdleMs: (v, p) => duration(v, p, 0),
  totalMs: (v, p) => duration(v, p, 0),
  tunnelIdleMs: (v, p) => duration(v, p, 0),
};

const RETRIES: { [K in keyof RetryPolicy]-?: (v: unknown, p: string) => RetryPolicy[K] } = {
  count: (v, p) => number(v, p, 0, 10, true),
  on: retryConditions,
  budgetPercent: (v, p) => number(v, p, 0, 100, false),
  minPerSecond: (v, p) => number(v, p, 0, 10_000, false),
  bufferBytes: (v, p) => byteSize(v, p, MAX_RETRY_BUFFER_BYTES),
};

const OUTLIER: { [K in keyof OutlierPolicy]-?: (v: unknown, p: string) => number } = {
  consecutiveFailures: (v, p) => number(v, p, 0, 10_000, true),
  baseEjectionMs: (v, p) => duration(v, p, 1),
  maxEjectionPercent: (v, p) => number(v, p, 0, 100, false),
  maxEjectionMs: (v, p) => duration(v, p, 1),
};

const RATE_LIMIT: { [K in keyof RateLimitPolicy]-?: (v: unknown, p: string) => RateLimitPolicy[K] } = {
  requestsPerSecond: (v, p) => {
    const n = number(v, p, 0, 1e9, false);
    if (n === 0) fail(p, 'must be above 0 (set rateLimit to null to turn it off)');
    return n;
  },
  burst: (v, p) => number(v, p, 1, 1e9, false),
  perClient: boolean,
};

const CONCURRENCY: { [K in keyof ConcurrencyPolicy]-?: (v: unknown, p: string) => number } = {
  max: (v, p) => number(v, p, 1, 1e9, true),
};

const UPSTREAM: { [K in keyof UpstreamPolicy]-?: (v: unknown, p: string) => UpstreamPolicy[K] } = {
  maxConnections: (v, p) => (v === null ? null : number(v, p, 1, 1e6, true)),
  // 0 would refuse every queued request at once: a cap without a queue is not what anyone means.
  queueTimeoutMs: (v, p) => duration(v, p, 1),
};

const TOP_LEVEL = ['timeouts', 'retries', 'outlier', 'rateLimit', 'concurrency', 'maxBodyBytes', 'redirectToHttps', 'upstream', 'debugHeaders'] as const;

function parseLayer(value: unknown): PolicyInput {
  const fields = object(value, '(policy)');
  only(fields, '', TOP_LEVEL);
  const out: {
    -readonly [K in keyof PolicyInput]: PolicyInput[K];
  } = {};
  if (fields['timeouts'] !== undefined) out.timeouts = section<TimeoutPolicy>(fields['timeouts'], 'timeouts', TIMEOUTS);
  if (fields['retries'] !== undefined) out.retries = section<RetryPolicy>(fields['retries'], 'retries', RETRIES);
  if (fields['outlier'] !== undefined) out.outlier = section<OutlierPolicy>(fields['outlier'], 'outlier', OUTLIER);
  if (fields['rateLimit'] !== undefined) {
    out.rateLimit = fields['rateLimit'] === null ? null : section<RateLimitPolicy>(fields['rateLimit'], 'rateLimit', RATE_LIMIT);
  }
  if (fields['concurrency'] !== undefined) {
    out.concurrency = fields['concurrency'] === null ? null : section<ConcurrencyPolicy>(fields['concurrency'], 'concurrency', CONCURRENCY);
  }
  const maxBody = fields['maxBodyBytes'];
  if (maxBody !== undefined) {
    if (maxBody === null) out.maxBodyBytes = null;
    else {
      out.maxBodyBytes = byteSize(maxBody, 'maxBodyBytes', Number.MAX_SAFE_INTEGER, ', or null');
    }
  }
  if (fields['redirectToHttps'] !== undefined) out.redirectToHttps = boolean(fields['redirectToHttps'], 'redirectToHttps');
  if (fields['upstream'] !== undefined) out.upstream = upstreamSection(fields['upstream']);
  if (fields['debugHeaders'] !== undefined) out.debugHeaders = boolean(fields['debugHeaders'], 'debugHeaders');
  return out;
}

/** Like `section`, but `maxConnections: null` is a value (no cap), not an absent field. */
function upstreamSection(value: unknown): Partial<UpstreamPolicy> {
  const fields = object(value, 'upstream');
  only(fields, 'upstream', Object.keys(UPSTREAM));
  const out: { -readonly [K in keyof UpstreamPolicy]?: UpstreamPolicy[K] } = {};
  if (Object.hasOwn(fields, 'maxConnections')) out.maxConnections = UPSTREAM.maxConnections(fields['maxConnections'], 'upstream.maxConnections');
  if (fields['queueTimeoutMs'] !== undefined) out.queueTimeoutMs = UPSTREAM.queueTimeoutMs(fields['queueTimeoutMs'], 'upstream.queueTimeoutMs');
  return out;
}
