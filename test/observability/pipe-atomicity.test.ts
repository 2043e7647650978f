import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';

const LINES_PER_WRITER = 20_000;
const src = (path: string): string => pathToFileURL(fileURLToPath(new URL(`../../src/observability/${path}`, import.meta.url))).href;

/**
 * One worker's log output, as a real process: the project's default logger (async, buffered, on
 * fd 1) and an AccessLog on it. Lines of varied lengths, one in ten near or over 4 KiB (a long
 * URL), and every thousandth a pino line with a long field. Written in batches across event-loop
 * turns, so that both writers have writes in flight at the same time.
 */
const WRITER = `
import { createLogger } from ${JSON.stringify(src('logger.js'))};
import { AccessLog } from ${JSON.stringify(src('access-log.js'))};
const logger = createLogger({ level: 'info' });
const log = new AccessLog(logger, { kind: 'access' });
const id = process.env.WRITER_ID;
let i = 0;
function batch() {
  for (const end = Math.min(i + 200, ${LINES_PER_WRITER}); i < end; i++) {
    if (i % 1000 === 999) { logger.info({ i, detail: 'd'.repeat((i * 13) % 6000) }, 'progress'); continue; }
    const len = i % 10 === 0 ? 3900 + (i % 400) : (i * 7919) % 2000;
    log.write({ reqId: id + '-' + i, routeJson: '"r"', upstream: 'http://127.0.0.1:1', endpoint: 'e-1', method: 'GET',
      path: '/' + 'p'.repeat(len), status: 200, ms: 1.5, error: undefined, reason: undefined, attempts: undefined });
  }
  if (i < ${LINES_PER_WRITER}) setImmediate(batch);
  else logger.flush(() => process.exit(0));
}
batch();
`;

describe('log lines from several processes on one pipe', () => {
  it(`two writers × ${LINES_PER_WRITER} lines on a shared pipe: every line whole`, async () => {
    // Both writers inherit the write end of one pipe(2) made by the shell, as node:cluster workers
    // inherit docker's stdout. The reader drains it 256 bytes per read (dd), slower than the
    // writers: the pipe is often full, which is when a write(2) over PIPE_BUF is split.
    const node = `"${process.execPath}" --import tsx --input-type=module -e '${WRITER.replaceAll("'", "'\\''")}'`;
    const child = spawn('sh', ['-c', `(WRITER_ID=a ${node} & WRITER_ID=b ${node} & wait) | dd bs=256 status=none`], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    assert.equal(lines.pop(), '', 'the output ends with a newline');
    const broken: string[] = [];
    const long: string[] = [];
    const seen = { a: 0, b: 0 };
    let cut = 0;
    for (const line of lines) {
      try {
        const record = JSON.parse(line) as { reqId?: string; path?: string; truncated?: boolean; msg?: string };
        if (Buffer.byteLength(line) + 1 > 4096) long.push(line.slice(0, 80));
        if (record.truncated === true || record.path?.includes('…[cut')) cut++;
        const writer = (record.reqId?.[0] ?? (line.includes('"progress"') ? '?' : '')) as 'a' | 'b' | '?' | '';
        if (writer === 'a' || writer === 'b') seen[writer]++;
      } catch {
        broken.push(line.slice(0, 80));
      }
    }
    assert.deepEqual(broken.slice(0, 5), [], `${broken.length} broken lines`);
    assert.deepEqual(long.slice(0, 5), [], `${long.length} lines over 4096 bytes`);
    assert.equal(lines.length, 2 * LINES_PER_WRITER);
    assert.equal(seen.a + seen.b, 2 * (LINES_PER_WRITER - LINES_PER_WRITER / 1000), 'every access line arrived');
    assert.ok(cut > 0, 'long lines were cut, not dropped');
  });
});
