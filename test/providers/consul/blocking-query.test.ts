/**
 * The blocking query loop, driven by a scripted fake request so that every rule is checked
 * exactly: index and wait, index < 1, index backwards, read afresh after an error, dedupe, veto,
 * rate limit between call starts, backoff with reset, refresh and prompt stop.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backoffDelay,
  BlockingQuery,
  type Answer,
  type BlockingQueryTimings,
  type QueryMeta,
  type QueryRequest,
  type Veto,
} from '../../../src/providers/consul/blocking-query.js';
import { ConsulWatchError } from '../../../src/providers/consul/watch-error.js';
import { waitFor } from '../../support/wait.js';

interface Call {
  readonly index: number;
  readonly waitMs: number;
  readonly at: number;
  readonly signal: AbortSignal;
  settle?: (answer: Answer<string>) => void;
  fail?: (err: unknown) => void;
}

/** A fake Consul endpoint: every call waits until the test answers or fails it. */
class Script {
  readonly calls: Call[] = [];
  private open: Call[] = [];

  readonly fetch = (request: QueryRequest): Promise<Answer<string>> => new Promise((resolve, reject) => {
    const call: Call = { index: request.index, waitMs: request.waitMs, at: performance.now(), signal: request.signal };
    call.settle = resolve;
    call.fail = reject;
    request.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    this.calls.push(call);
    this.open.push(call);
  });

  /** Waits for call number `n` (1-based) to arrive. */
  async call(n: number): Promise<Call> {
    return waitFor(`call ${n}`, () => this.calls[n - 1], 3_000, 1);
  }

  async answer(n: number, body: string, index: number, meta: Partial<QueryMeta> = {}): Promise<void> {
    const call = await this.call(n);
    this.open = this.open.filter((c) => c !== call);
    call.settle?.({ body, meta: { index, knownLeader: true, lastContactMs: 0, filteredByAcls: false, ...meta } });
  }

  async fail(n: number, err: unknown = new ConsulWatchError('boom', '500', { status: 500 })): Promise<void> {
    const call = await this.call(n);
    this.open = this.open.filter((c) => c !== call);
    call.fail?.(err);
  }
}

const TIMINGS: BlockingQueryTimings = { waitMs: 1_000, minIntervalMs: 1, backoffBaseMs: 10, backoffMaxMs: 40 };

function loop(script: Script, timings: Partial<BlockingQueryTimings> = {}, veto?: (next: string, prev: string | undefined, meta: QueryMeta, signal: AbortSignal) => Veto | Promise<Veto>) {
  const changes: string[] = [];
  const failures: { reason: string; failures: number; retryInMs: number }[] = [];
  const backwards: [number, number][] = [];
  const q = new BlockingQuery<string, string>('test', {
    fetch: script.fetch,
    decode: (body) => {
      if (body === 'garbage') throw new Error('not JSON');
      return body;
    },
    ...(veto === undefined ? {} : { veto }),
    onChange: (value) => changes.push(value),
    onIndexBackwards: (from, to) => backwards.push([from, to]),
    onFailure: (error, n, retryInMs) => failures.push({ reason: error.reason, failures: n, retryInMs }),
  }, { ...TIMINGS, ...timings }, () => 1);
  return { q, changes, failures, backwards };
}

describe('blocking query loop', () => {
  it('first reads without blocking, then sends the returned index with wait', async () => {
    const script = new Script();
    const { q, changes } = loop(script);
    const started = q.start();
    assert.equal((await script.call(1)).index, 0);
    await script.answer(1, 'a', 42);
    await started;
    const second = await script.call(2);
    assert.equal(second.index, 42);
    assert.equal(second.waitMs, 1_000);
    await script.answer(2, 'b', 43);
    assert.equal((await script.call(3)).index, 43);
    assert.deepEqual(changes, ['a', 'b']);
    assert.equal(q.state.index, 43);
    await q.stop();
  });

  it('an index below 1 (or missing) is taken as 1', async () => {
    const script = new Script();
    const { q } = loop(script);
    void q.start();
    await script.answer(1, 'a', 0);
    assert.equal((await script.call(2)).index, 1);
    await script.answer(2, 'a', Number.NaN);
    assert.equal((await script.call(3)).index, 1);
    await q.stop();
  });

  it('an index that goes backwards resets to 0 (read afresh), then blocks on the new index', async () => {
    const script = new Script();
    const { q, changes, backwards } = loop(script);
    void q.start();
    await script.answer(1, 'a', 100);
    assert.equal((await script.call(2)).index, 100);
    await script.answer(2, 'b', 7);
    assert.equal((await script.call(3)).index, 0);
    await script.answer(3, 'b', 7);
    assert.equal((await script.call(4)).index, 7);
    assert.deepEqual(changes, ['a', 'b']);
    assert.deepEqual(backwards, [[100, 7]]);
    await q.stop();
  });

  it('a stale-fallback answer behind the applied index is older data, not a restore: kept out, our index kept', async () => {
    const script = new Script();
    const { q, changes, backwards } = loop(script);
    void q.start();
    await script.answer(1, 'leader-data', 100);
    await script.answer(2, 'older-data', 90, { staleFallback: true, knownLeader: false });
    assert.equal((await script.call(3)).index, 100, 'blocks on our own index again');
    assert.deepEqual(changes, ['leader-data']);
    assert.deepEqual(backwards, []);
    assert.equal(q.state.healthy, true);
    // A stale answer that is ahead is applied as usual.
    await script.answer(3, 'newer-data', 110, { staleFallback: true, knownLeader: false });
    assert.equal((await script.call(4)).index, 110);
    assert.deepEqual(changes, ['leader-data', 'newer-data']);
    await q.stop();
  });

  it('a return without change is deduplicated', async () => {
    const script = new Script();
    const { q, changes } = loop(script);
    void q.start();
    await script.answer(1, 'same', 5);
    await script.answer(2, 'same', 6);
    await script.answer(3, 'same', 7);
    await script.answer(4, 'other', 8);
    await script.call(5);
    assert.deepEqual(changes, ['same', 'other']);
    assert.equal(q.state.changes, 2);
    await q.stop();
  });

  it('after a failure the next call reads afresh (index 0), after the backoff', async () => {
    const script = new Script();
    const { q, failures } = loop(script, { backoffBaseMs: 30, backoffMaxMs: 30 });
    void q.start();
    await script.answer(1, 'a', 5);
    await script.call(2);
    const failedAt = performance.now();
    await script.fail(2);
    const third = await script.call(3);
    assert.equal(third.index, 0);
    assert.ok(third.at - failedAt >= 29, `paused ${third.at - failedAt} ms, expected the 30 ms backoff`);
    assert.deepEqual(failures, [{ reason: '500', failures: 1, retryInMs: 30 }]);
    assert.equal(q.state.healthy, false);
    assert.equal(q.state.lastError?.message, 'boom');
    await script.answer(3, 'a', 5);
    await script.call(4);
    assert.equal(q.state.healthy, true);
    assert.equal(q.state.lastError, undefined);
    await q.stop();
  });

  it('a vetoed answer is not applied: backoff, and the old index is kept', async () => {
    const script = new Script();
    const { q, changes, failures } = loop(script, {}, (next) => (next === 'empty' ? new ConsulWatchError('would empty', 'no_leader') : undefined));
    void q.start();
    await script.answer(1, 'full', 5);
    await script.answer(2, 'empty', 9, { knownLeader: false });
    assert.equal((await script.call(3)).index, 5);
    assert.deepEqual(failures.map((f) => f.reason), ['no_leader']);
    await script.answer(3, 'full', 10);
    assert.equal((await script.call(4)).index, 10);
    assert.deepEqual(changes, ['full']);
    await q.stop();
  });

  it('an async veto is awaited before the next call; stop() while it waits ends the loop without applying', async () => {
    const script = new Script();
    let release: ((v: Veto) => void) | undefined;
    let vetoSignal: AbortSignal | undefined;
    const { q, changes } = loop(script, {}, (next, _prev, _meta, signal) => {
      if (next !== 'empty') return undefined;
      vetoSignal = signal;
      return new Promise<Veto>((resolve) => {
        release = resolve;
      });
    });
    void q.start();
    await script.answer(1, 'full', 5);
    await script.answer(2, 'empty', 9);
    await waitFor('the veto asked', () => release !== undefined);
    assert.equal(script.calls.length, 2, 'no call while the veto is pending');
    const stopping = q.stop();
    assert.equal(vetoSignal?.aborted, true, 'the veto\'s signal aborts on stop()');
    release?.(undefined);
    await stopping;
    assert.deepEqual(changes, ['full'], 'an answer whose veto was cut is not applied');
  });

  it("'reread': a blocking answer is not applied nor a failure; the next call reads afresh at once, and its answer decides", async () => {
    const script = new Script();
    const { q, changes, failures } = loop(script, {}, (next, _prev, meta) => (next === 'empty' && meta.queryBackend === 'streaming' ? 'reread' : undefined));
    void q.start();
    await script.answer(1, 'full', 5);
    await script.answer(2, 'empty', 9, { queryBackend: 'streaming' });
    assert.equal((await script.call(3)).index, 0, 'a fresh read');
    assert.deepEqual(failures, [], 'not a failure: no backoff, no error');
    assert.equal(q.state.rereads, 1);
    await script.answer(3, 'empty', 9, { queryBackend: 'blocking-query' });
    assert.equal((await script.call(4)).index, 9);
    assert.deepEqual(changes, ['full', 'empty']);
    await q.stop();
  });

  it("'reread' on a fresh read applies the answer (the fresh read is the confirmation)", async () => {
    const script = new Script();
    const { q, changes } = loop(script, {}, () => 'reread');
    void q.start();
    await script.answer(1, 'a', 5, { queryBackend: 'streaming' });
    assert.equal((await script.call(2)).index, 5);
    assert.deepEqual(changes, ['a']);
    assert.equal(q.state.rereads, 0);
    await q.stop();
  });

  it('a body that cannot be decoded is an `invalid` failure', async () => {
    const script = new Script();
    const { q, failures } = loop(script);
    void q.start();
    await script.answer(1, 'garbage', 5);
    await script.call(2);
    assert.equal(failures[0]?.reason, 'invalid');
    assert.match(q.state.lastError?.message ?? '', /not JSON/);
    await q.stop();
  });

  it('backs off exponentially up to the cap, and a success resets it', async () => {
    const script = new Script();
    const { q, failures } = loop(script, { backoffBaseMs: 10, backoffMaxMs: 40 });
    void q.start();
    for (let n = 1; n <= 5; n++) await script.fail(n);
    await script.answer(6, 'a', 3);
    await script.fail(7);
    await script.call(8);
    assert.deepEqual(failures.map((f) => f.retryInMs), [10, 20, 40, 40, 40, 10]);
    for (let n = 2; n <= 5; n++) {
      const gap = script.calls[n]!.at - script.calls[n - 1]!.at;
      assert.ok(gap >= failures[n - 1]!.retryInMs - 1, `gap before call ${n + 1}: ${gap} ms`);
    }
    await q.stop();
  });

  it('backoffDelay: equal jitter between half the ceiling and the ceiling, capped', () => {
    assert.equal(backoffDelay(1, 250, 15_000, () => 0), 125);
    assert.equal(backoffDelay(1, 250, 15_000, () => 1), 250);
    assert.equal(backoffDelay(3, 250, 15_000, () => 1), 1000);
    assert.equal(backoffDelay(50, 250, 15_000, () => 1), 15_000);
    assert.equal(backoffDelay(5000, 250, 15_000, () => 0.5), 11_250);
  });

  it('rate limit: at least minIntervalMs between call starts; a long-blocked call re-arms at once', async () => {
    // The loop measures the interval from its own call start; the fake records the time a moment
    // later, and on a busy machine that moment can be late by a few ms. Without a limit the gaps
    // are about 0 ms, so a 10 ms margin still proves the rule. 500 ms (not 100) so that the
    // re-arm bound below, a fraction of it, has room on a loaded 2-core machine.
    const interval = 500;
    const script = new Script();
    const { q } = loop(script, { minIntervalMs: interval });
    void q.start();
    for (let n = 1; n <= 4; n++) await script.answer(n, `v${n}`, n);
    await script.call(5);
    for (let n = 1; n < 5; n++) {
      const gap = script.calls[n]!.at - script.calls[n - 1]!.at;
      assert.ok(gap >= interval - 10, `gap between call ${n} and ${n + 1}: ${gap} ms`);
    }
    // Call 5 is held longer than the interval: its successor starts as soon as it returns, where a
    // loop that counted the interval from the end of a call would wait the whole interval again.
    await waitFor('call 5 to be held beyond the interval', () => performance.now() - script.calls[4]!.at > interval * 1.5, 10_000, 2);
    const answeredAt = performance.now();
    await script.answer(5, 'v5', 5);
    const sixth = await script.call(6);
    // 300 ms: rules out waiting the interval again (500 ms from the answer).
    assert.ok(sixth.at - answeredAt < interval * 0.6, `re-armed after ${sixth.at - answeredAt} ms`);
    await q.stop();
  });

  it('stop() cancels a held call and a backoff pause promptly', async () => {
    const script = new Script();
    const a = loop(script);
    void a.q.start();
    const call = await script.call(1);
    const t0 = performance.now();
    await a.q.stop();
    assert.ok(call.signal.aborted);
    // The fake never answers this call: a stop() that did not abort it would never return.
    assert.ok(performance.now() - t0 < 10_000, `stop took ${performance.now() - t0} ms`);

    const script2 = new Script();
    const b = loop(script2, { backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
    void b.q.start();
    await script2.fail(1);
    await waitFor('the failure', () => b.failures.length === 1);
    const t1 = performance.now();
    await b.q.stop();
    // 10 s rules out sitting out the 60 s backoff, with room for a loaded CI machine.
    assert.ok(performance.now() - t1 < 10_000, `stopped during a 60 s backoff after ${performance.now() - t1} ms`);
    assert.equal(script2.calls.length, 1);
  });

  it('refresh() cuts a held call and reads afresh, without counting a failure', async () => {
    const script = new Script();
    const { q, failures } = loop(script);
    void q.start();
    await script.answer(1, 'a', 5);
    const held = await script.call(2);
    const refreshed = q.refresh();
    await waitFor('the held call to be cut', () => held.signal.aborted);
    const fresh = await script.call(3);
    assert.equal(fresh.index, 0);
    await script.answer(3, 'a', 6);
    await refreshed;
    assert.deepEqual(failures, []);
    assert.equal((await script.call(4)).index, 6);
    await q.stop();
  });
});
