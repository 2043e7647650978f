/**
 * What every phase's report shares: medians, number formats, text and markdown tables, checks
 * (PASS/FAIL against a goal), and the machine, versions and artifacts sections.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Artifact, BenchContext } from './phase.js';
import { capture } from './procs.js';

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A measured value against a goal; pass undefined: cannot tell; `info`: a ratio with no goal. */
export interface Check {
  readonly what: string;
  readonly value: string;
  readonly limit: string;
  readonly pass: boolean | undefined;
  readonly info?: boolean;
}

export const fmtRps = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
export const fmtMiB = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
export const fmtUs = (us: number | undefined): string => (us === undefined || !Number.isFinite(us) ? '—' : `${us.toFixed(us < 100 ? 1 : 0)} µs`);
/** Nanoseconds: `850 ns`, `1.25 µs`. */
export const fmtNs = (ns: number): string => (ns < 1000 ? `${ns.toFixed(0)} ns` : `${(ns / 1000).toFixed(2)} µs`);
export const fmtPct = (pct: number | undefined): string => (pct === undefined || !Number.isFinite(pct) ? '—' : `${pct.toFixed(0)}%`);
export const verdict = (c: Pick<Check, 'pass' | 'info'>): string => (c.info === true ? 'info' : c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'FAIL');

/** A plain aligned text table. */
export function textTable(head: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function markdownTable(head: readonly string[], body: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map((_, c) => (c === 0 ? '---' : '---:')).join(' | ')} |`,
    ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

const CHECK_HEAD = ['target', 'measured', 'limit', 'result'];

export function checksText(checks: readonly Check[]): string {
  return textTable(CHECK_HEAD, checks.map((c) => [c.what, c.value, c.limit, verdict(c)]));
}

export function checksMarkdown(checks: readonly Check[]): string {
  return markdownTable(CHECK_HEAD, checks.map((c) => [c.what, c.value, c.limit, c.info === true ? 'info' : `**${verdict(c)}**`]));
}

/** The machine and the versions of everything measured. */
export function machineMarkdown(ctx: Pick<BenchContext, 'root'>): string {
  const cpuinfo = safeRead('/proc/cpuinfo');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const memKb = /^MemTotal:\s+([0-9]+) kB/m.exec(safeRead('/proc/meminfo'))?.[1];
  const mem = memKb !== undefined ? Number(memKb) * 1024 : totalmem();
  const pkg = JSON.parse(safeRead(join(ctx.root, 'package.json')) || '{}') as { version?: string };
  const undici = JSON.parse(safeRead(join(ctx.root, 'node_modules', 'undici', 'package.json')) || '{}') as { version?: string };
  const first = (s: string): string => s.split('\n')[0] ?? '';
  return [
    '## Machine', '',
    `- CPUs (nproc --all): ${capture('nproc', ['--all']) || cpus().length}`,
    `- CPU model: ${model}`,
    `- Memory: ${(mem / 1024 ** 3).toFixed(1)} GiB`,
    `- Kernel: ${capture('uname', ['-sr'])}`,
    `- Load average when the run started: ${loadAverageAtStart}`,
    '', '## Versions', '',
    `- Node.js ${process.version}`,
    `- ${first(capture('haproxy', ['-v']))}`,
    `- ${first(capture('nginx', ['-v']))}`,
    `- ${first(capture('wrk', ['-v']))}`,
    `- Caddy ${first(capture('caddy', ['version'])) || 'not installed'}`,
    `- Switchyard ${pkg.version ?? 'unknown'} (package.json; ${gitDescription(ctx.root)}), undici ${undici.version ?? 'unknown'}`,
    '',
  ].join('\n');
}

export function artifactsMarkdown(artifacts: readonly Artifact[]): string {
  const md = ['## Exact commands and generated configs', '',
    'Ports are picked free at run time, and paths are under a per-run temp dir; both differ from run to run.', ''];
  // Several Switchyard targets share a template and services file: show each text once.
  const firstTitle = new Map<string, string>();
  for (const a of artifacts) {
    const key = `${a.lang}\n${a.text.trimEnd()}`;
    const same = firstTitle.get(key);
    if (same !== undefined) {
      md.push(`### ${a.title}`, '', `The same as "${same}".`, '');
      continue;
    }
    firstTitle.set(key, a.title);
    md.push(`### ${a.title}`, '', `${'```'}${a.lang}`, a.text.trimEnd(), '```', '');
  }
  return md.join('\n');
}

/** Read when this module loads, i.e. before the benchmark starts anything. */
const loadAverageAtStart = safeRead('/proc/loadavg').split(' ').slice(0, 3).join(' ') || 'unknown';

function gitDescription(root: string): string {
  const rev = capture('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (!/^[0-9a-f]{4,}$/.test(rev)) return 'not a git checkout';
  const dirty = capture('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no']) !== '';
  return `git ${rev}${dirty ? ' plus uncommitted changes' : ''}`;
}

function safeRead(file: string): string {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
}
