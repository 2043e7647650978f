/**
 * Test certificates, made by `openssl` at test time (node cannot self-sign X.509 on its own), and a
 * certificate directory written the way certbot and deploy tools write it: by rename.
 */
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * True when an `openssl` binary is on the PATH (tests that need certificates skip otherwise).
 * Under CI (CI=true) always true: .ci/install-clients installs openssl, so a missing one must fail
 * the TLS tests, not skip them.
 */
export const HAVE_OPENSSL = ((): boolean => {
  if (process.env['CI'] === 'true') return true;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface CertSpec {
  /** Subject CN. */
  cn: string;
  /** subjectAltName DNS entries (default: none). */
  dns?: string[];
  /** Validity in days from now (default 30). */
  days?: number;
}

/** A PEM certificate and its key, with the serial node reports for it. */
export interface Pair {
  readonly cert: string;
  readonly key: string;
  readonly serial: string;
}

/** A fresh self-signed P-256 certificate with a random serial. */
export async function makePair(spec: CertSpec): Promise<Pair> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-cert-'));
  try {
    const args = [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'),
      '-days', String(spec.days ?? 30), '-subj', `/CN=${spec.cn}`,
      '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    ];
    if (spec.dns !== undefined && spec.dns.length > 0) args.push('-addext', `subjectAltName=${spec.dns.map((d) => `DNS:${d}`).join(',')}`);
    await run('openssl', args);
    const cert = await readFile(join(dir, 'c.pem'), 'utf8');
    const key = await readFile(join(dir, 'k.pem'), 'utf8');
    return { cert, key, serial: new X509Certificate(cert).serialNumber };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A temp directory holding `certs/` (what Switchyard watches) and a staging area beside it. */
export class CertDir {
  private counter = 0;
  private constructor(readonly root: string) {}

  static async create(): Promise<CertDir> {
    const root = await mkdtemp(join(tmpdir(), 'sy-tls-'));
    await mkdir(join(root, 'certs'));
    await mkdir(join(root, 'staging'));
    return new CertDir(root);
  }

  get dir(): string {
    return join(this.root, 'certs');
  }

  /** Write `certs/<file>` by rename from the staging area: a reader sees the old or the new file, never half of one. */
  async write(file: string, text: string): Promise<void> {
    const staged = await this.stage(file, text);
    await rename(staged, join(this.dir, file));
  }

  /**
   * Install a pair as `name.crt` + `name.key`: certificate first, then key, as certbot replaces its
   * links. Both files are staged before either rename, so the two renames follow each other
   * directly, as a deploy tool's do: the store reads once after a burst (75 ms after its last
   * event), and a key still being written when that read ran (a loaded machine stretched the
   * write) would show a mismatched pair no real renewal shows.
   */
  async install(name: string, pair: Pair): Promise<void> {
    const cert = await this.stage(`${name}.crt`, pair.cert);
    const key = await this.stage(`${name}.key`, pair.key);
    await rename(cert, join(this.dir, `${name}.crt`));
    await rename(key, join(this.dir, `${name}.key`));
  }

  private async stage(file: string, text: string): Promise<string> {
    const staged = join(this.root, 'staging', `${file}.${this.counter++}`);
    await writeFile(staged, text);
    return staged;
  }

  async remove(file: string): Promise<void> {
    await unlink(join(this.dir, file));
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
