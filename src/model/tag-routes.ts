/**
 * Fabio-style routes from service tags, so Fabio users can switch without retagging.
 *
 * Supported subset:
 *   urlprefix-<host>/<path>[ strip=/<prefix>]     route requests for <host> under /<path>
 *   urlprefix-/<path>[ strip=/<prefix>]           the same for any host
 *   urlprefix-<host>/<path> redirect=<code>,<url> answer with a redirect (Fabio's `redirect=`)
 * - Options follow the prefix, separated by whitespace, as `name=value`. `strip` and `redirect`
 *   are supported; any other option (Fabio's `proto=`, `tlsskipverify=`, `host=`, ...) is ignored
 *   with a BuildProblem of kind 'tag' and the route is still created. A repeated option takes the last.
 * - `redirect=<code>,<url>` (fabio route/route.go, registry/consul/routecmd.go, route/target.go
 *   BuildRedirectURL): the route answers `<code>` with Location `<url>` and has no destination.
 *   `$path` in the URL is the request's path as received, without query (route-options.ts
 *   `{path}`); a `/` just before it is dropped, as Fabio does (`https://a.com/$path` and
 *   `https://a.com$path` both give `https://a.com/x` for `/x`; a relative `/$path` is `/{path}`,
 *   whose `//` the proxy collapses); `$host` is the request's host
 *   (`{host}`). With `$path` the request's query is kept (appended) unless the URL has a query of
 *   its own, as in Fabio; without `$path` it is dropped. Differences from Fabio: the code must be
 *   301, 302, 303, 307 or 308 (Fabio takes any 3xx), the URL is split at the first comma (Fabio
 *   refuses a URL holding one), `strip=` with `redirect=` is refused (Fabio strips the prefix from
 *   `$path`; here `{path}` is the path as received), and a redirect to the request's own URL is
 *   answered (Fabio skips it when X-Forwarded-Proto, host and path are equal; use the policy's
 *   `redirectToHttps` for HTTP → HTTPS). An invalid `redirect=` makes the tag a problem, skipped.
 * - <host> is a DNS name, a `*.` wildcard (host.ts) or a bracketed IPv6 literal, compared
 *   case-insensitively; no port, no TCP routes (`urlprefix-:3000`): such tags are skipped with a
 *   problem. <path> follows the rules of path.ts (normalised: `/a/` is `/a`).
 * - Tags not starting with `urlprefix-` are not route tags and are ignored silently.
 * - The route is named `tag:<service>:<host><path>` (host lower-case, path normalised), weighs 1,
 *   and sends traffic to the instances of the service that carry that exact tag string, as Fabio
 *   does: its destination is `{ service, tag: <the whole tag> }`.
 * - Its KV keys use the key form of kv-overrides.ts (`routeKvKeys`): the `:` of the name, which
 *   Consul 1.21.5+ refuses in keys, is written `,3a`: `routes/tag,3ausers,3a/api/weights`.
 * - Conflicts are not fatal (any registration can add tags, and one bad registration must not block
 *   every table): a tag route whose name or host + path is already taken by a template route or an
 *   earlier tag route is skipped with a problem. Order: services by name, tags by code-unit order,
 *   so the winner is deterministic. Unlike Fabio, two services with the same prefix are not merged
 *   into one route; route them together with a template instead.
 */
import { compareCodeUnits } from './compare-code-units.js';
import { hostProblem, normalizeHost } from './host.js';
import { normalizePrefix, prefixProblem } from './path.js';
import { parseRouteOptions } from './route-options.js';
import { describeMatch, matchKey, matchKeys, type RouteSpec } from './route-spec.js';
import type { BuildProblem, DiscoverySnapshot, RouteRedirect } from './types.js';

export const TAG_PREFIX = 'urlprefix-';

export interface ParsedTag {
  readonly host: string | undefined;
  readonly path: string;
  readonly strip: string | undefined;
  /** From `redirect=<code>,<url>`: the route answers by itself. */
  readonly redirect?: RouteRedirect;
  /** Options that were ignored, as written (`proto=https`). */
  readonly ignored: readonly string[];
}

/** Parse one `urlprefix-` tag: the route it describes, or the reason it cannot be used. */
export function parseUrlprefixTag(tag: string): ParsedTag | { readonly error: string } {
  const [head = '', ...options] = tag.split(/[ \t]+/).filter((part) => part !== '');
  if (!head.startsWith(TAG_PREFIX)) return { error: `not a ${TAG_PREFIX} tag` };
  const target = head.slice(TAG_PREFIX.length);
  const slash = target.indexOf('/');
  if (slash < 0) return { error: `"${head}" has no path (expected ${TAG_PREFIX}[host]/path)` };
  const rawHost = target.slice(0, slash);
  if (rawHost !== '') {
    const problem = hostProblem(rawHost);
    if (problem !== undefined) return { error: problem };
  }
  const rawPath = target.slice(slash);
  const pathError = prefixProblem(rawPath);
  if (pathError !== undefined) return { error: pathError };

  let strip: string | undefined;
  let redirect: RouteRedirect | undefined;
  const ignored: string[] = [];
  for (const option of options) {
    if (option.startsWith('strip=')) {
      const value = option.slice('strip='.length);
      if (!value.startsWith('/')) return { error: `strip "${value}" must start with "/"` };
      const stripError = prefixProblem(value);
      if (stripError !== undefined) return { error: `strip: ${stripError}` };
      strip = normalizePrefix(value);
    } else if (option.startsWith('redirect=')) {
      const parsed = fabioRedirect(option.slice('redirect='.length));
      if (typeof parsed === 'string') return { error: `${option}: ${parsed}` };
      redirect = parsed;
    } else {
      ignored.push(option);
    }
  }
  if (redirect !== undefined && strip !== undefined) {
    return { error: 'strip= does not apply to a redirect= ($path is the request\'s path as received)' };
  }
  return {
    host: rawHost === '' ? undefined : normalizeHost(rawHost),
    path: normalizePrefix(rawPath),
    strip,
    ...(redirect === undefined ? {} : { redirect }),
    ignored,
  };
}

/** Fabio's `<code>,<url>` as a RouteRedirect (see the header), or why it cannot be one. */
function fabioRedirect(value: string): RouteRedirect | string {
  const comma = value.indexOf(',');
  if (comma < 0) return 'expected redirect=<code>,<url>';
  const code = value.slice(0, comma);
  const url = value.slice(comma + 1);
  if (!/^\d{3}$/.test(code)) return `status code "${code}" is not a number`;
  const usesPath = url.includes('$path');
  // A leading `/$path` keeps its `/`: `{path}` alone is no target (route-options.ts), and the proxy
  // collapses the `//` of `/{path}` into one (redirect.ts), which gives Fabio's Location.
  const lead = url.startsWith('/$path') ? '/' : '';
  const to = lead + url.slice(lead.length).replace(/\/?\$path/g, '{path}').replaceAll('$host', '{host}');
  const options = parseRouteOptions({ redirect: { to, status: Number(code), keepQuery: usesPath && !url.includes('?') } }, 'template');
  return typeof options === 'string' ? options : options.redirect!;
}

/**
 * Routes for every `urlprefix-` tag in the catalog that does not conflict with `existing` (the
 * validated template routes) or with an earlier tag route. Returned routes are normalised.
 */
export function tagRoutes(
  catalog: DiscoverySnapshot['catalog'],
  existing: readonly RouteSpec[],
): { routes: RouteSpec[]; problems: BuildProblem[] } {
  const routes: RouteSpec[] = [];
  const problems: BuildProblem[] = [];
  const names = new Map(existing.map((r) => [r.name, r]));
  const matches = new Map(existing.flatMap((r) => (r.options?.conditions === undefined ? matchKeys(r.hosts, r.path) : []).map((key) => [key, r] as const)));
  const problem = (tag: string, service: string, message: string): void => {
    problems.push({ kind: 'tag', source: tag, message: `service "${service}": ${message}` });
  };

  for (const service of Object.keys(catalog).sort(compareCodeUnits)) {
    const tags = [...new Set(catalog[service] ?? [])].filter((t) => t.startsWith(TAG_PREFIX)).sort(compareCodeUnits);
    for (const tag of tags) {
      const parsed = parseUrlprefixTag(tag);
      if ('error' in parsed) {
        problem(tag, service, `${parsed.error}; tag ignored`);
        continue;
      }
      for (const option of parsed.ignored) problem(tag, service, `unsupported option "${option}" ignored`);
      const name = `tag:${service}:${describeMatch(parsed.host, parsed.path)}`;
      const key = matchKey(parsed.host, parsed.path);
      const clash = names.get(name) ?? matches.get(key);
      if (clash !== undefined) {
        problem(tag, service, `${describeMatch(parsed.host, parsed.path)} is already routed by "${clash.name}" (${clash.source}); tag ignored`);
        continue;
      }
      const route: RouteSpec = {
        name,
        hosts: parsed.host === undefined ? [] : [parsed.host],
        path: parsed.path,
        strip: parsed.strip,
        to: parsed.redirect === undefined ? [{ service, tag, weight: 1 }] : [],
        origin: 'tag',
        source: tag,
        ...(parsed.redirect === undefined ? {} : { options: { redirect: parsed.redirect } }),
      };
      names.set(name, route);
      matches.set(key, route);
      routes.push(route);
    }
  }
  return { routes, problems };
}
