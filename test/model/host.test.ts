import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostEntryMatch, hostKey, hostProblem, normalizeHost } from '../../src/model/host.js';

describe('hostKey (Host header → lookup key)', () => {
  const cases: [string, string][] = [
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com:8080', 'api.example.com'],
    ['API.example.com:80', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['api.example.com.:443', 'api.example.com'],
    ['[::1]', '[::1]'],
    ['[::1]:8080', '[::1]'],
    ['[FE80::1]:80', '[fe80::1]'],
    ['127.0.0.1:3000', '127.0.0.1'],
    ['', ''],
  ];
  for (const [input, expected] of cases) it(`${JSON.stringify(input)} → ${expected}`, () => assert.equal(hostKey(input), expected));
});

describe('hostProblem (configured hosts)', () => {
  const ok = ['api.example.com', 'API.example.com', 'users.localhost', 'my_svc.localhost', 'localhost', '[::1]', '[2001:db8::1]', 'example.com.', '10.0.0.1'];
  for (const h of ok) it(`accepts ${h}`, () => assert.equal(hostProblem(h), undefined));
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['api.example.com:8080', /port/],
    ['[::1]:8080', /IPv6/],
    ['a b.com', /not a valid host/],
    ['a/b', /not a valid host/],
    ['a..b', /not a valid host/],
    ['.a', /not a valid host/],
  ];
  for (const [h, reason] of bad) it(`rejects ${JSON.stringify(h)}`, () => assert.match(hostProblem(h) ?? '', reason));
  it('normalizeHost lower-cases and drops a trailing dot', () => assert.equal(normalizeHost('Example.COM.'), 'example.com'));
});

describe('wildcard hosts', () => {
  const ok: [string, string][] = [
    ['*.example.com', '*.example.com'],
    ['*.Partners.Example.COM', '*.partners.example.com'],
    ['*.example.com.', '*.example.com'],
    ['*.localhost', '*.localhost'],
    ['*.my_svc.internal', '*.my_svc.internal'],
  ];
  for (const [h, key] of ok) {
    it(`accepts ${h} (key ${key})`, () => {
      assert.equal(hostProblem(h), undefined);
      assert.equal(normalizeHost(h), key);
    });
  }
  const bad: [string, RegExp][] = [
    ['*', /bare "\*" is not a host/],
    ['*.', /a wildcard is "\*\." followed by a host name/],
    ['*..', /a wildcard is/],
    ['a.*.com', /a wildcard is/],
    ['*foo.com', /a wildcard is/],
    ['foo*.com', /a wildcard is/],
    ['*.*.com', /only the first label may be "\*"/],
    ['**.com', /a wildcard is/],
    ['*.example.com:8080', /must not carry a port/],
    ['*.[::1]', /IPv6/],
    ['*.a..b', /"a\.\.b" is not a valid host name/],
    ['*.a b', /not a valid host name/],
  ];
  for (const [h, reason] of bad) it(`rejects ${JSON.stringify(h)}`, () => assert.match(hostProblem(h) ?? '', reason));

  const matches: [string, string, 'exact' | 'wildcard' | undefined][] = [
    ['*.partners.example.com', 'a.partners.example.com', 'wildcard'],
    ['*.partners.example.com', 'a.b.partners.example.com', 'wildcard'],
    ['*.partners.example.com', 'partners.example.com', undefined],
    ['*.partners.example.com', 'xpartners.example.com', undefined],
    ['*.partners.example.com', '.partners.example.com', undefined],
    ['*.partners.example.com', 'example.com', undefined],
    ['*.localhost', 'api.localhost', 'wildcard'],
    ['*.localhost', 'localhost', undefined],
    ['api.example.com', 'api.example.com', 'exact'],
    ['api.example.com', 'x.api.example.com', undefined],
  ];
  for (const [entry, key, expected] of matches) {
    it(`${entry} vs ${key} → ${expected ?? 'no match'}`, () => assert.equal(hostEntryMatch(entry, key), expected));
  }
});
