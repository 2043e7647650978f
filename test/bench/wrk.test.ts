import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWrkOutput, parseWrkTime, WrkParseError } from '../../bench/wrk.js';
import { median } from '../../bench/report.js';

// Real wrk 4.1.0 outputs captured on the dev machine (`wrk -t1 -c50 -d2s --latency ...` against nginx).
const CLEAN = `Running 2s test @ http://127.0.0.1:19555/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   479.69us  259.13us   4.32ms   82.84%
    Req/Sec    78.65k    12.84k  102.65k    60.00%
  Latency Distribution
     50%  448.00us
     75%  588.00us
     90%  733.00us
     99%    1.21ms
  156271 requests in 2.00s, 22.35MB read
Requests/sec:  77991.84
Transfer/sec:     11.16MB
`;

// nginx answering 503: wrk adds the Non-2xx line.
const NON_2XX = `Running 1s test @ http://127.0.0.1:19555/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.91ms  371.36us   6.08ms   94.60%
    Req/Sec    42.27k     1.77k   45.80k    80.00%
  Latency Distribution
     50%    0.87ms
     75%    0.94ms
     90%    1.03ms
     99%    2.62ms
  42015 requests in 1.00s, 7.17MB read
  Non-2xx or 3xx responses: 42015
Requests/sec:  41912.48
Transfer/sec:      7.15MB
`;

// A server that resets some connections: wrk adds the Socket errors line.
const SOCKET_ERRORS = `Running 3s test @ http://127.0.0.1:19557/
  1 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.98ms    3.97ms  62.46ms   98.19%
    Req/Sec     4.68k     1.69k    6.49k    50.00%
  Latency Distribution
     50%    1.28ms
     75%    2.33ms
     90%    3.93ms
     99%   13.71ms
  1882 requests in 3.01s, 229.74KB read
  Socket errors: connect 0, read 38, write 0, timeout 0
Requests/sec:    625.08
Transfer/sec:     76.30KB
`;

describe('parseWrkTime', () => {
  it('converts every wrk unit to milliseconds', () => {
    assert.equal(parseWrkTime('448.00us'), 0.448);
    assert.equal(parseWrkTime('1.21ms'), 1.21);
    assert.equal(parseWrkTime('2.00s'), 2000);
    assert.equal(parseWrkTime('1.50m'), 90_000);
  });
  it('rejects what is not a wrk time', () => {
    assert.throws(() => parseWrkTime('1.21'), WrkParseError);
    assert.throws(() => parseWrkTime('fast'), WrkParseError);
  });
});

describe('parseWrkOutput', () => {
  it('reads requests/s, totals and the latency distribution of a clean run', () => {
    const r = parseWrkOutput(CLEAN);
    assert.equal(r.requestsPerSec, 77991.84);
    assert.equal(r.requests, 156271);
    assert.equal(r.seconds, 2);
    assert.equal(r.p50Ms, 0.448);
    assert.equal(r.p75Ms, 0.588);
    assert.equal(r.p90Ms, 0.733);
    assert.equal(r.p99Ms, 1.21);
    assert.equal(r.non2xx, 0);
    assert.equal(r.socketErrors, 0);
  });

  it('takes p50/p99 from the distribution, not the Thread Stats averages', () => {
    const r = parseWrkOutput(NON_2XX);
    assert.equal(r.p50Ms, 0.87);
    assert.equal(r.p99Ms, 2.62);
  });

  it('counts non-2xx responses', () => {
    assert.equal(parseWrkOutput(NON_2XX).non2xx, 42015);
  });

  it('sums socket errors', () => {
    const r = parseWrkOutput(SOCKET_ERRORS);
    assert.equal(r.socketErrors, 38);
    assert.equal(r.requestsPerSec, 625.08);
    assert.equal(r.p99Ms, 13.71);
  });

  it('fails without --latency output or when wrk could not connect', () => {
    const noLatency = CLEAN.replace(/ {2}Latency Distribution[\s\S]*?(?= {2}156271)/, '');
    assert.throws(() => parseWrkOutput(noLatency), /Latency Distribution/);
    assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:19556 Connection refused\n'), WrkParseError);
  });
});

describe('median', () => {
  it('is the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });
});
