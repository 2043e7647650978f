import { lookup as dnsLookup } from 'node:dns';
import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import Consul from 'consul';
import type { ConsulSettings } from '../../config/config.js';
import type { Answer, QueryMeta, QueryRequest } from './blocking-query.js';
import { NON_PASSING_FILTER } from './health-state.js';
import { readCaPath, readPem } from './tls-files.js';
import { ConsulWatchError } from './watch-error.js';

/**
 * The reads the provider makes. The three watched ones go through the `consul` package: it builds
 * the URLs, sends the token as `X-Consul-Token`, and with a `ctx` that has `includeResponse` hands
 * back the response so the `X-Consul-*` headers can be read; `ctx.emit('cancel')` aborts the
 * request. Its typings leave out `index`, `wait`, `stale`, `consistent`, `ctx` and `timeout`, hence
 * the narrow interface below. The two endpoints it lacks (`/v1/status/leader`, `/v1/acl/token/self`)
 * are plain GETs through the same connection agent.
 *
 * The connection follows Consul's api/api.go: a unix socket (`socketPath`), a path prefix, basic
 * auth (CONSUL_HTTP_AUTH), CONSUL_CACERT or CONSUL_CAPATH, CONSUL_TLS_SERVER_NAME (SNI and the name
 * checked), and `ns` / `partition` on every request (CONSUL_NAMESPACE, CONSUL_PARTITION).
 *
 * Every failure becomes a ConsulWatchError whose message says what happened in Consul's words
 * (status and its short error text) and what to do about it, and never contains the token.
 */

/** The request context papi (the package's HTTP layer) understands. */
interface RequestContext extends EventEmitter {
  includeResponse: boolean;
}

interface ReadOptions {
  index?: string;
  wait?: string;
  stale?: boolean;
  consistent?: boolean;
  dc?: string;
  ctx: RequestContext;
  timeout: number;
}

type WithResponse = [IncomingMessage & { body?: unknown }, unknown?];

interface ConsulApi {
  catalog: {
    service: { list(options: ReadOptions): Promise<WithResponse> };
    node: { list(options: ReadOptions): Promise<WithResponse> };
  };
  health: {
    service(options: ReadOptions & { service: string }): Promise<WithResponse>;
    state(options: ReadOptions & { state: string; filter?: string }): Promise<WithResponse>;
  };
  kv: { get(options: ReadOptions & { key: string; recurse: boolean }): Promise<WithResponse> };
  /** papi's extension hook: `onCreate` runs before the request URL is built from `opts.query`. */
  _ext(event: 'onCreate', callback: (request: { opts: { query?: Record<string, string> } }, next: () => void) => void): void;
  destroy(): void;
}

/** What `/v1/acl/token/self` without a token says about ACLs. */
export type AclProbe = 'enabled' | 'disabled' | 'unknown';

/** What the provider asks of Consul; tests may substitute it. */
export interface ConsulReader {
  catalogServices(request: QueryRequest): Promise<Answer<unknown>>;
  /** `GET /v1/catalog/nodes`: every node with its address (a node's address is its services' default). */
  catalogNodes(request: QueryRequest): Promise<Answer<unknown>>;
  healthService(name: string, request: QueryRequest): Promise<Answer<unknown>>;
  /**
   * `GET /v1/health/state/any?filter=Status != "passing"`: every check of the datacenter that is
   * not passing (node checks have `ServiceID` ""). A plain RPC blocking query on the checks table
   * index, which the filter does not change (agent/consul/health_endpoint.go Health.ChecksInState
   * filters after reading the index), never answered from the streaming view.
   */
  healthState(request: QueryRequest): Promise<Answer<unknown>>;
  /** `undefined` body: 404, no key under the prefix. */
  kvList(prefix: string, request: QueryRequest): Promise<Answer<unknown>>;
  /**
   * `GET /v1/status/leader`: the raft leader's address as the agent's server knows it, `""` when
   * the cluster has none (agent/consul/status_endpoint.go Status.Leader: raft.Leader()). A plain RPC, never answered
   * from the streaming view, so it says what the streaming answers' KnownLeader cannot.
   */
  leader(signal: AbortSignal): Promise<string>;
  /**
   * Whether ACLs are on, asked without a token: `GET /v1/acl/token/self` answers 401 "ACL support
   * disabled" when they are off (agent/acl_endpoint.go checkACLDisabled) and, when they are on,
   * 403 "ACL not found" (no secret to look up: ACLTokenSelf returns acl.ErrNotFound, which
   * agent/http.go writes as 403) or 200 (the agent's default token, when one is configured).
   */
  aclProbe(signal: AbortSignal): Promise<AclProbe>;
  close(): void;
}

export interface ConsulClientOptions {
  /** Added to wait + wait/16 for the client timeout of a blocking call. */
  readonly timeoutMarginMs: number;
  /** Timeout of a non-blocking call (index 0). */
  readonly readTimeoutMs: number;
  /** Most sockets open to the agent at once (the request budget's size: a second bound). */
  readonly maxSockets?: number;
}

/** Client timeout for a blocking call: above the server's wait plus its jitter (wait/16). */
export function blockingTimeoutMs(waitMs: number, marginMs: number): number {
  return waitMs + Math.ceil(waitMs / 16) + marginMs;
}

/** Consul's answer to a default or consistent read while the cluster has no leader. */
function isNoLeader(error: ConsulWatchError): boolean {
  return error.status === 500 && /no cluster leader/i.test(error.message);
}

export function parseMeta(res: IncomingMessage | undefined): QueryMeta {
  const header = (name: string): string | undefined => {
    const value = res?.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const index = Number(header('x-consul-index'));
  const known = header('x-consul-knownleader');
  const contact = header('x-consul-lastcontact');
  const backend = header('x-consul-query-backend');
  return {
    index: Number.isFinite(index) && index > 0 ? index : 0,
    knownLeader: known === undefined ? undefined : known === 'true',
    lastContactMs: contact === undefined || !Number.isFinite(Number(contact)) ? undefined : Number(contact),
    filteredByAcls: header('x-consul-results-filtered-by-acls') === 'true',
    ...(backend === undefined ? {} : { queryBackend: backend }),
  };
}

export class ConsulClient implements ConsulReader {
  private readonly api: ConsulApi;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly consistency: { stale?: boolean; consistent?: boolean };
  /** Where the plain GETs go (leader, ACL probe). */
  private readonly target: RequestOptions;
  private readonly secure: boolean;
  /** `ns` / `partition` sent on every request, as api.go newRequest does. */
  private readonly scope: Record<string, string>;
  /** `/v1` behind the address's path prefix (api.go PathPrefix). */
  private readonly basePath: string;

  constructor(
    private readonly settings: ConsulSettings,
    private readonly options: ConsulClientOptions,
  ) {
    const socketPath = settings.socketPath;
    // A unix socket has no host: the URL only carries the scheme (TLS over the socket or not).
    const url = new URL(socketPath === undefined ? settings.url : `${settings.secure === true ? 'https' : 'http'}://localhost`);
    const secure = url.protocol === 'https:';
    this.secure = secure;
    const servername = settings.tlsServerName;
    this.agent = secure
      ? new HttpsAgent({
        keepAlive: true,
        // CONSUL_CACERT wins over CONSUL_CAPATH (go-rootcerts LoadCACerts).
        ca: settings.caCert !== undefined ? readPem('CONSUL_CACERT', settings.caCert) : settings.caPath !== undefined ? readCaPath(settings.caPath) : undefined,
        cert: readPem('CONSUL_CLIENT_CERT', settings.clientCert),
        key: readPem('CONSUL_CLIENT_KEY', settings.clientKey),
        rejectUnauthorized: settings.tlsVerify,
        maxSockets: options.maxSockets,
        ...(servername === undefined ? {} : { servername }),
      })
      : new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets });
    this.basePath = `${url.pathname.replace(/\/+$/, '')}/v1`;
    const auth = settings.httpAuth;
    this.target = {
      agent: this.agent,
      ...(socketPath !== undefined
        ? { socketPath }
        : { host: unbracket(url.hostname), port: url.port === '' ? (secure ? 443 : 80) : Number(url.port) }),
      ...(servername === undefined ? {} : { servername }),
      ...(auth === undefined ? {} : { auth }),
    } as RequestOptions;
    const baseUrl = new URL(`${url.protocol}//${socketPath === undefined ? url.host : 'localhost'}${this.basePath}`);
    if (auth !== undefined) {
      const at = auth.indexOf(':');
      baseUrl.username = encodeURIComponent(at < 0 ? auth : auth.slice(0, at));
      if (at >= 0) baseUrl.password = encodeURIComponent(auth.slice(at + 1));
    }
    const clientOptions = {
      baseUrl,
      agent: this.agent,
      // papi hands URL.hostname to http.request: an IPv6 literal keeps its brackets, which DNS
      // lookup does not resolve. Strip them here. With a socket papi leaves host and port out.
      ...(socketPath === undefined ? { lookup: unbracketLookup } : { socketPath }),
      ...(servername === undefined ? {} : { servername }),
      ...(settings.token === undefined ? {} : { defaults: { token: settings.token } }),
    };
    this.api = new Consul(clientOptions) as unknown as ConsulApi;
    this.scope = {
      ...(settings.namespace === undefined ? {} : { ns: settings.namespace }),
      ...(settings.partition === undefined ? {} : { partition: settings.partition }),
    };
    if (Object.keys(this.scope).length > 0) {
      // The consul package knows no `ns` option: both go into every request's query here.
      this.api._ext('onCreate', (request, next) => {
        request.opts.query = { ...(request.opts.query ?? {}), ...this.scope };
        next();
      });
    }
    this.consistency = settings.consistency === 'stale' ? { stale: true } : settings.consistency === 'consistent' ? { consistent: true } : {};
  }

  async leader(signal: AbortSignal): Promise<string> {
    const what = 'the leader status';
    const { status, body } = await this.plainGet(what, '/status/leader', true, signal);
    if (status !== 200) {
      throw new ConsulWatchError(`${what}: Consul at ${this.settings.url} answered ${status}${body === '' ? '' : ` "${this.redact(bodyText(body))}"`}`, String(status) as `${number}`, { status });
    }
    let leader: unknown;
    try {
      leader = JSON.parse(body);
    } catch {
      throw new ConsulWatchError(`${what}: unexpected answer from Consul at ${this.settings.url}`, 'invalid');
    }
    return typeof leader === 'string' ? leader : '';
  }

  async aclProbe(signal: AbortSignal): Promise<AclProbe> {
    // Without the token on purpose: the question is what an anonymous request meets.
    const { status } = await this.plainGet('the ACL probe', '/acl/token/self', false, signal);
    if (status === 401) return 'disabled';
    if (status === 403 || status === 200) return 'enabled';
    return 'unknown';
  }

  /** One short GET outside the consul package, through the same agent, with dc / ns / partition. */
  private plainGet(what: string, path: string, withToken: boolean, signal: AbortSignal): Promise<{ status: number; body: string }> {
    const params = new URLSearchParams({ ...(this.settings.datacenter === undefined ? {} : { dc: this.settings.datacenter }), ...this.scope }).toString();
    const headers: Record<string, string> = {};
    if (withToken && this.settings.token !== undefined) headers['x-consul-token'] = this.settings.token;
    const timeoutMs = this.options.readTimeoutMs;
    return new Promise((resolve, reject) => {
      const req = (this.secure ? httpsRequest : httpRequest)({
        ...this.target,
        method: 'GET',
        path: `${this.basePath}${path}${params === '' ? '' : `?${params}`}`,
        headers,
        signal,
        timeout: timeoutMs,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').trim() }));
        res.on('error', (err) => reject(this.describe(what, err, timeoutMs)));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { isTimeout: true })));
      req.on('error', (err) => reject(this.describe(what, err, timeoutMs)));
      req.end();
    });
  }

  catalogServices(request: QueryRequest): Promise<Answer<unknown>> {
    return this.read('catalog', request, (options) => this.api.catalog.service.list(options));
  }

  catalogNodes(request: QueryRequest): Promise<Answer<unknown>> {
    return this.read('catalog nodes', request, (options) => this.api.catalog.node.list(options));
  }

  healthState(request: QueryRequest): Promise<Answer<unknown>> {
    return this.read('health state', request, (options) => this.api.health.state({ ...options, state: 'any', filter: NON_PASSING_FILTER }));
  }

  healthService(name: string, request: QueryRequest): Promise<Answer<unknown>> {
    return this.read(`health of service "${name}"`, request, (options) => this.api.health.service({ ...options, service: name }));
  }

  kvList(prefix: string, request: QueryRequest): Promise<Answer<unknown>> {
    return this.read(`KV under "${prefix}"`, request, (options) => this.api.kv.get({ ...options, key: prefix, recurse: true }));
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async read(what: string, request: QueryRequest, call: (options: ReadOptions) => Promise<WithResponse>): Promise<Answer<unknown>> {
    const ctx = new EventEmitter() as RequestContext;
    ctx.includeResponse = true;
    const blocking = request.index > 0;
    const options: ReadOptions = {
      ...this.consistency,
      ...(this.settings.datacenter === undefined ? {} : { dc: this.settings.datacenter }),
      ...(blocking ? { index: String(request.index), wait: `${request.waitMs}ms` } : {}),
      ctx,
      timeout: blocking ? blockingTimeoutMs(request.waitMs, this.options.timeoutMarginMs) : this.options.readTimeoutMs,
    };
    const cancel = (): void => {
      ctx.emit('cancel');
    };
    if (request.signal.aborted) throw new ConsulWatchError(`${what}: cancelled`, 'reset');
    request.signal.addEventListener('abort', cancel, { once: true });
    try {
      const [res, body] = await call(options);
      return { body, meta: parseMeta(res) };
    } catch (err) {
      const error = this.describe(what, err, options.timeout);
      // No leader: a default-consistency read fails, but any server can still answer a stale one
      // (Consul's advice for availability). Only for the default mode: `consistent` was asked for
      // on purpose, and `stale` already is. The answer says so, and the no-leader veto still
      // refuses one that would empty a pool. Each call tries the leader first, so the watch is
      // back to default reads as soon as there is one.
      if (!isNoLeader(error) || this.settings.consistency !== 'default' || request.signal.aborted) throw error;
      const staleCtx = new EventEmitter() as RequestContext;
      staleCtx.includeResponse = true;
      const cancelStale = (): void => {
        staleCtx.emit('cancel');
      };
      request.signal.addEventListener('abort', cancelStale, { once: true });
      try {
        const [res, body] = await call({ ...options, stale: true, ctx: staleCtx });
        return { body, meta: { ...parseMeta(res), staleFallback: true } };
      } catch (staleErr) {
        throw this.describe(`${what} (stale read, the cluster has no leader)`, staleErr, options.timeout);
      } finally {
        request.signal.removeEventListener('abort', cancelStale);
      }
    } finally {
      request.signal.removeEventListener('abort', cancel);
    }
  }

  /** A papi/HTTP error → ConsulWatchError with a message that says what to do, without the token. */
  private describe(what: string, err: unknown, timeoutMs: number): ConsulWatchError {
    const e = err as Error & { isTimeout?: boolean; isAbort?: boolean; code?: string; response?: IncomingMessage & { body?: unknown } };
    const where = this.settings.url;
    const status = e.response?.statusCode;
    if (status !== undefined && status >= 200 && status < 300) {
      // A 2xx whose body papi could not decode (not JSON).
      return new ConsulWatchError(`${what}: unexpected answer from Consul at ${where}: ${this.redact(e.message ?? 'undecodable body')}`, 'invalid', { cause: err });
    }
    if (status !== undefined) {
      const text = this.redact(bodyText(e.response?.body));
      const said = text === '' ? '' : ` "${text}"`;
      if (status === 403) {
        return new ConsulWatchError(`${what}: Consul answered 403${said}: ${this.aclHint(text, what)}`, '403', { status, cause: err });
      }
      return new ConsulWatchError(`${what}: Consul at ${where} answered ${status}${said}`, String(status) as `${number}`, { status, cause: err });
    }
    if (e.isTimeout === true) {
      return new ConsulWatchError(`${what}: no answer from Consul at ${where} within ${timeoutMs} ms`, 'timeout', { cause: err });
    }
    const code = e.code ?? '';
    if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EADDRNOTAVAIL'].includes(code)) {
      return new ConsulWatchError(`${what}: cannot reach Consul at ${where} (${code})`, 'unreachable', { cause: err });
    }
    if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /certificate|self.signed|SSL/i.test(e.message ?? '') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
      return new ConsulWatchError(`${what}: TLS with Consul at ${where} failed (${code || this.redact(e.message ?? '')}); check CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY`, 'tls', { cause: err });
    }
    if (e.isAbort === true) return new ConsulWatchError(`${what}: request cancelled`, 'reset', { cause: err });
    const detail = code !== '' ? code : this.redact(e.message ?? String(err));
    return new ConsulWatchError(`${what}: connection to Consul at ${where} failed (${detail})`, 'reset', { cause: err });
  }

  private aclHint(text: string, what: string): string {
    const token = this.settings.token === undefined ? 'no ACL token is configured (set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)' : 'the ACL token in CONSUL_HTTP_TOKEN';
    if (/acl not found/i.test(text)) {
      return this.settings.token === undefined ? `${token}` : `${token} is unknown to Consul (invalid, expired or deleted)`;
    }
    if (/permission denied/i.test(text)) {
      return this.settings.token === undefined ? `${token}, and the anonymous token may not read the ${what}` : `${token} lacks a policy granting read on the ${what}`;
    }
    return `${token} was refused`;
  }

  /** Belt and braces: Consul does not echo tokens, but nothing we log may contain one (nor CONSUL_HTTP_AUTH). */
  private redact(text: string): string {
    let out = text;
    for (const secret of [this.settings.token, this.settings.httpAuth]) {
      if (secret !== undefined && secret !== '') out = out.split(secret).join('[redacted]');
    }
    return out;
  }
}

function unbracket(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function unbracketLookup(hostname: string, options: object, callback: (...args: never[]) => void): void {
  const unbracketed = unbracket(hostname);
  (dnsLookup as unknown as (h: string, o: object, cb: (...args: never[]) => void) => void)(unbracketed, options, callback);
}

function bodyText(body: unknown): string {
  let text = '';
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body)) text = body.toString('utf8');
  else if (body !== undefined && body !== null) text = JSON.stringify(body);
  text = text.trim().replace(/\s+/g, ' ');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
