/**
 * Log lines bounded to PIPE_BUF. Several worker processes write to one inherited stdout, often a
 * pipe (docker): a write(2) of at most PIPE_BUF bytes to a pipe is atomic, a longer one can be
 * split and interleaved with another process's lines. Lines are therefore at most this long,
 * newline included, when stdout is not a regular file (see logger.ts), and access lines always.
 */
export const LINE_LIMIT_BYTES = 4096;

/** A string of at most this many UTF-16 units has at most LINE_LIMIT_BYTES UTF-8 bytes: no need to count. */
export const SURELY_WITHIN_LIMIT = Math.floor(LINE_LIMIT_BYTES / 3);

/** Whether `line` (newline included) fits: the common short line costs one length check. */
export function fitsLine(line: string): boolean {
  return line.length <= SURELY_WITHIN_LIMIT || Buffer.byteLength(line) <= LINE_LIMIT_BYTES;
}

/** `text` cut to `keep` characters, saying how much was dropped. */
export function cutText(text: string, keep: number): string {
  return `${text.slice(0, keep)}…[cut ${text.length - keep} chars]`;
}

/**
 * pino's `streamWrite` hook: a line longer than LINE_LIMIT_BYTES (a long error message or stack)
 * stays valid JSON with the same fields, its longest strings cut and marked `…[cut N chars]`, and
 * `"truncated": true`. Rare (operator events), so the slow path may parse and rebuild.
 */
export function boundLine(line: string): string {
  if (fitsLine(line)) return line;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return `${JSON.stringify({ level: 50, msg: cutText(line, 600), truncated: true })}\n`;
  }
  for (let keep = 1024; keep >= 16; keep = Math.floor(keep / 2)) {
    const cut = `${JSON.stringify(cutStrings(value, keep))}\n`;
    if (Buffer.byteLength(cut) <= LINE_LIMIT_BYTES) return cut.replace(/\}\n$/, ',"truncated":true}\n');
  }
  const head = value as Record<string, unknown>;
  return `${JSON.stringify({ level: head['level'], time: head['time'], msg: cutText(String(head['msg'] ?? ''), 600), truncated: true })}\n`;
}

function cutStrings(value: unknown, keep: number): unknown {
  if (typeof value === 'string') return value.length > keep ? cutText(value, keep) : value;
  if (Array.isArray(value)) return value.map((v) => cutStrings(v, keep));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = cutStrings(v, keep);
    return out;
  }
  return value;
}
