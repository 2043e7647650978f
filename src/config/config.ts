import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { formatCidr, parseCidrList } from '../proxy/edge/client-address.js';
import { consulConnection, type ConsulSettings } from './consul-settings.js';
import { COMMANDS } from '../commands/commands.js';
import { adminToken } from './admin-token.js';
import { FLAGS, flagGetter, parseDuration, type FlagName, type FlagSpec } from './flags.js';
import { isLoopback, parseHostPort, type HostPort } from './host-port.js';

/** The frozen configuration every component reads. Built once from flags and environment. */
export interface Config {
  readonly listen: HostPort;
  readonly admin: HostPort;
  readonly templatesDir: string;
  /** The services file (file provider); undefined with no Consul means the embedded demo default. */
  readonly servicesFile: string | undefined;
  /** Time in-flight requests get to finish on SIGTERM, and pools of removed endpoints to drain. */
  readonly drainTimeoutMs: number;
  /** On SIGTERM: time /readyz answers 503 while the listeners still serve, before they close. */
  readonly shutdownDelayMs: number;
  /** Longest wait at start for every source's first data before the proxy listener opens anyway. */
  readonly startupWaitMs: number;
  readonly logLevel: string;
  /** KV prefix Switchyard reads (services file and Consul alike), with its trailing `/`. */
  readonly kvPrefix: string;
  /** Set when Consul is the discovery source. */
  readonly consul: ConsulSettings | undefined;
  /** Set when TLS is terminated (`--tls-listen` with `--tls-cert-dir`). */
  readonly tls: TlsSettings | undefined;
  /** Timeouts and limits of the proxy listeners (plain and TLS). */
  readonly listener: ListenerSettings;
  /** CIDRs (`10.0.0.0/8`, `::1/128`) whose X-Forwarded-For is appended to; from other clients it is replaced. */
  readonly trustedProxies: readonly string[];
  /** Bearer token every admin request but /healthz needs; required off loopback. Never logged, never shown. */
  readonly adminToken: string | undefined;
  /**
   * Proxy processes (`--workers`): 1 is the single process (no IPC at all); more run node:cluster
   * (src/cluster/): a primary with the providers, control and admin, and this many listener workers.
   */
  readonly workers: number;
  /** Where access lines go (`--access-log`): with the log on stdout, nowhere, or appended to a file. */
  readonly accessLog: AccessLogTarget;
}

/**
 * `stdout`: access lines go through the root logger's destination (and follow --log-level);
 * `off`: none; `file`: appended to `path` (absolute), reopened on SIGUSR1, written whatever
 * --log-level says (as nginx's access_log does not follow error_log's level).
 */
export type AccessLogTarget = { readonly kind: 'stdout' } | { readonly kind: 'off' } | { readonly kind: 'file'; readonly path: string };

/** Listener hardening: slowloris, slow uploads, idle keep-alive, connection and header limits. */
export interface ListenerSettings {
  readonly headersTimeoutMs: number;
  /** 0: no limit (long streaming uploads). */
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  /** Bytes of request line and headers. */
  readonly maxHeaderSize: number;
  /** Header fields per request. */
  readonly maxHeaderCount: number;
}

/** The TLS listener and its certificate directory (`name.crt` + `name.key` pairs, `default.*` for clients without SNI). */
export interface TlsSettings {
  readonly listen: HostPort;
  readonly certDir: string;
}

export type { ConsulConsistency, ConsulSettings } from './consul-settings.js';
export { FLAGS, parseDuration } from './flags.js';
export { parseConsulAddress, parseGoBool } from './consul-settings.js';

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export type CliAction = { kind: 'run'; config: Config } | { kind: 'help' } | { kind: 'version' };

export function helpText(): string {
  const lines = ['Usage: switchyard [flags]          run the proxy', '       switchyard COMMAND [flags]  (switchyard help COMMAND for its flags)', '', 'Commands:'];
  for (const [name, command] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${command.summary}`);
  lines.push('', 'Flags of the proxy (each also set by the environment variable in brackets):');
  for (const [name, spec] of Object.entries(FLAGS) as [FlagName, FlagSpec][]) {
    const left = `  --${name} ${spec.value}`;
    const def = spec.default === undefined ? '' : ` (default ${spec.default})`;
    lines.push(`${left.padEnd(34)}${spec.help}${def}${spec.env === undefined ? '' : ` [${spec.env}]`}`);
  }
  lines.push(`${'  --help'.padEnd(34)}this text`, `${'  --version'.padEnd(34)}print the version`);
  lines.push('', 'Consul connection, read as Consul\'s own CLI reads it (api/api.go): CONSUL_HTTP_ADDR (host:port,',
    'http(s)://host:port[/prefix] or unix:///path), CONSUL_HTTP_TOKEN_FILE (wins) or CONSUL_HTTP_TOKEN,',
    'CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY (Go booleans: 1 t T TRUE true True, 0 f F FALSE',
    'false False; anything else is refused), CONSUL_CACERT (wins) or CONSUL_CAPATH, CONSUL_CLIENT_CERT,',
    'CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_NAMESPACE and CONSUL_PARTITION (Enterprise).');
  lines.push('', 'Without --services and without --consul Switchyard runs its embedded default:',
    'demo upstream servers on loopback and the routes in --templates.');
  return lines.join('\n');
}

/** Parse argv (without node and script) and the environment. Throws UsageError with a one-line reason. */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): CliAction {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' }, version: { type: 'boolean' } };
  for (const name of Object.keys(FLAGS)) options[name] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'invalid command line');
  }
  if (values['help'] === true) return { kind: 'help' };
  if (values['version'] === true) return { kind: 'version' };

  const get = flagGetter(values, env);

  const logLevel = get('log-level')!;
  if (!LOG_LEVELS.has(logLevel)) throw new UsageError(`--log-level: expected one of ${[...LOG_LEVELS].join(', ')}, got ${JSON.stringify(logLevel)}`);

  const kvPrefix = get('kv-prefix')!;
  const config: Config = {
    listen: parseHostPort('--listen', get('listen')!),
    admin: parseHostPort('--admin', get('admin')!),
    templatesDir: get('templates')!,
    servicesFile: get('services'),
    drainTimeoutMs: parseDuration('drain-timeout', get('drain-timeout')!),
    shutdownDelayMs: parseDuration('shutdown-delay', get('shutdown-delay')!),
    startupWaitMs: parseDuration('startup-wait', get('startup-wait')!),
    logLevel,
    kvPrefix: kvPrefix.endsWith('/') ? kvPrefix : `${kvPrefix}/`,
    consul: consulSettings(get('consul'), get, env),
    tls: tlsSettings(get('tls-listen'), get('tls-cert-dir')),
    listener: listenerSettings(get),
    trustedProxies: trustedProxies(get('trusted-proxies')),
    adminToken: adminToken(get('admin-token'), get('admin-token-file')),
    workers: parseWorkers(get('workers')!),
    accessLog: accessLogTarget(get('access-log')!),
  };
  if (config.consul !== undefined) consulKvPrefixCheck(config.kvPrefix);
  if (config.adminToken === undefined && !isLoopback(config.admin.host)) {
    throw new UsageError(`--admin ${get('admin')} is not a loopback address: set --admin-token (or SWITCHYARD_ADMIN_TOKEN, SWITCHYARD_ADMIN_TOKEN_FILE) to expose the admin endpoints`);
  }
  return { kind: 'run', config: Object.freeze(config) };
}

/** `stdout`, `off` or a file path (made absolute: every worker and a later SIGUSR1 open the same file). */
export function accessLogTarget(value: string): AccessLogTarget {
  if (value === 'stdout') return { kind: 'stdout' };
  if (value === 'off') return { kind: 'off' };
  if (value.endsWith('/')) throw new UsageError(`--access-log: expected stdout, off or a file path, got the directory ${JSON.stringify(value)}`);
  return { kind: 'file', path: resolve(value) };
}

/** `--tls-listen` and `--tls-cert-dir` go together: one without the other is a usage error. */
function tlsSettings(listen: string | undefined, certDir: string | undefined): TlsSettings | undefined {
  if (listen === undefined && certDir === undefined) return undefined;
  if (listen === undefined) throw new UsageError('--tls-cert-dir needs --tls-listen HOST:PORT (the TLS listener)');
  if (certDir === undefined) throw new UsageError('--tls-listen needs --tls-cert-dir DIR (the certificates to serve)');
  return { listen: parseHostPort('--tls-listen', listen), certDir };
}

function consulSettings(
  address: string | undefined,
  get: (name: FlagName) => string | undefined,
  env: NodeJS.ProcessEnv,
): ConsulSettings | undefined {
  // Checked with or without --consul: a typo is an error even before Consul is switched on.
  const consistency = get('consul-consistency')!;
  if (consistency !== 'default' && consistency !== 'stale' && consistency !== 'consistent') {
    throw new UsageError(`--consul-consistency: expected default, stale or consistent, got ${JSON.stringify(consistency)}`);
  }
  const waitMs = parseDuration('consul-wait', get('consul-wait')!);
  if (waitMs < 1000 || waitMs > 600_000) throw new UsageError(`--consul-wait: must be between 1s and 10m, got ${get('consul-wait')}`);
  if (address === undefined) return undefined;
  return consulConnection(address, env, { datacenter: get('consul-datacenter'), consistency, waitMs });
}

/**
 * With Consul, the KV prefix is read as `GET /v1/kv/<prefix>?recurse`, and Consul 1.21.5+ answers
 * 400 for a key outside `a-zA-Z0-9,-_./`, containing `../` or starting with `/`
 * (agent/kvs_endpoint.go validateKVKey): refuse such a prefix at start rather than fail every read.
 */
function consulKvPrefixCheck(prefix: string): void {
  const bad = [...prefix].find((ch) => !/^[a-zA-Z0-9,\-_./]$/.test(ch));
  if (bad !== undefined || prefix.startsWith('/') || prefix.includes('../')) {
    const why = bad !== undefined ? `the character ${JSON.stringify(bad)}` : prefix.startsWith('/') ? 'a leading "/"' : '"../"';
    throw new UsageError(`--kv-prefix: Consul 1.21.5+ refuses KV keys with ${why} (only letters, digits and ,-_./ are allowed), got ${JSON.stringify(prefix)}`);
  }
}

/** `16384`, `16KB`, `16k`, `1MB`: bytes (K and M are 1024-based). */
export function parseSize(flag: string, value: string): number {
  const match = /^(\d+)\s*(b|k|kb|kib|m|mb|mib)?$/i.exec(value.trim());
  if (match === null) throw new UsageError(`--${flag}: expected a size like 16384, 16KB or 1MB, got ${JSON.stringify(value)}`);
  const unit = (match[2] ?? 'b').toLowerCase();
  return Number(match[1]) * (unit === 'b' ? 1 : unit.startsWith('k') ? 1024 : 1024 * 1024);
}

function parseCount(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`--${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function listenerSettings(get: (name: FlagName) => string | undefined): ListenerSettings {
  const headersTimeoutMs = parseDuration('header-timeout', get('header-timeout')!);
  if (headersTimeoutMs <= 0) throw new UsageError('--header-timeout: must be above 0 (it is the slowloris protection)');
  const requestTimeoutMs = parseDuration('request-timeout', get('request-timeout')!);
  if (requestTimeoutMs !== 0 && requestTimeoutMs < headersTimeoutMs) {
    throw new UsageError(`--request-timeout: must be 0 (none) or at least --header-timeout (${get('header-timeout')}), got ${get('request-timeout')}`);
  }
  const keepAliveTimeoutMs = parseDuration('keepalive-timeout', get('keepalive-timeout')!);
  if (keepAliveTimeoutMs <= 0) throw new UsageError('--keepalive-timeout: must be above 0');
  const maxHeaderSize = parseSize('max-header-size', get('max-header-size')!);
  if (maxHeaderSize < 1024 || maxHeaderSize > 1024 * 1024) throw new UsageError(`--max-header-size: must be from 1KB to 1MB, got ${get('max-header-size')}`);
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs,
    maxConnections: parseCount('max-connections', get('max-connections')!, 1, 10_000_000),
    maxHeaderSize,
    maxHeaderCount: parseCount('max-header-count', get('max-header-count')!, 1, 10_000),
  };
}

/** Upper bound of --workers: above any core count a node process is given, low enough to catch a typo. */
const MAX_WORKERS = 256;

/** `auto` (os.availableParallelism(): the cores this process may use) or a whole number from 1. */
export function parseWorkers(value: string): number {
  if (value.trim().toLowerCase() === 'auto') return Math.max(1, availableParallelism());
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > MAX_WORKERS) {
    throw new UsageError(`--workers: expected auto or a whole number from 1 to ${MAX_WORKERS}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function trustedProxies(value: string | undefined): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  try {
    return Object.freeze(parseCidrList(value).map(formatCidr));
  } catch (err) {
    throw new UsageError(`--trusted-proxies: ${(err as Error).message}`);
  }
}
