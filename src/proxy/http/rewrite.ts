import { RE2JS } from 're2js';
import type { Route } from '../../model/types.js';

/**
 * Path rewriting on the way upstream (`strip`, `rewrite.path`, `rewrite.regex`/`to`), compiled once
 * per changed route when the runtime is built (RuntimeRoute.pathRewrite); a route with none of them
 * has no rewriter and a request on it pays one field check.
 *
 * Rules, for every kind:
 * - The path is rewritten as received (after the edge's dot-segment normalisation): nothing is
 *   decoded or re-encoded, so `%2F` stays `%2F` (it is not a `/`) and `//` stays `//`.
 * - The query string is never rewritten and always kept.
 * - The result always starts with `/` (the origin-form the upstream expects).
 *
 * Prefix (`rewrite.path`, and `strip`, which is a prefix replaced by nothing): the route's matched
 * prefix is replaced on a segment boundary: with `/api` → `/v2`, `/api/x?q` → `/v2/x?q`, `/api` →
 * `/v2`, `/api?q` → `/v2?q`, `/apix` unchanged (it cannot match the route anyway); `rewrite.path:
 * /` is `strip` of the route's prefix (`/api/x` → `/x`, `/api` → `/`). On the root route `/` the
 * replacement is put in front (`/x` → `/v2/x`, `/` → `/v2/`).
 *
 * Regex (`rewrite.regex` + `to`): RE2 syntax (re2js: linear time in the path's length, no
 * backtracking), searched in the path without its query. The first (leftmost) match is replaced
 * by `to`, where `$1`..`$9` are the match's groups (an unmatched group is empty) and `$$` is a `$`;
 * the rest of the path is kept, so anchor with `^...$` to replace the whole path. No match: the
 * path goes unchanged. A result that does not start with `/` (a `to` that begins with a group)
 * gets one in front. When `to` itself carries a `?query`, the request's query is appended to it
 * with `&`.
 *
 * What the upstream is told, only when the path actually changed (Traefik's middlewares do the same):
 * - the prefix was removed outright (`strip`, `rewrite.path: /`): `X-Forwarded-Prefix: <prefix>`
 *   (StripPrefix), so that prefix + the upstream's own path is the public path again (Spring's
 *   ForwardedHeaderFilter, ASP.NET's UsePathBase);
 * - anything else (a prefix replaced by another, a prefix put in front on the root route, a regex
 *   rewrite): `X-Replaced-Path: <the request target as received, query included>` (ReplacePath,
 *   ReplacePathRegex; left out for a target longer than 4 KiB, forwarded-headers.ts), and no X-Forwarded-Prefix: prefix + the rewritten path (`/api` + `/v2/users`)
 *   is a URL that exists nowhere.
 * The client's own X-Forwarded-Prefix and X-Replaced-Path are always dropped (headers.ts), so
 * neither can be spoofed, on any route. Routes without a rewrite pay nothing for this.
 *
 * With both `strip` and `rewrite.path`/`regex` on a route (validation refuses it), the rewrite wins.
 */
export interface PathRewrite {
  /** The request target the upstream gets for `url` (origin-form, query included). */
  apply(url: string): string;
  /**
   * When `apply` changed the path: the X-Forwarded-Prefix to send (the prefix was removed outright),
   * or undefined: send X-Replaced-Path with the target as received instead (file header).
   */
  readonly forwardedPrefix: string | undefined;
}

/**
 * `url` with `prefix` replaced by `replacement` when it is a prefix on a segment boundary (the
 * path ends there, or a `/` or `?` follows); `url` itself otherwise. `prefix` '' is the root:
 * the replacement goes in front. `replacement` '' strips; no trailing `/` on either.
 */
export function replacePrefix(url: string, prefix: string, replacement: string): string {
  if (prefix !== '' && !url.startsWith(prefix)) return url;
  const n = prefix.length;
  if (url.length === n) return replacement === '' ? '/' : replacement;
  const next = url.charCodeAt(n);
  if (next === 47 /* / */) return n === 0 ? replacement + url : replacement + url.slice(n);
  if (next === 63 /* ? */) return `${replacement === '' ? '/' : replacement}${url.slice(n)}`;
  return url;
}

/** A normalised prefix as replacePrefix takes it: the root `/` is '', a trailing `/` is dropped. */
function prefixForm(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 47) end--;
  return path.slice(0, end);
}

export class PrefixRewrite implements PathRewrite {
  readonly forwardedPrefix: string | undefined;
  private readonly prefix: string;
  private readonly replacement: string;

  constructor(prefix: string, replacement: string) {
    this.prefix = prefixForm(prefix);
    this.replacement = prefixForm(replacement);
    // Only a strip: with a replacement, prefix + the upstream's path is no public URL.
    this.forwardedPrefix = this.prefix !== '' && this.replacement === '' ? this.prefix : undefined;
  }

  apply(url: string): string {
    return replacePrefix(url, this.prefix, this.replacement);
  }
}

/** `to` split into literal text (strings) and group numbers, once. */
export function replacementParts(to: string): (string | number)[] {
  const parts: (string | number)[] = [];
  let literal = '';
  for (let i = 0; i < to.length; i++) {
    const c = to.charCodeAt(i);
    if (c === 36 /* $ */ && i + 1 < to.length) {
      const d = to.charCodeAt(i + 1);
      if (d >= 49 && d <= 57) {
        if (literal !== '') parts.push(literal);
        literal = '';
        parts.push(d - 48);
        i++;
        continue;
      }
      if (d === 36) {
        literal += '$';
        i++;
        continue;
      }
    }
    literal += to[i];
  }
  if (literal !== '') parts.push(literal);
  return parts;
}

export class RegexRewrite implements PathRewrite {
  readonly forwardedPrefix = undefined;
  private readonly re: RE2JS;
  private readonly parts: readonly (string | number)[];
  /** `to` carries a query of its own: the request's is joined with `&`. */
  private readonly ownQuery: boolean;

  /** Throws RE2JS's syntax error for a pattern validation should have refused. */
  constructor(regex: string, to: string) {
    this.re = RE2JS.compile(regex);
    const groups = this.re.groupCount();
    // A `$n` beyond the pattern's groups is empty, like an unmatched group.
    this.parts = replacementParts(to).map((p) => (typeof p === 'number' && p > groups ? '' : p)).filter((p) => p !== '');
    this.ownQuery = to.includes('?');
  }

  apply(url: string): string {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const m = this.re.matcher(path);
    if (!m.find()) return url;
    let out = path.slice(0, m.start());
    for (const part of this.parts) out += typeof part === 'string' ? part : (m.group(part) ?? '');
    out += path.slice(m.end());
    if (out.charCodeAt(0) !== 47) out = `/${out}`;
    if (q === -1) return out;
    return this.ownQuery ? `${out}&${url.slice(q + 1)}` : out + url.slice(q);
  }
}

/**
 * The route's path rewriter: `rewrite.regex`, else `rewrite.path`, else `strip`; undefined when the
 * path goes as received. A pattern re2js cannot compile (validation refuses those) leaves the
 * path unchanged rather than failing the whole table.
 */
export function pathRewriteOf(route: Route): PathRewrite | undefined {
  const rewrite = route.rewrite;
  if (rewrite?.regex !== undefined) {
    try {
      return new RegexRewrite(rewrite.regex, rewrite.to ?? '/');
    } catch {
      return undefined;
    }
  }
  if (rewrite?.path !== undefined) {
    const prefix = prefixForm(route.path);
    const replacement = prefixForm(rewrite.path);
    return prefix === replacement ? undefined : new PrefixRewrite(route.path, rewrite.path);
  }
  const strip = route.strip;
  return strip === undefined || prefixForm(strip) === '' ? undefined : new PrefixRewrite(strip, '/');
}
