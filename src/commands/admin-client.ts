import { request } from 'node:http';
import { adminToken } from '../config/admin-token.js';
import { FLAGS } from '../config/flags.js';
import { formatHostPort, parseHostPort, type HostPort } from '../config/host-port.js';
import { UsageError } from '../errors.js';

/**
 * The admin API as the client commands (`explain`, `routes`) reach it: `--admin` (or
 * SWITCHYARD_ADMIN, default 127.0.0.1:8081, the server's own defaults), and the admin token from
 * SWITCHYARD_ADMIN_TOKEN, `--admin-token-file` or SWITCHYARD_ADMIN_TOKEN_FILE. There is no
 * `--admin-token` flag here: a token on the command line shows in `ps`. The token is sent as a
 * bearer token and appears in no message.
 */
export const ADMIN_OPTIONS = {
  admin: { type: 'string' },
  'admin-token-file': { type: 'string' },
} as const;

export const ADMIN_HELP = [
  `  --admin HOST:PORT         the running Switchyard's admin address (default ${FLAGS.admin.default}) [${FLAGS.admin.env}]`,
  `  --admin-token-file FILE   read the admin token from FILE [${FLAGS['admin-token-file'].env}];`,
  `                            or set ${FLAGS['admin-token'].env} (there is no --admin-token flag: ps would show it)`,
].join('\n');

export interface AdminTarget {
  readonly address: HostPort;
  /** `host:port` as shown in messages. */
  readonly shown: string;
  readonly token: string | undefined;
}

/** Where the admin API is, from `--admin`, `--admin-token-file` and the environment. */
export function adminTarget(values: { admin?: string | undefined; 'admin-token-file'?: string | undefined }, env: NodeJS.ProcessEnv): AdminTarget {
  const raw = values.admin ?? nonEmpty(env[FLAGS.admin.env]) ?? FLAGS.admin.default;
  // The server's own --admin value works here: a URL's scheme is dropped, and a listen-on-every-
  // interface address is reached on loopback.
  const parsed = parseHostPort('--admin', raw.replace(/^http:\/\//, '').replace(/\/$/, ''));
  const host = parsed.host === '0.0.0.0' ? '127.0.0.1' : parsed.host === '::' ? '::1' : parsed.host;
  if (parsed.port === 0) throw new UsageError('--admin: port 0 is where a server picks a port, not where a client can connect');
  const address = { host, port: parsed.port };
  const file = values['admin-token-file'] ?? nonEmpty(env[FLAGS['admin-token-file'].env]);
  const token = values['admin-token-file'] !== undefined
    ? adminToken(undefined, file)
    : adminToken(nonEmpty(env[FLAGS['admin-token'].env]), file);
  return { address, shown: formatHostPort(address), token };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** A failure to get an answer: the message says what to do (exit 1). */
export class AdminError extends Error {}

const TIMEOUT_MS = 10_000;

/** GET `pathAndQuery` from the admin API; the parsed JSON of a 200 answer. */
export function adminGet(target: AdminTarget, pathAndQuery: string): Promise<unknown> {
  const where = `the admin API at ${target.shown}`;
  return new Promise((resolve, reject) => {
    const req = request({
      host: target.address.host,
      port: target.address.port,
      path: pathAndQuery,
      method: 'GET',
      headers: { accept: 'application/json', ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` }) },
      timeout: TIMEOUT_MS,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(new AdminError(`${where}: the answer broke off (${(err as NodeJS.ErrnoException).code ?? err.message})`)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          reject(new AdminError(`${where} answered ${res.statusCode} with something that is not JSON: is ${target.shown} Switchyard's admin address (not its proxy listener)?`));
          return;
        }
        if (res.statusCode === 200) {
          resolve(body);
          return;
        }
        if (res.statusCode === 401) {
          reject(new AdminError(target.token === undefined
            ? `${where} needs the admin token (401): set SWITCHYARD_ADMIN_TOKEN or pass --admin-token-file FILE`
            : `${where} refused the admin token (401): it is not the token this Switchyard was started with`));
          return;
        }
        const { message, error } = (body ?? {}) as { message?: unknown; error?: unknown };
        // The admin API never answers SY_NO_ROUTE: the proxy listener does, for a path it has no route for.
        const hint = error === 'SY_NO_ROUTE'
          ? `; that is the answer of Switchyard's proxy listener: is ${target.shown} its proxy port, not its admin address? Set --admin or SWITCHYARD_ADMIN (default 127.0.0.1:8081)`
          : '';
        reject(new AdminError(`${where} answered ${res.statusCode}${typeof message === 'string' ? `: ${message}` : ''}${hint}`));
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') {
        reject(new AdminError(`cannot reach ${where} (connection refused): is Switchyard running, and is its admin listener there? Set --admin or SWITCHYARD_ADMIN`));
      } else if (err.code === 'TIMEOUT') {
        reject(new AdminError(`${where} did not answer within ${TIMEOUT_MS / 1000} s`));
      } else {
        reject(new AdminError(`cannot reach ${where} (${err.code ?? err.message})`));
      }
    });
    req.end();
  });
}
