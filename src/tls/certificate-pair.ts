import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { ConfigError } from '../errors.js';

/**
 * Settings every certificate's context shares. TLS 1.2 is the floor (1.0 and 1.1 are deprecated by
 * RFC 8996); node's default cipher list is kept (forward-secret AEAD suites first) and the server's
 * order is preferred over the client's.
 */
export const CONTEXT_DEFAULTS = Object.freeze({
  minVersion: 'TLSv1.2',
  honorCipherOrder: true,
} as const satisfies SecureContextOptions);

/** One `name.crt` + `name.key` pair, parsed, checked and ready to serve. Immutable. */
export interface CertificatePair {
  /** The file stem: `a.example` for `a.example.crt` + `a.example.key`. */
  readonly name: string;
  /** DNS names the certificate is indexed by, lower-case: subject CN and subjectAltName DNS entries (`*.x.y` wildcards kept as written). */
  readonly hostnames: readonly string[];
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly fingerprint256: string;
  /** sha256 over both files' bytes: an unchanged pair is not rebuilt on reload. */
  readonly digest: string;
  readonly context: SecureContext;
  /** PEM text for listeners that need options rather than a context (a server's default certificate). Never logged. */
  readonly pem: { readonly cert: Buffer; readonly key: Buffer };
}

/** Digest of a pair's file contents, to tell a changed pair from an unchanged one without parsing. */
export function pairDigest(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}

/** Read both files of a pair. Throws ConfigError naming the file that cannot be read. */
export async function readPairFiles(dir: string, name: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (ext: string): Promise<Buffer> => {
    const path = join(dir, `${name}${ext}`);
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConfigError(path, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const [cert, key] = await Promise.all([read('.crt'), read('.key')]);
  return { cert, key };
}

/**
 * Parse and check a pair: the certificate is PEM X.509 (a chain may follow the leaf), the key is an
 * unencrypted PEM private key that belongs to the leaf, and OpenSSL accepts both as a context.
 * Throws ConfigError with a one-line reason; `source` is the certificate file.
 */
export function buildCertificatePair(dir: string, name: string, cert: Buffer, key: Buffer): CertificatePair {
  const source = join(dir, `${name}.crt`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError(source, `not a PEM certificate: ${reason(err)}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new ConfigError(source, `${name}.key: ${reason(err)}`);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ ...CONTEXT_DEFAULTS, cert, key });
  } catch (err) {
    throw new ConfigError(source, `rejected by OpenSSL: ${reason(err)}`);
  }
  const hostnames = certificateHostnames(x509);
  if (hostnames.length === 0) throw new ConfigError(source, 'the certificate names no DNS host (no subject CN, no subjectAltName DNS entry)');
  return Object.freeze({
    name,
    hostnames: Object.freeze(hostnames),
    serial: x509.serialNumber,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    fingerprint256: x509.fingerprint256,
    digest: pairDigest(cert, key),
    context,
    pem: Object.freeze({ cert, key }),
  });
}

/** Subject CN and subjectAltName DNS names, lower-case, without a trailing dot, deduplicated, in that order. */
export function certificateHostnames(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const line of x509.subject.split('\n')) {
    if (line.startsWith('CN=')) names.push(line.slice(3));
  }
  for (const entry of splitAltNames(x509.subjectAltName ?? '')) {
    if (entry.startsWith('DNS:')) names.push(unquote(entry.slice(4)));
  }
  const out: string[] = [];
  for (const raw of names) {
    const name = normaliseHostname(raw);
    if (name !== undefined && !out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * A hostname fit for the index, or undefined: lower-case, no trailing dot, letters, digits, `-`,
 * `_` and dots only; a `*` only as a whole first label followed by at least two labels.
 */
export function normaliseHostname(raw: string): string | undefined {
  let name = raw.trim().toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const rest = name.startsWith('*.') ? name.slice(2) : name;
  if (rest.length === 0 || rest.length > 253 || !/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(rest)) return undefined;
  if (rest !== name && !rest.includes('.')) return undefined;
  return name;
}

/** node joins subjectAltName entries with `, ` and JSON-quotes values that contain one. */
function splitAltNames(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i += 1) {
    const ch = value[i]!;
    if (ch === '"' && value[i - 1] !== '\\') quoted = !quoted;
    if (!quoted && ch === ',' && value[i + 1] === ' ') {
      out.push(current);
      current = '';
      i += 1;
      continue;
    }
    current += ch;
  }
  if (current !== '') out.push(current);
  return out;
}

function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  try {
    return JSON.parse(value) as string;
  } catch {
    return value;
  }
}

function reason(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0]!;
}
