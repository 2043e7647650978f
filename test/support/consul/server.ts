/**
 * ConsulTestServer: an in-process HTTP server that speaks enough of Consul's HTTP API, the way
 * Consul speaks it, to test a Consul watcher end to end, plus controls to break it on purpose.
 *
 * Implemented (shapes and texts checked against Consul's API docs and agent source):
 * - GET  /v1/catalog/services                  {name: [tags]} incl. "consul": []
 * - GET  /v1/catalog/nodes                     [{ID, Node, Address, ...}]; index: the nodes table,
 *                                              which service writes also raise (current Consul)
 * - GET  /v1/health/state/:state               every check (`any`) or those in a state; index: the
 *                                              checks table; a plain RPC read, never streaming
 * - GET  /v1/health/service/:name              [{Node, Service, Checks}], ?passing ?tag (repeatable)
 *                                              ?node-meta ?dc ?stale ?consistent
 * - GET  /v1/kv/:key                           ?recurse ?keys ?separator ?raw; 404 + index headers
 * - PUT  /v1/kv/:key                           raw body, ?flags ?cas → true/false; 413 above 512 KiB
 * - DELETE /v1/kv/:key                         ?recurse ?cas → true/false
 * - PUT  /v1/agent/service/register            {ID, Name, Tags, Address, Port, Meta, Weights,
 *                                              EnableTagOverride, TaggedAddresses, Check, Checks}
 * - PUT  /v1/agent/service/deregister/:id
 * - PUT  /v1/agent/check/pass|warn|fail/:id    ?note= becomes Output; PUT /v1/agent/check/update/:id
 * - PUT  /v1/agent/service/maintenance/:id     ?enable= ?reason= → critical `_service_maintenance:<id>`
 * - PUT  /v1/agent/maintenance                 ?enable= ?reason= → critical `_node_maintenance`
 * - GET  /v1/status/leader                    "127.0.0.1:8300", "" without a leader
 * - GET  /v1/acl/token/self                    401 "ACL support disabled" / 403 "ACL not found" / 200
 * - Blocking queries (?index, ?wait: Go durations, default 5m, max 10m, + up to wait/16 jitter),
 *   per-resource indexes (see state.ts), never below 1; a blocked query returns when its own
 *   index moves past ?index, or at the deadline with the current state.
 * - Headers on reads (catalog, health, KV GET, 404s included): X-Consul-Index,
 *   X-Consul-KnownLeader, X-Consul-LastContact, X-Consul-Effective-Consistency,
 *   X-Consul-Query-Backend, X-Consul-Results-Filtered-By-ACLs (only when something was removed,
 *   and never for a request without a token: agent/consul/rpc.go maskResultsFilteredByACLs).
 * - Streaming backend (default on, as use_streaming_backend since 1.10): blocking health reads
 *   (index > 0) carry X-Consul-KnownLeader: false, X-Consul-LastContact: 0,
 *   X-Consul-Query-Backend: streaming and never the ACL-filtered flag (agent/http.go setMeta).
 * - KV keys validated as Consul 1.21.5+ (agent/kvs_endpoint.go validateKVKey): 400 with its reason.
 * - limits.http_max_conns_per_client (default 200): past it, go-connlimit's raw 429 and a close.
 *   The most connections each client held at once is recorded (peakConnections) for tests.
 * - A unix socket instead of TCP (`socketPath`).
 *   Writes carry none of them, as in Consul. Content-Type is application/json on JSON bodies,
 *   text/plain on ?raw and on error texts; empty answers (KV 404, agent writes) have none.
 * - ACLs (when aclToken is set): X-Consul-Token, Authorization: Bearer, deprecated ?token=;
 *   403 "ACL not found", 403 "Permission denied[...]", filtered list reads (see acl.ts).
 * - Errors as Consul words them: 400 "Invalid index" / "Invalid wait time" / "Cannot specify
 *   ?stale with ?consistent, conflicting semantics." / "Missing key name" / "Missing value for
 *   enable", 404 "Unknown service ID ..." / "Unknown check ID ...", 405 "method X not allowed",
 *   500 "No path to datacenter" / "No cluster leader"; unknown routes 404 "404 page not found".
 *
 * Simplified (on purpose):
 * - One agent, which is also the only server and the leader. Extra nodes exist only through the
 *   in-process helpers (addNode / registerService(def, {node})); agent endpoints act on the agent's
 *   node. Anti-entropy is instant: agent writes are in the catalog when the PUT returns.
 * - Checks never run: HTTP/TCP/gRPC/script checks keep the status they were given (default
 *   critical) until changed through the API or setCheck(); TTLs never expire.
 * - Blocked queries are woken by every write and re-run their query: the effect is Consul's
 *   (return only when that resource's index moved, or at the deadline), the cost is not.
 * - touchService(name) stands in for an idempotent write: the service's health index and the
 *   catalog index move, the data does not.
 * - Indexes: the global index counts only writes that changed something; a real raft index also
 *   moves on no-op writes and internal housekeeping. The service index of a service that has no
 *   instances is the highest catalog table index, as in Consul.
 * - No `?filter`, `?near`, `?cached`, sessions/locks (`?acquire`/`?release` answer 500 "invalid
 *   session"), namespaces, partitions, peering, Connect, prepared queries, `?hash` blocking.
 * - Response order: instances by node then service ID, checks by CheckID (Consul does not
 *   promise an order; `?passing` in Consul also reorders).
 * - `X-Consul-KnownLeader`/`X-Consul-LastContact` come from setKnownLeader/setLastContact, not a
 *   raft (setKnownLeader(false) also empties /v1/status/leader: the answering server knows no
 *   leader); `setLeaderless(true)` makes default and consistent reads and KV writes answer 500
 *   "No cluster leader" while `?stale` reads keep working (agent writes still work locally).
 * - ACL policies are one level per resource kind (+ an optional name prefix), default deny; no
 *   roles, templated policies, or key_list permission.
 * - Registering a service whose ID exists on the node replaces it; old checks that the new
 *   definition does not list are kept (Consul's default without ?replace-existing-checks);
 *   re-registered checks keep their status and output, as the agent does.
 * - JSON mirrors Consul OSS 1.1x: Service.Meta is null when registered without Meta, Tags and
 *   ServiceTags are [] when empty, TaggedAddresses entries use {Address, Port} (the docs' sample
 *   shows lowercase keys, Consul's struct does not), enterprise-only fields (Namespace, Partition)
 *   are absent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { AclStore, READ_POLICY } from './acl.js';
import { ChangeFeed } from './blocking.js';
import { Faults } from './faults.js';
import { normalizeRegistration } from './registration.js';
import { route, textResponse, type RouteContext, type RouteResponse } from './routes.js';
import { ConsulState } from './state.js';
import type {
  AclPolicy,
  CheckStatus,
  ConsulTestServerOptions,
  LoggedRequest,
  RestartOptions,
  ServiceRegistration,
} from './types.js';

export type {
  Access,
  AclPolicy,
  CheckDefinition,
  CheckStatus,
  ConsulTestServerOptions,
  LoggedRequest,
  RestartOptions,
  ServiceRegistration,
} from './types.js';
export { ConsulHttpError } from './errors.js';

/** agent/config/default.go `limits.http_max_conns_per_client`. */
export const DEFAULT_MAX_CONNS_PER_CLIENT = 200;

/**
 * hashicorp/go-connlimit `tooManyRequestsResponse`, written raw on an over-limit connection
 * before any request is read, then the connection is closed (HTTPConnStateFuncWithDefault429Handler).
 */
const TOO_MANY_CONNS_MSG = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';
const TOO_MANY_REQUESTS_RESPONSE = Buffer.from(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: ${TOO_MANY_CONNS_MSG.length}\r\nConnection: close\r\n\r\n${TOO_MANY_CONNS_MSG}`);

/** Most entries kept in `requests` (the oldest are dropped; `requestCount` keeps counting). */
const MAX_LOGGED_REQUESTS = 20_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

export class ConsulTestServer {
  private readonly state: ConsulState;
  private readonly acl: AclStore;
  private readonly feed = new ChangeFeed();
  private readonly faults = new Faults();
  private readonly events = new EventEmitter();
  private readonly sockets = new Set<Socket>();
  private readonly log: LoggedRequest[] = [];
  private httpServer: Server | undefined;
  private netServer: NetServer | undefined;
  private listeningPort = 0;
  private readonly socketPath: string | undefined;
  private jitterOn: boolean;
  private streamingOn: boolean;
  private kvValidation: boolean;
  private maxConnsPerClient: number;
  private readonly perClient = new Map<string, number>();
  /** The most connections each client held at once since start or resetPeakConnections(). */
  private readonly peakPerClient = new Map<string, number>();
  /** Connections refused with the 429 of the per-client limit. */
  refusedConnections = 0;
  private blocked = 0;
  private stopped = false;
  private readonly datacenter: string;
  private readonly nodeName: string;
  /** Requests received since start (restarts included), faulty ones included. */
  requestCount = 0;

  private constructor(opts: ConsulTestServerOptions) {
    this.datacenter = opts.datacenter ?? 'dc1';
    this.nodeName = opts.nodeName ?? 'consul-test';
    this.jitterOn = opts.jitter ?? true;
    this.streamingOn = opts.streaming ?? true;
    this.kvValidation = opts.kvKeyValidation ?? true;
    this.maxConnsPerClient = opts.maxConnsPerClient ?? DEFAULT_MAX_CONNS_PER_CLIENT;
    this.socketPath = opts.socketPath;
    this.acl = new AclStore(opts.aclToken);
    this.state = new ConsulState(
      { datacenter: this.datacenter, nodeName: this.nodeName, nodeAddress: opts.nodeAddress ?? '127.0.0.1' },
      () => this.feed.notify(),
    );
    this.events.setMaxListeners(0);
  }

  /** Starts a server on 127.0.0.1 (`opts.port`, or an ephemeral port). */
  static async start(opts: ConsulTestServerOptions = {}): Promise<ConsulTestServer> {
    const server = new ConsulTestServer(opts);
    await server.listen(opts.port ?? 0);
    return server;
  }

  get port(): number {
    return this.listeningPort;
  }

  /** `127.0.0.1:PORT` (or `unix:///path`), the form of CONSUL_HTTP_ADDR. */
  get address(): string {
    return this.socketPath === undefined ? `127.0.0.1:${this.listeningPort}` : `unix://${this.socketPath}`;
  }

  /** `http://127.0.0.1:PORT` (or `unix:///path`). */
  get url(): string {
    return this.socketPath === undefined ? `http://${this.address}` : this.address;
  }

  /** The global index: the index of the last write. */
  get index(): number {
    return this.state.index;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * A net server accepts, applies the per-client connection limit (go-connlimit keys TCP clients
   * by IP; every unix-socket client shares one key), and hands the connections it keeps to the
   * HTTP server, which never listens itself.
   */
  private listen(port: number): Promise<void> {
    const server = createServer({ requestTimeout: 0, keepAliveTimeout: 30_000 }, (req, res) => {
      void this.handle(req, res);
    });
    const net = createNetServer((socket: Socket) => {
      const client = socket.remoteAddress ?? 'unix';
      const open = this.perClient.get(client) ?? 0;
      if (this.maxConnsPerClient > 0 && open >= this.maxConnsPerClient) {
        this.refusedConnections += 1;
        socket.on('error', () => undefined);
        socket.end(TOO_MANY_REQUESTS_RESPONSE);
        return;
      }
      this.perClient.set(client, open + 1);
      if (open + 1 > (this.peakPerClient.get(client) ?? 0)) this.peakPerClient.set(client, open + 1);
      this.sockets.add(socket);
      socket.on('close', () => {
        this.sockets.delete(socket);
        const left = (this.perClient.get(client) ?? 1) - 1;
        if (left <= 0) this.perClient.delete(client);
        else this.perClient.set(client, left);
      });
      server.emit('connection', socket);
    });
    return new Promise((resolve, reject) => {
      net.once('error', reject);
      const ready = (): void => {
        net.off('error', reject);
        const addr = net.address();
        if (addr && typeof addr === 'object') this.listeningPort = addr.port;
        this.httpServer = server;
        this.netServer = net;
        resolve();
      };
      if (this.socketPath !== undefined) net.listen(this.socketPath, ready);
      else net.listen(port, '127.0.0.1', ready);
    });
  }

  private closeListener(): Promise<void> {
    const net = this.netServer;
    this.netServer = undefined;
    this.httpServer = undefined;
    this.dropConnections();
    if (!net) return Promise.resolve();
    return new Promise((resolve) => net.close(() => resolve()));
  }

  /** Per-client connection limit (0: none); applies to connections accepted from now on. */
  setMaxConnsPerClient(n: number): void {
    this.maxConnsPerClient = Math.max(0, n);
  }

  /** Consul 1.21.5+ KV key validation on or off (off: Consul before 1.21.5). */
  setKvKeyValidation(on: boolean): void {
    this.kvValidation = on;
  }

  /** Closes the listener and every socket, held blocking queries included. */
  async stop(): Promise<void> {
    this.stopped = true;
    const closing = this.closeListener();
    this.faults.setHang(false);
    await closing;
  }

  /**
   * Simulates a Consul restart: every connection is cut, the state is kept (or wiped, or its
   * indexes lowered like a snapshot restore), transient faults are cleared, and the server comes
   * back on the same port after `downMs`.
   */
  async restart(opts: RestartOptions = {}): Promise<void> {
    const closing = this.closeListener();
    this.faults.setHang(false);
    await closing;
    const keepData = opts.keepData ?? true;
    const reset = opts.resetIndex ?? false;
    if (!keepData) this.state.wipe(reset === true || typeof reset === 'number');
    if (reset !== false) {
      if (keepData) this.state.resetIndexes(reset);
      else if (typeof reset === 'number') this.state.resetIndexes(reset);
    }
    this.faults.resetTransient();
    if (opts.downMs && opts.downMs > 0) await sleep(opts.downMs);
    this.stopped = false;
    await this.listen(this.listeningPort);
  }

  /** Destroys every open connection now, including held blocking queries. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Connections one client (`127.0.0.1` by default; `unix` for the socket) holds now. */
  connectionsFrom(client = '127.0.0.1'): number {
    return this.perClient.get(client) ?? 0;
  }

  /** The most connections one client held at once since start or the last reset. */
  peakConnections(client = '127.0.0.1'): number {
    return this.peakPerClient.get(client) ?? 0;
  }

  /** Starts the peak count again from the connections open now. */
  resetPeakConnections(): void {
    this.peakPerClient.clear();
    for (const [client, open] of this.perClient) this.peakPerClient.set(client, open);
  }

  // ------------------------------------------------------------------ request handling

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul.invalid');
    let path = url.pathname;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      // keep the raw path, as Go would fail to route it anyway
    }
    this.requestCount += 1;
    const entry: LoggedRequest = {
      seq: this.requestCount,
      at: performance.now(),
      method: req.method ?? 'GET',
      path,
      query: Object.fromEntries(url.searchParams),
      rawQuery: url.search.replace(/^\?/, ''),
      headers: { ...req.headers },
    };
    this.log.push(entry);
    if (this.log.length > MAX_LOGGED_REQUESTS) this.log.splice(0, this.log.length - MAX_LOGGED_REQUESTS);
    this.events.emit('request', entry);

    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    // A cut connection (dropConnections, restart, stop) ends the request before it takes effect.
    const isGone = (): boolean => gone.signal.aborted || req.socket.destroyed || this.stopped;

    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    if (isGone()) return;
    if (this.faults.hanging) {
      entry.fault = 'hang';
      await this.faults.waitWhileHanging();
      if (isGone()) return;
    }
    if (this.faults.delayMs > 0) {
      await sleep(this.faults.delayMs, gone.signal);
      if (isGone()) return;
    }
    const failure = this.faults.take();
    let response: RouteResponse | undefined;
    if (failure) {
      entry.fault = 'fail';
      response = textResponse(failure.status, failure.body);
    } else {
      let counted = false;
      response = await route(this.context(), {
        method: entry.method,
        path,
        query: url.searchParams,
        headers: req.headers,
        body,
        signal: gone.signal,
        onBlocked: (hold) => {
          counted = true;
          entry.blocked = true;
          entry.waitMs = hold.waitMs;
          entry.holdMs = hold.holdMs;
          this.blocked += 1;
          this.events.emit('blocked', this.blocked);
        },
        onUnblocked: () => {
          if (!counted) return;
          counted = false;
          this.blocked -= 1;
          this.events.emit('blocked', this.blocked);
        },
      });
    }
    if (!response || isGone() || res.destroyed) return;
    res.statusCode = response.status;
    for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
    if (response.body) res.setHeader('Content-Length', String(response.body.length));
    else res.setHeader('Content-Length', '0');
    res.end(response.body);
    entry.status = response.status;
    entry.endedAt = performance.now();
  }

  private context(): RouteContext {
    return {
      state: this.state,
      acl: this.acl,
      feed: this.feed,
      faults: this.faults,
      datacenter: this.datacenter,
      nodeName: this.nodeName,
      jitter: () => this.jitterOn,
      streaming: () => this.streamingOn,
      kvKeyValidation: () => this.kvValidation,
    };
  }

  // ------------------------------------------------------------------ direct helpers (no HTTP)

  /** Registers (or replaces) a service instance, as PUT /v1/agent/service/register would. */
  registerService(def: ServiceRegistration, opts: { node?: string } = {}): void {
    this.state.registerService(normalizeRegistration(def), opts.node ?? this.nodeName);
  }

  /** Removes a service instance and its checks; false if it did not exist. */
  deregisterService(id: string, opts: { node?: string } = {}): boolean {
    return this.state.deregisterService(opts.node ?? this.nodeName, id);
  }

  /**
   * Sets a check's status (e.g. `service:web-1`, `serfHealth`); `output` defaults to the current
   * output. Throws for an unknown check. No write when nothing changes.
   */
  setCheck(checkId: string, status: CheckStatus, opts: { output?: string; node?: string } = {}): void {
    this.state.updateCheck(opts.node ?? this.nodeName, checkId, status, opts.output);
  }

  /**
   * Removes one check, as the agent syncs a deregistered check (state/catalog.go deleteCheckTxn):
   * the checks table and the service's index move, the services table index does not.
   */
  deregisterCheck(checkId: string, opts: { node?: string } = {}): boolean {
    return this.state.deregisterCheck(opts.node ?? this.nodeName, checkId);
  }

  setServiceMaintenance(serviceId: string, enable: boolean, reason = '', opts: { node?: string } = {}): void {
    this.state.serviceMaintenance(opts.node ?? this.nodeName, serviceId, enable, reason);
  }

  setNodeMaintenance(enable: boolean, reason = '', opts: { node?: string } = {}): void {
    this.state.nodeMaintenance(opts.node ?? this.nodeName, enable, reason);
  }

  /** Adds (or updates) a catalog node with a passing serfHealth check. */
  addNode(name: string, address: string, meta: Record<string, string> = {}): void {
    this.state.upsertNode(name, address, meta);
  }

  /** Raises a service's index without changing what is returned (an idempotent write). */
  touchService(name: string): void {
    this.state.touchService(name);
  }

  kvPut(key: string, value: string | Buffer, opts: { flags?: number } = {}): void {
    this.state.kvPut(key, typeof value === 'string' ? Buffer.from(value) : value, opts.flags ?? 0);
  }

  /** The stored bytes of a key (empty Buffer for a null value), undefined if absent. */
  kvGet(key: string): Buffer | undefined {
    return this.state.kvValue(key);
  }

  kvDelete(key: string, opts: { recurse?: boolean } = {}): void {
    this.state.kvDelete(key, opts);
  }

  /** Forgets deleted keys' tombstones, so a KV list index can go backwards. */
  reapTombstones(): void {
    this.state.reapTombstones();
  }

  // ------------------------------------------------------------------ ACL controls

  /** Adds a token (secret) with a policy; returns its accessor ID. Needs ACLs enabled (aclToken). */
  addToken(secret: string, policy: AclPolicy): string {
    if (!this.acl.enabled) throw new Error('ACLs are disabled: start the server with aclToken to use tokens');
    return this.acl.addToken(secret, policy);
  }

  removeToken(secret: string): void {
    this.acl.removeToken(secret);
  }

  /** What requests without a token may do (default: nothing). */
  setAnonymousPolicy(policy: AclPolicy): void {
    this.acl.setAnonymousPolicy(policy);
  }

  /** Lets anonymous requests read KV, services and nodes. */
  grantAnonymousRead(): void {
    this.acl.setAnonymousPolicy(READ_POLICY);
  }

  // ------------------------------------------------------------------ faults

  /** The next `n` requests answer `status` with a text body. */
  failNext(n: number, status = 500, body?: string): void {
    this.faults.failNext(n, status, body);
  }

  /** Every request answers `status` until called with null. */
  setFailing(status: number | null, body?: string): void {
    this.faults.setFailing(status, body);
  }

  /** Accept requests but answer none until setHang(false) (then they are served) or stop(). */
  setHang(on: boolean): void {
    this.faults.setHang(on);
  }

  /** Delay every answer by `ms`. */
  setDelay(ms: number): void {
    this.faults.delayMs = Math.max(0, ms);
  }

  setKnownLeader(known: boolean): void {
    this.faults.knownLeader = known;
  }

  setLastContact(ms: number): void {
    this.faults.lastContactMs = ms;
  }

  /** No leader: non-stale reads and KV writes answer 500 "No cluster leader"; KnownLeader false. */
  setLeaderless(on: boolean): void {
    this.faults.leaderless = on;
    this.faults.knownLeader = !on;
  }

  setJitter(on: boolean): void {
    this.jitterOn = on;
  }

  /**
   * use_streaming_backend (default on): blocking health reads answer with the streaming view's
   * headers (KnownLeader false, LastContact 0, Query-Backend streaming, no ACL-filtered flag).
   */
  setStreaming(on: boolean): void {
    this.streamingOn = on;
  }

  // ------------------------------------------------------------------ observation

  /** Requests received, oldest first (the last 20 000). */
  get requests(): readonly LoggedRequest[] {
    return this.log;
  }

  clearRequests(): void {
    this.log.length = 0;
  }

  /** Blocking queries being held right now. */
  get blockedQueries(): number {
    return this.blocked;
  }

  /** Resolves with the first request matching `predicate` received after this call. */
  waitForRequest(predicate: (r: LoggedRequest) => boolean, timeoutMs = 5_000): Promise<LoggedRequest> {
    return new Promise((resolve, reject) => {
      const onRequest = (r: LoggedRequest): void => {
        if (!predicate(r)) return;
        clearTimeout(timer);
        this.events.off('request', onRequest);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.events.off('request', onRequest);
        reject(new Error(`no matching request to the Consul test server within ${timeoutMs} ms`));
      }, timeoutMs);
      this.events.on('request', onRequest);
    });
  }

  /** Resolves once at least `count` blocking queries are being held. */
  waitForBlocked(count = 1, timeoutMs = 5_000): Promise<void> {
    if (this.blocked >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onChange = (n: number): void => {
        if (n < count) return;
        clearTimeout(timer);
        this.events.off('blocked', onChange);
        resolve();
      };
      const timer = setTimeout(() => {
        this.events.off('blocked', onChange);
        reject(new Error(`fewer than ${count} blocking queries held after ${timeoutMs} ms (now ${this.blocked})`));
      }, timeoutMs);
      this.events.on('blocked', onChange);
    });
  }
}
