/**
 * Appends fixed-size log lines to a file at a fixed rate, one write(2) per line, as a process
 * writing its log next to a watched file does (`switchyard --services ./services.yaml > ./switchyard.log`).
 * Bounded: it stops after --seconds (or on SIGTERM).
 *
 *   node --import tsx bench/log-writer.ts --file DIR/switchyard.log --rate 2000 --seconds 15
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Every line is this long (newline included), so bytes written / LINE_BYTES = lines. */
export const LINE_BYTES = 200;

export function logLine(n: number): string {
  const head = `{"level":30,"time":${Date.now()},"msg":"request completed","n":${n},"pad":"`;
  return head.padEnd(LINE_BYTES - 3, '.') + '"}\n';
}

function main(): void {
  const { values } = parseArgs({ options: { file: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' } } });
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  if (values.file === undefined || !(rate > 0) || !(seconds > 0)) {
    process.stderr.write('usage: log-writer.ts --file FILE --rate LINES_PER_S --seconds S\n');
    process.exit(2);
  }
  const fd = openSync(values.file, 'a');
  const t0 = performance.now();
  let written = 0;
  const stop = (): void => {
    clearInterval(timer);
    closeSync(fd);
    process.exit(0);
  };
  // Every 10 ms, catch up to rate × elapsed: the rate holds even when a tick is late.
  const timer = setInterval(() => {
    const elapsed = (performance.now() - t0) / 1000;
    if (elapsed >= seconds) stop();
    const due = Math.floor(elapsed * rate);
    for (; written < due; written++) writeSync(fd, logLine(written));
  }, 10);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1]?.endsWith('log-writer.ts') === true) main();
