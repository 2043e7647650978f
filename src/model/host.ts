/**
 * Hosts: the key a request's Host header is looked up by, and validation of configured hosts.
 *
 * Invariant: a route host (and every key of the lookup map) is lower-case, carries no port and no
 * trailing dot; an IPv6 literal keeps its brackets (`[::1]`), as it appears in a Host header.
 */

const OPEN_BRACKET = 91; // '['
const DOT = 46; // '.'
const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/**
 * Host header → lookup key: port removed (`[::1]:8080` → `[::1]`, `a.com:80` → `a.com`), one
 * trailing dot removed (`a.com.` is the same name), lower-cased. Runs per request: no regex, and it
 * allocates only when the header is not already in canonical form.
 */
export function hostKey(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === OPEN_BRACKET) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === DOT) end--;
  return (end === host.length ? host : host.slice(0, end)).toLowerCase();
}

/** A configured host in key form: lower-case, no trailing dot. Call after `hostProblem` said yes. */
export function normalizeHost(host: string): string {
  return hostKey(host);
}

/**
 * Why a configured route host cannot be used, or undefined. Accepted: a DNS-style name (letters,
 * digits, `-`, `_`, dots) or a bracketed IPv6 literal. Rejected: empty, a port (the port is never
 * part of matching, so one here would be misleading), wildcards (not supported), anything else.
 */
export function hostProblem(host: string): string | undefined {
  if (host === '') return 'host is empty';
  const lower = host.toLowerCase();
  if (lower.includes('*')) return `host "${host}": wildcard hosts are not supported`;
  if (lower.charCodeAt(0) === OPEN_BRACKET) {
    return IPV6.test(lower) ? undefined : `host "${host}" is not a bracketed IPv6 literal without port`;
  }
  if (lower.includes(':')) return `host "${host}" must not carry a port`;
  return NAME.test(lower) ? undefined : `host "${host}" is not a valid host name`;
}
