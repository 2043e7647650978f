/**
 * Which instance addresses the proxy can connect to. Consul accepts any string as
 * `Service.Address`: hashicorp/consul agent/agent.go `validateService` checks only the tagged
 * addresses (`lan_ipv4` and friends must parse as IPs), and `addServiceInternal` parses the address
 * only to derive those tags. An upstream origin, though, must parse as a WHATWG URL host (undici's
 * `new Pool(origin)`), and an address that does not made pool creation throw. Checked here, in the
 * pure model, so such an instance is left out of its pool as a build problem instead of reaching
 * the runtime.
 *
 * Accepted, exactly:
 * - IPv4 in dotted-decimal form, four parts 0..255 without leading zeros (`10.0.0.7`). Shorthand
 *   and octal/hex forms (`127.1`, `010.0.0.1`, `0x7f.0.0.1`) are refused: URL parsers read them as
 *   a different address than most people mean (Go's net.ParseIP refuses them too).
 * - IPv6 in any RFC 4291 text form (`::1`, `fe80::1`, `::ffff:10.0.0.1`), bare or in brackets.
 *   Zones (`fe80::1%eth0`) are refused: a URL host cannot carry one (WHATWG URL, RFC 6874 was never
 *   adopted by browsers or undici), so the proxy could not choose the interface anyway; register a
 *   global or unique-local address instead.
 * - DNS names: dot-separated labels of 1..63 ASCII letters, digits, `-` or `_` (underscores occur in
 *   container names Docker resolves), not starting or ending with `-`, 253 characters at most, an
 *   optional final dot. A name whose last label is numeric (`1.2.3`, `12345`, `a.0x1f`) is refused:
 *   URL parsers turn it into an IPv4 address. Non-ASCII names must be given in punycode (`xn--…`).
 *
 * Everything else (spaces, `host:port`, `http://x`, `/`, `?`, `#`, `@`, `%`, empty) is refused.
 */

/** undefined when `address` is usable as an upstream host, else the reason it is not. */
export function addressProblem(address: string): string | undefined {
  if (address === '') return 'empty address';
  if (address.startsWith('[') || address.includes(':')) return ipv6Problem(address);
  if (isIPv4(address)) return undefined;
  return dnsNameProblem(address);
}

/** undefined when `port` is a TCP port a connection can go to (1..65535), else the reason. */
export function portProblem(port: number): string | undefined {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : `port ${String(port)} is not in 1..65535`;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isHexDigit = (c: number): boolean => isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
const isLetter = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 65 && c <= 90);

/** Four dot-separated parts of 1..3 digits, each 0..255 without a leading zero. No allocation: run once per instance per build. */
function isIPv4(text: string): boolean {
  let parts = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text.charCodeAt(i) !== 46 /* . */) continue;
    const length = i - start;
    if (length === 0 || length > 3) return false;
    let value = 0;
    for (let k = start; k < i; k++) {
      const c = text.charCodeAt(k);
      if (!isDigit(c)) return false;
      value = value * 10 + (c - 48);
    }
    if (length > 1 && text.charCodeAt(start) === 48) return false;
    if (value > 255) return false;
    parts += 1;
    start = i + 1;
  }
  return parts === 4;
}

function ipv6Problem(address: string): string | undefined {
  let text = address;
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) return 'not an IPv6 address (unclosed "[")';
    text = text.slice(1, -1);
  }
  if (text.includes('%')) return 'IPv6 zones (%interface) are not supported: a URL host cannot carry one; register a global or unique-local address';
  return isIPv6(text) ? undefined : 'not an IP address or DNS name (a port or a scheme does not belong in the address)';
}

/** RFC 4291 section 2.2: eight groups of 1..4 hex digits, one `::` at most, an IPv4 tail allowed. */
function isIPv6(text: string): boolean {
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = (half: string): string[] | undefined => (half === '' ? [] : half.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return false;
  const all = [...head, ...tail];
  let count = all.length;
  const last = all.at(-1);
  if (last !== undefined && last.includes('.')) {
    if (!isIPv4(last)) return false;
    all.pop();
    count += 1; // an IPv4 tail stands for two groups
  }
  for (const group of all) {
    if (group.length === 0 || group.length > 4) return false;
    for (let i = 0; i < group.length; i++) if (!isHexDigit(group.charCodeAt(i))) return false;
  }
  return halves.length === 2 ? count <= 7 : count === 8;
}

function dnsNameProblem(address: string): string | undefined {
  const name = address.endsWith('.') ? address.slice(0, -1) : address;
  if (name.length === 0 || name.length > 253) return 'not an IP address or DNS name (a DNS name has 1 to 253 characters)';
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return 'not an IP address or DNS name (each dot-separated label has 1 to 63 characters)';
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      if (!isLetter(c) && !isDigit(c) && c !== 45 /* - */ && c !== 95 /* _ */) {
        return c > 127
          ? 'not an IP address or DNS name (non-ASCII names must be given in punycode, xn--…)'
          : `not an IP address or DNS name (${JSON.stringify(label[i])} is not allowed in a DNS name)`;
      }
    }
    if (label.startsWith('-') || label.endsWith('-')) return 'not an IP address or DNS name (a label cannot start or end with "-")';
  }
  if (isNumericLabel(labels.at(-1)!)) return 'not an IP address or DNS name (a name ending in a number is read as an IPv4 address)';
  return undefined;
}

/** WHATWG URL's "ends in a number": all decimal digits, or `0x` followed by hex digits. */
function isNumericLabel(label: string): boolean {
  let i = 0;
  let hex = false;
  if (label.length >= 2 && label.charCodeAt(0) === 48 && (label.charCodeAt(1) | 0x20) === 120 /* x */) {
    i = 2;
    hex = true;
  }
  for (; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (!(hex ? isHexDigit(c) : isDigit(c))) return false;
  }
  return true;
}
