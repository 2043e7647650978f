/**
 * Smooth weighted round-robin (nginx's algorithm): each pick adds every weight to its running
 * score, takes the highest score and subtracts the total from it. Over any window of `total`
 * consecutive picks each item is chosen exactly `weight` times, interleaved as evenly as possible.
 *
 * The running scores are the only mutable state. They are keyed by stable ids so they survive a
 * table swap: a pool whose ids and weights are unchanged keeps its scores (the cycle continues);
 * a pool whose weights changed starts a fresh cycle, so the new split is exact from the swap on.
 */
export interface Weighted {
  readonly id: string;
  readonly weight: number;
}

export class SmoothWeightedRoundRobin<T extends Weighted> {
  readonly items: readonly T[];
  readonly total: number;
  private readonly weights: Float64Array;
  private readonly scores: Float64Array;

  constructor(items: readonly T[], previous?: SmoothWeightedRoundRobin<T>) {
    const usable = items.filter((item) => item.weight > 0);
    const n = usable.length;
    const weights = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const weight = usable[i]!.weight;
      weights[i] = weight;
      total += weight;
    }
    this.items = usable;
    this.weights = weights;
    this.total = total;
    this.scores = previous?.sameCycle(usable, weights) === true ? previous.scores : new Float64Array(n);
  }

  /**
   * `id=weight,…`: two balancers with the same signature cycle identically. Made on demand (for
   * tests and diagnostics): a swap compares ids and weights in place (`sameCycle`), since building
   * this string for every pool of a full table was a measurable part of the swap.
   */
  get signature(): string {
    return this.items.map((item, i) => `${item.id}=${this.weights[i]!}`).join(',');
  }

  /** Whether this balancer has these ids with these weights in this order (the same signature). */
  private sameCycle(items: readonly T[], weights: Float64Array): boolean {
    if (this.items.length !== items.length) return false;
    for (let i = 0; i < items.length; i++) {
      if (this.items[i]!.id !== items[i]!.id || this.weights[i] !== weights[i]) return false;
    }
    return true;
  }

  /** The next item, or undefined when no item has a positive weight. */
  pick(): T | undefined {
    const n = this.weights.length;
    if (n === 0) return undefined;
    if (n === 1) return this.items[0];
    const { weights, scores } = this;
    let best = 0;
    let bestScore = -Infinity;
    for (let i = 0; i < n; i++) {
      const score = scores[i]! + weights[i]!;
      scores[i] = score;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    scores[best] = bestScore - this.total;
    return this.items[best];
  }

  /** Like pick, but skips items for which `exclude` returns true (retries go to another endpoint). Skipped picks still advance the cycle. */
  pickExcluding(exclude: (item: T) => boolean): T | undefined {
    const n = this.items.length;
    for (let attempt = 0; attempt < n; attempt++) {
      const item = this.pick();
      if (item === undefined) return undefined;
      if (!exclude(item)) return item;
    }
    return undefined;
  }
}

