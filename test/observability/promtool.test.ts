/**
 * `promtool check metrics` (Prometheus' own linter: names, units, HELP, counter suffixes) on the
 * real exposition of an in-process Switchyard after traffic that makes most series exist. promtool
 * is required: CI installs Debian's prometheus package (.ci/install-clients); a machine without it
 * fails this test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { hasSample, startWithMetricTraffic, type MetricTraffic } from '../support/metric-traffic.js';

const PROMTOOL = process.env['PROMTOOL'] ?? 'promtool';

/** promtool's findings on an exposition: one line per problem, empty when clean. */
export function promtoolProblems(exposition: string): string[] {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined) throw new Error(`${PROMTOOL} could not run (install Debian's prometheus package): ${run.error.message}`);
  const problems = `${run.stdout}${run.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (run.status !== 0 && problems.length === 0) problems.push(`promtool exited ${run.status} without a message`);
  return problems;
}

describe('promtool check metrics on /metrics', () => {
  let traffic: MetricTraffic;
  before(async () => {
    traffic = await startWithMetricTraffic();
  });
  after(() => traffic?.stop());

  it('finds no problem in the exposition after traffic', async () => {
    const exposition = await traffic.metrics();
    // The traffic made the series promtool should see (else a clean result proves little).
    for (const name of ['switchyard_requests_total', 'switchyard_retries_total', 'switchyard_ejections_total', 'switchyard_rate_limited_total',
      'switchyard_upstream_timeouts_total', 'switchyard_change_to_swap_seconds_bucket', 'switchyard_consul_errors_total', 'switchyard_process_process_cpu_seconds_total']) {
      assert.ok(hasSample(exposition, name), `${name} has a sample`);
    }
    assert.deepEqual(promtoolProblems(exposition), []);
  });

  it('the check can fail: promtool reports a counter without _total', () => {
    const bad = '# HELP switchyard_bad_things Things.\n# TYPE switchyard_bad_things counter\nswitchyard_bad_things 1\n';
    assert.ok(promtoolProblems(bad).some((p) => p.includes('switchyard_bad_things')));
  });
});
