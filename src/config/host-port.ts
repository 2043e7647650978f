import { isIP } from 'node:net';
import { UsageError } from '../errors.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`. Port 0 asks the OS for a free port. */
export function parseHostPort(flag: string, value: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (match === null) throw new UsageError(`${flag}: expected HOST:PORT, got ${JSON.stringify(value)}`);
  const host = match[1] ?? (match[2] === '' ? '0.0.0.0' : match[2]!);
  const port = Number(match[3]);
  if (port > 65535) throw new UsageError(`${flag}: port ${port} is out of range (0-65535)`);
  if (match[1] !== undefined && isIP(host) !== 6) throw new UsageError(`${flag}: ${JSON.stringify(host)} is not an IPv6 address`);
  return { host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Loopback addresses, where the admin API may run without a token. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
