import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * The Consul connection, read from the environment exactly as Consul's own Go client reads it
 * (hashicorp/consul api/api.go `defaultConfig` and `NewClient`), so that a shell set up for the
 * `consul` CLI works unchanged:
 *
 * | variable               | api/api.go                                                             |
 * |------------------------|------------------------------------------------------------------------|
 * | CONSUL_HTTP_ADDR       | `host:port`, `http://`, `https://` (with an optional path prefix), `unix:///path` |
 * | CONSUL_HTTP_SSL        | strconv.ParseBool; true makes the scheme https, even for an `http://` address ("Never revert to http if TLS was explicitly requested") |
 * | CONSUL_HTTP_SSL_VERIFY | strconv.ParseBool; false turns certificate verification off            |
 * | CONSUL_HTTP_TOKEN_FILE | read at start, trimmed; when not empty it wins over CONSUL_HTTP_TOKEN   |
 * | CONSUL_HTTP_TOKEN      | the token otherwise                                                    |
 * | CONSUL_HTTP_AUTH       | `user[:password]`, HTTP basic auth                                     |
 * | CONSUL_CACERT          | one PEM file; wins over CONSUL_CAPATH (go-rootcerts LoadCACerts)        |
 * | CONSUL_CAPATH          | a directory walked recursively; every file must hold PEM certificates  |
 * | CONSUL_CLIENT_CERT/KEY | client certificate and key                                             |
 * | CONSUL_TLS_SERVER_NAME | SNI and the name the certificate must carry (a `:port` is dropped)     |
 * | CONSUL_NAMESPACE       | `?ns=` on every request (Enterprise)                                   |
 * | CONSUL_PARTITION       | `?partition=` on every request (Enterprise)                            |
 *
 * One deliberate difference: api.go only logs a warning for a CONSUL_HTTP_SSL or
 * CONSUL_HTTP_SSL_VERIFY value ParseBool does not take, and then goes on with `false`, which for
 * CONSUL_HTTP_SSL_VERIFY silently turns verification OFF. Switchyard refuses to start instead
 * (exit 2, a usage error naming the variable): a typo must not downgrade TLS.
 */

export type ConsulConsistency = 'default' | 'stale' | 'consistent';

/** How to reach Consul. */
export interface ConsulSettings {
  /**
   * Where Consul is, as shown in messages and /api/config: `http(s)://host:port[/prefix]`, or
   * `unix:///path` for a unix socket (then `socketPath` is set and `secure` says whether TLS runs
   * over it).
   */
  readonly url: string;
  /** The agent's unix socket (CONSUL_HTTP_ADDR=unix:///path). */
  readonly socketPath?: string | undefined;
  /** TLS to Consul: an https URL, or CONSUL_HTTP_SSL=true over a unix socket. */
  readonly secure?: boolean;
  /** ACL token (CONSUL_HTTP_TOKEN_FILE, else CONSUL_HTTP_TOKEN). Never logged, never shown. */
  readonly token: string | undefined;
  /** CONSUL_HTTP_AUTH `user[:password]`. Never logged, never shown. */
  readonly httpAuth?: string | undefined;
  readonly caCert: string | undefined;
  /** CONSUL_CAPATH: a directory of PEM certificates (ignored when caCert is set, as go-rootcerts does). */
  readonly caPath?: string | undefined;
  readonly clientCert: string | undefined;
  readonly clientKey: string | undefined;
  /** CONSUL_HTTP_SSL_VERIFY=false turns certificate verification off. */
  readonly tlsVerify: boolean;
  /** CONSUL_TLS_SERVER_NAME: SNI and the expected certificate name. */
  readonly tlsServerName?: string | undefined;
  readonly datacenter: string | undefined;
  /** CONSUL_NAMESPACE, sent as `?ns=` (Consul Enterprise). */
  readonly namespace?: string | undefined;
  /** CONSUL_PARTITION, sent as `?partition=` (Consul Enterprise). */
  readonly partition?: string | undefined;
  readonly consistency: ConsulConsistency;
  /** Blocking query `wait`; the client's own timeout is wait + wait/16 + a margin. */
  readonly waitMs: number;
}

/** Go's strconv.ParseBool: exactly these spellings, anything else is undefined. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const parsed = parseGoBool(value);
  if (parsed === undefined) {
    throw new UsageError(`${name}: expected a boolean as Consul reads it (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False), got ${JSON.stringify(value)}`);
  }
  return parsed;
}

export interface ConsulAddress {
  /** As in ConsulSettings.url. */
  readonly url: string;
  readonly socketPath: string | undefined;
  readonly secure: boolean;
}

/**
 * Consul's address forms (api.go NewClient): `host:port` (scheme from CONSUL_HTTP_SSL),
 * `http://host:port[/prefix]`, `https://host:port[/prefix]`, `unix:///path/to/socket`. Any other
 * scheme is refused, as api.go refuses it ("Unknown protocol scheme").
 */
export function parseConsulAddress(value: string, env: NodeJS.ProcessEnv = {}): string {
  return parseConsulAddressParts(value, env).url;
}

export function parseConsulAddressParts(value: string, env: NodeJS.ProcessEnv = {}): ConsulAddress {
  const ssl = envBool(env, 'CONSUL_HTTP_SSL') === true;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'unix') {
    const socketPath = value.slice('unix://'.length);
    if (socketPath === '') throw new UsageError(`--consul: a unix socket address needs a path (unix:///path/to/consul.sock), got ${JSON.stringify(value)}`);
    return { url: `unix://${socketPath}`, socketPath, secure: ssl };
  }
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new UsageError(`--consul: unknown protocol scheme ${scheme} (expected http, https or unix), got ${JSON.stringify(value)}`);
  }
  // TLS asked for by CONSUL_HTTP_SSL is never reverted by an http:// address (api.go).
  const secure = scheme === 'https' || ssl;
  let url: URL;
  try {
    url = new URL(`${secure ? 'https' : 'http'}://${scheme === undefined ? value : value.slice(scheme.length + 3)}`);
  } catch {
    throw new UsageError(`--consul: expected host:port, http(s)://host:port or unix:///path, got ${JSON.stringify(value)}`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new UsageError(`--consul: expected only scheme, host, port and a path prefix, got ${JSON.stringify(value)}`);
  }
  // A path is the prefix of a Consul behind an API gateway (api.go PathPrefix).
  const prefix = url.pathname.replace(/\/+$/, '');
  return { url: `${url.protocol}//${url.host}${prefix}`, socketPath: undefined, secure };
}

/** CONSUL_HTTP_TOKEN_FILE wins over CONSUL_HTTP_TOKEN when it holds a token (api.go NewClient). */
function readToken(env: NodeJS.ProcessEnv): string | undefined {
  const file = nonEmpty(env, 'CONSUL_HTTP_TOKEN_FILE');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`CONSUL_HTTP_TOKEN_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (text !== '') return text;
  }
  return nonEmpty(env, 'CONSUL_HTTP_TOKEN');
}

function nonEmpty(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** CONSUL_TLS_SERVER_NAME without a `:port`, as api.go SetupTLSConfig strips it. */
function serverName(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const hasPort = value.lastIndexOf(':') > value.lastIndexOf(']');
  const host = hasPort ? value.slice(0, value.lastIndexOf(':')) : value;
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The connection settings from `--consul ADDR` and the environment. */
export function consulConnection(
  address: string,
  env: NodeJS.ProcessEnv,
  rest: { datacenter: string | undefined; consistency: ConsulConsistency; waitMs: number },
): ConsulSettings {
  const verify = envBool(env, 'CONSUL_HTTP_SSL_VERIFY');
  const where = parseConsulAddressParts(address, env);
  return {
    url: where.url,
    socketPath: where.socketPath,
    secure: where.secure,
    token: readToken(env),
    httpAuth: nonEmpty(env, 'CONSUL_HTTP_AUTH'),
    caCert: nonEmpty(env, 'CONSUL_CACERT'),
    caPath: nonEmpty(env, 'CONSUL_CAPATH'),
    clientCert: nonEmpty(env, 'CONSUL_CLIENT_CERT'),
    clientKey: nonEmpty(env, 'CONSUL_CLIENT_KEY'),
    tlsVerify: verify !== false,
    tlsServerName: serverName(nonEmpty(env, 'CONSUL_TLS_SERVER_NAME')),
    datacenter: rest.datacenter,
    namespace: nonEmpty(env, 'CONSUL_NAMESPACE'),
    partition: nonEmpty(env, 'CONSUL_PARTITION'),
    consistency: rest.consistency,
    waitMs: rest.waitMs,
  };
}
