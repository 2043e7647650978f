/**
 * A route's retry budget (Finagle's RetryBudget): over a sliding window of the last 10 s, retries
 * may be at most `percent`% of the route's requests plus `minPerSecond` × 10, so retries cannot
 * multiply the load on an upstream that is already failing, while low traffic can still retry.
 *
 * The window is ten one-second slots of counters; `now` is the caller's clock in milliseconds
 * (performance.now(), already read per request). A deposit costs a division, a compare and two
 * increments; no allocation, no timer. Only first attempts deposit; only retries withdraw.
 */
export const RETRY_WINDOW_SECONDS = 10;

export class RetryBudget {
  private readonly requests = new Float64Array(RETRY_WINDOW_SECONDS);
  private readonly retries = new Float64Array(RETRY_WINDOW_SECONDS);
  private second = -1;
  private requestTotal = 0;
  private retryTotal = 0;

  /** Count one request (first attempt). */
  deposit(now: number): void {
    const slot = this.slot(now);
    this.requests[slot]! += 1;
    this.requestTotal += 1;
  }

  /** Take one retry if the budget allows it; false when exhausted. */
  withdraw(now: number, percent: number, minPerSecond: number): boolean {
    const slot = this.slot(now);
    const allowed = (this.requestTotal * percent) / 100 + minPerSecond * RETRY_WINDOW_SECONDS;
    if (this.retryTotal + 1 > allowed) return false;
    this.retries[slot]! += 1;
    this.retryTotal += 1;
    return true;
  }

  /** Requests and retries inside the window (for inspection and tests). */
  counts(now: number): { requests: number; retries: number } {
    this.slot(now);
    return { requests: this.requestTotal, retries: this.retryTotal };
  }

  /** The slot of `now`, clearing slots that fell out of the window since the last call. */
  private slot(now: number): number {
    const second = Math.floor(now / 1000);
    if (second !== this.second) this.advance(second);
    return second % RETRY_WINDOW_SECONDS;
  }

  private advance(second: number): void {
    const gap = second - this.second;
    if (this.second < 0 || gap >= RETRY_WINDOW_SECONDS || gap < 0) {
      this.requests.fill(0);
      this.retries.fill(0);
      this.requestTotal = 0;
      this.retryTotal = 0;
    } else {
      for (let s = this.second + 1; s <= second; s++) {
        const slot = s % RETRY_WINDOW_SECONDS;
        this.requestTotal -= this.requests[slot]!;
        this.retryTotal -= this.retries[slot]!;
        this.requests[slot] = 0;
        this.retries[slot] = 0;
      }
    }
    this.second = second;
  }
}
