/**
 * Fault-injection switches shared by the server and its request handler: failing responses,
 * hangs (requests accepted and never answered until released), added latency, and the leader
 * headers / leaderless mode.
 */

export interface InjectedFailure {
  status: number;
  body: string;
}

export function defaultFailureBody(status: number): string {
  return `injected failure: the Consul test server answers ${status}`;
}

export class Faults {
  private failing: InjectedFailure | null = null;
  private queue: InjectedFailure[] = [];
  private hangGate: { promise: Promise<void>; release: () => void } | null = null;
  delayMs = 0;
  knownLeader = true;
  lastContactMs = 0;
  /** No leader: default and consistent reads answer 500 "No cluster leader"; stale reads work. */
  leaderless = false;

  failNext(n: number, status = 500, body = defaultFailureBody(status)): void {
    for (let i = 0; i < n; i += 1) this.queue.push({ status, body });
  }

  setFailing(status: number | null, body?: string): void {
    this.failing = status === null ? null : { status, body: body ?? defaultFailureBody(status) };
  }

  /** The failure to inject into the current request, if any (consumes one of failNext). */
  take(): InjectedFailure | null {
    const queued = this.queue.shift();
    return queued ?? this.failing;
  }

  setHang(on: boolean): void {
    if (on && !this.hangGate) {
      let release = (): void => {};
      const promise = new Promise<void>((resolve) => {
        release = resolve;
      });
      this.hangGate = { promise, release };
    } else if (!on && this.hangGate) {
      this.hangGate.release();
      this.hangGate = null;
    }
  }

  get hanging(): boolean {
    return this.hangGate !== null;
  }

  /** Resolves when the hang is lifted (immediately if there is none). */
  waitWhileHanging(): Promise<void> {
    return this.hangGate ? this.hangGate.promise : Promise.resolve();
  }

  /** Clears what a restarted Consul would not remember. */
  resetTransient(): void {
    this.failing = null;
    this.queue = [];
    this.setHang(false);
    this.delayMs = 0;
    this.leaderless = false;
    this.knownLeader = true;
    this.lastContactMs = 0;
  }
}
