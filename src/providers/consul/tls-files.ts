import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConsulError } from '../../errors.js';

/**
 * The PEM files of the TLS connection to Consul, read once when the client is made; a file that
 * cannot be read is a ConsulError naming the variable it came from.
 */

/** One PEM file (CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY); undefined when not set. */
export function readPem(what: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConsulError(`${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * CONSUL_CAPATH as go-rootcerts LoadCAPath reads it: every file under the directory, walked
 * recursively, must hold PEM certificates ("Couldn't parse PEM in: <file>" otherwise).
 */
export function readCaPath(dir: string): Buffer[] {
  const out: Buffer[] = [];
  const walk = (path: string): void => {
    let entries: string[];
    try {
      if (!statSync(path).isDirectory()) {
        const pem = readFileSync(path);
        if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConsulError(`CONSUL_CAPATH: no PEM certificate in ${path}`);
        out.push(pem);
        return;
      }
      entries = readdirSync(path).sort();
    } catch (err) {
      if (err instanceof ConsulError) throw err;
      throw new ConsulError(`CONSUL_CAPATH: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    for (const entry of entries) walk(join(path, entry));
  };
  walk(dir);
  if (out.length === 0) throw new ConsulError(`CONSUL_CAPATH: no certificate file in ${dir}`);
  return out;
}
