import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { TableWire } from '../model/table-wire.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ClusterStats } from '../admin/status-view.js';
import { mergeSamples, type StatsSample } from '../proxy/runtime/endpoint-window.js';
import type { MatchRequest } from '../proxy/runtime/explain.js';
import type { SharedEjection } from '../proxy/runtime/route-state.js';
import { isFromWorker, WORKER_SLOT_ENV, type FromWorker, type ToWorker } from './messages.js';

/** Replacement backoff: 100 ms, doubling to 5 s; back to 100 ms once a worker served this long. */
export const RESTART_MIN_MS = 100;
export const RESTART_MAX_MS = 5_000;
export const RESTART_RESET_AFTER_MS = 10_000;
/** /api/match waits this long for the worker's answer. */
const EXPLAIN_TIMEOUT_MS = 2_000;
/** /api/status waits this long for each worker's traffic windows (the page asks every second). */
const STATS_TIMEOUT_MS = 1_000;

/** One of the N places a worker runs in; a replacement takes its dead predecessor's slot. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** The worker's handlers are attached (sy:hello): messages sent now are not lost. */
  hello: boolean;
  /** The table version the worker acknowledged as live (0: none). */
  applied: number;
  /** The version sent and not yet acknowledged (0: none): one table in flight per worker. */
  inFlight: number;
  /** A version the worker refused: not sent again (a newer one is). */
  refused: number;
  listening: boolean;
  listeningSince: number;
  restarts: number;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  lastExit: string | undefined;
}

export interface PoolHooks {
  /** A worker decided an ejection. */
  ejected(from: number, ejection: SharedEjection): void;
  /** The live ejections, replayed to a worker that (re)started. */
  liveEjections(): readonly SharedEjection[];
  /** A worker could not start (e.g. its listener could not bind). */
  fatal(slot: number, message: string): void;
  /** A worker opened its listeners. */
  listening(slot: number, proxy: AddressInfo, tls: AddressInfo | undefined): void;
}

/** What /api/workers shows of one slot. */
export interface WorkerView {
  readonly slot: number;
  readonly pid: number | null;
  readonly state: 'starting' | 'serving' | 'restarting' | 'stopped';
  readonly tableVersion: number;
  readonly restarts: number;
  readonly lastExit: string | null;
}

/**
 * The primary's workers: forks them, feeds them the newest table (one in flight per worker, the
 * newest pending one sent on each acknowledgement: newest wins without a queue), replaces one that
 * dies (with backoff; the others keep serving), and drains them all on shutdown.
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private table: { version: number; wire: TableWire } | undefined;
  private listenersOpen = false;
  private stopping = false;
  /** Questions to workers (explain, stats) waiting for their answer, by id. */
  private questionId = 0;
  private readonly questions = new Map<number, (result: unknown) => void>();
  private readonly exitWaiters = new Set<() => void>();

  constructor(size: number, private readonly logger: Logger, private readonly metrics: Metrics, private readonly hooks: PoolHooks) {
    for (let index = 1; index <= size; index++) {
      this.slots.push({
        index, worker: undefined, hello: false, applied: 0, inFlight: 0, refused: 0, listening: false, listeningSince: 0,
        restarts: 0, backoffMs: RESTART_MIN_MS, timer: undefined, lastExit: undefined,
      });
    }
  }

  get size(): number {
    return this.slots.length;
  }

  start(): void {
    // How connections reach the workers. SCHED_NONE (the default here): every worker accepts on
    // the one shared listening socket, the kernel picks. Node's Linux default, round-robin, has the
    // primary accept each connection and pass it over IPC: measured on this 2-core machine (3,000
    // new connections, 2 workers) it cost the primary ~450 µs of CPU per connection (~40% more CPU
    // per connection in all), and it puts the primary's event loop, which builds tables (up to
    // hundreds of ms at 20,000 endpoints), on every new connection's path. The split measured
    // even (50/50) with SCHED_NONE; NODE_CLUSTER_SCHED_POLICY=rr restores round-robin.
    if (process.env['NODE_CLUSTER_SCHED_POLICY'] === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    // Structured clone: a table's route strings cross as bytes, not escaped inside a JSON string.
    cluster.setupPrimary({ serialization: 'advanced' });
    for (const slot of this.slots) this.fork(slot);
  }

  /** The newest table: sent to every worker not busy with a previous one, and to the others on their ack. */
  publish(version: number, wire: TableWire): void {
    this.table = { version, wire };
    for (const slot of this.slots) this.sendTable(slot);
  }

  /** From now on every worker (and every replacement) opens its listeners once it has the table. */
  openListeners(): void {
    this.listenersOpen = true;
    for (const slot of this.slots) if (slot.hello) this.send(slot, { type: 'sy:listen' });
  }

  /** Send to every worker that can receive, but `except` (a slot index). */
  broadcast(message: ToWorker, except?: number): void {
    for (const slot of this.slots) if (slot.hello && slot.index !== except) this.send(slot, message);
  }

  /** True when every slot's worker has its listeners open. */
  allListening(): boolean {
    return this.slots.every((s) => s.listening);
  }

  /** The lowest table version every worker has acknowledged (0 while one has none). */
  everyWorkerAt(): number {
    return Math.min(...this.slots.map((s) => s.applied));
  }

  /** Workers that can answer a request now (prom-client's metrics protocol), with their slots. */
  connected(): { slot: number; worker: Worker }[] {
    return this.slots.filter((s) => s.hello && s.worker?.isConnected() === true).map((s) => ({ slot: s.index, worker: s.worker! }));
  }

  views(): WorkerView[] {
    return this.slots.map((s) => ({
      slot: s.index,
      pid: s.worker?.process.pid ?? null,
      state: this.stopping && s.worker === undefined ? 'stopped' : s.worker === undefined ? 'restarting' : s.listening ? 'serving' : 'starting',
      tableVersion: s.applied,
      restarts: s.restarts,
      lastExit: s.lastExit ?? null,
    }));
  }

  /** /api/match: the first serving worker explains with its runtime (ejections are shared, so its view is the machine's). */
  explain(host: string | undefined, target: string, request: MatchRequest): Promise<unknown> {
    const slot = this.slots.find((s) => s.listening && s.worker?.isConnected() === true) ?? this.slots.find((s) => s.hello && s.worker?.isConnected() === true);
    if (slot === undefined) return Promise.reject(new Error('no worker is running to explain the request'));
    return this.ask(slot, (id) => ({ type: 'sy:explain', id, host, target, request }), EXPLAIN_TIMEOUT_MS);
  }

  /**
   * /api/status: every running worker's last minute per endpoint, merged (requests, errors,
   * histograms and in-flight counts added). A worker that does not answer within
   * STATS_TIMEOUT_MS is left out; `workers` says how many answered.
   */
  async stats(): Promise<ClusterStats> {
    const slots = this.slots.filter((s) => s.hello && s.worker?.isConnected() === true);
    const answers = await Promise.allSettled(slots.map((slot) => this.ask(slot, (id) => ({ type: 'sy:stats', id }), STATS_TIMEOUT_MS)));
    const samples = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value as StatsSample] : []));
    const merged = samples.length === 0 ? { endpoints: [], routeInflight: {} } : mergeSamples(samples);
    return { ...merged, workers: { asked: slots.length, answered: samples.length } };
  }

  /** Send the question `build(id)` to `slot`'s worker; its answer, or a rejection after `timeoutMs`. */
  private ask(slot: Slot, build: (id: number) => ToWorker, timeoutMs: number): Promise<unknown> {
    const id = ++this.questionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.questions.delete(id);
        reject(new Error(`worker ${slot.index} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.questions.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.send(slot, build(id));
    });
  }

  /**
   * Drain every worker (they serve through --shutdown-delay, then close within --drain-timeout)
   * and resolve when all have exited; those still running after `boundMs` are killed.
   */
  async drain(boundMs: number): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      // A worker that has not said hello yet cannot take the message: a signal drains it alike.
      if (slot.hello) this.send(slot, { type: 'sy:drain' });
      else slot.worker?.process.kill('SIGTERM');
    }
    const allExited = (): boolean => this.slots.every((s) => s.worker === undefined);
    if (allExited()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (!allExited()) return;
          this.exitWaiters.delete(check);
          resolve();
        };
        this.exitWaiters.add(check);
      }),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, boundMs); }),
    ]);
    clearTimeout(timer);
    for (const slot of this.slots) {
      if (slot.worker === undefined) continue;
      this.logger.warn({ slot: slot.index, pid: slot.worker.process.pid, boundMs }, 'worker still running after the drain bound: killed');
      slot.worker.process.kill('SIGKILL');
    }
  }

  private fork(slot: Slot): void {
    slot.timer = undefined;
    if (this.stopping) return;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    slot.hello = false;
    slot.applied = 0;
    slot.inFlight = 0;
    slot.refused = 0;
    slot.listening = false;
    worker.on('message', (message: unknown) => {
      if (isFromWorker(message)) this.onMessage(slot, worker, message);
    });
    // A message sent to a worker that died before its exit was seen fails with EPIPE, emitted as
    // 'error' (an unhandled one would end the primary): its 'exit' follows and replaces it.
    worker.on('error', (err) => this.logger.debug({ err, slot: slot.index }, 'message to a worker lost'));
    // 'exit' (not 'disconnect'): the process is gone, its connections with it.
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
  }

  private onMessage(slot: Slot, worker: Worker, message: FromWorker): void {
    if (slot.worker !== worker) return;
    switch (message.type) {
      case 'sy:hello':
        slot.hello = true;
        // Table first, then the ejections it has routes for, then (if open) the listeners.
        this.sendTable(slot);
        for (const ejection of this.hooks.liveEjections()) this.send(slot, { type: 'sy:eject', ejection });
        if (this.listenersOpen) this.send(slot, { type: 'sy:listen' });
        if (this.stopping) this.send(slot, { type: 'sy:drain' });
        return;
      case 'sy:applied': {
        const sent = slot.inFlight;
        slot.inFlight = 0;
        if (message.error === undefined) slot.applied = Math.max(slot.applied, message.version);
        else {
          slot.refused = sent;
          this.logger.error({ slot: slot.index, version: slot.refused, error: message.error }, 'a worker refused a table; it keeps its live one');
        }
        this.sendTable(slot);
        return;
      }
      case 'sy:listening':
        slot.listening = true;
        slot.listeningSince = Date.now();
        this.metrics.workersServing.set(this.slots.filter((s) => s.listening).length);
        this.hooks.listening(slot.index, message.proxy, message.tls);
        return;
      case 'sy:ejected':
        this.hooks.ejected(slot.index, message.ejection);
        return;
      case 'sy:explained':
        this.answered(message.id, message.result);
        return;
      case 'sy:stats-sample':
        this.answered(message.id, message.sample);
        return;
      case 'sy:fatal':
        this.hooks.fatal(slot.index, message.message);
        return;
    }
  }

  private answered(id: number, result: unknown): void {
    this.questions.get(id)?.(result);
    this.questions.delete(id);
  }

  private sendTable(slot: Slot): void {
    const table = this.table;
    if (!slot.hello || table === undefined || slot.inFlight !== 0) return;
    if (slot.applied >= table.version || slot.refused === table.version) return;
    slot.inFlight = table.version;
    this.send(slot, { type: 'sy:table', version: table.version, table: table.wire });
  }

  private send(slot: Slot, message: ToWorker): void {
    const worker = slot.worker;
    if (worker === undefined || !worker.isConnected()) return;
    try {
      worker.send(message);
    } catch (err) {
      // The channel closed under us (the worker is exiting): its exit event replaces it.
      this.logger.debug({ err, slot: slot.index }, 'message to a worker lost');
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    const served = slot.listening ? Date.now() - slot.listeningSince : 0;
    slot.worker = undefined;
    slot.hello = false;
    slot.listening = false;
    slot.inFlight = 0;
    slot.lastExit = signal === null ? `exit code ${code}` : `signal ${signal}`;
    this.metrics.workersServing.set(this.slots.filter((s) => s.listening).length);
    for (const check of [...this.exitWaiters]) check();
    if (this.stopping) return;
    if (served >= RESTART_RESET_AFTER_MS) slot.backoffMs = RESTART_MIN_MS;
    const delay = slot.backoffMs;
    slot.backoffMs = Math.min(slot.backoffMs * 2, RESTART_MAX_MS);
    slot.restarts += 1;
    this.metrics.workerRestarts.inc();
    this.logger.warn({ slot: slot.index, pid: worker.process.pid, exit: slot.lastExit, restartInMs: delay }, 'worker exited; the others keep serving; replacing it');
    slot.timer = setTimeout(() => this.fork(slot), delay);
  }
}
