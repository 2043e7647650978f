/**
 * The throughput tables: a median per target over the interleaved rounds, requests/s and CPU per
 * request against baselines from the same run, the goals as checks, and every run.
 */
import type { CpuSample } from './cpu.js';
import { cpuUsPerRequest } from './cpu.js';
import {
  checksMarkdown, checksText, fmtMiB, fmtMs, fmtPct, fmtRps, fmtUs, markdownTable, median, textTable, type Check,
} from './report.js';
import type { WrkResult } from './wrk.js';

export interface RunRecord {
  readonly round: number;
  readonly result: WrkResult;
  /** Max RSS of the proxy's process tree during the run, bytes (undefined: not sampled). */
  readonly rssBytes: number | undefined;
  /** CPU time of the proxy's process tree during the run (undefined: no process, the direct reference). */
  readonly cpu: CpuSample | undefined;
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
  /** Median CPU µs per request of the proxy's process tree (undefined: not measured). */
  readonly cpuUsPerReq: number | undefined;
  /** Median CPU used by the proxy, % of one core. */
  readonly cpuPct: number | undefined;
  /** Non-2xx responses plus socket errors over all measured runs. */
  readonly errors: number;
  readonly runs: number;
}

export const TARGETS = { rpsVsHaproxy: 0.4, p99VsHaproxy: 2, rssBytes: 120 * 1024 * 1024 };
/** Issue 4, section 5: the run with every resilience policy on stays within 10% of the run without. */
export const POLICIES_VS_PLAIN = 0.9;
/** Issue 8, section 3: per core, with the access log on, ≥ 0.95 × the bare undici proxy. */
export const SWITCHYARD_VS_BARE = 0.95;

export const runCpuUs = (r: RunRecord): number | undefined => (r.cpu === undefined ? undefined : cpuUsPerRequest(r.cpu.cpuSeconds, r.result.requests));
const runCpuPct = (r: RunRecord): number | undefined => (r.cpu === undefined || r.cpu.wallSeconds <= 0 ? undefined : (r.cpu.cpuSeconds / r.cpu.wallSeconds) * 100);
const defined = (xs: readonly (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
const medianOrUndefined = (xs: readonly number[]): number | undefined => (xs.length === 0 ? undefined : median(xs));

export function summarize(row: Row): Summary | undefined {
  if (row.unavailable !== undefined || row.runs.length === 0) return undefined;
  const rss = defined(row.runs.map((r) => r.rssBytes));
  return {
    name: row.name,
    reference: row.reference,
    rps: median(row.runs.map((r) => r.result.requestsPerSec)),
    p50Ms: median(row.runs.map((r) => r.result.p50Ms)),
    p99Ms: median(row.runs.map((r) => r.result.p99Ms)),
    rssMaxBytes: rss.length === 0 ? undefined : Math.max(...rss),
    cpuUsPerReq: medianOrUndefined(defined(row.runs.map(runCpuUs))),
    cpuPct: medianOrUndefined(defined(row.runs.map(runCpuPct))),
    errors: row.runs.reduce((n, r) => n + r.result.non2xx + r.result.socketErrors, 0),
    runs: row.runs.length,
  };
}

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

/** requests/s of `a` against `b`: `a = r × b` against `≥ min ×` (min undefined: a ratio with no goal). */
export function rpsRatioCheck(what: string, a: Summary, b: Summary, min: number | undefined): Check {
  const ratio = a.rps / b.rps;
  return {
    what, value: `${fmtRps(a.rps)} = ${ratio.toFixed(2)} × ${fmtRps(b.rps)}`,
    limit: min === undefined ? 'no goal' : `≥ ${min} ×`, pass: min === undefined ? undefined : ratio >= min, info: min === undefined,
  };
}

/** CPU per request of `a` against `b`: `a = r × b` against `≤ max ×` (max undefined: no goal). */
export function cpuRatioCheck(what: string, a: Summary, b: Summary, max: number | undefined): Check {
  if (a.cpuUsPerReq === undefined || b.cpuUsPerReq === undefined) return { what, value: 'not measured', limit: max === undefined ? 'no goal' : `≤ ${max.toFixed(2)} ×`, pass: undefined, info: max === undefined };
  const ratio = a.cpuUsPerReq / b.cpuUsPerReq;
  return {
    what, value: `${fmtUs(a.cpuUsPerReq)} = ${ratio.toFixed(2)} × ${fmtUs(b.cpuUsPerReq)}`,
    limit: max === undefined ? 'no goal' : `≤ ${max.toFixed(2)} ×`, pass: max === undefined ? undefined : ratio <= max, info: max === undefined,
  };
}

/** requests/s of `switchyard-policies` against `switchyard` from the same run. */
export function policiesCheck(plain: Summary, policies: Summary): Check {
  return rpsRatioCheck('requests/s with policies vs without', policies, plain, POLICIES_VS_PLAIN);
}

/** Issue 8 §3 "per core": Switchyard (access log on) against the bare undici proxy, req/s and CPU per request. */
export function perCoreChecks(sy: Summary, bare: Summary): Check[] {
  return [
    rpsRatioCheck('switchyard / bare-undici, requests/s (per core)', sy, bare, SWITCHYARD_VS_BARE),
    cpuRatioCheck('switchyard / bare-undici, CPU µs per request', sy, bare, 1 / SWITCHYARD_VS_BARE),
  ];
}

/** How one throughput table is labelled and judged. */
export interface TableSpec {
  /** The markdown heading (`## ...`). */
  readonly title: string;
  /** Targets shown as "vs X" ratio columns (the first one also for CPU per request). */
  readonly baselines: readonly string[];
  /** The goals (and informative ratios) from this table's summaries, by target name. */
  readonly checks: (byName: ReadonlyMap<string, Summary>) => Check[];
  readonly checksTitle: string;
}

function head(spec: TableSpec): string[] {
  const first = spec.baselines[0];
  return ['proxy', 'req/s (median)', 'p50', 'p99', ...spec.baselines.map((b) => `vs ${b}`), 'CPU µs/req',
    ...(first === undefined ? [] : [`CPU/req vs ${first}`]), 'proxy CPU', 'max RSS', 'errors', 'runs'];
}

function byName(rows: readonly Row[]): Map<string, Summary> {
  const m = new Map<string, Summary>();
  for (const row of rows) {
    const s = summarize(row);
    if (s !== undefined) m.set(row.name, s);
  }
  return m;
}

function tableRows(spec: TableSpec, rows: readonly Row[]): string[][] {
  const sums = byName(rows);
  const bases = spec.baselines.map((b) => sums.get(b));
  const first = bases[0];
  const width = head(spec).length;
  return rows.map((row) => {
    const s = sums.get(row.name);
    const label = row.reference ? `${row.name} (reference, no proxy)` : row.name;
    if (s === undefined) return [label, row.unavailable === undefined ? 'no successful run' : 'not available', ...Array<string>(width - 3).fill(''), '0'];
    const cpuVs = spec.baselines.length === 0 ? [] : [first?.cpuUsPerReq === undefined || s.cpuUsPerReq === undefined ? '—' : (s.cpuUsPerReq / first.cpuUsPerReq).toFixed(2)];
    return [
      label, fmtRps(s.rps), fmtMs(s.p50Ms), fmtMs(s.p99Ms), ...bases.map((b) => (b === undefined ? '—' : (s.rps / b.rps).toFixed(2))),
      fmtUs(s.cpuUsPerReq), ...cpuVs, fmtPct(s.cpuPct), s.rssMaxBytes === undefined ? '—' : fmtMiB(s.rssMaxBytes), String(s.errors), String(s.runs),
    ];
  });
}

export function throughputConsole(spec: TableSpec, rows: readonly Row[], notes: readonly string[]): string {
  const out = [spec.title.replace(/^#+ /, ''), textTable(head(spec), tableRows(spec, rows))];
  const checks = spec.checks(byName(rows));
  if (checks.length > 0) out.push('', `${spec.checksTitle}:`, checksText(checks));
  for (const row of rows) {
    if (row.unavailable !== undefined) out.push(`- ${row.name}: not available — ${row.unavailable.split('\n').slice(0, 4).join('\n    ')}`);
    for (const f of row.failures) out.push(`! ${row.name}: ${f}`);
  }
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

export function throughputMarkdown(spec: TableSpec, rows: readonly Row[], notes: readonly string[], setup: readonly string[]): string {
  const md: string[] = [spec.title, '', ...setup.map((s) => `- ${s}`), '', markdownTable(head(spec), tableRows(spec, rows)), ''];
  const checks = spec.checks(byName(rows));
  if (checks.length > 0) md.push(`### ${spec.checksTitle}`, '', checksMarkdown(checks), '');
  for (const row of rows) {
    if (row.unavailable !== undefined) md.push(`**${row.name}: not available:**`, '', '```text', row.unavailable, '```', '');
  }
  md.push('#### Every run', '',
    '"CPU µs/req": CPU time (user + system, /proc/PID/stat) of the proxy\'s process tree during the run divided by the requests wrk completed; "proxy CPU": that CPU time over the run\'s wall time, in % of one core. ' +
    '"other CPU": CPU used during the run by processes that are not the benchmark\'s (other builds or tests on the machine), in % of one core; "steal": time the hypervisor took. Runs with much of either are noisy.', '',
    markdownTable(['proxy', 'round', 'req/s', 'p50', 'p75', 'p90', 'p99', 'requests', 'non-2xx', 'socket errors', 'CPU µs/req', 'proxy CPU', 'max RSS', 'other CPU', 'steal'],
      rows.flatMap((row) => row.runs.map((r) => [
        row.name, String(r.round), fmtRps(r.result.requestsPerSec), fmtMs(r.result.p50Ms), fmtMs(r.result.p75Ms), fmtMs(r.result.p90Ms),
        fmtMs(r.result.p99Ms), String(r.result.requests), String(r.result.non2xx), String(r.result.socketErrors),
        fmtUs(runCpuUs(r)), fmtPct(runCpuPct(r)), r.rssBytes === undefined ? '—' : fmtMiB(r.rssBytes), `${r.otherCpuPct.toFixed(0)}%`, `${r.stealPct.toFixed(0)}%`,
      ]))), '');
  const failures = rows.flatMap((row) => row.failures.map((f) => `- ${row.name}: ${f}`));
  if (failures.length > 0) md.push('Failed runs:', '', ...failures, '');
  if (notes.length > 0) md.push(...notes.map((n) => `- ${n}`), '');
  return md.join('\n');
}
