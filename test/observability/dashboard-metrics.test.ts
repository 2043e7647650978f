/**
 * The Grafana dashboard (docker/grafana/dashboards/*.json) asks only for metrics Switchyard
 * exposes: every metric name in its PromQL (panel targets and variable queries) has a family and
 * at least one series in a real `/metrics` after traffic (test/support/metric-traffic.ts, the same
 * traffic as the promtool test), histogram `_bucket`/`_sum`/`_count` names counting as their
 * histogram. Every expression also parses as PromQL (`promtool check rules`, variables replaced).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasSample, startWithMetricTraffic, type MetricTraffic } from '../support/metric-traffic.js';

const DASHBOARDS = resolve(import.meta.dirname, '..', '..', 'docker', 'grafana', 'dashboards');
const PROMTOOL = process.env['PROMTOOL'] ?? 'promtool';

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating?: { list: { name: string; query?: string | { query?: string } }[] };
}

const dashboards = readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json'))
  .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) as Dashboard }));

/** Every PromQL expression of a dashboard: panel targets (rows' panels too) and query variables. */
export function expressions(dashboard: Dashboard): string[] {
  const out: string[] = [];
  const walk = (panels: readonly Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr !== undefined && target.expr.trim() !== '') out.push(target.expr);
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query !== undefined && query !== '') out.push(query);
  }
  return out;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan']);

/**
 * The metric names an expression selects: identifiers that are not functions (followed by `(`),
 * keywords, label names (inside `{}`, `by (...)` and the like), strings, durations or variables.
 * Grafana's `label_values(metric, label)` names its first argument.
 */
export function metricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\blabel_values\s*\(\s*([a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,[^)]*\)/g, '$1');
  s = s.replace(/\{[^}]*\}/g, '{}').replace(/\[[^\]]*\]/g, '[]');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1 ()');
  const names = new Set<string>();
  for (const match of s.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const before = s[match.index - 1] ?? '';
    if (/[\d.$]/.test(before)) continue; // a number's exponent or unit, a $variable
    if (/^\s*(\(|by\b|without\b)/.test(s.slice(match.index + match[0].length))) continue; // a function or an aggregation
    if (KEYWORDS.has(match[0].toLowerCase())) continue;
    names.add(match[0]);
  }
  return [...names];
}

/** The names, among `names`, that the exposition does not have with a family and a series. */
export function missingFrom(exposition: string, names: Iterable<string>): string[] {
  const types = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  const missing: string[] = [];
  for (const name of names) {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const histogram = base !== name && (types.get(base) === 'histogram' || types.get(base) === 'summary');
    const family = histogram ? base : name;
    const series = types.get(family) === 'histogram' ? `${family}_count` : types.get(family) === 'summary' ? `${family}_count` : family;
    if (!types.has(family) || !hasSample(exposition, series)) missing.push(name);
  }
  return missing;
}

/**
 * promtool's complaints about expressions, checked as recording rules with Grafana's variables
 * replaced (and its `label_values(metric, label)` by the metric).
 */
function promqlProblems(exprs: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-promql-'));
  try {
    const rules = exprs.map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(
      e.replace(/\blabel_values\s*\(\s*([^,]+),[^)]*\)/g, '$1').replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replace(/\$\{?(\w+)\}?/g, '.*'))}`);
    const file = join(dir, 'rules.yml');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const run = spawnSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    if (run.error !== undefined) throw new Error(`${PROMTOOL} could not run (install Debian's prometheus package): ${run.error.message}`);
    return run.status === 0 ? '' : `${run.stdout}${run.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the Grafana dashboard asks only for metrics /metrics exposes', () => {
  let traffic: MetricTraffic;
  let exposition: string;
  before(async () => {
    traffic = await startWithMetricTraffic();
    exposition = await traffic.metrics();
  });
  after(() => traffic?.stop());

  it('there is a dashboard, and its expressions name metrics', () => {
    assert.ok(dashboards.length >= 1);
    for (const { file, dashboard } of dashboards) assert.ok(expressions(dashboard).flatMap(metricNames).length >= 20, `${file} names metrics`);
  });

  for (const { file, dashboard } of dashboards) {
    it(`${file}: every metric name in its queries has a series after traffic`, () => {
      const names = new Set(expressions(dashboard).flatMap(metricNames));
      assert.deepEqual(missingFrom(exposition, names), []);
    });

    it(`${file}: every query parses as PromQL`, () => {
      assert.equal(promqlProblems(expressions(dashboard)), '');
    });
  }

  it('a copy of the dashboard with a metric nobody exposes fails the check', () => {
    const original = dashboards[0]!.dashboard;
    const copy = structuredClone(original);
    copy.panels.push({ title: 'bogus', targets: [{ expr: 'sum by (route) (rate(switchyard_bogus_requests_total{route=~"$route"}[$__rate_interval]))' }] });
    const missing = (d: Dashboard): string[] => missingFrom(exposition, new Set(expressions(d).flatMap(metricNames)));
    assert.deepEqual(missing(copy), [...missing(original), 'switchyard_bogus_requests_total']);
  });

  it('reads names the way PromQL does', () => {
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{route=~"x|y", code!="5.."}[5m] offset 1h)))'), ['a_bucket']);
    assert.deepEqual(metricNames('time() - max(b_seconds) / on (job) group_left (x) c * 1e3 + d unless e'), ['b_seconds', 'c', 'd', 'e']);
    assert.deepEqual(metricNames('label_values(switchyard_requests_total, route)'), ['switchyard_requests_total']);
    assert.deepEqual(metricNames('sum without (code) (f) + max by (x) (g) + count(h)'), ['f', 'g', 'h']);
    assert.deepEqual(missingFrom('# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n', ['h_bucket', 'h_sum', 'h', 'h_other']), ['h_other']);
  });
});
