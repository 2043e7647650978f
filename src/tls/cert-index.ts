import type { CertificatePair } from './certificate-pair.js';

/** The pair named `default` (`default.crt` + `default.key`) serves clients without SNI or with an unknown name. */
export const DEFAULT_PAIR_NAME = 'default';

/**
 * An immutable SNI index over a set of certificate pairs, swapped whole by the CertStore.
 *
 * - Exact names first, then a wildcard one label deep: `*.example.com` serves `a.example.com`, not
 *   `example.com` nor `a.b.example.com` (RFC 6125 §6.4.3).
 * - Two pairs claiming the same name: the certificate valid longer wins (a renewal dropped next to
 *   the old file takes over at once), then the file name in code-unit order, for determinism.
 * - The default is the `default` pair if present, else the first pair by file name.
 */
export class CertIndex {
  /** Sorted by file name; never empty. */
  readonly pairs: readonly CertificatePair[];
  readonly defaultPair: CertificatePair;
  private readonly exact = new Map<string, CertificatePair>();
  private readonly wildcard = new Map<string, CertificatePair>();

  constructor(pairs: readonly CertificatePair[]) {
    if (pairs.length === 0) throw new Error('CertIndex needs at least one certificate pair');
    this.pairs = Object.freeze([...pairs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
    this.defaultPair = this.pairs.find((p) => p.name === DEFAULT_PAIR_NAME) ?? this.pairs[0]!;
    for (const pair of this.pairs) {
      for (const hostname of pair.hostnames) {
        const map = hostname.startsWith('*.') ? this.wildcard : this.exact;
        const key = hostname.startsWith('*.') ? hostname.slice(2) : hostname;
        const held = map.get(key);
        if (held === undefined || pair.notAfter.getTime() > held.notAfter.getTime()) map.set(key, pair);
      }
    }
  }

  /** The pair for an SNI name, or undefined when no certificate names it. */
  lookup(servername: string): CertificatePair | undefined {
    let name = servername.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot <= 0 ? undefined : this.wildcard.get(name.slice(dot + 1));
  }

  /** The pair to serve: the SNI match, else the default. */
  select(servername: string | undefined): CertificatePair {
    return (servername === undefined || servername === '' ? undefined : this.lookup(servername)) ?? this.defaultPair;
  }
}
