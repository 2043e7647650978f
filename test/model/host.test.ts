import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostKey, hostProblem, normalizeHost } from '../../src/model/host.js';

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
    ['*.example.com', /wildcard/],
    ['a b.com', /not a valid host/],
    ['a/b', /not a valid host/],
    ['a..b', /not a valid host/],
    ['.a', /not a valid host/],
  ];
  for (const [h, reason] of bad) it(`rejects ${JSON.stringify(h)}`, () => assert.match(hostProblem(h) ?? '', reason));
  it('normalizeHost lower-cases and drops a trailing dot', () => assert.equal(normalizeHost('Example.COM.'), 'example.com'));
});
