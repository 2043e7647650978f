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
  // Repeated slashes.
  ['//', '/'],
  ['//a', '/a'],
  ['/a//b///c', '/a/b/c'],
  ['/a//', '/a/'],
  ['/a//b?x=//y', '/a/b?x=//y'],
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
  // Above the root: refused, not clamped.
  ['/..', PATH_REJECTIONS.aboveRoot],
  ['/../x', PATH_REJECTIONS.aboveRoot],
  ['/a/../../x', PATH_REJECTIONS.aboveRoot],
  ['/a/%2e%2e/%2E%2E/x', PATH_REJECTIONS.aboveRoot],
  ['//..//x', PATH_REJECTIONS.aboveRoot],
  // Dot segments with parameters (servlet containers strip `;...`).
  ['/public/..;/admin', PATH_REJECTIONS.dotParameters],
  ['/public/.;x/admin', PATH_REJECTIONS.dotParameters],
  ['/public/%2e%2e;/admin', PATH_REJECTIONS.dotParameters],
  // Percent-encoding: unreserved decoded, the rest kept with upper-case hex.
  ['/%41%42%43', '/ABC'],
  ['/%7e%7E%2D%5F%2e', '/~~-_.'],
  ['/%30%39%61%7a', '/09az'],
  ['/a%2Fb', '/a%2Fb'],
  ['/a%2fb', '/a%2Fb'],
  ['/a%2f..%2fb', '/a%2F..%2Fb'],
  ['/%2e%2e%2fadmin', '/..%2Fadmin'],
  ['/%e2%82%ac', '/%E2%82%AC'],
  ['/a%20b', '/a%20b'],
  ['/a%3bb', '/a%3Bb'],
  ['/a%5cb', '/a%5Cb'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/%2E./admin', '/admin'],
  ['/public/%2e/admin', '/public/admin'],
  ['/%25', '/%25'],
  ['/%2541', '/%2541'],
  ['/%E9t%E9', '/%E9t%E9'],
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
  ['/%e0%a4%85', '/%E0%A4%85'], // a valid 3-byte sequence (U+0905)
  ['/%f0%9f%98%80', '/%F0%9F%98%80'], // a valid 4-byte sequence (U+1F600)
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
    const target = '/users/42/orders?limit=10&from=/x';
    assert.equal(needsNormalization(target), false);
    assert.equal(normalizeRequestTarget(target), target);
  });

  it('takes the slow path only for %, \\, #, // and /. in the path', () => {
    const fast = ['/', '/a/b/c', '/a.b', '/a./b', '/a?x=%zz&y=//z/../', '/a;x/b', '/a?b=\\'];
    const slow = ['/%41', '/a//b', '/a/./b', '/a/../b', '/a/.', '/a/..', '/a\\b', '/a#b', '/a?x#y', '/a/..;/b', '/.?x'];
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
