import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { explainLookup } from '../../src/model/explain.js';
import { discovery, instance, template } from './fixtures.js';

const snap = discovery([
  instance('api', 'api-1', { port: 9001 }),
  instance('web', 'web-1', { port: 9101 }),
]);
const table = buildTable(snap, {}, [
  template('api-host', '/api', [{ service: 'api', weight: 1 }], { host: 'api.example.com' }),
  template('api-host-v2', '/api/v2', [{ service: 'api', weight: 1 }], { host: 'api.example.com' }),
  template('api-any', '/api', [{ service: 'api', weight: 1 }]),
  template('root', '/', [{ service: 'web', weight: 1 }]),
]);

describe('explainLookup: why a request goes where it goes', () => {
  it('names the route lookup picks, for every kind of request', () => {
    const cases: [string | undefined, string][] = [
      ['api.example.com', '/api/v2/x'], ['API.example.com:8443', '/api/v1'], ['api.example.com', '/apix'],
      ['other.example', '/api/x'], [undefined, '/api'], [undefined, '/'], ['api.example.com', '/api/v2?q=1'],
    ];
    for (const [host, path] of cases) {
      assert.equal(explainLookup(table, host, path).route, table.lookup(host, path), `${host} ${path}`);
    }
  });

  it('lists the host\'s routes first, then the routes for any host, longest prefix first, with the chosen one marked', () => {
    const e = explainLookup(table, 'API.Example.com:443', '/api/v1/users');
    assert.equal(e.host, 'api.example.com');
    assert.deepEqual(e.candidates.map((c) => [c.route, c.prefixMatches, c.chosen]), [
      ['api-host-v2', false, false],
      ['api-host', true, true],
      ['api-any', true, false],
      ['root', true, false],
    ]);
    assert.match(e.reason, /route "api-host" is for host "api\.example\.com" and has the longest prefix the path falls under \("\/api"\)/);
  });

  it('a host with routes but no matching prefix falls back to the routes for any host, and says so', () => {
    const e = explainLookup(table, 'api.example.com', '/static/app.js');
    assert.equal(e.route?.name, 'root');
    assert.match(e.reason, /serves any host .*none of the 2 route\(s\) for host "api\.example\.com" has a prefix the path falls under/);
  });

  it('a host without routes of its own, and a request without a Host', () => {
    assert.match(explainLookup(table, 'other.example', '/api/x').reason, /route "api-any" serves any host .*host "other\.example" has no routes of its own/);
    const none = explainLookup(table, undefined, '/api');
    assert.equal(none.host, null);
    assert.match(none.reason, /the request has no Host, so only routes for any host apply/);
    assert.deepEqual(none.candidates.map((c) => c.route), ['api-any', 'root']);
  });

  it('no route: counts what was considered and explains segment boundaries', () => {
    const small = buildTable(snap, {}, [template('api-host', '/api', [{ service: 'api', weight: 1 }], { host: 'api.example.com' })]);
    const e = explainLookup(small, 'api.example.com', '/apix');
    assert.equal(e.route, undefined);
    assert.deepEqual(e.candidates.map((c) => [c.route, c.prefixMatches, c.chosen]), [['api-host', false, false]]);
    assert.match(e.reason, /^no route matches: 1 route\(s\) for host "api\.example\.com" and 0 for any host, and none has a prefix/);
    assert.match(explainLookup(small, undefined, '/api').reason, /no Host, so only the 0 route\(s\) for any host apply/);
    assert.equal(explainLookup(buildTable(snap, {}, []), 'a', '/').reason, 'the routing table has no routes');
  });
});
