/**
 * The connection budget to the Consul agent: at most `max` requests in flight at once, whatever
 * asks (blocking watches, service reads, the leader and ACL probes). The agent allows one client
 * `limits.http_max_conns_per_client` connections (200 by default) and answers 429 and closes past
 * it (agent/agent.go), so Switchyard's share must not grow with the catalog.
 *
 * A slot is held for one HTTP exchange only, never across a veto or a pause, so a holder never
 * waits for another slot while holding one (no deadlock). Waiters are served in arrival order.
 */
export class RequestBudget {
  private inFlight = 0;
  private highWater = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`request budget must be a positive integer, got ${max}`);
  }

  /** Requests in flight now. */
  get active(): number {
    return this.inFlight;
  }

  /** Most requests ever in flight at once. */
  get peak(): number {
    return this.highWater;
  }

  /**
   * Waits for a slot; resolves with its release function (call it exactly once). Rejects with the
   * signal's reason if the signal aborts first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    if (this.inFlight < this.max) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      const entry = {
        grant: (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.take());
        },
      };
      const onAbort = (): void => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private take(): () => void {
    this.inFlight += 1;
    if (this.inFlight > this.highWater) this.highWater = this.inFlight;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= 1;
      const next = this.waiting.shift();
      next?.grant();
    };
  }
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error('cancelled');
}
