/**
 * Public types of the Consul test server: what tests pass in (registrations, ACL policies, fault
 * settings) and what they read back (the request log). Wire shapes (the JSON Consul returns) are
 * built in state.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';

export type CheckStatus = 'passing' | 'warning' | 'critical';

/** A check as given in `Check` / `Checks` of an agent service registration (Consul field names). */
export interface CheckDefinition {
  CheckID?: string;
  ID?: string;
  Name?: string;
  Notes?: string;
  /** Initial status; Consul's default is `critical`. */
  Status?: CheckStatus;
  TTL?: string;
  HTTP?: string;
  TCP?: string;
  GRPC?: string;
  Args?: string[];
  AliasService?: string;
  Interval?: string;
  Timeout?: string;
  DeregisterCriticalServiceAfter?: string;
}

/** Body of `PUT /v1/agent/service/register` (Consul field names). */
export interface ServiceRegistration {
  ID?: string;
  Name: string;
  Tags?: string[];
  Address?: string;
  Port?: number;
  Meta?: Record<string, string>;
  Weights?: { Passing: number; Warning: number };
  EnableTagOverride?: boolean;
  TaggedAddresses?: Record<string, { Address: string; Port: number }>;
  Check?: CheckDefinition;
  Checks?: CheckDefinition[];
}

export type Access = 'deny' | 'read' | 'write';

/**
 * A much reduced ACL policy: one access level per resource kind, optionally limited to names
 * starting with a prefix (like a `key_prefix "switchyard/" { policy = "read" }` rule).
 * Anything not granted is denied (Consul's `default_policy = "deny"`).
 */
export interface AclPolicy {
  key?: Access;
  keyPrefix?: string;
  service?: Access;
  servicePrefix?: string;
  node?: Access;
}

export interface ConsulTestServerOptions {
  /** Enables ACLs; this secret is a management token (may do everything). */
  aclToken?: string;
  /** Name of the agent's node (default `consul-test`). */
  nodeName?: string;
  /** Address of the agent's node (default `127.0.0.1`). */
  nodeAddress?: string;
  /** Datacenter (default `dc1`); `?dc=` naming another one gets 500 "No path to datacenter". */
  datacenter?: string;
  /** Port to listen on (default: an ephemeral one). */
  port?: number;
  /** Add up to wait/16 of random extra time to blocking queries, like Consul (default true). */
  jitter?: boolean;
  /**
   * `use_streaming_backend` (Consul's default since 1.10, dev mode included): blocking
   * `/v1/health/service` reads (index > 0) are answered as the streaming view answers them:
   * `X-Consul-KnownLeader: false`, `X-Consul-LastContact: 0`, `X-Consul-Query-Backend: streaming`,
   * never `X-Consul-Results-Filtered-By-ACLs` (default true; false = use_streaming_backend=false).
   */
  streaming?: boolean;
  /**
   * `limits.http_max_conns_per_client` (agent/config/default.go: 200): connections past it from
   * one client IP get go-connlimit's raw 429 and are closed (agent/agent.go). 0: no limit.
   */
  maxConnsPerClient?: number;
  /** Consul 1.21.5+ KV key validation on /v1/kv (default true; false = Consul before 1.21.5). */
  kvKeyValidation?: boolean;
  /** Listen on this unix socket path instead of 127.0.0.1 (CONSUL_HTTP_ADDR=unix://...). */
  socketPath?: string;
}

export interface RestartOptions {
  /**
   * Lower the indexes, like a snapshot restore: `true` renumbers every stored object from 1 (the
   * global index becomes the number of objects kept), a number sets the global index to at most
   * that value (every stored index is clamped to it). Default false.
   */
  resetIndex?: boolean | number;
  /** Keep services, checks, nodes and KV (default true); false starts from an empty catalog. */
  keepData?: boolean;
  /** Stay down (connections refused) this long before listening again (default 0). */
  downMs?: number;
}

export interface LoggedRequest {
  /** 1-based sequence number over the server's life. */
  seq: number;
  /** `performance.now()` when the request headers arrived. */
  at: number;
  method: string;
  /** Decoded path, e.g. `/v1/kv/switchyard/routes`. */
  path: string;
  /** Query parameters; a flag without value (e.g. `?recurse`) maps to "". */
  query: Record<string, string>;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  /** Set when the response was sent (absent if the connection was dropped first). */
  status?: number;
  /** `performance.now()` when the response was sent. */
  endedAt?: number;
  /** True if the request was held as a blocking query (index > 0 and nothing newer). */
  blocked?: boolean;
  /** For a held query: the wait it asked for (after Consul's default and cap), in ms. */
  waitMs?: number;
  /** For a held query: the longest the server chose to hold it, `waitMs` plus the jitter drawn. */
  holdMs?: number;
  /** Set when a fault was injected into this request: `fail`, `hang`. */
  fault?: string;
}
