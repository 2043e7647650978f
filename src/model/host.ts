/**
 * Hosts: the key a request's Host header is looked up by, and validation of configured hosts.
 *
 * Invariant: a route host (and every key of the lookup map) is lower-case, carries no port and no
 * trailing dot; an IPv6 literal keeps its brackets (`[::1]`), as it appears in a Host header.
 *
 * Wildcards: `*.` followed by a valid name (`*.partners.example.com`, `*.localhost`) matches a host
 * with ONE OR MORE labels before that suffix (`a.partners.example.com`, `a.b.partners.example.com`),
 * never the suffix itself (`partners.example.com`). The `*` stands for whole labels only, and only
 * as the first label: `*`, `*.`, `a.*.com`, `*foo.com`, `*.*.com`, a port, and IPv6 or bracketed
 * forms are refused. (Envoy's and Traefik's `*.` also cover several labels; TLS certificate
 * wildcards, tls/, cover one.) A single-label suffix (`*.com`) is accepted: it is the operator's
 * call, and `*.localhost` needs it.
 */

const OPEN_BRACKET = 91; // '['
const DOT = 46; // '.'
const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
const WILDCARD_PREFIX = '*.';

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

/** A configured host (or wildcard) in key form: lower-case, no trailing dot. Call after `hostProblem` said yes. */
export function normalizeHost(host: string): string {
  return hostKey(host);
}

/** Whether a configured host in key form is a wildcard (`*.suffix`). */
export function isWildcardHost(host: string): boolean {
  return host.startsWith(WILDCARD_PREFIX);
}

/** The suffix a wildcard in key form stands over: `*.partners.example.com` → `partners.example.com`. */
export function wildcardSuffix(host: string): string {
  return host.slice(WILDCARD_PREFIX.length);
}

/**
 * How a configured host entry (key form) matches a request's host key: `exact`, `wildcard` (one or
 * more labels before the wildcard's suffix), or undefined. For explanations and tests; the lookup
 * index (route-index.ts) implements the same rule with maps.
 */
export function hostEntryMatch(entry: string, key: string): 'exact' | 'wildcard' | undefined {
  if (entry === key) return 'exact';
  if (!isWildcardHost(entry)) return undefined;
  const suffix = wildcardSuffix(entry);
  // At least one non-empty label, then a dot, then the suffix.
  return key.length > suffix.length + 1 && key.endsWith(suffix) && key.charCodeAt(key.length - suffix.length - 1) === DOT && key.charCodeAt(0) !== DOT
    ? 'wildcard'
    : undefined;
}

/**
 * Why a configured route host cannot be used, or undefined. Accepted: a DNS-style name (letters,
 * digits, `-`, `_`, dots), a bracketed IPv6 literal, or a wildcard `*.name`. Rejected: empty, a
 * port (the port is never part of matching, so one here would be misleading), a `*` anywhere but
 * as the whole first label of `*.name`, anything else.
 */
export function hostProblem(host: string): string | undefined {
  if (host === '') return 'host is empty';
  const lower = host.toLowerCase();
  if (lower.includes('*')) return wildcardProblem(host, lower);
  if (lower.charCodeAt(0) === OPEN_BRACKET) {
    return IPV6.test(lower) ? undefined : `host "${host}" is not a bracketed IPv6 literal without port`;
  }
  if (lower.includes(':')) return `host "${host}" must not carry a port`;
  return NAME.test(lower) ? undefined : `host "${host}" is not a valid host name`;
}

/** Why a host containing `*` is not a usable wildcard, or undefined. */
function wildcardProblem(host: string, lower: string): string | undefined {
  const rule = 'a wildcard is "*." followed by a host name, as in "*.example.com" (it matches one or more labels before that name)';
  if (!lower.startsWith(WILDCARD_PREFIX)) {
    return lower === '*' ? `host "${host}": a bare "*" is not a host; leave match.host out to match any host` : `host "${host}": ${rule}`;
  }
  const suffix = lower.slice(WILDCARD_PREFIX.length);
  if (suffix === '' || suffix === '.') return `host "${host}": ${rule}`;
  if (suffix.includes('*')) return `host "${host}": only the first label may be "*"; ${rule}`;
  if (suffix.includes(':') || suffix.includes('[')) return `host "${host}": a wildcard must not carry a port or an IPv6 literal; ${rule}`;
  return NAME.test(suffix) ? undefined : `host "${host}": "${suffix}" is not a valid host name; ${rule}`;
}
