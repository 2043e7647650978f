/**
 * RouteIndex against a naive reference over generated tables (seeded, bounded): every route is
 * scored (host tier, prefix length, condition count, table order) and the best whose host, prefix
 * and conditions hold must be what lookup returns. The reference reads the query with
 * URLSearchParams and headers by lower-casing names: an implementation independent of
 * match-conditions.ts (generated queries avoid malformed escapes, where the two rules differ on
 * purpose: URLSearchParams keeps `%zz` as text, the matcher drops the part, as Go does).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { buildTable } from '../../src/model/build-table.js';
import { hostKey } from '../../src/model/host.js';
import { matchesPrefix, pathEnd } from '../../src/model/path.js';
import type { RequestFacts, Route, RouteTemplate, RoutingTable } from '../../src/model/types.js';
import { route, snap, type Conditions } from './precedence-support.js';
import { mulberry32 } from '../support/churn.js';

const HOSTS = ['a.com', 'x.a.com', 'y.x.a.com', 'b.org', '*.a.com', '*.x.a.com', '*.org', '*.y.x.a.com'];
const PATHS = ['/', '/p', '/p/q', '/p/q/r', '/s', '/p/qq'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const HEADER_VALUES: Record<string, string[]> = { 'x-a': ['1', '2', '*'], 'x-b': ['on', '*'] };
const QUERY_VALUES: Record<string, string[]> = { q: ['1', 'a b', '*', ''], 'r s': ['é', '*'] };

const REQUEST_HOSTS = [undefined, 'a.com', 'A.COM:8080', 'x.a.com', 'y.x.a.com', 'z.y.x.a.com', 'q.a.com', 'a.b.a.com', 'b.org', 'c.b.org', 'org', 'other.net', 'a.com.'];
const REQUEST_PATHS = ['/', '/p', '/p/', '/p/q', '/p/q/r/s', '/p/qq', '/p/qqq', '/s/t', '/x', '/pq'];
const QUERIES = ['', '?q=1', '?q=a+b', '?q=a%20b', '?q', '?q=', '?r%20s=%C3%A9', '?r+s=%c3%a9&q=2', '?q=2&q=1', '?x=1', '?Q=1', '?q=1#frag', '#?q=1'];
const REQUEST_HEADERS: [string, string][] = [['x-a', '1'], ['X-A', '2'], ['x-a', '3'], ['X-B', 'on'], ['x-b', 'off'], ['x-c', '1']];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function subset<T>(rand: () => number, items: readonly T[], chance: number): T[] {
  return items.filter(() => rand() < chance);
}

function conditionsOf(rand: () => number): Conditions | undefined {
  if (rand() < 0.4) return undefined;
  const headers = Object.fromEntries(subset(rand, Object.keys(HEADER_VALUES), 0.3).map((n) => [n, pick(rand, HEADER_VALUES[n]!)]));
  const query = Object.fromEntries(subset(rand, Object.keys(QUERY_VALUES), 0.3).map((n) => [n, pick(rand, QUERY_VALUES[n]!)]));
  return { methods: subset(rand, METHODS, 0.3), headers, query };
}

/** Up to `size` routes; a generated route that ties with one already kept is left out (the build refuses it). */
function generateTable(rand: () => number, size: number): RoutingTable {
  let kept: RouteTemplate[] = [];
  let table = buildTable(snap, {}, []);
  for (let i = 0; i < size; i++) {
    const hosts = [...new Set(subset(rand, HOSTS, 0.15))];
    const candidate = route(`r${i}`, hosts, pick(rand, PATHS), conditionsOf(rand));
    try {
      table = buildTable(snap, {}, [...kept, candidate]);
      kept = [...kept, candidate];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      assert.match(err.message, /like route/);
    }
  }
  return table;
}

function hostRank(route: Route, key: string | undefined): number {
  if (route.hosts.length === 0) return 0;
  if (key === undefined) return -1;
  let best = -1;
  for (const entry of route.hosts) {
    if (entry === key) best = Math.max(best, 1_000_000);
    else if (entry.startsWith('*.')) {
      const suffix = entry.slice(1); // '.a.com'
      if (key.endsWith(suffix) && key.length > suffix.length && !key.startsWith('.')) best = Math.max(best, 1 + suffix.length);
    }
  }
  return best;
}

function holds(route: Route, path: string, request: RequestFacts): boolean {
  const c = route.conditions;
  if (c === undefined) return true;
  // A list with GET takes HEAD too (match-conditions.ts).
  const method = request.method;
  if (c.methods.length > 0 && (method === undefined || !(c.methods.includes(method) || (method === 'HEAD' && c.methods.includes('GET'))))) return false;
  const headers: [string, string][] = [];
  for (let i = 0; i < request.rawHeaders.length; i += 2) headers.push([request.rawHeaders[i]!.toLowerCase(), request.rawHeaders[i + 1]!]);
  for (const [name, value] of c.headers) {
    if (!headers.some(([n, v]) => n === name && (value === '*' || v === value))) return false;
  }
  const end = pathEnd(path);
  const query = path[end] === '?' ? path.slice(end + 1).split('#')[0]! : '';
  const params = [...new URLSearchParams(query)];
  for (const [name, value] of c.query) {
    if (!params.some(([n, v]) => n === name && (value === '*' || v === value))) return false;
  }
  return true;
}

function reference(table: RoutingTable, host: string | undefined, path: string, request: RequestFacts): Route | undefined {
  const key = host === undefined ? undefined : hostKey(host);
  let best: Route | undefined;
  let bestScore: number[] = [];
  table.routes.forEach((r) => {
    const rank = hostRank(r, key);
    if (rank < 0 || !matchesPrefix(path, r.path) || !holds(r, path, request)) return;
    const c = r.conditions;
    const count = c === undefined ? 0 : (c.methods.length > 0 ? 1 : 0) + c.headers.length + c.query.length;
    const score = [rank, r.path.length, count];
    // Strictly better on the first differing field; on equal scores the earlier route stays.
    const first = score.findIndex((v, i) => v !== bestScore[i]);
    if (best === undefined || (first >= 0 && score[first]! > bestScore[first]!)) {
      best = r;
      bestScore = score;
    }
  });
  return best;
}

describe('RouteIndex agrees with a naive reference on generated tables', () => {
  const TABLES = 60;
  const REQUESTS = 400;
  it(`${TABLES} tables of up to 40 routes, ${REQUESTS} requests each`, () => {
    let conditioned = 0;
    let matched = 0;
    let wildcardWins = 0;
    for (let seed = 1; seed <= TABLES; seed++) {
      const rand = mulberry32(seed);
      const table = generateTable(rand, 40);
      conditioned += table.routes.filter((r) => r.conditions !== undefined).length;
      for (let n = 0; n < REQUESTS; n++) {
        const host = pick(rand, REQUEST_HOSTS);
        const path = pick(rand, REQUEST_PATHS) + pick(rand, QUERIES);
        const headers = subset(rand, REQUEST_HEADERS, 0.3);
        const request: RequestFacts = { method: pick(rand, [...METHODS, 'HEAD', undefined]), rawHeaders: headers.flat() };
        const expected = reference(table, host, path, request);
        const got = table.lookup(host, path, request);
        assert.equal(got?.name, expected?.name, `seed ${seed}: ${host ?? '(no host)'} ${path} ${request.method ?? '-'} ${JSON.stringify(headers)}`);
        if (got !== undefined) matched++;
        if (got !== undefined && got.hosts.some((h) => h.startsWith('*.')) && !got.hosts.includes(hostKey(host ?? ''))) wildcardWins++;
      }
    }
    // The generator exercises what it should: conditioned routes, matches, wildcard wins.
    assert.ok(conditioned > TABLES * 10, `conditioned routes: ${conditioned}`);
    assert.ok(matched > (TABLES * REQUESTS) / 3, `matched: ${matched}`);
    assert.ok(wildcardWins > 100, `wildcard wins: ${wildcardWins}`);
  });
});
