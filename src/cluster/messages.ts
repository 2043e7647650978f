/**
 * The IPC messages between the primary and its workers (node:cluster, `serialization: 'advanced'`:
 * structured clone, so a table's route strings cross as raw bytes, not JSON in JSON).
 *
 * Every message carries whole state (a table with its version, an ejection with its end time),
 * never a diff: a worker that missed nothing and one forked a second ago are brought to the same
 * state by the same message. `type` starts with `sy:`, apart from prom-client's own metric requests
 * (`prom-client:getMetricsReq`/`Res`) and node's internal cluster messages.
 */
import type { AddressInfo } from 'node:net';
import type { TableWire } from '../model/table-wire.js';
import type { StatsSample } from '../proxy/runtime/endpoint-window.js';
import type { MatchRequest } from '../proxy/runtime/explain.js';
import type { SharedEjection } from '../proxy/runtime/route-state.js';

/** Primary → worker. */
export type ToWorker =
  /** The live table, `version` = the primary's TableStore.version. Newest wins. */
  | { type: 'sy:table'; version: number; table: TableWire }
  /** Open the listeners (after the first table, or once --startup-wait ran out). */
  | { type: 'sy:listen' }
  /** An ejection another worker decided: apply it until `ejection.until`. */
  | { type: 'sy:eject'; ejection: SharedEjection }
  /** SIGHUP reached the primary: read the certificate directory again. */
  | { type: 'sy:reload-certs' }
  /** SIGTERM reached the primary: drain (Connection: close, --shutdown-delay, --drain-timeout), then exit 0. */
  | { type: 'sy:drain' }
  /** /api/match: explain this request with the worker's runtime. */
  | { type: 'sy:explain'; id: number; host: string | undefined; target: string; request: MatchRequest }
  /** /api/status: the worker's last minute per endpoint (its runtime's traffic windows). */
  | { type: 'sy:stats'; id: number };

/** Worker → primary. */
export type FromWorker =
  /** The worker's handlers are attached: it can be sent messages (nothing sent before is lost). */
  | { type: 'sy:hello' }
  /** Table `version` is live in the worker (swapped, or refused: then `error`). */
  | { type: 'sy:applied'; version: number; error?: string }
  /** The listeners are open, serving table `version` (0: none yet). */
  | { type: 'sy:listening'; version: number; proxy: AddressInfo; tls: AddressInfo | undefined }
  /** Outlier detection ejected an endpoint in this worker. */
  | { type: 'sy:ejected'; ejection: SharedEjection }
  | { type: 'sy:explained'; id: number; result: unknown }
  /** The answer to `sy:stats`: sums only, so the primary merges the workers' samples by adding them. */
  | { type: 'sy:stats-sample'; id: number; sample: StatsSample }
  /** Start-up failed (a listener could not bind): the worker exits 1 after this. */
  | { type: 'sy:fatal'; message: string };

export function isFromWorker(message: unknown): message is FromWorker {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string'
    && (message as { type: string }).type.startsWith('sy:');
}

export function isToWorker(message: unknown): message is ToWorker {
  return isFromWorker(message);
}

/** The environment variable that carries a worker's slot (1..N) to it, for its log lines. */
export const WORKER_SLOT_ENV = 'SWITCHYARD_WORKER_SLOT';
