import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { needsNormalization, normalizeRequestTarget, PATH_REJECTIONS, type PathRejection } from '../../src/proxy/edge/path-normalize.js';

/** [request target, normalised target or the rejection]. */
const CASES: [string, string | PathRejection][] = [
  // Untouched: the fast path.
  ['/', '/'],
  ['/users/1', '/users/1'],
  ['/users/1/', '/users/1/'],
  ['/a.b/c..d/...', '/a.b/c..d/...'],
  ['/.well-known/acme-challenge/x', '/.well-known/acme-challenge/x'],
  ['/..foo/.bar', '/..foo/.bar'],
  ['/q?x=/../..//%zz#', PATH_REJECTIONS.fragment],
  ['/q?x=/../..//%zz', '/q?x=/../..//%zz'],
  ['/a;b=c/d', '/a;b=c/d'],
  // Empty segments are kept as sent (Envoy's merge_slashes is off by default).
  ['//', '//'],
  ['//a', '//a'],
  ['/a//b///c', '/a//b///c'],
  ['/a//', '/a//'],
  ['/a//b?x=//y', '/a//b?x=//y'],
  ['/fetch/https://example.com/x', '/fetch/https://example.com/x'],
  // Dot segments (RFC 3986 §5.2.4).
  ['/.', '/'],
  ['/./', '/'],
  ['/a/.', '/a/'],
  ['/a/./b', '/a/b'],
  ['/a/b/..', '/a/'],
  ['/a/b/../', '/a/'],
  ['/a/b/../c', '/a/c'],
  ['/a/b/../../c', '/c'],
  ['/a/..', '/'],
  ['/public/../admin', '/admin'],
  ['/public/./../admin/./x/..', '/admin/'],
  ['/a/b/..?q=1', '/a/?q=1'],
  ['/a/./b?q=/./', '/a/b?q=/./'],
  // ... alongside kept empty segments: `..` removes the empty segment before it, as in the RFC.
  ['/a//../b', '/a/b'],
  ['/a//./b', '/a//b'],
  ['//..//x', '//x'],
  ['/a/b//..', '/a/b/'],
  ['/fetch/https://example.com/../y', '/fetch/https://y'],
  // Above the root: refused, not clamped.
  ['/..', PATH_REJECTIONS.aboveRoot],
  ['/../x', PATH_REJECTIONS.aboveRoot],
  ['/a/../../x', PATH_REJECTIONS.aboveRoot],
  ['/a/%2e%2e/%2E%2E/x', PATH_REJECTIONS.aboveRoot],
  ['/%2e%2e', PATH_REJECTIONS.aboveRoot],
  ['//../../x', PATH_REJECTIONS.aboveRoot],
  // Dot segments with parameters (servlet containers strip `;...`).
  ['/public/..;/admin', PATH_REJECTIONS.dotParameters],
  ['/public/.;x/admin', PATH_REJECTIONS.dotParameters],
  ['/public/%2e%2e;/admin', PATH_REJECTIONS.dotParameters],
  ['/public/.%2E;/admin', PATH_REJECTIONS.dotParameters],
  // Percent-encoding: kept as sent (no decoding, no re-casing), only validated.
  ['/%41%42%43', '/%41%42%43'],
  ['/%7e%7E%2D%5F%2e', '/%7e%7E%2D%5F%2e'],
  ['/%30%39%61%7a', '/%30%39%61%7a'],
  ['/a%2Fb', '/a%2Fb'],
  ['/a%2fb', '/a%2fb'],
  ['/a%2f..%2fb', '/a%2f..%2fb'],
  ['/%2e%2e%2fadmin', '/%2e%2e%2fadmin'],
  ['/%e2%82%ac', '/%e2%82%ac'],
  ['/a%20b', '/a%20b'],
  ['/a%3bb', '/a%3bb'],
  ['/a%5cb', '/a%5cb'],
  ['/%25', '/%25'],
  ['/%2541', '/%2541'],
  ['/%E9t%E9', '/%E9t%E9'],
  // ... except that an encoded dot in a segment made only of dots is a dot (RFC 3986 §6.2.2.2).
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/%2E./admin', '/admin'],
  ['/public/.%2e/admin', '/admin'],
  ['/public/%2e/admin', '/public/admin'],
  ['/public/%2e', '/public/'],
  ['/a%2eb/%2e%2e%2e/.%2ex', '/a%2eb/%2e%2e%2e/.%2ex'],
  ['/%41/%2e%2e/%42//c', '/%42//c'],
  // Invalid percent-encoding.
  ['/%', PATH_REJECTIONS.percentEncoding],
  ['/%4', PATH_REJECTIONS.percentEncoding],
  ['/%zz', PATH_REJECTIONS.percentEncoding],
  ['/%g1', PATH_REJECTIONS.percentEncoding],
  ['/a%2', PATH_REJECTIONS.percentEncoding],
  ['/%%41', PATH_REJECTIONS.percentEncoding],
  // NUL and overlong UTF-8.
  ['/a%00b', PATH_REJECTIONS.nul],
  ['/%c0%ae%c0%ae/admin', PATH_REJECTIONS.overlong],
  ['/%C0%AF', PATH_REJECTIONS.overlong],
  ['/%c1%9c', PATH_REJECTIONS.overlong],
  ['/%e0%80%ae', PATH_REJECTIONS.overlong],
  ['/%f0%80%80%ae', PATH_REJECTIONS.overlong],
  ['/%e0%a4%85', '/%e0%a4%85'], // a valid 3-byte sequence (U+0905)
  ['/%f0%9f%98%80', '/%f0%9f%98%80'], // a valid 4-byte sequence (U+1F600)
  // Backslash and fragments.
  ['/a\\b', PATH_REJECTIONS.backslash],
  ['/public\\..\\admin', PATH_REJECTIONS.backslash],
  ['/a#b', PATH_REJECTIONS.fragment],
  ['/a?b#c', PATH_REJECTIONS.fragment],
  ['/#', PATH_REJECTIONS.fragment],
];

describe('path normalisation', () => {
  for (const [input, expected] of CASES) {
    it(`${JSON.stringify(input)} → ${typeof expected === 'string' ? JSON.stringify(expected) : `refused (${expected.reason})`}`, () => {
      assert.equal(normalizeRequestTarget(input), expected);
    });
  }

  it('returns the same string when nothing changes (no allocation on the fast path)', () => {
    for (const kept of ['/a%2fb//c%41?x=1', '/.well-known//x', '/a%2eb']) assert.equal(normalizeRequestTarget(kept), kept, kept);
    const target = '/users/42/orders?limit=10&from=/x';
    assert.equal(needsNormalization(target), false);
    assert.equal(normalizeRequestTarget(target), target);
  });

  it('takes the slow path only for %, \\, # and /. in the path', () => {
    const fast = ['/', '/a/b/c', '/a.b', '/a./b', '/a?x=%zz&y=//z/../', '/a;x/b', '/a?b=\\', '/a//b', '//'];
    const slow = ['/%41', '/a/./b', '/a/../b', '/a/.', '/a/..', '/a\\b', '/a#b', '/a?x#y', '/a/..;/b', '/.?x'];
    for (const target of fast) assert.equal(needsNormalization(target), false, target);
    for (const target of slow) assert.equal(needsNormalization(target), true, target);
  });

  it('is idempotent: a normalised target normalises to itself', () => {
    for (const [input] of CASES) {
      const once = normalizeRequestTarget(input);
      if (typeof once !== 'string') continue;
      assert.equal(normalizeRequestTarget(once), once, input);
    }
  });
});
