import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrefixRewrite } from '../../src/proxy/http/rewrite.js';

/** `strip` is a prefix replaced by nothing (rewrite.ts, the one implementation; no strip: the path as is). */
const stripPath = (path: string, strip: string | undefined): string => (strip === undefined ? path : new PrefixRewrite(strip, '/').apply(path));

describe('strip (PrefixRewrite to /)', () => {
  const cases: [string, string | undefined, string][] = [
    ['/users/1?a=b', '/users', '/1?a=b'],
    ['/users', '/users', '/'],
    ['/users/', '/users', '/'],
    ['/users?x=1', '/users', '/?x=1'],
    ['/users/a/b', '/users', '/a/b'],
    ['/api/v1/x', '/api/v1', '/x'],
    ['/usersx', '/users', '/usersx'],
    ['/other/1', '/users', '/other/1'],
    ['/users/1', undefined, '/users/1'],
    ['/a?/users', '/users', '/a?/users'],
    ['/users//x', '/users', '//x'],
  ];
  for (const [path, strip, expected] of cases) {
    it(`${path} strip ${String(strip)} → ${expected}`, () => assert.equal(stripPath(path, strip), expected));
  }
  it('always returns a path starting with "/" for paths under the prefix', () => {
    for (const tail of ['', '/', '?', '?q', '/x', '/x/y?z']) {
      assert.equal(stripPath(`/p${tail}`, '/p').charCodeAt(0), 47, tail);
    }
  });
});
