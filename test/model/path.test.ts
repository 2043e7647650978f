import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchesPrefix, normalizePrefix, pathEnd, prefixProblem } from '../../src/model/path.js';

describe('normalizePrefix', () => {
  const cases: [string, string][] = [
    ['', '/'],
    ['/', '/'],
    ['///', '/'],
    ['users', '/users'],
    ['/users', '/users'],
    ['/users/', '/users'],
    ['/users//', '/users'],
    ['/a/b/c/', '/a/b/c'],
    ['a/b', '/a/b'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected}`, () => assert.equal(normalizePrefix(input), expected));
  }
});

describe('prefixProblem', () => {
  const ok = ['/', '', '/users', '/users/', 'users', '/a/b-c_d/e.f', '/v1.2', '/%20x'];
  for (const p of ok) it(`accepts ${JSON.stringify(p)}`, () => assert.equal(prefixProblem(p), undefined));
  const bad: [string, RegExp][] = [
    ['/a//b', /empty segment/],
    ['//a', /empty segment/],
    ['/a?b', /"\?" or "#"/],
    ['/a#b', /"\?" or "#"/],
    ['/a b', /whitespace/],
    ['/a\tb', /whitespace/],
    ['/a/../b', /"\.\." segment/],
    ['/./b', /"\." segment/],
  ];
  for (const [p, reason] of bad) {
    it(`rejects ${JSON.stringify(p)}`, () => assert.match(prefixProblem(p) ?? '', reason));
  }
});

describe('pathEnd', () => {
  const cases: [string, number][] = [['/a', 2], ['/a?x', 2], ['/a#f', 2], ['/a?x#f', 2], ['/a#f?x', 2], ['/abc?', 4], ['?', 0]];
  for (const [p, n] of cases) it(`${p} → ${n}`, () => assert.equal(pathEnd(p), n));
});

describe('matchesPrefix (segment boundary)', () => {
  const cases: [string, string, boolean][] = [
    ['/users', '/users', true],
    ['/users/', '/users', true],
    ['/users/1', '/users', true],
    ['/users?x=1', '/users', true],
    ['/users#top', '/users', true],
    ['/usersx', '/users', false],
    ['/user', '/users', false],
    ['/Users', '/users', false],
    ['/a?/users', '/users', false],
    ['/u?sers', '/users', false],
    ['/anything', '/', true],
    ['/', '/', true],
    ['*', '/', false],
    ['', '/', false],
    ['/a/b/c', '/a/b', true],
    ['/a/bc', '/a/b', false],
  ];
  for (const [path, prefix, expected] of cases) {
    it(`${path} ${expected ? 'matches' : 'does not match'} ${prefix}`, () => assert.equal(matchesPrefix(path, prefix), expected));
  }
});
