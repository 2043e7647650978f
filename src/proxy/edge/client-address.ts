import { BlockList, isIP } from 'node:net';

/**
 * Trusted proxies: the CIDRs whose X-Forwarded-For (and X-Real-IP, Forwarded) Switchyard believes.
 * Parsed once at start-up into node's native BlockList, which matches IPv4, IPv6 and IPv4-mapped
 * IPv6 (`::ffff:10.0.0.1` is inside `10.0.0.0/8`, and `10.0.0.1` inside `::ffff:10.0.0.0/104`).
 */

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** `10.0.0.0/8`, `fd00::/8`, `192.0.2.7` (one address) → Cidr. Throws an Error with a one-line reason. */
export function parseCidr(text: string): Cidr {
  const value = text.trim();
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const version = isIP(address);
  if (version === 0) throw new Error(`${JSON.stringify(text)} is not an IP address or CIDR`);
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const bits = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new Error(`${JSON.stringify(text)}: prefix length must be 0-${max}`);
    prefix = Number(bits);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A comma-separated list (flag or environment value); empty entries are ignored. */
export function parseCidrList(text: string): Cidr[] {
  return text.split(',').filter((part) => part.trim() !== '').map(parseCidr);
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** Membership test for a set of CIDRs. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly (Cidr | string)[]) {
    for (const entry of cidrs) {
      const cidr = typeof entry === 'string' ? parseCidr(entry) : entry;
      this.list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
    this.size = cidrs.length;
  }

  /** Whether a socket's `remoteAddress` (undefined once the socket closed) is trusted. */
  contains(address: string | undefined): boolean {
    if (address === undefined || this.size === 0) return false;
    const version = isIP(address);
    if (version === 0) return false;
    return this.list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}
