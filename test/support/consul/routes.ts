/**
 * The HTTP API of the Consul test server: request → response object, no sockets here (server.ts
 * writes the answer). Texts, status codes and headers follow Consul's agent/http.go,
 * agent/kvs_endpoint.go, agent/health_endpoint.go and agent/agent_endpoint.go.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { allows, extractToken, permissionDeniedMessage, type AclStore, type Resolution } from './acl.js';
import { holdQuery, parseBlockingParams, type ChangeFeed } from './blocking.js';
import { BexprError, compileFilter, type CompiledFilter } from './bexpr.js';
import { ConsulHttpError } from './errors.js';
import type { Faults } from './faults.js';
import { normalizeRegistration } from './registration.js';
import { CHECK_SELECTORS, type ConsulState, type HealthQuery } from './state.js';
import type { CheckStatus } from './types.js';

/** Consul's kv_max_value_size default. */
export const KV_MAX_VALUE_SIZE = 512 * 1024;

export interface RouteContext {
  state: ConsulState;
  acl: AclStore;
  feed: ChangeFeed;
  faults: Faults;
  datacenter: string;
  nodeName: string;
  jitter: () => boolean;
  streaming: () => boolean;
  /** Consul 1.21.5+ KV key validation (agent/kvs_endpoint.go validateKVKey). */
  kvKeyValidation: () => boolean;
}

export interface RouteRequest {
  method: string;
  /** Decoded path. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** The query was parked, to be held `holdMs` at most (its `waitMs` plus any jitter). */
  onBlocked: (hold: { waitMs: number; holdMs: number }) => void;
  onUnblocked: () => void;
}

export interface RouteResponse {
  status: number;
  headers: Record<string, string>;
  body?: Buffer;
}

type Consistency = 'leader' | 'stale' | 'consistent';

interface ReadResult {
  index: number;
  status: number;
  json?: unknown;
  raw?: Buffer;
  /** A JSON body already serialised (large answers built from cached parts). */
  text?: string;
  filtered?: boolean;
  /** An error found while running the query (KV read denied): 403 text, no meta headers. */
  denied?: string;
}

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

export function textResponse(status: number, message: string, headers: Record<string, string> = {}): RouteResponse {
  return { status, headers: { 'Content-Type': TEXT_TYPE, ...headers }, body: Buffer.from(message) };
}

function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): RouteResponse {
  return { status, headers: { 'Content-Type': JSON_TYPE, ...headers }, body: Buffer.from(JSON.stringify(value)) };
}

function emptyResponse(status: number, headers: Record<string, string> = {}): RouteResponse {
  return { status, headers };
}

/** Go's strconv.ParseBool. */
function parseGoBool(raw: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  return undefined;
}

function parseUint(raw: string): number | ConsulHttpError {
  if (!/^\d+$/.test(raw)) return new ConsulHttpError(500, `strconv.ParseUint: parsing ${JSON.stringify(raw)}: invalid syntax`);
  return Number(raw);
}

function methodNotAllowed(method: string, allowed: string[]): RouteResponse {
  return textResponse(405, `method ${method} not allowed`, { Allow: allowed.join(',') });
}

function resolveAcl(ctx: RouteContext, req: RouteRequest): Resolution {
  return ctx.acl.resolve(extractToken(req.query, req.headers));
}

const ACL_NOT_FOUND = (): RouteResponse => textResponse(403, 'ACL not found');
const NO_LEADER = (): RouteResponse => textResponse(500, 'No cluster leader');

/**
 * A read that supports blocking and consistency modes: parses `?stale`/`?consistent`, `?wait`,
 * `?index` and `?dc` like Consul's `parse`, resolves the token, then runs (and holds) the query.
 */
async function blockingRead(
  ctx: RouteContext,
  req: RouteRequest,
  run: (acl: Resolution) => ReadResult,
  opts: { streamingCapable?: boolean; peekIndex?: () => number } = {},
): Promise<RouteResponse | undefined> {
  const stale = req.query.has('stale');
  const consistent = req.query.has('consistent');
  if (stale && consistent) return textResponse(400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  const consistency: Consistency = stale ? 'stale' : consistent ? 'consistent' : 'leader';
  const blocking = parseBlockingParams(req.query);
  if (!blocking.ok) return textResponse(400, blocking.message);
  const dc = req.query.get('dc');
  if (dc && dc !== ctx.datacenter) return textResponse(500, 'No path to datacenter');
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  if (ctx.faults.leaderless && consistency !== 'stale') return NO_LEADER();

  const result = await holdQuery({
    minIndex: blocking.minIndex,
    waitMs: blocking.waitMs,
    jitter: ctx.jitter(),
    feed: ctx.feed,
    signal: req.signal,
    run: () => run(acl),
    isFinal: (r) => r.denied !== undefined,
    ...(opts.peekIndex === undefined ? {} : { peekIndex: opts.peekIndex }),
    onBlocked: req.onBlocked,
    onUnblocked: req.onUnblocked,
  });
  if (!result) return undefined;
  if (result.denied !== undefined) return textResponse(403, result.denied);

  // use_streaming_backend (default true since 1.10): a blocking health read is answered from the
  // agent's streaming view, whose QueryMeta has no leader facts, and agent/http.go setMeta writes
  // them anyway: KnownLeader false, LastContact 0, whatever the cluster's state (hashicorp/consul#9776).
  const streaming = opts.streamingCapable === true && ctx.streaming() && blocking.minIndex > 0;
  const headers: Record<string, string> = { 'X-Consul-Index': String(Math.max(1, result.index)) };
  if (streaming) {
    headers['X-Consul-KnownLeader'] = 'false';
    headers['X-Consul-LastContact'] = '0';
    headers['X-Consul-Query-Backend'] = 'streaming';
  } else {
    headers['X-Consul-KnownLeader'] = String(ctx.faults.knownLeader);
    headers['X-Consul-LastContact'] = String(Math.max(0, Math.floor(ctx.faults.lastContactMs)));
    headers['X-Consul-Query-Backend'] = 'blocking-query';
  }
  headers['X-Consul-Effective-Consistency'] = consistency;
  // agent/consul/rpc.go maskResultsFilteredByACLs: a request without a token never learns that
  // something was filtered; the streaming view never sets the flag at all.
  const anonymous = (extractToken(req.query, req.headers) ?? '') === '';
  if (result.filtered === true && !streaming && !anonymous) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';

  if (result.raw !== undefined) {
    return {
      status: result.status,
      headers: {
        ...headers,
        'Content-Type': 'text/plain',
        'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': 'sandbox',
      },
      body: result.raw,
    };
  }
  if (result.text !== undefined) return { status: result.status, headers: { 'Content-Type': JSON_TYPE, ...headers }, body: Buffer.from(result.text) };
  if (result.json === undefined) return emptyResponse(result.status, headers);
  return jsonResponse(result.status, result.json, headers);
}

// ------------------------------------------------------------------ catalog and health

function catalogServices(ctx: RouteContext, req: RouteRequest): Promise<RouteResponse | undefined> {
  return blockingRead(ctx, req, (acl) => {
    const { body, filtered } = ctx.state.catalogServices((name) => allows(acl, 'service', name, 'read'));
    return { index: ctx.state.catalogServicesIndex(), status: 200, json: body, filtered };
  }, { peekIndex: () => ctx.state.catalogServicesIndex() });
}

/** The health state of every check: a plain RPC blocking query, never streaming (agent/health_endpoint.go HealthChecksInState). */
function healthState(ctx: RouteContext, req: RouteRequest, state: string): Promise<RouteResponse | undefined> | RouteResponse {
  if (state === '') return textResponse(400, 'Missing check state');
  // ?filter (go-bexpr, bexpr.ts): compiled before the query runs, as Health.ChecksInState does
  // (bexpr.CreateFilter before blockingQuery), so a bad one fails at once, never after a wait.
  // The index stays the checks table's whatever the filter.
  let keep: CompiledFilter | undefined;
  const expression = req.query.get('filter') ?? '';
  if (expression !== '') {
    try {
      keep = compileFilter(expression, CHECK_SELECTORS);
    } catch (err) {
      if (err instanceof BexprError) return textResponse(err.status, err.message);
      throw err;
    }
  }
  return blockingRead(ctx, req, (acl) => {
    const { text, filtered } = ctx.state.healthState(
      state,
      (service, node) => allows(acl, 'node', node, 'read') && (service === '' || allows(acl, 'service', service, 'read')),
      keep,
    );
    return { index: ctx.state.healthStateIndex(), status: 200, text, filtered };
  }, { peekIndex: () => ctx.state.healthStateIndex() });
}

function catalogNodes(ctx: RouteContext, req: RouteRequest): Promise<RouteResponse | undefined> {
  return blockingRead(ctx, req, (acl) => {
    const { body, filtered } = ctx.state.catalogNodes((node) => allows(acl, 'node', node, 'read'));
    return { index: ctx.state.catalogNodesIndex(), status: 200, json: body, filtered };
  }, { peekIndex: () => ctx.state.catalogNodesIndex() });
}

async function healthService(ctx: RouteContext, req: RouteRequest, name: string): Promise<RouteResponse | undefined> {
  if (name === '') return textResponse(400, 'Missing service name');
  if (req.query.has('filter')) {
    return textResponse(400, 'The Consul test server does not implement ?filter; use ?tag, ?passing or ?node-meta');
  }
  let passing = false;
  if (req.query.has('passing')) {
    const raw = req.query.get('passing') ?? '';
    const parsed = raw === '' ? true : parseGoBool(raw);
    if (parsed === undefined) return textResponse(400, 'Invalid value for ?passing');
    passing = parsed;
  }
  const query: HealthQuery = {
    tags: req.query.getAll('tag'),
    passing,
    nodeMeta: req.query.getAll('node-meta').map((pair): [string, string] => {
      const at = pair.indexOf(':');
      return at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    }),
  };
  return blockingRead(
    ctx,
    req,
    (acl) => {
      const { body, filtered } = ctx.state.healthService(
        name,
        query,
        (service, node) => allows(acl, 'service', service, 'read') && allows(acl, 'node', node, 'read'),
      );
      return { index: ctx.state.healthServiceIndex(name), status: 200, json: body, filtered };
    },
    { streamingCapable: true, peekIndex: () => ctx.state.healthServiceIndex(name) },
  );
}

// ------------------------------------------------------------------ KV

/** Consul's validateKVKey "suspicious" extensions (cache deception), checked on the lower-cased key. */
const SUSPICIOUS_EXTENSIONS = [
  '.js', '.css', '.html', '.htm', '.xml', '.json', '.txt', '.log',
  '.php', '.asp', '.jsp', '.cgi', '.pl', '.py', '.rb', '.sh',
  '.exe', '.dll', '.bat', '.cmd', '.com', '.scr', '.vbs',
  '.pdf', '.doc', '.docx', '.xls', '.xlsx', '.ppt', '.pptx',
  '.zip', '.rar', '.tar', '.gz', '.7z', '.bz2',
  '.jpg', '.jpeg', '.png', '.gif', '.svg', '.ico', '.bmp',
  '.mp3', '.mp4', '.avi', '.mov', '.wmv', '.flv', '.swf',
  '.woff', '.woff2', '.ttf', '.eot', '.otf',
];

/**
 * Consul 1.21.5+ agent/kvs_endpoint.go `validateKVKey` (hashicorp/consul#22822), same order and
 * texts: the reason a key is refused (400), or undefined. Positions are byte offsets, as Go's
 * `for i, r := range key` gives them.
 */
export function kvKeyProblem(key: string): string | undefined {
  if (key === '') return 'key cannot be empty';
  if (key.startsWith('/')) return "key must not begin with a '/'";
  let at = 0;
  for (const ch of key) {
    if (!/^[a-zA-Z0-9,\-_./]$/.test(ch)) {
      return `key contains invalid character '${ch}' at position ${at}. Only alphanumeric characters and ,-_./ are allowed`;
    }
    at += Buffer.byteLength(ch);
  }
  if (key.includes('../') || key.includes('..\\')) return 'key contains path traversal sequence';
  if (['%2e%2e%2f', '%2e%2e/', '..%2f', '%2e%2e%5c'].some((s) => key.includes(s))) return 'key contains encoded path traversal sequence';
  const lower = key.toLowerCase();
  for (const ext of SUSPICIOUS_EXTENSIONS) {
    if (lower.endsWith(ext)) return `key contains suspicious file extension '${ext}' that may be cached by proxies`;
  }
  if (['.js?', '.css?', '.html?', '.htm?'].some((s) => lower.includes(s))) return 'key contains suspicious file extension with parameters that may be cached';
  return undefined;
}

async function kv(ctx: RouteContext, req: RouteRequest, key: string): Promise<RouteResponse | undefined> {
  if (ctx.kvKeyValidation()) {
    // KVSEndpoint checks the path, then the key, for every method, before anything else.
    if (req.path.includes('../') || req.path.includes('..\\')) return textResponse(400, 'URL path contains invalid traversal sequence');
    const problem = key === '' ? undefined : kvKeyProblem(key);
    if (problem !== undefined) return textResponse(400, problem);
  }
  switch (req.method) {
    case 'GET':
      if (req.query.has('keys')) return kvKeys(ctx, req, key);
      if (req.query.has('recurse')) return kvList(ctx, req, key);
      if (key === '') return textResponse(400, 'Missing key name');
      return kvGet(ctx, req, key);
    case 'PUT':
      return kvPut(ctx, req, key);
    case 'DELETE':
      return kvDelete(ctx, req, key);
    default:
      return methodNotAllowed(req.method, ['GET', 'PUT', 'DELETE']);
  }
}

function kvGet(ctx: RouteContext, req: RouteRequest, key: string): Promise<RouteResponse | undefined> {
  const raw = req.query.has('raw');
  return blockingRead(ctx, req, (acl) => {
    const index = ctx.state.kvGetIndex(key);
    if (!allows(acl, 'key', key, 'read')) return { index, status: 403, denied: 'Permission denied' };
    const entry = ctx.state.kvEntry(key);
    if (!entry) return { index, status: 404 };
    if (raw) return { index, status: 200, raw: ctx.state.kvRaw(key) ?? Buffer.alloc(0) };
    return { index, status: 200, json: [entry] };
  });
}

function kvList(ctx: RouteContext, req: RouteRequest, prefix: string): Promise<RouteResponse | undefined> {
  return blockingRead(ctx, req, (acl) => {
    const index = ctx.state.kvListIndex(prefix);
    const all = ctx.state.kvList(prefix);
    const visible = all.filter((entry) => allows(acl, 'key', entry.Key, 'read'));
    const filtered = visible.length < all.length;
    if (visible.length === 0) return { index, status: 404, filtered };
    return { index, status: 200, json: visible, filtered };
  });
}

function kvKeys(ctx: RouteContext, req: RouteRequest, prefix: string): Promise<RouteResponse | undefined> {
  const separator = req.query.get('separator') ?? req.query.get('seperator') ?? '';
  return blockingRead(ctx, req, (acl) => {
    const index = ctx.state.kvListIndex(prefix);
    const all = ctx.state.kvList(prefix);
    const visible = all.filter((entry) => allows(acl, 'key', entry.Key, 'read'));
    const filtered = visible.length < all.length;
    const keys: string[] = [];
    const seen = new Set<string>();
    for (const entry of visible) {
      if (separator === '') {
        keys.push(entry.Key);
        continue;
      }
      const after = entry.Key.slice(prefix.length);
      const at = after.indexOf(separator);
      const shown = at < 0 ? entry.Key : entry.Key.slice(0, prefix.length + at + separator.length);
      if (!seen.has(shown)) {
        seen.add(shown);
        keys.push(shown);
      }
    }
    if (keys.length === 0 && prefix !== '') return { index, status: 404, filtered };
    return { index, status: 200, json: keys, filtered };
  });
}

function conflicting(query: URLSearchParams, ...flags: string[]): RouteResponse | undefined {
  if (flags.filter((f) => query.has(f)).length > 1) {
    return textResponse(400, `Conflicting flags: ${query.toString()}\n`);
  }
  return undefined;
}

function kvWriteGate(ctx: RouteContext, req: RouteRequest, key: string): RouteResponse | undefined {
  const dc = req.query.get('dc');
  if (dc && dc !== ctx.datacenter) return textResponse(500, 'No path to datacenter');
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  if (!allows(acl, 'key', key, 'write')) return textResponse(403, 'Permission denied');
  if (ctx.faults.leaderless) return NO_LEADER();
  return undefined;
}

function kvPut(ctx: RouteContext, req: RouteRequest, key: string): RouteResponse {
  if (key === '') return textResponse(400, 'Missing key name');
  const conflict = conflicting(req.query, 'cas', 'acquire', 'release');
  if (conflict) return conflict;
  let flags = 0;
  if (req.query.has('flags')) {
    const parsed = parseUint(req.query.get('flags') ?? '');
    if (parsed instanceof ConsulHttpError) return textResponse(parsed.status, parsed.message);
    flags = parsed;
  }
  let cas: number | undefined;
  if (req.query.has('cas')) {
    const parsed = parseUint(req.query.get('cas') ?? '');
    if (parsed instanceof ConsulHttpError) return textResponse(parsed.status, parsed.message);
    cas = parsed;
  }
  if (req.body.length > KV_MAX_VALUE_SIZE) {
    return textResponse(
      413,
      `Request body(${req.body.length} bytes) too large, max size: ${KV_MAX_VALUE_SIZE} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.`,
    );
  }
  const gate = kvWriteGate(ctx, req, key);
  if (gate) return gate;
  const session = req.query.get('acquire') ?? req.query.get('release');
  if (session !== null) return textResponse(500, `invalid session ${JSON.stringify(session)}`);
  return jsonResponse(200, ctx.state.kvPut(key, req.body, flags, cas));
}

function kvDelete(ctx: RouteContext, req: RouteRequest, key: string): RouteResponse {
  const conflict = conflicting(req.query, 'recurse', 'cas');
  if (conflict) return conflict;
  const recurse = req.query.has('recurse');
  if (!recurse && key === '') return textResponse(400, 'Missing key name');
  let cas: number | undefined;
  if (req.query.has('cas')) {
    const parsed = parseUint(req.query.get('cas') ?? '');
    if (parsed instanceof ConsulHttpError) return textResponse(parsed.status, parsed.message);
    cas = parsed;
  }
  const gate = kvWriteGate(ctx, req, key);
  if (gate) return gate;
  const ok = ctx.state.kvDelete(key, { recurse, cas });
  return jsonResponse(200, cas === undefined ? true : ok);
}

// ------------------------------------------------------------------ agent

function parseJsonBody(req: RouteRequest): unknown {
  try {
    return JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new ConsulHttpError(400, `Request decode failed: ${(err as Error).message}`);
  }
}

function agentRegister(ctx: RouteContext, req: RouteRequest): RouteResponse {
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  const svc = normalizeRegistration(parseJsonBody(req));
  if (!allows(acl, 'service', svc.name, 'write')) {
    return textResponse(403, permissionDeniedMessage(acl, 'service', 'write', svc.name));
  }
  ctx.state.registerService(svc, ctx.nodeName);
  return emptyResponse(200);
}

const unknownService = (id: string): RouteResponse =>
  textResponse(404, `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`);

/** Consul's vetServiceUpdate: the service must exist and the token may write it. */
function vetService(ctx: RouteContext, acl: Resolution, id: string): RouteResponse | undefined {
  const svc = ctx.state.getService(ctx.nodeName, id);
  if (!svc) return unknownService(id);
  if (!allows(acl, 'service', svc.name, 'write')) {
    return textResponse(403, permissionDeniedMessage(acl, 'service', 'write', svc.name));
  }
  return undefined;
}

function agentDeregister(ctx: RouteContext, req: RouteRequest, id: string): RouteResponse {
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  const vetted = vetService(ctx, acl, id);
  if (vetted) return vetted;
  ctx.state.deregisterService(ctx.nodeName, id);
  return emptyResponse(200);
}

function agentCheckUpdate(ctx: RouteContext, req: RouteRequest, checkId: string, status: CheckStatus, output: string): RouteResponse {
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  const check = ctx.state.getCheck(ctx.nodeName, checkId);
  if (!check) {
    return textResponse(404, `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
  }
  if (check.serviceId !== '') {
    if (!allows(acl, 'service', check.serviceName, 'write')) {
      return textResponse(403, permissionDeniedMessage(acl, 'service', 'write', check.serviceName));
    }
  } else if (!allows(acl, 'node', ctx.nodeName, 'write')) {
    return textResponse(403, permissionDeniedMessage(acl, 'node', 'write', ctx.nodeName));
  }
  ctx.state.updateCheck(ctx.nodeName, checkId, status, output);
  return emptyResponse(200);
}

function parseEnable(query: URLSearchParams): boolean | RouteResponse {
  if (!query.has('enable')) return textResponse(400, 'Missing value for enable');
  const raw = query.get('enable') ?? '';
  const enable = parseGoBool(raw);
  if (enable === undefined) return textResponse(400, `Invalid value for enable: ${JSON.stringify(raw)}`);
  return enable;
}

function agentServiceMaintenance(ctx: RouteContext, req: RouteRequest, id: string): RouteResponse {
  if (id === '') return textResponse(400, 'Missing service ID');
  const enable = parseEnable(req.query);
  if (typeof enable !== 'boolean') return enable;
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  const vetted = vetService(ctx, acl, id);
  if (vetted) return vetted;
  ctx.state.serviceMaintenance(ctx.nodeName, id, enable, req.query.get('reason') ?? '');
  return emptyResponse(200);
}

function agentNodeMaintenance(ctx: RouteContext, req: RouteRequest): RouteResponse {
  const enable = parseEnable(req.query);
  if (typeof enable !== 'boolean') return enable;
  const acl = resolveAcl(ctx, req);
  if (acl.kind === 'not-found') return ACL_NOT_FOUND();
  if (!allows(acl, 'node', ctx.nodeName, 'write')) {
    return textResponse(403, permissionDeniedMessage(acl, 'node', 'write', ctx.nodeName));
  }
  ctx.state.nodeMaintenance(ctx.nodeName, enable, req.query.get('reason') ?? '');
  return emptyResponse(200);
}

const TTL_VERBS: Record<string, CheckStatus> = { pass: 'passing', warn: 'warning', fail: 'critical' };

// ------------------------------------------------------------------ ACL

/**
 * agent/acl_endpoint.go ACLTokenSelf: 401 "ACL support disabled" when ACLs are off
 * (checkACLDisabled); the token of the request is looked up by its secret: none or an unknown one
 * gives acl.ErrNotFound, written as 403 "ACL not found" (agent/http.go); a known one, 200.
 */
function aclTokenSelf(ctx: RouteContext, req: RouteRequest): RouteResponse {
  if (!ctx.acl.enabled) return textResponse(401, 'ACL support disabled');
  const secret = extractToken(req.query, req.headers);
  if (secret === undefined || secret === '') return ACL_NOT_FOUND();
  const resolved = ctx.acl.resolve(secret);
  if (resolved.kind !== 'identity') return ACL_NOT_FOUND();
  const identity = resolved.identity;
  return jsonResponse(200, {
    AccessorID: identity.accessorId,
    SecretID: secret,
    Description: identity.anonymous ? 'Anonymous Token' : '',
    Policies: [],
    Local: false,
    CreateIndex: 1,
    ModifyIndex: 1,
  });
}

// ------------------------------------------------------------------ dispatch

/** Answers one request; `undefined` when the client went away while it was held. */
export async function route(ctx: RouteContext, req: RouteRequest): Promise<RouteResponse | undefined> {
  try {
    return await dispatch(ctx, req);
  } catch (err) {
    if (err instanceof ConsulHttpError) return textResponse(err.status, err.message);
    return textResponse(500, (err as Error).message ?? String(err));
  }
}

async function dispatch(ctx: RouteContext, req: RouteRequest): Promise<RouteResponse | undefined> {
  const { path, method } = req;
  const only = (allowed: string, handler: () => RouteResponse | Promise<RouteResponse | undefined>) =>
    method === allowed ? handler() : methodNotAllowed(method, [allowed]);

  if (path === '/v1/catalog/services') return only('GET', () => catalogServices(ctx, req));
  if (path === '/v1/catalog/nodes') return only('GET', () => catalogNodes(ctx, req));
  if (path.startsWith('/v1/health/state/')) {
    return only('GET', () => healthState(ctx, req, path.slice('/v1/health/state/'.length)));
  }
  if (path.startsWith('/v1/health/service/')) {
    return only('GET', () => healthService(ctx, req, path.slice('/v1/health/service/'.length)));
  }
  if (path.startsWith('/v1/kv/')) return kv(ctx, req, path.slice('/v1/kv/'.length));
  if (path === '/v1/agent/service/register') return only('PUT', () => agentRegister(ctx, req));
  if (path.startsWith('/v1/agent/service/deregister/')) {
    return only('PUT', () => agentDeregister(ctx, req, path.slice('/v1/agent/service/deregister/'.length)));
  }
  if (path.startsWith('/v1/agent/service/maintenance/')) {
    return only('PUT', () => agentServiceMaintenance(ctx, req, path.slice('/v1/agent/service/maintenance/'.length)));
  }
  if (path === '/v1/agent/maintenance') return only('PUT', () => agentNodeMaintenance(ctx, req));
  const ttl = /^\/v1\/agent\/check\/(pass|warn|fail)\/(.+)$/.exec(path);
  if (ttl) {
    const status = TTL_VERBS[ttl[1] ?? ''] ?? 'critical';
    return only('PUT', () => agentCheckUpdate(ctx, req, ttl[2] ?? '', status, req.query.get('note') ?? ''));
  }
  if (path.startsWith('/v1/agent/check/update/')) {
    return only('PUT', () => {
      const body = parseJsonBody(req) as { Status?: unknown; Output?: unknown } | null;
      const status = body?.Status;
      if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
        return textResponse(400, `Invalid check status: '${String(status)}'`);
      }
      const output = typeof body?.Output === 'string' ? body.Output : '';
      return agentCheckUpdate(ctx, req, path.slice('/v1/agent/check/update/'.length), status, output);
    });
  }
  if (path === '/v1/status/leader') {
    // agent/consul/status_endpoint.go Status.Leader: raft.Leader(), "" while the server knows no leader.
    return only('GET', () => jsonResponse(200, ctx.faults.leaderless || !ctx.faults.knownLeader ? '' : '127.0.0.1:8300'));
  }
  if (path === '/v1/acl/token/self') return only('GET', () => aclTokenSelf(ctx, req));
  return textResponse(404, '404 page not found\n');
}
