import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuUsPerRequest, sampleCpu, treeCpuSeconds } from '../../bench/cpu.js';
import { statTicks } from '../../bench/procs.js';
import { waitFor } from '../support/wait.js';

// A /proc/PID/stat line (fields from Linux's proc(5)); utime 1200, stime 300, cutime 40, cstime 10.
const STAT = '4242 (node (main) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1200 300 40 10 20 0 11 0 100 1000000 2000 18446744073709551615';

describe('statTicks', () => {
  it('reads utime+stime after the command name, which may hold spaces and parentheses', () => {
    assert.equal(statTicks(STAT, false), 1500);
  });
  it('adds cutime+cstime (children already reaped) when asked', () => {
    assert.equal(statTicks(STAT, true), 1550);
  });
});

describe('cpuUsPerRequest', () => {
  it('is CPU microseconds over completed requests', () => {
    assert.equal(cpuUsPerRequest(2, 40_000), 50);
    assert.ok(Number.isNaN(cpuUsPerRequest(1, 0)));
  });
});

describe('treeCpuSeconds', () => {
  it('grows while this process burns CPU, and sampleCpu reports the difference', async () => {
    const sample = sampleCpu(process.pid);
    const before = treeCpuSeconds(process.pid);
    // Burn CPU in slices until the kernel's tick counter has moved (10 ms ticks); bounded by waitFor.
    await waitFor('the process tree CPU time to grow', () => {
      const end = performance.now() + 20;
      let x = 0;
      while (performance.now() < end) x += Math.sqrt(x + 1);
      return x > 0 && treeCpuSeconds(process.pid) > before;
    }, 10_000);
    const { cpuSeconds, wallSeconds } = sample.stop();
    assert.ok(cpuSeconds > 0, `cpuSeconds ${cpuSeconds}`);
    assert.ok(wallSeconds > 0);
  });
});
