/**
 * The gateway options parser (src/model/route-options.ts): every field, its normal form and
 * defaults, every refusal with the field it names; KV layers (null, partial objects) and how
 * mergeRouteOptions applies them; placeholders filled and checked again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fillRouteOptions, isOptionsProblem, mergeRouteOptions, optionsConflict, optionsPlaceholderField, parseRouteOptions, parseRouteOptionsJson, readRouteOptions,
  MAX_MIRROR_REMOVE_HEADERS, MIRROR_DEFAULTS, type RouteOptionsLayer,
} from '../../src/model/route-options.js';
import type { RouteOptions } from '../../src/model/types.js';

function options(input: unknown): RouteOptions {
  const parsed = parseRouteOptions(input, 'template');
  assert.ok(typeof parsed !== 'string', String(parsed));
  return parsed;
}

function layer(input: unknown): RouteOptionsLayer {
  const parsed = parseRouteOptions(input, 'kv');
  assert.ok(typeof parsed !== 'string', String(parsed));
  return parsed;
}

describe('route options: accepted values and their normal form', () => {
  const cases: [string, unknown, RouteOptions][] = [
    ['nothing', {}, {}],
    ['match host string', { match: { host: 'api.example.com' } }, { hosts: ['api.example.com'] }],
    ['match host list and path', { match: { host: ['a.com', '*.b.com'], path: '/api/' } }, { hosts: ['a.com', '*.b.com'], path: '/api' }],
    ['methods upper-cased, sorted, once', { match: { methods: ['post', 'GET', 'get'] } }, { conditions: { methods: ['GET', 'POST'], headers: [], query: [] } }],
    ['header conditions lower-cased, sorted; "*" is presence', { match: { headers: { 'X-Tenant': '*', 'x-canary': '1' } } },
      { conditions: { methods: [], headers: [['x-canary', '1'], ['x-tenant', '*']], query: [] } }],
    ['query conditions kept as written, sorted', { match: { query: { beta: 'true', Debug: '*' } } },
      { conditions: { methods: [], headers: [], query: [['Debug', '*'], ['beta', 'true']] } }],
    ['empty condition maps are no conditions', { match: { headers: {}, query: {} } }, {}],
    ['rewrite path normalised', { rewrite: { path: '/v2/' } }, { rewrite: { path: '/v2' } }],
    ['rewrite path / (strip)', { rewrite: { path: '/' } }, { rewrite: { path: '/' } }],
    ['rewrite regex with groups, ?query and $$', { rewrite: { regex: '^/api/users/([0-9]+)/(.*)$', to: '/users/$1/$2?v=$$1' } },
      { rewrite: { regex: '^/api/users/([0-9]+)/(.*)$', to: '/users/$1/$2?v=$$1' } }],
    ['rewrite to starting with a group', { rewrite: { regex: '^/api(/.*)$', to: '$1' } }, { rewrite: { regex: '^/api(/.*)$', to: '$1' } }],
    ['rewrite host lower-cased, with port', { rewrite: { host: 'Internal.Example.com:8443' } }, { rewrite: { host: 'internal.example.com:8443' } }],
    ['rewrite host IPv6', { rewrite: { host: '[::1]:8080' } }, { rewrite: { host: '[::1]:8080' } }],
    ['header edits', { headers: { request: { set: { 'X-Gateway': 'switchyard', 'x-tab': 'a\tb' }, remove: ['X-Debug'] }, response: { remove: ['server'] } } },
      { headers: { request: { set: [['x-gateway', 'switchyard'], ['x-tab', 'a\tb']], remove: ['x-debug'] }, response: { set: [], remove: ['server'] } } }],
    ['header edits of one direction', { headers: { response: { set: { 'strict-transport-security': 'max-age=31536000' } } } },
      { headers: { request: undefined, response: { set: [['strict-transport-security', 'max-age=31536000']], remove: [] } } }],
    ['sticky with ttl', { sticky: { cookie: 'sy_affinity', ttlMs: '1h' } }, { sticky: { cookie: 'sy_affinity', ttlMs: 3_600_000 } }],
    ['sticky session cookie by default', { sticky: { cookie: 'sid' } }, { sticky: { cookie: 'sid', ttlMs: 0 } }],
    ['mirror defaults', { mirror: { service: 'shadow' } }, { mirror: { service: 'shadow', ...MIRROR_DEFAULTS } }],
    ['mirror every field', { mirror: { service: 'shadow', tag: 'v2', percent: 0.5, keepAuth: true, maxBodyBytes: '1mb', timeoutMs: '250ms', maxInFlight: 3 } },
      { mirror: { service: 'shadow', tag: 'v2', percent: 0.5, keepAuth: true, maxBodyBytes: 1_048_576, timeoutMs: 250, maxInFlight: 3 } }],
    ['mirror removeHeaders lower-cased, in order; authorization and cookie may be listed',
      { mirror: { service: 'shadow', keepAuth: true, removeHeaders: ['X-Api-Key', 'cookie', 'authorization'] } },
      { mirror: { service: 'shadow', ...MIRROR_DEFAULTS, keepAuth: true, removeHeaders: ['x-api-key', 'cookie', 'authorization'] } }],
    ['mirror removeHeaders [] is none', { mirror: { service: 'shadow', removeHeaders: [] } }, { mirror: { service: 'shadow', ...MIRROR_DEFAULTS } }],
    ['redirect defaults: 302, query dropped', { redirect: { to: 'https://www.example.com/home' } }, { redirect: { to: 'https://www.example.com/home', status: 302, keepQuery: false } }],
    ['redirect placeholders', { redirect: { to: 'https://{host}:8443/new{path}', status: 308, keepQuery: true } },
      { redirect: { to: 'https://{host}:8443/new{path}', status: 308, keepQuery: true } }],
    ['redirect to a local path', { redirect: { to: '/home', status: 301 } }, { redirect: { to: '/home', status: 301, keepQuery: false } }],
    ['{{service}} where it is allowed', {
      match: { host: '{{service}}.example.com', path: '/{{service}}' }, rewrite: { host: '{{service}}.internal' },
      headers: { request: { set: { 'x-service': '{{service}}' } } }, mirror: { service: '{{service}}-shadow', tag: '{{service}}' }, redirect: undefined,
    }, {
      hosts: ['{{service}}.example.com'], path: '/{{service}}', rewrite: { host: '{{service}}.internal' },
      headers: { request: { set: [['x-service', '{{service}}']], remove: [] }, response: undefined },
      mirror: { service: '{{service}}-shadow', tag: '{{service}}', ...MIRROR_DEFAULTS },
    }],
  ];
  for (const [title, input, expected] of cases) {
    it(title, () => assert.deepEqual(options(input), expected));
  }

  it('parsing the normal form of a field again gives it back (the KV view is valid input)', () => {
    const once = options({ sticky: { cookie: 'a', ttlMs: 5000 }, mirror: { service: 's', maxBodyBytes: 100 }, redirect: { to: '/x', status: 307 } });
    assert.deepEqual(options(JSON.parse(JSON.stringify(once))), once);
  });
});

describe('route options: refusals name the field', () => {
  const cases: [unknown, string, RegExp][] = [
    [[], '', /expected an object/],
    [{ bogus: 1 }, 'bogus', /unknown field \(known: match, rewrite, headers, sticky, mirror, redirect\)/],
    [{ match: { hostname: 'a' } }, 'match.hostname', /unknown field/],
    [{ match: { host: [] } }, 'match.host', /non-empty list of hosts/],
    [{ match: { host: ['a', ''] } }, 'match.host.1', /must not be empty/],
    [{ match: { path: 'api' } }, 'match.path', /must start with "\/"/],
    [{ match: { path: '/a//b' } }, 'match.path', /empty segment/],
    [{ match: { methods: 'GET' } }, 'match.methods', /non-empty list of methods/],
    [{ match: { methods: [] } }, 'match.methods', /non-empty list/],
    [{ match: { methods: ['GE T'] } }, 'match.methods.0', /not an HTTP token/],
    [{ match: { methods: ['get', 'connect'] } }, 'match.methods.1', /CONNECT is refused before routing/],
    [{ match: { methods: ['TRACE'] } }, 'match.methods.0', /TRACE/],
    [{ match: { headers: { 'bad name': '1' } } }, 'match.headers.bad name', /not an HTTP token/],
    [{ match: { headers: { Host: 'a' } } }, 'match.headers.Host', /match\.host/],
    [{ match: { headers: { 'x-canary': 1 } } }, 'match.headers.x-canary', /expected a string .* quote numbers/],
    [{ match: { headers: { 'x-a': 'a\r\nb' } } }, 'match.headers.x-a', /control character/],
    [{ match: { headers: { 'X-A': '1', 'x-a': '2' } } }, 'match.headers.x-a', /given twice/],
    [{ match: { query: { '': '1' } } }, 'match.query.', /non-empty/],
    [{ match: { query: { q: true } } }, 'match.query.q', /expected a string/],
    [{ rewrite: {} }, 'rewrite', /expected path, regex and to, or host/],
    [{ rewrite: { path: '/a', regex: '^/a', to: '/b' } }, 'rewrite.path', /exclude each other/],
    [{ rewrite: { regex: '^/a' } }, 'rewrite.to', /required with regex/],
    [{ rewrite: { to: '/b' } }, 'rewrite.regex', /required with to/],
    [{ rewrite: { regex: '(a)\\1', to: '/x' } }, 'rewrite.regex', /not a valid RE2 pattern.*\\1/],
    [{ rewrite: { regex: '^/(?=a)', to: '/x' } }, 'rewrite.regex', /not a valid RE2 pattern.*\(\?=/],
    [{ rewrite: { regex: '(?<=a)b', to: '/x' } }, 'rewrite.regex', /not a valid RE2 pattern/],
    [{ rewrite: { regex: 'a{1001}', to: '/x' } }, 'rewrite.regex', /not a valid RE2 pattern/],
    [{ rewrite: { regex: `^/${'a'.repeat(512)}`, to: '/x' } }, 'rewrite.regex', /longer than 512/],
    [{ rewrite: { regex: '', to: '/x' } }, 'rewrite.regex', /must not be empty/],
    [{ rewrite: { regex: '^/(a)$', to: '/$2' } }, 'rewrite.to', /\$2 names a group the pattern does not have \(it has 1\)/],
    [{ rewrite: { regex: '^/(a)$', to: '/$0' } }, 'rewrite.to', /group number 1-9/],
    [{ rewrite: { regex: '^/(a)$', to: '/$x' } }, 'rewrite.to', /group number 1-9 or another "\$"/],
    [{ rewrite: { regex: '^/(a)$', to: 'x/$1' } }, 'rewrite.to', /must start with "\/" or a group/],
    [{ rewrite: { regex: '^/(a)$', to: '/a b' } }, 'rewrite.to', /whitespace/],
    [{ rewrite: { regex: '^/(a)$', to: '/a#b' } }, 'rewrite.to', /"#"/],
    [{ rewrite: { host: '*.example.com' } }, 'rewrite.host', /wildcard/],
    [{ rewrite: { host: 'a b' } }, 'rewrite.host', /not a valid host name/],
    [{ rewrite: { host: 'a.com:99999' } }, 'rewrite.host', /out of range/],
    [{ headers: { upstream: {} } }, 'headers.upstream', /unknown field \(known: request, response\)/],
    [{ headers: { request: { add: {} } } }, 'headers.request.add', /unknown field \(known: set, remove\)/],
    [{ headers: { request: { set: { 'x a': '1' } } } }, 'headers.request.set.x a', /not an HTTP token/],
    [{ headers: { request: { set: { 'x-a': 'a\nb' } } } }, 'headers.request.set.x-a', /CR, LF, NUL/],
    [{ headers: { request: { set: { 'x-a': 'a\u0000' } } } }, 'headers.request.set.x-a', /CR, LF, NUL/],
    [{ headers: { request: { set: { 'x-a': 5 } } } }, 'headers.request.set.x-a', /expected a string/],
    [{ headers: { request: { remove: 'x-a' } } }, 'headers.request.remove', /list of header names/],
    [{ headers: { request: { set: { 'x-a': '1' }, remove: ['X-A'] } } }, 'headers.request.remove.0', /edited twice/],
    ...['Connection', 'keep-alive', 'proxy-connection', 'TE', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'proxy-authenticate', 'proxy-authorization']
      .map((h): [unknown, string, RegExp] => [{ headers: { request: { remove: [h] } } }, 'headers.request.remove.0', new RegExp(`"${h.toLowerCase()}" cannot be edited: a hop-by-hop header`)]),
    [{ headers: { request: { set: { host: 'a' } } } }, 'headers.request.set.host', /"host" cannot be edited: .*rewrite\.host/],
    [{ headers: { response: { set: { 'Content-Length': '1' } } } }, 'headers.response.set.Content-Length', /"content-length" cannot be edited: the proxy frames/],
    [{ headers: { request: { remove: ['Expect'] } } }, 'headers.request.remove.0', /"expect" cannot be edited: the proxy answers Expect: 100-continue itself/],
    [{ headers: { request: { set: { 'x-forwarded-for': '1.2.3.4' } } } }, 'headers.request.set.x-forwarded-for', /forwarding headers/],
    [{ headers: { request: { remove: ['X-Forwarded-Proto'] } } }, 'headers.request.remove.0', /forwarding headers/],
    [{ headers: { request: { remove: ['forwarded'] } } }, 'headers.request.remove.0', /forwarding headers/],
    [{ headers: { response: { remove: ['x-request-id'] } } }, 'headers.response.remove.0', /request id/],
    [{ headers: { request: { set: { 'X-Replaced-Path': '/x' } } } }, 'headers.request.set.X-Replaced-Path', /rewrite changes the path/],
    [{ headers: { request: { set: { traceparent: '00-x' } } } }, 'headers.request.set.traceparent', /trace context/],
    [{ headers: { request: { remove: ['tracestate'] } } }, 'headers.request.remove.0', /trace context/],
    [{ sticky: {} }, 'sticky.cookie', /required/],
    [{ sticky: { cookie: 'a b' } }, 'sticky.cookie', /not a cookie-name token/],
    [{ sticky: { cookie: 'a;b' } }, 'sticky.cookie', /not a cookie-name token/],
    [{ sticky: { cookie: 'a', ttlMs: '2d' } }, 'sticky.ttlMs', /expected a duration/],
    [{ sticky: { cookie: 'a', ttlMs: '25h' } }, 'sticky.ttlMs', /at most 24h/],
    [{ sticky: { cookie: 'a', path: '/' } }, 'sticky.path', /unknown field/],
    [{ mirror: {} }, 'mirror.service', /required/],
    [{ mirror: { service: ' ' } }, 'mirror.service', /must not be empty/],
    [{ mirror: { service: 's', tag: '' } }, 'mirror.tag', /must not be empty/],
    [{ mirror: { service: 's', percent: 101 } }, 'mirror.percent', /from 0 to 100/],
    [{ mirror: { service: 's', percent: -1 } }, 'mirror.percent', /from 0 to 100/],
    [{ mirror: { service: 's', percent: '10%' } }, 'mirror.percent', /from 0 to 100/],
    [{ mirror: { service: 's', keepAuth: 'yes' } }, 'mirror.keepAuth', /true or false/],
    [{ mirror: { service: 's', maxBodyBytes: '17mb' } }, 'mirror.maxBodyBytes', /up to 16mb/],
    [{ mirror: { service: 's', timeoutMs: 0 } }, 'mirror.timeoutMs', /at least 1 ms/],
    [{ mirror: { service: 's', maxInFlight: 0 } }, 'mirror.maxInFlight', /integer from 1 to 10000/],
    [{ mirror: { service: 's', maxInFlight: 1.5 } }, 'mirror.maxInFlight', /integer/],
    [{ mirror: { service: 's', removeHeaders: 'x-api-key' } }, 'mirror.removeHeaders', /expected a list of header names/],
    [{ mirror: { service: 's', removeHeaders: ['x-a', 'x api key'] } }, 'mirror.removeHeaders.1', /"x api key" is not an HTTP token/],
    [{ mirror: { service: 's', removeHeaders: [7] } }, 'mirror.removeHeaders.0', /not an HTTP token/],
    [{ mirror: { service: 's', removeHeaders: ['{{service}}-key'] } }, 'mirror.removeHeaders.0', /not an HTTP token/],
    [{ mirror: { service: 's', removeHeaders: ['x-a', 'X-A'] } }, 'mirror.removeHeaders.1', /"x-a" is listed twice/],
    [{ mirror: { service: 's', removeHeaders: Array.from({ length: MAX_MIRROR_REMOVE_HEADERS + 1 }, (_, i) => `x-h${i}`) } }, 'mirror.removeHeaders', /at most 32 names, got 33/],
    [{ mirror: { service: 's', removeHeaders: ['X-Request-Id'] } }, 'mirror.removeHeaders.0', /"x-request-id" cannot be removed from the copy: the proxy's request id/],
    [{ mirror: { service: 's', removeHeaders: ['traceparent'] } }, 'mirror.removeHeaders.0', /"traceparent" cannot be removed from the copy: the trace context/],
    [{ mirror: { service: 's', removeHeaders: ['x-forwarded-for'] } }, 'mirror.removeHeaders.0', /cannot be removed from the copy: the proxy writes the forwarding headers/],
    [{ mirror: { service: 's', removeHeaders: ['Host'] } }, 'mirror.removeHeaders.0', /"host" cannot be removed from the copy/],
    [{ mirror: { service: 's', removeHeaders: ['x-a', 'connection'] } }, 'mirror.removeHeaders.1', /"connection" cannot be removed from the copy: a hop-by-hop header/],
    [{ mirror: { service: 's', removeHeaders: ['content-length'] } }, 'mirror.removeHeaders.0', /the proxy frames the message itself/],
    [{ mirror: { service: 's', removeHeaders: null } }, 'mirror.removeHeaders', /expected a list of header names, got null/],
    [{ redirect: {} }, 'redirect.to', /required/],
    [{ redirect: { to: 'ftp://x.com/' } }, 'redirect.to', /absolute http:\/\/ or https:\/\/ URL or a path/],
    [{ redirect: { to: 'www.example.com/home' } }, 'redirect.to', /absolute http/],
    [{ redirect: { to: '//evil.example/' } }, 'redirect.to', /"\/\/" is another host/],
    [{ redirect: { to: 'https://user:pw@a.com/' } }, 'redirect.to', /credentials/],
    [{ redirect: { to: 'https://{path}/x' } }, 'redirect.to', /no host \(\{path\} may only stand after it\)/],
    [{ redirect: { to: '/a/{query}' } }, 'redirect.to', /only placeholders are \{path\} and \{host\}/],
    [{ redirect: { to: '/a b' } }, 'redirect.to', /whitespace/],
    [{ redirect: { to: '/a\r\nSet-Cookie: x' } }, 'redirect.to', /whitespace or control/],
    [{ redirect: { to: '/x', status: 300 } }, 'redirect.status', /one of 301, 302, 303, 307, 308/],
    [{ redirect: { to: '/x', status: '301' } }, 'redirect.status', /one of/],
    [{ redirect: { to: '/x', keepQuery: 1 } }, 'redirect.keepQuery', /true or false/],
    [{ mirror: null }, 'mirror', /null is for KV overrides/],
    [{ match: { host: '{{other}}.a.com' } }, 'match.host', /unknown placeholder \(only \{\{service\}\} exists\)/],
    [{ rewrite: { regex: '^/{{service}}', to: '/x' } }, 'rewrite.regex', /placeholders are not allowed here/],
    [{ sticky: { cookie: '{{service}}' } }, 'sticky.cookie', /not a cookie-name token/],
    [{ match: { headers: { 'x-s': '{{service}}' } } }, 'match.headers.x-s', /placeholders are not allowed here/],
    [{ match: { query: { '{{service}}': '1' } } }, 'match.query.{{service}}', /placeholders are not allowed/],
  ];
  for (const [input, field, reason] of cases) {
    it(`${JSON.stringify(input)} → ${field}`, () => {
      const problem = readRouteOptions(input, 'template');
      const merged = isOptionsProblem(problem) ? problem : mergeRouteOptions(undefined, problem);
      assert.ok(isOptionsProblem(merged), `refused: ${JSON.stringify(merged)}`);
      assert.equal(merged.path.join('.'), field);
      assert.match(merged.message, reason);
      assert.equal(parseRouteOptions(input, 'template'), field === '' ? merged.message : `${field}: ${merged.message}`, 'the string form names the field');
    });
  }

  it('$path (Fabio\'s spelling) is literal text in a redirect, not a placeholder; header condition values are literal too', () => {
    assert.equal(options({ redirect: { to: '/a/$path' } }).redirect?.to, '/a/$path');
    assert.deepEqual(options({ match: { headers: { 'x-s': 'a{b}' } } }).conditions?.headers, [['x-s', 'a{b}']]);
  });

  it('a regex that would backtrack catastrophically elsewhere is accepted: RE2 matches it in linear time', () => {
    assert.equal(options({ rewrite: { regex: '^(a+)+$', to: '/x' } }).rewrite?.regex, '^(a+)+$');
  });
});

describe('route options: cross-field rules (optionsConflict)', () => {
  const cases: [unknown, string | undefined, string | undefined][] = [
    [{ redirect: { to: '/x' }, rewrite: { path: '/' } }, undefined, 'rewrite'],
    [{ redirect: { to: '/x' }, sticky: { cookie: 'a' } }, undefined, 'sticky'],
    [{ redirect: { to: '/x' }, mirror: { service: 's' } }, undefined, 'mirror'],
    [{ redirect: { to: '/x' }, headers: { request: { remove: ['x-a'] } } }, undefined, 'headers'],
    [{ redirect: { to: '/x' }, headers: { response: { remove: ['server'] } } }, undefined, 'headers'],
    [{ redirect: { to: '/x' } }, '/api', 'strip'],
    [{ rewrite: { path: '/v2' } }, '/api', 'rewrite'],
    [{ rewrite: { regex: '^/a', to: '/b' } }, '/api', 'rewrite'],
    [{ rewrite: { host: 'a.com' } }, '/api', undefined],
  ];
  for (const [input, strip, field] of cases) {
    it(`${JSON.stringify(input)} strip ${strip ?? '-'} → ${field ?? 'fine'}`, () => {
      const conflict = optionsConflict(options(input), strip);
      assert.equal(conflict?.path.join('.'), field);
      if (field !== undefined) assert.match(conflict!.message, field === 'rewrite' && strip !== undefined ? /strip and rewrite/ : /a redirect route sends nothing upstream/);
    });
  }
});

describe('route options: KV layers and merging', () => {
  const template = options({
    match: { methods: ['GET'], headers: { 'x-canary': '1' } },
    rewrite: { path: '/v2' },
    headers: { request: { set: { 'x-a': '1' } }, response: { remove: ['server'] } },
    sticky: { cookie: 'sid', ttlMs: '1h' },
    mirror: { service: 'shadow', tag: 'v2', percent: 10 },
  });
  const base: RouteOptions = { ...template, hosts: ['api.example.com'], path: '/api' };
  const merge = (input: unknown): RouteOptions => {
    const merged = mergeRouteOptions(base, layer(input));
    assert.ok(!isOptionsProblem(merged), JSON.stringify(merged));
    return merged;
  };

  it('an empty layer changes nothing', () => assert.deepEqual(merge({}), base));

  it('match fields merge one by one; null removes one (host: any host, path: /)', () => {
    const m = merge({ match: { query: { beta: 'true' }, methods: null } });
    assert.deepEqual(m.conditions, { methods: [], headers: [['x-canary', '1']], query: [['beta', 'true']] });
    assert.deepEqual(merge({ match: { host: ['b.com', '*.c.com'], path: '/v1' } }).hosts, ['b.com', '*.c.com']);
    assert.equal(merge({ match: { path: '/v1' } }).path, '/v1');
    assert.deepEqual(merge({ match: { host: null } }).hosts, []);
    assert.equal(merge({ match: { path: null } }).path, '/');
    assert.equal(merge({ match: { methods: null, headers: null } }).conditions, undefined, 'no condition left: none');
  });

  it('rewrite is replaced whole; header edits per direction; null removes', () => {
    assert.deepEqual(merge({ rewrite: { regex: '^/a(.*)$', to: '/b$1' } }).rewrite, { regex: '^/a(.*)$', to: '/b$1' });
    assert.equal(merge({ rewrite: null }).rewrite, undefined);
    const h = merge({ headers: { response: { set: { 'x-kv': '1' } } } }).headers;
    assert.deepEqual(h, { request: { set: [['x-a', '1']], remove: [] }, response: { set: [['x-kv', '1']], remove: [] } });
    assert.deepEqual(merge({ headers: { request: null } }).headers, { request: undefined, response: { set: [], remove: ['server'] } });
    assert.equal(merge({ headers: null }).headers, undefined);
  });

  it('sticky, mirror and redirect merge field by field; null removes; mirror.tag: null removes the tag', () => {
    assert.deepEqual(merge({ mirror: { percent: 50 } }).mirror, { ...base.mirror!, percent: 50 });
    assert.deepEqual(merge({ mirror: { tag: null } }).mirror, { service: 'shadow', ...MIRROR_DEFAULTS, percent: 10 });
    assert.equal(merge({ mirror: null }).mirror, undefined);
    assert.deepEqual(merge({ sticky: { ttlMs: '5m' } }).sticky, { cookie: 'sid', ttlMs: 300_000 });
    assert.equal(merge({ sticky: null }).sticky, undefined);
    assert.deepEqual(merge({ redirect: { to: '/new' } }).redirect, { to: '/new', status: 302, keepQuery: false });
  });

  it('mirror.removeHeaders: a KV list replaces the template\'s, other mirror fields stay; [] or null removes it', () => {
    const keyed = mergeRouteOptions(base, layer({ mirror: { removeHeaders: ['X-Api-Key'] } }));
    assert.ok(!isOptionsProblem(keyed), JSON.stringify(keyed));
    assert.deepEqual(keyed.mirror, { ...base.mirror!, removeHeaders: ['x-api-key'] });
    assert.deepEqual(mergeRouteOptions(keyed, layer({ mirror: { percent: 50 } })), { ...keyed, mirror: { ...keyed.mirror!, percent: 50 } }, 'kept under another field\'s change');
    assert.deepEqual(mergeRouteOptions(keyed, layer({ mirror: { removeHeaders: ['x-b'] } })), { ...keyed, mirror: { ...keyed.mirror!, removeHeaders: ['x-b'] } }, 'replaced whole');
    assert.deepEqual(mergeRouteOptions(keyed, layer({ mirror: { removeHeaders: null } })), base);
    assert.deepEqual(mergeRouteOptions(keyed, layer({ mirror: { removeHeaders: [] } })), base);
    assert.equal(parseRouteOptionsJson('{"mirror": {"removeHeaders": ["traceparent"]}}'), 'mirror.removeHeaders.0: header "traceparent" cannot be removed from the copy: the trace context is the proxy\'s (tracing)');
    assert.deepEqual(parseRouteOptionsJson('{"mirror": {"removeHeaders": ["x-api-key"]}}'), { mirror: { removeHeaders: ['x-api-key'] } });
  });

  it('a partial object needs the template to hold the required fields', () => {
    const { sticky: _sticky, ...withoutSticky } = base;
    for (const [input, field] of [[{ redirect: { status: 301 } }, 'redirect.to'], [{ sticky: { ttlMs: 1 } }, 'sticky.cookie']] as const) {
      const merged = mergeRouteOptions(withoutSticky, layer(input));
      assert.ok(isOptionsProblem(merged), `${JSON.stringify(input)} refused`);
      assert.equal(merged.path.join('.'), field);
      assert.equal(merged.message, 'required');
    }
    assert.deepEqual(mergeRouteOptions(base, layer({ sticky: { ttlMs: 1 } })), { ...base, sticky: { cookie: 'sid', ttlMs: 1 } }, 'the template has the cookie');
    const mirror = mergeRouteOptions(undefined, layer({ mirror: { percent: 5 } }));
    assert.ok(isOptionsProblem(mirror) && mirror.path.join('.') === 'mirror.service', 'a mirror needs its service');
  });

  it('KV values: null allowed, match null refused, placeholders are plain text', () => {
    assert.equal(parseRouteOptions({ match: null }, 'kv'), 'match: expected an object, got null');
    assert.deepEqual(parseRouteOptions({ mirror: { service: '{{service}}' } }, 'kv'), { mirror: { service: '{{service}}' } });
    assert.equal(parseRouteOptions({ rewrite: { host: '{{service}}.a' } }, 'kv'), 'rewrite.host: host "{{service}}.a" is not a valid host name');
    assert.equal(parseRouteOptions({ sticky: { cookie: 'a', ttlMs: null } }, 'kv'), 'sticky.ttlMs: expected a duration (\'500ms\', \'5s\', \'1h\') or a number of milliseconds, at most 24h, got null');
  });
});

describe('route options: placeholders', () => {
  const withPlaceholders = options({
    rewrite: { regex: '^/(.*)$', to: '/{{service}}/$1', host: '{{service}}.internal' },
    headers: { request: { set: { 'x-service': '{{service}}' } } },
    mirror: { service: '{{service}}-shadow', tag: '{{service}}' },
  });

  it('optionsPlaceholderField names the first field with {{', () => {
    assert.equal(optionsPlaceholderField(withPlaceholders), 'rewrite.to');
    assert.equal(optionsPlaceholderField(options({ redirect: { to: 'https://{{service}}.a.com{path}' } })), 'redirect.to');
    assert.equal(optionsPlaceholderField(options({ mirror: { service: 'x' } })), undefined);
  });

  it('fillRouteOptions fills every field that takes one, and checks it again', () => {
    const filled = fillRouteOptions(withPlaceholders, (s) => s.replaceAll('{{service}}', 'users'));
    assert.ok(!isOptionsProblem(filled), JSON.stringify(filled));
    assert.deepEqual(filled.rewrite, { regex: '^/(.*)$', to: '/users/$1', host: 'users.internal' });
    assert.deepEqual(filled.headers?.request?.set, [['x-service', 'users']]);
    assert.deepEqual([filled.mirror?.service, filled.mirror?.tag], ['users-shadow', 'users']);
    const bad = fillRouteOptions(withPlaceholders, (s) => s.replaceAll('{{service}}', 'bad name'));
    assert.ok(isOptionsProblem(bad), "a bad filled value is refused");
    assert.deepEqual(bad.path, ['rewrite', 'to']);
    assert.match(bad.message, /whitespace/);
    const plain = options({ mirror: { service: 'x' } });
    assert.equal(fillRouteOptions(plain, (s) => `${s}!`), plain, 'no placeholder: the same object');
  });
});
