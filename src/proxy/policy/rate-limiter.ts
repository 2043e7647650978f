/**
 * Token buckets for a route's rate limit: one shared bucket, or one per client address. A bucket
 * holds up to `burst` tokens and refills at `requestsPerSecond`; a request takes one token or is
 * refused with the time until one is available. Refill is computed lazily from the caller's clock
 * (milliseconds, performance.now()), so there is no timer.
 *
 * Per-client buckets live in a Map bounded by `maxClients`. When it is full, buckets that have
 * refilled completely are dropped first (a full bucket is the same as a new one, so nothing is
 * forgotten); if that frees too little, the oldest tenth by insertion is dropped (those clients
 * get a fresh, full bucket: the bound wins over exactness).
 */
export const DEFAULT_MAX_CLIENTS = 10_000;

class Bucket {
  tokens: number;
  last: number;
  constructor(tokens: number, now: number) {
    this.tokens = tokens;
    this.last = now;
  }
}

export class RateLimiter {
  readonly requestsPerSecond: number;
  readonly burst: number;
  readonly perClient: boolean;
  private readonly perMs: number;
  private readonly shared: Bucket;
  private readonly clients = new Map<string, Bucket>();
  private readonly maxClients: number;

  constructor(requestsPerSecond: number, burst: number, perClient: boolean, maxClients = DEFAULT_MAX_CLIENTS) {
    this.requestsPerSecond = requestsPerSecond;
    this.burst = burst;
    this.perClient = perClient;
    this.perMs = requestsPerSecond / 1000;
    this.maxClients = Math.max(1, maxClients);
    this.shared = new Bucket(burst, 0);
    this.shared.last = Number.NEGATIVE_INFINITY;
  }

  /** Same settings: the bucket state can be kept across a table swap. */
  sameAs(requestsPerSecond: number, burst: number, perClient: boolean): boolean {
    return this.requestsPerSecond === requestsPerSecond && this.burst === burst && this.perClient === perClient;
  }

  /** Per-client buckets held right now. */
  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * Take a token for `client` (ignored unless per-client) at `now` ms. Returns 0 when the request
   * may pass, else the whole seconds until a token is available (at least 1): the Retry-After value.
   */
  take(client: string, now: number): number {
    let bucket: Bucket;
    if (this.perClient) {
      const found = this.clients.get(client);
      if (found === undefined) {
        if (this.clients.size >= this.maxClients) this.evict(now);
        bucket = new Bucket(this.burst, now);
        this.clients.set(client, bucket);
      } else bucket = found;
    } else bucket = this.shared;
    const elapsed = now - bucket.last;
    let tokens = elapsed === Number.POSITIVE_INFINITY ? this.burst : bucket.tokens + elapsed * this.perMs;
    if (tokens > this.burst) tokens = this.burst;
    bucket.last = now;
    if (tokens >= 1) {
      bucket.tokens = tokens - 1;
      return 0;
    }
    bucket.tokens = tokens;
    return Math.max(1, Math.ceil((1 - tokens) / this.requestsPerSecond));
  }

  private evict(now: number): void {
    for (const [client, bucket] of this.clients) {
      if (bucket.tokens + (now - bucket.last) * this.perMs >= this.burst) this.clients.delete(client);
    }
    if (this.clients.size < this.maxClients) return;
    let drop = Math.max(1, Math.ceil(this.maxClients / 10));
    for (const client of this.clients.keys()) {
      this.clients.delete(client);
      if (--drop === 0) break;
    }
  }
}
