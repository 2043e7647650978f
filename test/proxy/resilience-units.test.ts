/** The proxy's policy building blocks without sockets: retry budget, token buckets, small helpers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpsLocation } from '../../src/proxy/policy/admission.js';
import { BodyTap, BodyTooLargeError } from '../../src/proxy/http/body-tap.js';
import { isIdempotent } from '../../src/proxy/policy/retry-decision.js';
import { contentLengthOf } from '../../src/proxy/http/headers.js';
import { RateLimiter } from '../../src/proxy/policy/rate-limiter.js';
import { RetryBudget } from '../../src/proxy/policy/retry-budget.js';
import { poolKey } from '../../src/proxy/runtime/upstreams.js';
import { RETRY_ON_CONNECT_FAILURE, RETRY_ON_RESET } from '../../src/proxy/runtime/runtime.js';
import { FAILURE_CODE, failureOf, isUpstreamFault, ProxyAbort, retryCondition } from '../../src/proxy/http/upstream-failure.js';
import { httpStatusFor } from '../../src/errors.js';

describe('RetryBudget', () => {
  it('allows percent of the requests in the window plus minPerSecond × 10', () => {
    const budget = new RetryBudget();
    for (let i = 0; i < 100; i++) budget.deposit(1_000 + i);
    let granted = 0;
    while (budget.withdraw(1_500, 20, 0.5) && granted < 1_000) granted += 1;
    assert.equal(granted, 25, '20% of 100 + 0.5/s × 10 s');
    assert.deepEqual(budget.counts(1_500), { requests: 100, retries: 25 });
  });

  it('forgets requests and retries that leave the 10 s window, slot by slot', () => {
    const budget = new RetryBudget();
    for (let i = 0; i < 50; i++) budget.deposit(0);
    for (let i = 0; i < 50; i++) budget.deposit(5_000);
    assert.ok(budget.withdraw(5_100, 10, 0));
    assert.deepEqual(budget.counts(9_999), { requests: 100, retries: 1 });
    assert.deepEqual(budget.counts(10_000), { requests: 50, retries: 1 }, 'second 0 left the window');
    assert.deepEqual(budget.counts(15_000), { requests: 0, retries: 0 });
    assert.equal(budget.withdraw(15_000, 100, 0), false, 'no requests, no floor: no retry');
    assert.deepEqual(budget.counts(60_000), { requests: 0, retries: 0 }, 'a long gap clears everything');
  });
});

describe('RateLimiter', () => {
  it('a shared bucket: burst, then Retry-After in whole seconds, refilled by time', () => {
    const limiter = new RateLimiter(0.5, 2, false);
    assert.equal(limiter.take('a', 0), 0);
    assert.equal(limiter.take('b', 0), 0);
    assert.equal(limiter.take('c', 0), 2, 'one token every 2 s');
    assert.equal(limiter.take('a', 1_000), 1, 'half a token back after 1 s');
    assert.equal(limiter.take('a', 2_000), 0);
    assert.equal(limiter.take('a', 1e9), 0, 'never more than the burst');
    assert.equal(limiter.take('a', 1e9), 0);
    assert.ok(limiter.take('a', 1e9) > 0);
  });

  it('per client: separate buckets, at most maxClients of them, full ones dropped first', () => {
    const limiter = new RateLimiter(1, 1, true, 10);
    for (let i = 0; i < 10; i++) assert.equal(limiter.take(`10.0.0.${i}`, 0), 0);
    assert.ok(limiter.take('10.0.0.0', 0) > 0, 'the same client again is limited');
    assert.equal(limiter.clientCount, 10);
    // 10.0.0.0 .. 9 are all full again at t = 5 s: a new client evicts them, not the bound.
    assert.equal(limiter.take('10.0.0.99', 5_000), 0);
    assert.equal(limiter.clientCount, 1);
    for (let i = 0; i < 1_000; i++) limiter.take(`10.1.${i >> 8}.${i & 255}`, 5_000);
    assert.ok(limiter.clientCount <= 10, `bounded: ${limiter.clientCount}`);
  });

  it('sameAs tells whether bucket state can be kept across a swap', () => {
    const limiter = new RateLimiter(5, 10, false);
    assert.ok(limiter.sameAs(5, 10, false));
    assert.ok(!limiter.sameAs(5, 10, true));
    assert.ok(!limiter.sameAs(6, 10, false));
  });
});

describe('small helpers', () => {
  it('contentLengthOf', () => {
    const cases: [string[], number][] = [
      [['Host', 'a', 'Content-Length', '42'], 42],
      [['content-length', ' 7 '], 7],
      [['Content-Length', '0'], 0],
      [['Transfer-Encoding', 'chunked'], -1],
      [['Content-Length', '1e3'], -1],
      [['Content-Length', '-1'], -1],
      [['Content-Length', ''], -1],
    ];
    for (const [raw, expected] of cases) assert.equal(contentLengthOf(raw), expected, raw.join(' '));
  });

  it('httpsLocation', () => {
    const cases: [string | undefined, number, string, string | undefined][] = [
      ['example.com', 8443, '/a?b', 'https://example.com:8443/a?b'],
      ['example.com:8080', 443, '/', 'https://example.com/'],
      ['[::1]:8080', 8443, '/x', 'https://[::1]:8443/x'],
      ['[::1]', 443, '/x', 'https://[::1]/x'],
      [undefined, 443, '/', undefined],
      ['', 443, '/', undefined],
      [':8080', 443, '/', undefined],
      ['[::1', 443, '/', undefined],
    ];
    for (const [host, port, path, expected] of cases) assert.equal(httpsLocation(host, port, path), expected, `${host} ${port}`);
  });

  it('isIdempotent', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) assert.ok(isIdempotent(m), m);
    for (const m of ['POST', 'PATCH', 'CONNECT', 'get', undefined]) assert.ok(!isIdempotent(m), String(m));
  });

  it('poolKey: the origin for the default connect timeout, a distinct key otherwise', () => {
    assert.equal(poolKey('http://a:1', 5_000, 5_000), 'http://a:1');
    assert.equal(poolKey('http://a:1', 250, 5_000), 'http://a:1 connect=250');
  });
});

describe('BodyTap', () => {
  /** Write `chunks` through a tap and collect what passes on. */
  async function through(tap: BodyTap, chunks: Buffer[]): Promise<{ passed: Buffer; error: Error | undefined }> {
    const out: Buffer[] = [];
    let error: Error | undefined;
    tap.on('data', (c: Buffer) => out.push(c));
    const done = new Promise<void>((resolve) => {
      tap.on('end', resolve);
      tap.on('error', (err) => { error = err; resolve(); });
    });
    for (const c of chunks) tap.write(c);
    tap.end();
    await done;
    return { passed: Buffer.concat(out), error };
  }

  it('passes every chunk on and keeps an exact copy of a body within `keep`, however small the chunks', async () => {
    const body = Buffer.from(Array.from({ length: 5_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''));
    const tap = new BodyTap(-1, 8_192);
    assert.equal(tap.replay(), undefined, 'nothing to replay before the body ended');
    const { passed } = await through(tap, [...body].map((_, i) => body.subarray(i, i + 1)));
    assert.deepEqual(passed, body);
    assert.deepEqual(tap.replay(), body);
    tap.forgetCopy();
    assert.equal(tap.replay(), undefined, 'forgotten once no retry can follow');
  });

  it('past `keep` the copy is dropped (no replay); past `limit` the stream fails with BodyTooLargeError', async () => {
    const over = new BodyTap(-1, 10);
    assert.equal((await through(over, [Buffer.alloc(6), Buffer.alloc(6)])).passed.length, 12);
    assert.equal(over.replay(), undefined);
    const limited = new BodyTap(10, 0);
    const { error } = await through(limited, [Buffer.alloc(6), Buffer.alloc(6)]);
    assert.ok(error instanceof BodyTooLargeError);
  });
});

describe('failureOf: the one classification of undici and socket errors', () => {
  const err = (code: string | undefined, name = 'Error'): Error => Object.assign(new Error(code ?? 'x'), { code, name });

  it('maps each failure to the truthful error code, retry condition and outlier accounting', () => {
    const cases: [Error, boolean, string, string, number, boolean][] = [
      // error, connected, failure, code, retry condition, counts against the endpoint
      [err('ECONNREFUSED'), false, 'refused', 'SY_UPSTREAM_CONNECT', RETRY_ON_CONNECT_FAILURE, true],
      [err('UND_ERR_CONNECT_TIMEOUT'), false, 'connect-timeout', 'SY_UPSTREAM_TIMEOUT', RETRY_ON_CONNECT_FAILURE, true],
      [err('UND_ERR_SOCKET'), true, 'reset', 'SY_UPSTREAM_RESET', RETRY_ON_RESET, true],
      [err('ECONNRESET'), true, 'reset', 'SY_UPSTREAM_RESET', RETRY_ON_RESET, true],
      [err('UND_ERR_RES_CONTENT_LENGTH_MISMATCH'), true, 'reset', 'SY_UPSTREAM_RESET', RETRY_ON_RESET, true],
      [err('UND_ERR_HEADERS_OVERFLOW'), true, 'bad-response', 'SY_UPSTREAM_BAD_RESPONSE', 0, true],
      [err(undefined, 'HTTPParserError'), true, 'bad-response', 'SY_UPSTREAM_BAD_RESPONSE', 0, true],
      [err('UND_ERR_HEADERS_TIMEOUT'), true, 'headers-timeout', 'SY_UPSTREAM_TIMEOUT', 0, true],
      [err('UND_ERR_INVALID_ARG'), false, 'bad-request', 'SY_BAD_REQUEST', 0, false],
      [err('UND_ERR_DESTROYED'), false, 'local', 'SY_UPSTREAM_CONNECT', 0, false],
      [new BodyTooLargeError(10), true, 'body-too-large', 'SY_BODY_TOO_LARGE', 0, false],
      [new ProxyAbort('queue-timeout', 'q'), false, 'queue-timeout', 'SY_QUEUE_TIMEOUT', 0, false],
      [new ProxyAbort('client-closed', 'c'), true, 'client-closed', 'SY_CLIENT_CLOSED', 0, false],
      // Unknown errors: before a connection nothing was sent; after, the attempt broke.
      [err('EWHATEVER'), false, 'refused', 'SY_UPSTREAM_CONNECT', RETRY_ON_CONNECT_FAILURE, true],
      [err('EWHATEVER'), true, 'reset', 'SY_UPSTREAM_RESET', RETRY_ON_RESET, true],
    ];
    for (const [error, connected, failure, code, condition, fault] of cases) {
      const f = failureOf(error, connected);
      assert.equal(f, failure, `${error.name} ${(error as { code?: string }).code}`);
      assert.equal(FAILURE_CODE[f], code, f);
      assert.equal(retryCondition(f), condition, f);
      assert.equal(isUpstreamFault(f), fault, f);
    }
  });

  it('every failure code is in the code -> status map', () => {
    for (const code of Object.values(FAILURE_CODE)) assert.ok(httpStatusFor(code) >= 400, code);
    assert.equal(httpStatusFor('SY_UPSTREAM_BAD_RESPONSE'), 502);
    assert.equal(httpStatusFor('SY_QUEUE_TIMEOUT'), 503);
  });
});
