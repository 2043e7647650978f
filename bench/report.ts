/**
 * Aggregation (median per proxy), Switchyard's targets, and the terminal and markdown renderings.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Artifact, BenchContext } from './phase.js';
import { capture } from './procs.js';
import type { WrkResult } from './wrk.js';

export interface RunRecord {
  readonly round: number;
  readonly result: WrkResult;
  /** Max RSS of the proxy's process tree during the run, bytes (undefined: not sampled). */
  readonly rssBytes: number | undefined;
  /** CPU used by processes outside the benchmark during the run, and hypervisor steal, % of a core. */
  readonly otherCpuPct: number;
  readonly stealPct: number;
}

export interface Row {
  readonly name: string;
  readonly reference: boolean;
  /** Why it did not run; undefined when it ran. */
  readonly unavailable: string | undefined;
  readonly runs: readonly RunRecord[];
  /** Runs that failed outright (wrk error, proxy died), with the reason. */
  readonly failures: readonly string[];
}

export interface Summary {
  readonly name: string;
  readonly reference: boolean;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly rssMaxBytes: number | undefined;
  /** Non-2xx responses plus socket errors over all measured runs. */
  readonly errors: number;
  readonly runs: number;
}

export const TARGETS = { rpsVsHaproxy: 0.4, p99VsHaproxy: 2, rssBytes: 120 * 1024 * 1024 };

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarize(row: Row): Summary | undefined {
  if (row.unavailable !== undefined || row.runs.length === 0) return undefined;
  const rss = row.runs.map((r) => r.rssBytes).filter((b): b is number => b !== undefined);
  return {
    name: row.name,
    reference: row.reference,
    rps: median(row.runs.map((r) => r.result.requestsPerSec)),
    p50Ms: median(row.runs.map((r) => r.result.p50Ms)),
    p99Ms: median(row.runs.map((r) => r.result.p99Ms)),
    rssMaxBytes: rss.length === 0 ? undefined : Math.max(...rss),
    errors: row.runs.reduce((n, r) => n + r.result.non2xx + r.result.socketErrors, 0),
    runs: row.runs.length,
  };
}

export interface Check { readonly what: string; readonly value: string; readonly limit: string; readonly pass: boolean | undefined }

/** Switchyard's three targets against HAProxy from the same run (pass undefined: cannot tell). */
export function switchyardChecks(sy: Summary, ha: Summary | undefined): Check[] {
  const rssLimit = `≤ ${fmtMiB(TARGETS.rssBytes)}`;
  const rss: Check = sy.rssMaxBytes === undefined
    ? { what: 'RSS under load (max)', value: 'not measured', limit: rssLimit, pass: undefined }
    : { what: 'RSS under load (max)', value: fmtMiB(sy.rssMaxBytes), limit: rssLimit, pass: sy.rssMaxBytes <= TARGETS.rssBytes };
  if (ha === undefined) {
    return [
      { what: 'requests/s vs HAProxy', value: fmtRps(sy.rps), limit: 'HAProxy did not run', pass: undefined },
      { what: 'p99 vs HAProxy', value: fmtMs(sy.p99Ms), limit: 'HAProxy did not run', pass: undefined },
      rss,
    ];
  }
  const ratio = sy.rps / ha.rps;
  return [
    { what: 'requests/s vs HAProxy', value: `${fmtRps(sy.rps)} = ${ratio.toFixed(2)} × ${fmtRps(ha.rps)}`, limit: `≥ ${TARGETS.rpsVsHaproxy} ×`, pass: ratio >= TARGETS.rpsVsHaproxy },
    { what: 'p99 vs HAProxy', value: `${fmtMs(sy.p99Ms)} = ${(sy.p99Ms / ha.p99Ms).toFixed(2)} × ${fmtMs(ha.p99Ms)}`, limit: `≤ ${TARGETS.p99VsHaproxy} ×`, pass: sy.p99Ms <= TARGETS.p99VsHaproxy * ha.p99Ms },
    rss,
  ];
}

export const fmtRps = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
export const fmtMiB = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const fmtRatio = (a: number, b: Summary | undefined): string => (b === undefined ? '—' : (a / b.rps).toFixed(2));
const verdict = (p: boolean | undefined): string => (p === undefined ? 'n/a' : p ? 'PASS' : 'FAIL');

const HEAD = ['proxy', 'req/s (median)', 'p50', 'p99', 'vs HAProxy', 'vs nginx', 'max RSS', 'errors', 'runs'];

function tableRows(rows: readonly Row[]): string[][] {
  const sums = rows.map(summarize);
  const ha = sums.find((s) => s?.name === 'haproxy');
  const ng = sums.find((s) => s?.name === 'nginx');
  return rows.map((row, i) => {
    const s = sums[i];
    const label = row.reference ? `${row.name} (reference, no proxy)` : row.name;
    if (s === undefined) return [label, row.unavailable === undefined ? 'no successful run' : 'not available', '', '', '', '', '', '', '0'];
    return [
      label, fmtRps(s.rps), fmtMs(s.p50Ms), fmtMs(s.p99Ms), fmtRatio(s.rps, ha), fmtRatio(s.rps, ng),
      s.rssMaxBytes === undefined ? '—' : fmtMiB(s.rssMaxBytes), String(s.errors), String(s.runs),
    ];
  });
}

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

/** Issue 4, section 5: the run with every resilience policy on stays within 10% of the run without. */
export const POLICIES_VS_PLAIN = 0.9;

/** requests/s of `switchyard-policies` against `switchyard` from the same run. */
export function policiesCheck(plain: Summary, policies: Summary): Check {
  const ratio = policies.rps / plain.rps;
  return {
    what: 'requests/s with policies vs without',
    value: `${fmtRps(policies.rps)} = ${ratio.toFixed(2)} × ${fmtRps(plain.rps)}`,
    limit: `≥ ${POLICIES_VS_PLAIN} ×`,
    pass: ratio >= POLICIES_VS_PLAIN,
  };
}

function checksFor(rows: readonly Row[]): Check[] | undefined {
  const sy = rows.find((r) => r.name === 'switchyard');
  const s = sy === undefined ? undefined : summarize(sy);
  if (s === undefined) return undefined;
  const ha = rows.find((r) => r.name === 'haproxy');
  const checks = switchyardChecks(s, ha === undefined ? undefined : summarize(ha));
  const withPolicies = rows.find((r) => r.name === 'switchyard-policies');
  const p = withPolicies === undefined ? undefined : summarize(withPolicies);
  if (p !== undefined) checks.push(policiesCheck(s, p));
  return checks;
}

export function throughputConsole(rows: readonly Row[], notes: readonly string[]): string {
  const out = [textTable(HEAD, tableRows(rows))];
  const checks = checksFor(rows);
  const sy = rows.find((r) => r.name === 'switchyard');
  if (checks !== undefined) {
    out.push('', 'Switchyard targets:', textTable(['target', 'measured', 'limit', 'result'], checks.map((c) => [c.what, c.value, c.limit, verdict(c.pass)])));
  } else if (sy?.unavailable !== undefined) {
    out.push('', `Switchyard: not available — ${sy.unavailable.split('\n')[0]}`);
  }
  for (const row of rows) for (const f of row.failures) out.push(`! ${row.name}: ${f}`);
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

export function throughputMarkdown(rows: readonly Row[], notes: readonly string[], setup: readonly string[]): string {
  const md: string[] = ['## Throughput and latency', '', ...setup.map((s) => `- ${s}`), '', markdownTable(HEAD, tableRows(rows)), ''];
  const checks = checksFor(rows);
  if (checks !== undefined) {
    md.push('### Switchyard targets (access logs and metrics on)', '',
      markdownTable(['target', 'measured', 'limit', 'result'], checks.map((c) => [c.what, c.value, c.limit, `**${verdict(c.pass)}**`])), '');
  }
  for (const row of rows) {
    if (row.unavailable !== undefined) md.push(`**${row.name}: not available:**`, '', '```text', row.unavailable, '```', '');
  }
  md.push('### Every run', '',
    '"other CPU": CPU used during the run by processes that are not the benchmark\'s (other builds or tests on the machine), in % of one core; "steal": time the hypervisor took. Runs with much of either are noisy.', '',
    markdownTable(['proxy', 'round', 'req/s', 'p50', 'p75', 'p90', 'p99', 'requests', 'non-2xx', 'socket errors', 'max RSS', 'other CPU', 'steal'],
    rows.flatMap((row) => row.runs.map((r) => [
      row.name, String(r.round), fmtRps(r.result.requestsPerSec), fmtMs(r.result.p50Ms), fmtMs(r.result.p75Ms), fmtMs(r.result.p90Ms),
      fmtMs(r.result.p99Ms), String(r.result.requests), String(r.result.non2xx), String(r.result.socketErrors),
      r.rssBytes === undefined ? '—' : fmtMiB(r.rssBytes), `${r.otherCpuPct.toFixed(0)}%`, `${r.stealPct.toFixed(0)}%`,
    ]))), '');
  const failures = rows.flatMap((row) => row.failures.map((f) => `- ${row.name}: ${f}`));
  if (failures.length > 0) md.push('Failed runs:', '', ...failures, '');
  if (notes.length > 0) md.push(...notes.map((n) => `- ${n}`), '');
  return md.join('\n');
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
    `- Switchyard ${pkg.version ?? 'unknown'} (package.json; ${gitDescription(ctx.root)}), undici ${undici.version ?? 'unknown'}`,
    '',
  ].join('\n');
}

export function artifactsMarkdown(artifacts: readonly Artifact[]): string {
  const md = ['## Exact commands and generated configs', '',
    'Ports are picked free at run time, and paths are under a per-run temp dir; both differ from run to run.', ''];
  for (const a of artifacts) md.push(`### ${a.title}`, '', `${'```'}${a.lang}`, a.text.trimEnd(), '```', '');
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
