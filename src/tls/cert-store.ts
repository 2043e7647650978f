import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecureContext, Server as TlsServer, TlsOptions, TLSSocket } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { watchDirectory, type DirectoryWatch } from '../providers/watch-dir.js';
import { CertIndex } from './cert-index.js';
import { CONTEXT_DEFAULTS, buildCertificatePair, pairDigest, readPairFiles, type CertificatePair } from './certificate-pair.js';

/** Time a client has to complete the TLS handshake (node's default is 120 s: too generous at the edge). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** What a TLS listener needs from a certificate source (src/proxy/server.ts depends on this, not on the store). */
export interface TlsCertificates {
  /** Options for `https.createServer`: the default certificate, the SNICallback, the protocol floor, ALPN. */
  serverOptions(): TlsOptions;
  /** Keep `server` in step with reloads and apply per-connection settings; returns the function that stops it. */
  attach(server: TlsServer): () => void;
}

export interface CertStoreOptions {
  /** Watch the directory for changes (default true). */
  watch?: boolean;
}

export interface CertStoreStatus {
  dir: string;
  default: string;
  certificates: { name: string; hostnames: readonly string[]; serial: string; notAfter: string; fingerprint256: string }[];
  /** Pairs on disk that were rejected, by name, with the reason; a previous good version keeps serving if there was one. */
  broken: Record<string, string>;
  lastReloadAt: string | null;
}

const CERT_EXT = '.crt';
const KEY_EXT = '.key';

/** Stems of `name.crt` / `name.key` files (dot files and editors' temp files excluded), sorted. */
function pairStems(files: readonly string[]): string[] {
  const stems = new Set<string>();
  for (const file of files) {
    if (file.startsWith('.')) continue;
    if (file.endsWith(CERT_EXT)) stems.add(file.slice(0, -CERT_EXT.length));
    else if (file.endsWith(KEY_EXT)) stems.add(file.slice(0, -KEY_EXT.length));
  }
  return [...stems].filter((s) => s.length > 0).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * TLS certificates from a directory of `name.crt` + `name.key` pairs, indexed for SNI and reloaded
 * when the directory changes.
 *
 * - One immutable {@link CertIndex} is live at a time, replaced by one assignment; a handshake reads
 *   it once. New connections get the new certificates; established ones keep the context they
 *   negotiated with (node never touches a connected socket's context), so nothing is dropped.
 * - Each pair keeps its last good version: a pair that is unreadable, half-written, not PEM or whose
 *   key does not match is logged and counted once per distinct failure
 *   (`switchyard_config_errors_total{kind="tls"}`), and its previous version keeps serving. A pair
 *   whose two files are both gone is removed. A reload that would leave no pair at all is refused.
 * - Changes are read once per burst: the directory (not single files, so rename-replace works) is
 *   watched, and only the trailing read after the burst runs. certbot and friends rename the new
 *   `.crt` and `.key` in quick succession; reading between the two would see a mismatched pair.
 * - Unchanged files (same bytes) are not parsed again.
 */
export class CertStore implements TlsCertificates {
  private index!: CertIndex;
  private readonly lastGood = new Map<string, CertificatePair>();
  private readonly broken = new Map<string, string>();
  private dirProblem: string | undefined;
  private readonly swapListeners = new Set<(next: CertIndex, previous: CertIndex) => void>();
  private reading: Promise<void> = Promise.resolve();
  private watcher: DirectoryWatch | undefined;
  private lastReloadAt: number | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Load every pair and start watching. Throws ConfigError when the directory cannot be read or
   * holds no usable pair: a TLS listener cannot start without a certificate.
   */
  static async open(dir: string, logger: Logger, metrics: Metrics, options: CertStoreOptions = {}): Promise<CertStore> {
    const store = new CertStore(dir, logger, metrics);
    await store.read(true);
    if (options.watch !== false) {
      // Only the trailing read: see the class comment.
      store.watcher = await watchDirectory(dir, () => false, () => void store.reload(), logger);
      // A change between the first read and the watcher being ready would otherwise go unseen.
      await store.reload();
    }
    return store;
  }

  /** The live index. */
  get current(): CertIndex {
    return this.index;
  }

  /** node's SNICallback: the certificate naming `servername`, else the default. */
  readonly SNICallback = (servername: string, callback: (err: Error | null, ctx?: SecureContext) => void): void => {
    callback(null, this.index.select(servername).context);
  };

  /** Read the directory again (serialised: concurrent calls run one after the other, newest last). */
  reload(): Promise<void> {
    this.reading = this.reading.then(() => (this.closed ? undefined : this.read(false)));
    return this.reading;
  }

  /** Call `listener` after each swap. Returns the function that removes it. */
  onSwap(listener: (next: CertIndex, previous: CertIndex) => void): () => void {
    this.swapListeners.add(listener);
    return () => this.swapListeners.delete(listener);
  }

  serverOptions(): TlsOptions {
    const { cert, key } = this.index.defaultPair.pem;
    return {
      ...CONTEXT_DEFAULTS,
      cert,
      key,
      SNICallback: this.SNICallback,
      // HTTP/1.1 only: a client offering h2 is told so in the handshake instead of failing later.
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    };
  }

  attach(server: TlsServer): () => void {
    // Renegotiation serves no purpose here and costs the server a handshake per attempt.
    const onSecure = (socket: TLSSocket): void => {
      socket.disableRenegotiation();
    };
    const onClientError = (err: NodeJS.ErrnoException, socket: TLSSocket): void => {
      this.logger.debug({ err: err.message, code: err.code, remote: socket.remoteAddress }, 'TLS handshake failed');
      socket.destroy();
    };
    // Clients without SNI never reach the SNICallback: they get the server's own context.
    const removeSwap = this.onSwap((next, previous) => {
      if (next.defaultPair !== previous.defaultPair) {
        const { cert, key } = next.defaultPair.pem;
        server.setSecureContext({ ...CONTEXT_DEFAULTS, cert, key });
      }
    });
    server.on('secureConnection', onSecure);
    server.on('tlsClientError', onClientError);
    return () => {
      removeSwap();
      server.off('secureConnection', onSecure);
      server.off('tlsClientError', onClientError);
    };
  }

  status(): CertStoreStatus {
    return {
      dir: this.dir,
      default: this.index.defaultPair.name,
      certificates: this.index.pairs.map((p) => ({
        name: p.name,
        hostnames: p.hostnames,
        serial: p.serial,
        notAfter: p.notAfter.toISOString(),
        fingerprint256: p.fingerprint256,
      })),
      broken: Object.fromEntries(this.broken),
      lastReloadAt: this.lastReloadAt === undefined ? null : new Date(this.lastReloadAt).toISOString(),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.close();
    this.watcher = undefined;
    this.swapListeners.clear();
  }

  private async read(initial: boolean): Promise<void> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      const message = `TLS certificate directory ${this.dir}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      if (initial) throw new ConfigError(this.dir, `cannot read the TLS certificate directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      this.directoryProblem(message);
      return;
    }
    const stems = pairStems(files);
    for (const known of [...this.lastGood.keys()]) if (!stems.includes(known)) this.lastGood.delete(known);
    for (const known of [...this.broken.keys()]) if (!stems.includes(known)) this.broken.delete(known);
    for (const stem of stems) await this.readPair(stem, files);

    const pairs = stems.flatMap((stem) => this.lastGood.get(stem) ?? []);
    if (pairs.length === 0) {
      const rejected = [...this.broken.values()].join('; ');
      const message = `no usable certificate pair (NAME.crt + NAME.key) in ${this.dir}${rejected === '' ? '' : `: ${rejected}`}`;
      if (initial) throw new ConfigError(this.dir, `no usable certificate pair (NAME.crt + NAME.key)${rejected === '' ? '' : `: ${rejected}`}`);
      this.directoryProblem(`${message}; the current certificates keep serving`);
      return;
    }
    if (this.dirProblem !== undefined) {
      this.dirProblem = undefined;
      this.logger.info({ dir: this.dir }, 'TLS certificate directory is usable again');
    }
    if (!initial && samePairs(this.index.pairs, pairs)) return;

    const previous = this.index;
    const next = new CertIndex(pairs);
    this.index = next;
    this.lastReloadAt = Date.now();
    this.metrics.tlsCertificates.set(next.pairs.length);
    this.metrics.tlsCertificateExpiry.reset();
    for (const pair of next.pairs) this.metrics.tlsCertificateExpiry.set({ certificate: pair.name }, Math.floor(pair.notAfter.getTime() / 1000));
    const summary = next.pairs.map((p) => ({ name: p.name, hostnames: p.hostnames, serial: p.serial, notAfter: p.notAfter.toISOString() }));
    if (initial) {
      this.logger.info({ dir: this.dir, default: next.defaultPair.name, certificates: summary }, 'TLS certificates loaded');
      return;
    }
    this.metrics.tlsReloads.inc();
    this.logger.info({ dir: this.dir, default: next.defaultPair.name, certificates: summary }, 'TLS certificates reloaded: new connections use them');
    for (const listener of this.swapListeners) {
      try {
        listener(next, previous);
      } catch (err) {
        this.logger.error({ err }, 'TLS certificate swap listener failed');
      }
    }
  }

  private async readPair(stem: string, files: readonly string[]): Promise<void> {
    const missing = [CERT_EXT, KEY_EXT].filter((ext) => !files.includes(`${stem}${ext}`));
    if (missing.length > 0) {
      this.rejectPair(stem, new ConfigError(join(this.dir, `${stem}${missing[0]}`), `missing: ${stem}${CERT_EXT} and ${stem}${KEY_EXT} go together`));
      return;
    }
    try {
      const { cert, key } = await readPairFiles(this.dir, stem);
      const known = this.lastGood.get(stem);
      if (known === undefined || known.digest !== pairDigest(cert, key)) {
        const pair = buildCertificatePair(this.dir, stem, cert, key);
        this.lastGood.set(stem, pair);
        const now = Date.now();
        if (pair.notAfter.getTime() < now || pair.notBefore.getTime() > now) {
          this.logger.warn({ name: stem, notBefore: pair.notBefore.toISOString(), notAfter: pair.notAfter.toISOString() }, 'TLS certificate is outside its validity period');
        }
      }
      if (this.broken.delete(stem)) this.logger.info({ name: stem, dir: this.dir }, 'TLS certificate pair is valid again');
    } catch (err) {
      this.rejectPair(stem, err);
    }
  }

  private rejectPair(stem: string, err: unknown): void {
    const message = err instanceof ConfigError ? err.message : `${join(this.dir, stem)}: ${(err as Error).message}`;
    if (this.broken.get(stem) === message) return;
    this.broken.set(stem, message);
    this.metrics.configErrors.inc({ kind: 'tls' });
    this.logger.error({ name: stem, dir: this.dir, code: 'SY_CONFIG_INVALID', kept: this.lastGood.has(stem) }, `TLS certificate pair rejected${this.lastGood.has(stem) ? ', last good version kept' : ''}: ${message}`);
  }

  private directoryProblem(message: string): void {
    if (this.dirProblem === message) return;
    this.dirProblem = message;
    this.metrics.configErrors.inc({ kind: 'tls' });
    this.logger.error({ dir: this.dir, code: 'SY_CONFIG_INVALID' }, message);
  }
}

function samePairs(a: readonly CertificatePair[], b: readonly CertificatePair[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((p) => set.has(p));
}
