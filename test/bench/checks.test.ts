import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArmRun } from '../../bench/ab.js';
import { fileWatchChecks } from '../../bench/file-watch.js';
import { swapChecks } from '../../bench/swap-cost.js';
import { perCoreChecks, summarize, type RunRecord } from '../../bench/throughput-report.js';
import type { WrkResult } from '../../bench/wrk.js';

function record(rps: number, cpuSeconds: number, errors = 0, seconds = 10): RunRecord {
  const result: WrkResult = {
    requestsPerSec: rps, requests: rps * seconds, seconds, p50Ms: 1, p75Ms: 1, p90Ms: 1, p99Ms: 2, non2xx: errors, socketErrors: 0,
  };
  return { round: 1, result, rssBytes: 100, cpu: { cpuSeconds, wallSeconds: seconds }, otherCpuPct: 0, stealPct: 0 };
}

const row = (name: string, runs: RunRecord[]) => summarize({ name, reference: false, unavailable: undefined, runs, failures: [] })!;
const run = (arm: string, round: number, r: RunRecord, extra: Record<string, number> = {}): ArmRun => ({ arm, round, record: { ...r, round }, extra });

describe('summarize', () => {
  it('takes the median CPU µs per request of the runs', () => {
    const s = row('x', [record(10_000, 2), record(10_000, 3), record(10_000, 10)]);
    assert.equal(s.cpuUsPerReq, 30); // 3 s / 100,000 requests
    assert.equal(s.cpuPct, 30);
  });
});

describe('perCoreChecks', () => {
  it('passes at ≥ 0.95 × bare undici and CPU per request ≤ 1/0.95 ×', () => {
    const [rps, cpu] = perCoreChecks(row('switchyard', [record(9_600, 9.6)]), row('bare-undici', [record(10_000, 9.5)]));
    assert.equal(rps!.pass, true);
    assert.equal(cpu!.pass, true);
  });
  it('fails below (the access log costing 15%)', () => {
    const [rps, cpu] = perCoreChecks(row('switchyard', [record(8_500, 10)]), row('bare-undici', [record(10_000, 10)]));
    assert.equal(rps!.pass, false);
    assert.equal(cpu!.pass, false); // 117.6 µs vs 100 µs
  });
});

describe('swapChecks', () => {
  const steady = record(10_000, 10);
  it('passes with ≥ 0.95 of the steady throughput, no errors and ~10 swaps a second', () => {
    const checks = swapChecks([run('steady', 1, steady, { swaps: 0 }), run('swapping', 1, record(9_700, 10), { rewrites: 100, swaps: 98 })], 10);
    assert.deepEqual(checks.slice(0, 3).map((c) => c.pass), [true, true, true]);
  });
  it('fails on errors, on a throughput drop, and when the rewrites did not become swaps', () => {
    const checks = swapChecks([run('steady', 1, steady), run('swapping', 1, record(9_000, 10, 3), { rewrites: 100, swaps: 40 })], 10);
    assert.deepEqual(checks.slice(0, 3).map((c) => c.pass), [false, false, false]);
  });
  it('pairs runs by round and takes the median ratio', () => {
    const runs = [1, 2, 3].flatMap((round, i) => [run('steady', round, steady), run('swapping', round, record([9_000, 9_600, 9_900][i]!, 10), { rewrites: 100, swaps: 100 })]);
    assert.match(swapChecks(runs, 10)[0]!.value, /^0\.960 /);
  });
});

describe('fileWatchChecks', () => {
  it('fails when a log written beside the services file costs more CPU per request', () => {
    const runs = [run('elsewhere', 1, record(10_000, 10)), run('beside', 1, record(9_500, 10.6))];
    assert.equal(fileWatchChecks(runs, [])[0]!.pass, false);
  });
  it('passes when it costs nothing', () => {
    const runs = [run('elsewhere', 1, record(10_000, 10)), run('beside', 1, record(10_000, 10.1))];
    assert.equal(fileWatchChecks(runs, [])[0]!.pass, true);
  });
});
