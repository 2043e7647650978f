/**
 * explainLookup with conditions and wildcards (model/explain.ts): the candidates in precedence
 * order, which host entry covered the host, each condition's verdict, and reasons for the new tiers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { explainLookup } from '../../src/model/explain.js';
import { route, request, snap } from './precedence-support.js';

const table = buildTable(snap, {}, [
  route('any', [], '/api'),
  route('short-wild', ['*.example.com'], '/api'),
  route('long-wild', ['*.eu.example.com', 'eu.example.com'], '/api'),
  route('exact', ['x.eu.example.com'], '/api', { methods: ['POST', 'PUT'], headers: { 'x-canary': '1' }, query: { v: '*' } }),
  route('exact-short', ['x.eu.example.com'], '/', { headers: { 'x-tenant': '*' } }),
]);

describe('explainLookup with conditions and wildcards', () => {
  it('candidates in precedence order: exact, longer wildcard, shorter wildcard, any host; the entry that covered the host', () => {
    const e = explainLookup(table, 'X.EU.example.com:8443', '/api/1?v=%32', request('POST', [['X-Canary', '1']]));
    assert.equal(e.route?.name, 'exact');
    assert.deepEqual(e.candidates.map((c) => [c.route, c.host, c.hostMatch, c.conditionCount, c.conditionsHold, c.chosen]), [
      ['exact', 'x.eu.example.com', 'exact', 3, true, true],
      ['exact-short', 'x.eu.example.com', 'exact', 1, false, false],
      ['long-wild', '*.eu.example.com', 'wildcard', 0, true, false],
      ['short-wild', '*.example.com', 'wildcard', 0, true, false],
      ['any', null, 'any', 0, true, false],
    ]);
    assert.deepEqual(e.candidates[0]!.conditions, [
      { kind: 'method', name: null, expected: ['POST', 'PUT'], held: true, seen: ['POST'] },
      { kind: 'header', name: 'x-canary', expected: '1', held: true, seen: ['1'] },
      { kind: 'query', name: 'v', expected: '*', held: true, seen: ['2'] },
    ]);
    assert.match(e.reason, /^route "exact" is for host "x\.eu\.example\.com" and has the longest prefix the path falls under \("\/api"\); its conditions hold \(method POST or PUT, header x-canary = "1", query v present\)/);
  });

  it('a failed condition: the next candidate, and the reason names what failed', () => {
    const e = explainLookup(table, 'x.eu.example.com', '/api/1', request('GET', [['x-canary', '1'], ['x-canary', '2']]));
    assert.equal(e.route?.name, 'long-wild');
    const exact = e.candidates.find((c) => c.route === 'exact')!;
    assert.deepEqual(exact.conditions.map((v) => [v.kind, v.held, v.seen]), [['method', false, ['GET']], ['header', true, ['1', '2']], ['query', false, []]]);
    assert.match(e.reason, /route "long-wild" covers host "x\.eu\.example\.com" with the wildcard "\*\.eu\.example\.com" and has the longest prefix the path falls under among the routes whose conditions hold/);
    assert.match(e.reason, /exact hosts come before wildcards, longer wildcards before shorter ones/);
    assert.match(e.reason, /passed over because a condition failed: "exact" \(method POST or PUT, query v present\), "exact-short" \(header x-tenant present\)/);
  });

  it('a host list: the exact entry of a route that also has a wildcard', () => {
    const e = explainLookup(table, 'eu.example.com', '/api', request('GET'));
    assert.deepEqual([e.route?.name, e.candidates[0]?.host, e.candidates[0]?.hostMatch], ['long-wild', 'eu.example.com', 'exact']);
  });

  it('no route because every prefix match has a failing condition', () => {
    const small = buildTable(snap, {}, [route('only', ['*.a.com'], '/x', { methods: ['DELETE'] })]);
    const e = explainLookup(small, 'b.a.com', '/x', request('GET'));
    assert.equal(e.route, undefined);
    assert.match(e.reason, /^no route matches: 1 route\(s\) for host "b\.a\.com" \(1 by wildcard\) and 0 for any host; the path falls under the prefix of 1, but a condition of each fails; passed over because a condition failed: "only" \(method DELETE\)$/);
  });

  it('HEAD on a GET route: the verdict shows the configured list, holds, and the text says GET includes HEAD', () => {
    const small = buildTable(snap, {}, [route('get', [], '/g', { methods: ['GET'] }), route('post', [], '/p', { methods: ['POST', 'GET'] }), route('both', [], '/b', { methods: ['GET', 'HEAD'] })]);
    const e = explainLookup(small, 'h', '/g', request('HEAD'));
    assert.equal(e.route?.name, 'get');
    assert.deepEqual(e.candidates.find((c) => c.chosen)?.conditions, [{ kind: 'method', name: null, expected: ['GET'], held: true, seen: ['HEAD'] }]);
    assert.match(e.reason, /its conditions hold \(method GET \(GET includes HEAD\)\);/);
    assert.match(explainLookup(small, 'h', '/p', request('HEAD')).reason, /\(method GET or POST \(GET includes HEAD\)\);/);
    assert.match(explainLookup(small, 'h', '/b', request('HEAD')).reason, /\(method GET or HEAD\);/);
    assert.match(explainLookup(small, 'h', '/g', request('PUT')).reason, /"get" \(method GET \(GET includes HEAD\)\)/);
  });

  it('the route the explanation names is always lookup\'s', () => {
    const hosts = [undefined, 'x.eu.example.com', 'y.eu.example.com', 'eu.example.com', 'z.example.com', 'other.org'];
    const paths = ['/api', '/api/x?v=1', '/', '/other?v'];
    const requests = [undefined, request('POST', [['x-canary', '1']]), request('PUT', [['x-canary', '1'], ['x-tenant', 'a']]), request('GET', [['X-Tenant', '']])];
    for (const host of hosts) {
      for (const path of paths) {
        for (const facts of requests) assert.equal(explainLookup(table, host, path, facts).route, table.lookup(host, path, facts), `${host} ${path}`);
      }
    }
  });

  it('a host listed twice in one route is refused', () => {
    assert.throws(() => buildTable(snap, {}, [route('twice', ['a.com', 'A.com.'], '/')]), /route "twice": host "A\.com\." is listed twice/);
  });
});
