import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SmoothWeightedRoundRobin, type Weighted } from '../../src/model/balancer.js';

const items = (weights: Record<string, number>): Weighted[] => Object.entries(weights).map(([id, weight]) => ({ id, weight }));

function counts(balancer: SmoothWeightedRoundRobin<Weighted>, picks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < picks; i++) {
    const id = balancer.pick()?.id ?? 'none';
    out[id] = (out[id] ?? 0) + 1;
  }
  return out;
}

function sequence(balancer: SmoothWeightedRoundRobin<Weighted>, picks: number): string {
  let s = '';
  for (let i = 0; i < picks; i++) s += balancer.pick()?.id ?? '-';
  return s;
}

describe('SmoothWeightedRoundRobin: exact splits', () => {
  const cases: [Record<string, number>, number, Record<string, number>][] = [
    [{ a: 90, b: 10 }, 1000, { a: 900, b: 100 }],
    [{ a: 5, b: 1, c: 1 }, 700, { a: 500, b: 100, c: 100 }],
    [{ a: 1, b: 1, c: 1 }, 999, { a: 333, b: 333, c: 333 }],
    [{ a: 50, b: 50 }, 100, { a: 50, b: 50 }],
    [{ a: 3, b: 2 }, 5, { a: 3, b: 2 }],
    [{ a: 1, b: 0, c: 3 }, 400, { a: 100, c: 300 }],
    [{ only: 7 }, 10, { only: 10 }],
  ];
  for (const [weights, picks, expected] of cases) {
    it(`${JSON.stringify(weights)} over ${picks} picks → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(counts(new SmoothWeightedRoundRobin(items(weights)), picks), expected);
    });
  }

  it('is exact in every window of `total` consecutive picks, not only from the start', () => {
    const b = new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 }));
    const seq = sequence(b, 70);
    for (let start = 0; start + 7 <= seq.length; start++) {
      const window = seq.slice(start, start + 7);
      assert.deepEqual([...'abc'].map((id) => window.split(id).length - 1), [5, 1, 1], `window at ${start}: ${window}`);
    }
  });

  it('interleaves as nginx does (5/1/1 → a a b a c a a)', () => {
    assert.equal(sequence(new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 })), 14), 'aabacaaaabacaa');
  });
});

describe('SmoothWeightedRoundRobin: zero weights and empty pools', () => {
  it('never picks a zero-weight item', () => {
    const b = new SmoothWeightedRoundRobin(items({ a: 0, b: 2, c: 0, d: 1 }));
    assert.deepEqual(b.items.map((i) => i.id), ['b', 'd']);
    assert.deepEqual(counts(b, 300), { b: 200, d: 100 });
  });

  it('returns undefined when no item has weight', () => {
    assert.equal(new SmoothWeightedRoundRobin(items({ a: 0, b: 0 })).pick(), undefined);
    assert.equal(new SmoothWeightedRoundRobin([]).pick(), undefined);
  });

  it('pickExcluding skips excluded items and gives up when all are excluded', () => {
    const b = new SmoothWeightedRoundRobin(items({ a: 2, b: 1, c: 1 }));
    for (let i = 0; i < 40; i++) assert.notEqual(b.pickExcluding((item) => item.id === 'a')?.id, 'a');
    assert.equal(b.pickExcluding(() => true), undefined);
  });
});

describe('SmoothWeightedRoundRobin: state across table swaps', () => {
  it('carries the cycle when ids and weights are unchanged', () => {
    const reference = sequence(new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 })), 20);
    const first = new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 }));
    const head = sequence(first, 3);
    // New item objects (a new table), same ids and weights: the same signature.
    const second = new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 }), first);
    assert.equal(second.signature, first.signature);
    assert.equal(head + sequence(second, 17), reference);
  });

  it('keeps the split exact across a swap mid-cycle', () => {
    const first = new SmoothWeightedRoundRobin(items({ a: 90, b: 10 }));
    const head = counts(first, 37);
    const tail = counts(new SmoothWeightedRoundRobin(items({ a: 90, b: 10 }), first), 63);
    assert.deepEqual({ a: (head['a'] ?? 0) + (tail['a'] ?? 0), b: (head['b'] ?? 0) + (tail['b'] ?? 0) }, { a: 90, b: 10 });
  });

  it('resets when weights change, so the new split is exact from the swap on', () => {
    const first = new SmoothWeightedRoundRobin(items({ a: 5, b: 1, c: 1 }));
    sequence(first, 3);
    const second = new SmoothWeightedRoundRobin(items({ a: 1, b: 1, c: 2 }), first);
    assert.notEqual(second.signature, first.signature);
    assert.equal(sequence(second, 8), sequence(new SmoothWeightedRoundRobin(items({ a: 1, b: 1, c: 2 })), 8));
    const third = new SmoothWeightedRoundRobin(items({ a: 1, b: 1, c: 2 }), first);
    assert.deepEqual(counts(third, 4), { a: 1, b: 1, c: 2 });
  });

  it('resets when the set of ids changes', () => {
    const first = new SmoothWeightedRoundRobin(items({ a: 1, b: 1 }));
    sequence(first, 1);
    const second = new SmoothWeightedRoundRobin(items({ a: 1, c: 1 }), first);
    assert.equal(sequence(second, 4), 'acac');
  });
});
