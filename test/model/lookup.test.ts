import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import { hostKey } from '../../src/model/host.js';
import { matchesPrefix } from '../../src/model/path.js';
import type { Route, RoutingTable } from '../../src/model/types.js';
import { discovery, instance, template } from './fixtures.js';

const snap = discovery([instance('svc', 'svc-1')]);
const to = [{ service: 'svc', weight: 1 }];

describe('lookup without a host-less root route', () => {
  const table = buildTable(snap, {}, [
    template('host-users', '/users', to, { host: 'API.example.com' }),
    template('host-root', '/', to, { host: 'api.example.com' }),
    template('users', '/users', to),
    template('users-admin', '/users/admin/', to),
    template('static', '/static', to),
    template('v6', '/v6', to, { host: '[::1]' }),
    template('deep', '/a/b/c/d', to),
  ]);
  const cases: [string | undefined, string, string | undefined][] = [
    ['api.example.com', '/users/1', 'host-users'],
    ['API.Example.COM:8080', '/users', 'host-users'],
    ['api.example.com.', '/users', 'host-users'],
    ['api.example.com', '/other', 'host-root'],
    ['api.example.com', '/users/admin', 'host-users'], // a host route beats a longer host-less one
    ['other.com', '/users/admin/x', 'users-admin'],
    ['other.com', '/users/admin', 'users-admin'],
    ['other.com', '/users/adminx', 'users'],
    ['other.com', '/users', 'users'],
    ['other.com', '/users/', 'users'],
    ['other.com', '/users?x=1', 'users'],
    ['other.com', '/users/?x=1', 'users'],
    ['other.com', '/users#frag', 'users'],
    ['other.com', '/static?q=/users/admin', 'static'],
    ['other.com', '/usersx', undefined],
    ['other.com', '/Users', undefined],
    ['other.com', '/', undefined],
    ['other.com', '', undefined],
    ['other.com', '*', undefined],
    ['other.com', '/x?/users', undefined],
    [undefined, '/users/2', 'users'],
    [undefined, '/nothing', undefined],
    ['[::1]:8080', '/v6/x', 'v6'],
    ['[::1]', '/v6', 'v6'],
    ['[::1]', '/users', 'users'], // host has routes, none matches: fall back to host-less
    ['other.com', '/a/b/c/d/e', 'deep'],
    ['other.com', '/a/b/c', undefined],
  ];
  for (const [host, path, expected] of cases) {
    it(`${host ?? '(no host)'} ${JSON.stringify(path)} → ${expected ?? '404'}`, () => {
      assert.equal(table.lookup(host, path)?.name, expected);
    });
  }
});

describe('lookup with a host-less root route', () => {
  const table = buildTable(snap, {}, [
    template('root', '/', to),
    template('api', '/api', to, { host: 'api.example.com' }),
  ]);
  const cases: [string | undefined, string, string | undefined][] = [
    ['x.com', '/anything/at/all', 'root'],
    ['x.com', '/', 'root'],
    ['x.com', '/?q=1', 'root'],
    [undefined, '/api', 'root'],
    ['api.example.com', '/api/1', 'api'],
    ['api.example.com', '/apix', 'root'],
    ['api.example.com', '/', 'root'],
  ];
  for (const [host, path, expected] of cases) {
    it(`${host ?? '(no host)'} ${JSON.stringify(path)} → ${expected ?? '404'}`, () => {
      assert.equal(table.lookup(host, path)?.name, expected);
    });
  }
});

describe('lookup agrees with a brute-force reference', () => {
  const hosts = ['a.com', 'b.com', undefined];
  const prefixes = ['/', '/x', '/x/y', '/xy', '/x/y/z', '/y', '/y/x'];
  const templates = [];
  let n = 0;
  // A deterministic subset of host × prefix routes.
  for (const host of hosts) {
    for (const p of prefixes) {
      if ((n++ * 7) % 3 === 0) continue;
      templates.push(template(`r${n}`, p, to, host === undefined ? {} : { host }));
    }
  }
  const table = buildTable(snap, {}, templates);

  function reference(t: RoutingTable, host: string | undefined, path: string): Route | undefined {
    const key = host === undefined ? undefined : hostKey(host);
    const best = (candidates: readonly Route[]): Route | undefined =>
      candidates.filter((r) => matchesPrefix(path, r.path)).sort((a, b) => b.path.length - a.path.length)[0];
    return best(t.routes.filter((r) => key !== undefined && r.hosts.includes(key))) ?? best(t.routes.filter((r) => r.hosts.length === 0));
  }

  it('on 2,000 generated requests', () => {
    let seed = 12345;
    const next = (k: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % k;
    };
    const pieces = ['x', 'y', 'xy', 'z', '', 'X'];
    const tails = ['', '/', '?q=/x/y', '#f', '?'];
    let matched = 0;
    for (let i = 0; i < 2000; i++) {
      const depth = 1 + next(4);
      let path = '';
      for (let d = 0; d < depth; d++) path += `/${pieces[next(pieces.length)]}`;
      path += tails[next(tails.length)];
      const host = [...hosts, 'A.COM:80', 'c.com'][next(5)];
      const got = table.lookup(host, path);
      assert.equal(got?.name, reference(table, host, path)?.name, `${host} ${path}`);
      if (got !== undefined) matched++;
    }
    assert.ok(matched > 500, `most generated requests match a route (${matched})`);
  });
});
