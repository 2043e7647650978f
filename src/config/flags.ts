import { UsageError } from '../errors.js';

/**
 * The flag table and the duration parser, apart from config.ts so that the client commands
 * (src/commands/) read the same flags without loading what the proxy's configuration needs.
 */
export interface FlagSpec {
  readonly env?: string;
  readonly value: string;
  readonly help: string;
  readonly default?: string;
}

/** Every value flag: its environment variable, its help line and default. The README mirrors it. */
export const FLAGS = {
  listen: { env: 'SWITCHYARD_LISTEN', value: 'HOST:PORT', default: '0.0.0.0:8080', help: 'proxy listener' },
  'tls-listen': { env: 'SWITCHYARD_TLS_LISTEN', value: 'HOST:PORT', help: 'TLS listener (HTTPS, WSS), same routes; needs --tls-cert-dir' },
  'tls-cert-dir': { env: 'SWITCHYARD_TLS_CERT_DIR', value: 'DIR', help: 'NAME.crt + NAME.key pairs chosen by SNI, default.* otherwise; watched' },
  admin: { env: 'SWITCHYARD_ADMIN', value: 'HOST:PORT', default: '127.0.0.1:8081', help: 'admin endpoints (/healthz /readyz /metrics /api/*)' },
  'admin-token': { env: 'SWITCHYARD_ADMIN_TOKEN', value: 'TOKEN', help: 'bearer token for every admin endpoint but /healthz and /readyz; required when --admin is not loopback' },
  'admin-token-file': { env: 'SWITCHYARD_ADMIN_TOKEN_FILE', value: 'FILE', help: 'read the admin token from FILE (keeps it out of ps and the environment)' },
  templates: { env: 'SWITCHYARD_TEMPLATES', value: 'DIR', default: './templates', help: 'route templates: every *.yaml in DIR, watched' },
  services: { env: 'SWITCHYARD_SERVICES', value: 'FILE', help: 'services file (same data as Consul catalog, health and KV), watched' },
  'drain-timeout': { env: 'SWITCHYARD_DRAIN_TIMEOUT', value: 'DURATION', default: '10s', help: 'bound on in-flight requests at shutdown and on draining removed pools' },
  'startup-wait': { env: 'SWITCHYARD_STARTUP_WAIT', value: 'DURATION', default: '15s', help: 'at start, open the proxy listener once every source has delivered, or after this long (then with a warning; /readyz stays 503)' },
  'shutdown-delay': { env: 'SWITCHYARD_SHUTDOWN_DELAY', value: 'DURATION', default: '0', help: 'on SIGTERM, keep serving this long (with /readyz at 503) before the listeners close' },
  'header-timeout': { env: 'SWITCHYARD_HEADER_TIMEOUT', value: 'DURATION', default: '10s', help: 'time a client gets to send a whole request head (slowloris); then 408' },
  'request-timeout': { env: 'SWITCHYARD_REQUEST_TIMEOUT', value: 'DURATION', default: '5m', help: 'time a client gets to send a whole request, body included; 0 = none (long uploads)' },
  'keepalive-timeout': { env: 'SWITCHYARD_KEEPALIVE_TIMEOUT', value: 'DURATION', default: '65s', help: 'idle time before a client keep-alive connection is closed' },
  'max-connections': { env: 'SWITCHYARD_MAX_CONNECTIONS', value: 'N', default: '10000', help: 'client connections per listener; more are closed when accepted' },
  'max-header-size': { env: 'SWITCHYARD_MAX_HEADER_SIZE', value: 'SIZE', default: '16KB', help: 'request line and headers (bytes, KB or MB); 431 above' },
  'max-header-count': { env: 'SWITCHYARD_MAX_HEADER_COUNT', value: 'N', default: '100', help: 'header fields per request; 431 above' },
  'trusted-proxies': { env: 'SWITCHYARD_TRUSTED_PROXIES', value: 'CIDR,...', help: 'proxies whose X-Forwarded-For is appended to; from others it is replaced' },
  workers: { env: 'SWITCHYARD_WORKERS', value: 'N|auto', default: 'auto', help: 'proxy worker processes sharing the listeners; auto = one per core, 1 = a single process' },
  'access-log': { env: 'SWITCHYARD_ACCESS_LOG', value: 'stdout|off|PATH', default: 'stdout', help: 'access lines: with the log on stdout, none, or appended to PATH (reopened on SIGUSR1, for logrotate)' },
  'log-level': { env: 'SWITCHYARD_LOG_LEVEL', value: 'LEVEL', default: 'info', help: 'trace, debug, info, warn, error, fatal or silent' },
  'kv-prefix': { env: 'SWITCHYARD_KV_PREFIX', value: 'PREFIX', default: 'switchyard/', help: 'KV prefix holding weights and policies' },
  consul: { env: 'CONSUL_HTTP_ADDR', value: 'ADDR', help: 'Consul agent: host:port, http(s)://host:port[/prefix] or unix:///path; makes Consul the discovery source' },
  'consul-datacenter': { env: 'CONSUL_DATACENTER', value: 'DC', help: 'datacenter to query (default: the agent\'s)' },
  'consul-consistency': { env: 'SWITCHYARD_CONSUL_CONSISTENCY', value: 'MODE', default: 'default', help: 'default (stale reads only while the cluster has no leader), stale or consistent' },
  'consul-wait': { env: 'SWITCHYARD_CONSUL_WAIT', value: 'DURATION', default: '60s', help: 'blocking query wait (1s to 10m)' },
} as const satisfies Record<string, FlagSpec>;

export type FlagName = keyof typeof FLAGS;

/** `250ms`, `10s`, `2m` or a bare number of milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (match === null) throw new UsageError(`--${flag}: expected a duration like 500ms, 10s or 2m, got ${JSON.stringify(value)}`);
  const amount = Number(match[1]);
  const unit = match[2] ?? 'ms';
  return Math.round(amount * (unit === 'ms' ? 1 : unit === 's' ? 1000 : 60_000));
}

/**
 * A flag's value: the flag, else its environment variable (when not empty), else its default.
 * An empty flag value is a usage error.
 */
export function flagGetter(values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>, env: NodeJS.ProcessEnv): (name: FlagName) => string | undefined {
  return (name) => {
    const flagValue = values[name];
    if (typeof flagValue === 'string') {
      if (flagValue === '') throw new UsageError(`--${name}: empty value`);
      return flagValue;
    }
    const spec: FlagSpec = FLAGS[name];
    const envValue = spec.env === undefined ? undefined : env[spec.env];
    if (envValue !== undefined && envValue !== '') return envValue;
    return spec.default;
  };
}
