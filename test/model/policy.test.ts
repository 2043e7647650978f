import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { buildTable } from '../../src/model/build-table.js';
import { DEFAULT_POLICY, resolvePolicy, type PolicyInput, type RoutePolicy } from '../../src/model/policy.js';
import { parseByteSize, parseDuration, parsePolicyInput, parsePolicyJson } from '../../src/model/policy-parse.js';
import { templatesFileSchema } from '../../src/providers/templates/templates-schema.js';
import { parseYamlWith } from '../../src/providers/yaml-file.js';
import { switchyardFiles } from '../../bench/targets.js';
import { discovery, instance, routeNamed, template } from './fixtures.js';

describe('parseDuration', () => {
  const good: [unknown, number][] = [
    ['500ms', 500], ['2s', 2_000], ['2.5s', 2_500], ['1.5m', 90_000], ['1h', 3_600_000], [' 3s ', 3_000],
    ['0ms', 0], [0, 0], [250, 250], [12.4, 12], ['24h', 86_400_000],
  ];
  for (const [input, ms] of good) it(`${JSON.stringify(input)} → ${ms} ms`, () => assert.equal(parseDuration(input), ms));
  const bad: unknown[] = ['5', '5 sec', '-1s', -5, '25h', 86_400_001, Number.NaN, Infinity, true, null, '1e3ms', '', 's', [1]];
  for (const input of bad) it(`rejects ${String(JSON.stringify(input))}`, () => assert.equal(parseDuration(input), undefined));
});

describe('parseByteSize', () => {
  const good: [unknown, number][] = [
    [0, 0], [1024, 1024], ['512', 512], ['512b', 512], ['64kb', 65_536], ['1.5kb', 1_536], ['10MB', 10_485_760], ['1gb', 1_073_741_824],
  ];
  for (const [input, bytes] of good) it(`${JSON.stringify(input)} → ${bytes} bytes`, () => assert.equal(parseByteSize(input), bytes));
  const bad: unknown[] = ['-1', -1, '1tb', 'x', '', null, false, Infinity];
  for (const input of bad) it(`rejects ${String(JSON.stringify(input))}`, () => assert.equal(parseByteSize(input), undefined));
});

describe('parsePolicyInput', () => {
  const good: [string, unknown, PolicyInput][] = [
    ['an empty block', {}, {}],
    ['durations as strings and numbers', { timeouts: { connectMs: '250ms', headersMs: 2000, bodyIdleMs: '1s', totalMs: '1m' } },
      { timeouts: { connectMs: 250, headersMs: 2000, bodyIdleMs: 1000, totalMs: 60_000 } }],
    ['0 turns a timeout off', { timeouts: { totalMs: 0, headersMs: '0s', tunnelIdleMs: 0 } }, { timeouts: { totalMs: 0, headersMs: 0, tunnelIdleMs: 0 } }],
    ['a tunnel idle timeout', { timeouts: { tunnelIdleMs: '10m' } }, { timeouts: { tunnelIdleMs: 600_000 } }],
    ['retries with numeric status codes, deduplicated', { retries: { count: 2, on: ['connect-failure', 503, '503', 'reset'], budgetPercent: 50, minPerSecond: 0.5 } },
      { retries: { count: 2, on: ['connect-failure', '503', 'reset'], budgetPercent: 50, minPerSecond: 0.5 } }],
    ['an empty retry list', { retries: { on: [] } }, { retries: { on: [] } }],
    ['a retry buffer as a size or a number', { retries: { bufferBytes: '256kb' } }, { retries: { bufferBytes: 262_144 } }],
    ['no retry buffer', { retries: { bufferBytes: 0 } }, { retries: { bufferBytes: 0 } }],
    ['outlier', { outlier: { consecutiveFailures: 3, baseEjectionMs: '10s', maxEjectionPercent: 100, maxEjectionMs: '2m' } },
      { outlier: { consecutiveFailures: 3, baseEjectionMs: 10_000, maxEjectionPercent: 100, maxEjectionMs: 120_000 } }],
    ['a partial rate limit (completed by another layer)', { rateLimit: { burst: 5 } }, { rateLimit: { burst: 5 } }],
    ['null turns things off', { rateLimit: null, concurrency: null, maxBodyBytes: null }, { rateLimit: null, concurrency: null, maxBodyBytes: null }],
    ['everything else', { rateLimit: { requestsPerSecond: 0.5, perClient: true }, concurrency: { max: 10 }, maxBodyBytes: '1mb', redirectToHttps: true },
      { rateLimit: { requestsPerSecond: 0.5, perClient: true }, concurrency: { max: 10 }, maxBodyBytes: 1_048_576, redirectToHttps: true }],
    ['an upstream connection cap and queue timeout', { upstream: { maxConnections: 2, queueTimeoutMs: '500ms' } },
      { upstream: { maxConnections: 2, queueTimeoutMs: 500 } }],
    ['null removes the upstream cap', { upstream: { maxConnections: null } }, { upstream: { maxConnections: null } }],
    ['an empty upstream block', { upstream: {} }, { upstream: {} }],
    ['the effective default policy itself (round trip)', JSON.parse(JSON.stringify(DEFAULT_POLICY)) as unknown, JSON.parse(JSON.stringify(DEFAULT_POLICY)) as PolicyInput],
  ];
  for (const [title, input, expected] of good) it(`accepts ${title}`, () => assert.deepEqual(parsePolicyInput(input), expected));

  const bad: [string, unknown, RegExp][] = [
    ['a non-object', [1], /\(policy\): expected an object/],
    ['null as the whole policy', null, /\(policy\): expected an object/],
    ['an unknown top-level field', { retry: { count: 1 } }, /^retry: unknown field/],
    ['an unknown nested field', { timeouts: { connect: '1s' } }, /^timeouts\.connect: unknown field \(known: connectMs/],
    ['a bad duration', { timeouts: { headersMs: '5 seconds' } }, /^timeouts\.headersMs: expected a duration/],
    ['a negative duration', { timeouts: { totalMs: -1 } }, /^timeouts\.totalMs: expected a duration/],
    ['a zero connect timeout', { timeouts: { connectMs: 0 } }, /^timeouts\.connectMs: must be at least 1 ms/],
    ['too many retries', { retries: { count: 11 } }, /^retries\.count: expected an integer from 0 to 10, got 11/],
    ['a fractional retry count', { retries: { count: 1.5 } }, /^retries\.count: expected an integer/],
    ['an unknown retry condition', { retries: { on: ['timeout'] } }, /^retries\.on: unknown retry condition "timeout"/],
    ['retry conditions not in a list', { retries: { on: 'reset' } }, /^retries\.on: expected a list/],
    ['a budget above 100%', { retries: { budgetPercent: 150 } }, /^retries\.budgetPercent: expected a number from 0 to 100/],
    ['a string where a number belongs', { outlier: { consecutiveFailures: '5' } }, /^outlier\.consecutiveFailures: expected an integer/],
    ['an ejection percent above 100', { outlier: { maxEjectionPercent: 101 } }, /^outlier\.maxEjectionPercent/],
    ['a zero rate', { rateLimit: { requestsPerSecond: 0 } }, /^rateLimit\.requestsPerSecond: must be above 0/],
    ['a burst below 1', { rateLimit: { requestsPerSecond: 1, burst: 0.5 } }, /^rateLimit\.burst: expected a number from 1/],
    ['perClient not a boolean', { rateLimit: { requestsPerSecond: 1, perClient: 'yes' } }, /^rateLimit\.perClient: expected true or false/],
    ['a zero concurrency', { concurrency: { max: 0 } }, /^concurrency\.max: expected an integer from 1/],
    ['a bad body size', { maxBodyBytes: '1 tb' }, /^maxBodyBytes: expected a number of bytes/],
    ['a bad retry buffer size', { retries: { bufferBytes: 'lots' } }, /^retries\.bufferBytes: expected a number of bytes/],
    ['a retry buffer above 16 MiB', { retries: { bufferBytes: '17mb' } }, /^retries\.bufferBytes: must be at most 16777216 bytes/],
    ['redirectToHttps not a boolean', { redirectToHttps: 'true' }, /^redirectToHttps: expected true or false/],
    ['debugHeaders not a boolean', { debugHeaders: 1 }, /^debugHeaders: expected true or false/],
    ['a section that is not an object', { timeouts: 5 }, /^timeouts: expected an object/],
    ['a zero upstream cap', { upstream: { maxConnections: 0 } }, /^upstream\.maxConnections: expected an integer from 1 to 1000000, got 0/],
    ['a fractional upstream cap', { upstream: { maxConnections: 2.5 } }, /^upstream\.maxConnections: expected an integer/],
    ['an upstream cap as a string', { upstream: { maxConnections: '2' } }, /^upstream\.maxConnections: expected an integer/],
    ['a zero queue timeout', { upstream: { queueTimeoutMs: 0 } }, /^upstream\.queueTimeoutMs: must be at least 1 ms/],
    ['a bad queue timeout', { upstream: { queueTimeoutMs: 'soon' } }, /^upstream\.queueTimeoutMs: expected a duration/],
    ['an unknown upstream field', { upstream: { maxConns: 2 } }, /^upstream\.maxConns: unknown field \(known: maxConnections, queueTimeoutMs\)/],
    ['upstream: null', { upstream: null }, /^upstream: expected an object/],
  ];
  for (const [title, input, reason] of bad) it(`rejects ${title}`, () => assert.match(String(parsePolicyInput(input)), reason));

  it('parsePolicyJson reports JSON syntax errors', () => {
    assert.equal(parsePolicyJson('{"retries": '), 'value is not valid JSON');
    assert.deepEqual(parsePolicyJson('{"retries": {"count": 3}}'), { retries: { count: 3 } });
  });
});

describe('resolvePolicy', () => {
  it('no layer: the frozen defaults, shared', () => {
    assert.equal(resolvePolicy([]), DEFAULT_POLICY);
    assert.equal(resolvePolicy([undefined, undefined]), DEFAULT_POLICY);
    assert.ok(Object.isFrozen(DEFAULT_POLICY) && Object.isFrozen(DEFAULT_POLICY.timeouts) && Object.isFrozen(DEFAULT_POLICY.retries.on));
    assert.deepEqual(DEFAULT_POLICY, {
      timeouts: { connectMs: 5_000, headersMs: 60_000, bodyIdleMs: 60_000, totalMs: 0, tunnelIdleMs: 3_600_000 },
      retries: { count: 1, on: ['connect-failure'], budgetPercent: 20, minPerSecond: 3, bufferBytes: 65536 },
      outlier: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50, maxEjectionMs: 300_000 },
      rateLimit: null,
      concurrency: null,
      maxBodyBytes: null,
      redirectToHttps: false,
      upstream: { maxConnections: null, queueTimeoutMs: 30_000 },
      debugHeaders: false,
    });
  });

  const cases: [string, (PolicyInput | undefined)[], (p: RoutePolicy) => unknown, unknown][] = [
    ['a layer changes only the fields it names', [{ timeouts: { headersMs: 100 } }], (p) => p.timeouts, { connectMs: 5_000, headersMs: 100, bodyIdleMs: 60_000, totalMs: 0, tunnelIdleMs: 3_600_000 }],
    ['later layers win field by field', [{ timeouts: { headersMs: 100, totalMs: 900 } }, { timeouts: { headersMs: 200 } }], (p) => [p.timeouts.headersMs, p.timeouts.totalMs], [200, 900]],
    ['retries.on is replaced whole', [{ retries: { on: ['reset', '503'] } }, { retries: { on: ['502'] } }], (p) => p.retries.on, ['502']],
    ['burst defaults to the rate rounded up (at least 1)', [{ rateLimit: { requestsPerSecond: 2.5 } }], (p) => p.rateLimit, { requestsPerSecond: 2.5, burst: 3, perClient: false }],
    ['burst of a slow rate is 1', [{ rateLimit: { requestsPerSecond: 0.1 } }], (p) => p.rateLimit?.burst, 1],
    ['rate limit layers merge', [{ rateLimit: { requestsPerSecond: 10 } }, { rateLimit: { burst: 50, perClient: true } }], (p) => p.rateLimit, { requestsPerSecond: 10, burst: 50, perClient: true }],
    ['null turns a template rate limit off', [{ rateLimit: { requestsPerSecond: 10 } }, { rateLimit: null }], (p) => p.rateLimit, null],
    ['a later block after null starts fresh', [{ concurrency: { max: 5 } }, { concurrency: null }, { concurrency: { max: 7 } }], (p) => p.concurrency, { max: 7 }],
    ['null removes the body limit', [{ maxBodyBytes: 10 }, { maxBodyBytes: null }], (p) => p.maxBodyBytes, null],
    ['0 bytes is a limit, not "off"', [{ maxBodyBytes: 0 }], (p) => p.maxBodyBytes, 0],
    ['no upstream cap by default, queue timeout 30 s', [{ timeouts: { headersMs: 100 } }], (p) => p.upstream, { maxConnections: null, queueTimeoutMs: 30_000 }],
    ['upstream layers merge field by field', [{ upstream: { maxConnections: 4 } }, { upstream: { queueTimeoutMs: 2_000 } }], (p) => p.upstream, { maxConnections: 4, queueTimeoutMs: 2_000 }],
    ['null removes a template upstream cap', [{ upstream: { maxConnections: 4, queueTimeoutMs: 2_000 } }, { upstream: { maxConnections: null } }], (p) => p.upstream, { maxConnections: null, queueTimeoutMs: 2_000 }],
    ['redirectToHttps can be turned off again', [{ redirectToHttps: true }, { redirectToHttps: false }], (p) => p.redirectToHttps, false],
    ['debugHeaders from a later layer (KV over the template)', [{ debugHeaders: false }, { debugHeaders: true }], (p) => p.debugHeaders, true],
  ];
  for (const [title, layers, pick, expected] of cases) {
    it(title, () => {
      const policy = resolvePolicy(layers);
      assert.ok(typeof policy !== 'string', String(policy));
      assert.deepEqual(pick(policy), expected);
      assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.timeouts) && Object.isFrozen(policy.retries.on));
    });
  }

  const unusable: [string, PolicyInput[], RegExp][] = [
    ['a rate limit without a rate', [{ rateLimit: { burst: 5 } }], /rateLimit needs requestsPerSecond/],
    ['a rate limit whose rate was turned off before', [{ rateLimit: { requestsPerSecond: 1 } }, { rateLimit: null }, { rateLimit: { burst: 2 } }], /rateLimit needs requestsPerSecond/],
    ['a concurrency limit without max', [{ concurrency: {} }], /concurrency needs max/],
    ['a cap below the base ejection time', [{ outlier: { baseEjectionMs: 60_000 } }, { outlier: { maxEjectionMs: 10_000 } }], /maxEjectionMs \(10000\) is below outlier\.baseEjectionMs \(60000\)/],
  ];
  for (const [title, layers, reason] of unusable) it(`reports ${title}`, () => assert.match(String(resolvePolicy(layers)), reason));
});

describe('policies in the table', () => {
  const snap = discovery([instance('users', 'users-1', { port: 9001, tags: ['urlprefix-/tagged'] })]);
  const withPolicy = (policy: PolicyInput | undefined): ReturnType<typeof template> => ({
    ...template('api', '/api', [{ service: 'users', weight: 1 }]),
    ...(policy === undefined ? {} : { policy }),
  });
  const templates = [withPolicy({ timeouts: { headersMs: 2_000 }, rateLimit: { requestsPerSecond: 10 } })];

  it('every route has a complete policy; tag routes and routes without a block get the defaults', () => {
    const table = buildTable(snap, {}, [...templates, template('plain', '/plain', [{ service: 'users', weight: 1 }])]);
    assert.equal(routeNamed(table, 'plain').policy, DEFAULT_POLICY);
    assert.equal(routeNamed(table, 'tag:users:/tagged').policy, DEFAULT_POLICY);
    const api = routeNamed(table, 'api').policy;
    assert.equal(api.timeouts.headersMs, 2_000);
    assert.equal(api.timeouts.connectMs, DEFAULT_POLICY.timeouts.connectMs);
    assert.deepEqual(api.rateLimit, { requestsPerSecond: 10, burst: 10, perClient: false });
    assert.ok(Object.isFrozen(api.rateLimit));
  });

  it('KV routes/<route>/policy merges over the template block, field by field', () => {
    const table = buildTable(snap, {
      'routes/api/policy': '{"timeouts": {"totalMs": "3s"}, "rateLimit": {"burst": 40, "perClient": true}, "retries": {"on": ["connect-failure", "503"]}}',
      'routes/tag:users:/tagged/policy': '{"concurrency": {"max": 3}}',
    }, templates);
    const api = routeNamed(table, 'api').policy;
    assert.deepEqual(api.timeouts, { connectMs: 5_000, headersMs: 2_000, bodyIdleMs: 60_000, totalMs: 3_000, tunnelIdleMs: 3_600_000 });
    assert.deepEqual(api.rateLimit, { requestsPerSecond: 10, burst: 40, perClient: true });
    assert.deepEqual(api.retries.on, ['connect-failure', '503']);
    assert.deepEqual(routeNamed(table, 'tag:users:/tagged').policy.concurrency, { max: 3 });
    assert.deepEqual(table.problems, []);
  });

  const badKv: [string, string, RegExp][] = [
    ['invalid JSON', '{"timeouts": ', /not valid JSON; key ignored/],
    ['a wrong shape', '{"timeouts": {"headersMs": "soon"}}', /timeouts\.headersMs: expected a duration.*; key ignored/],
    ['an unknown field', '{"retry": {"count": 2}}', /retry: unknown field/],
    ['a layer that does not combine with the template', '{"rateLimit": null, "concurrency": {}}', /concurrency needs max; key ignored/],
  ];
  for (const [title, value, reason] of badKv) {
    it(`KV policy with ${title}: reported as a kv problem, the template policy applies, other keys still apply`, () => {
      const table = buildTable(snap, { 'routes/api/policy': value, 'services/users/weights': '{"users-1": 3}' }, templates);
      assert.deepEqual(table.problems.map((p) => [p.kind, p.source]), [['kv', 'routes/api/policy']]);
      assert.match(table.problems[0]?.message ?? '', reason);
      const api = routeNamed(table, 'api');
      assert.equal(api.policy.timeouts.headersMs, 2_000);
      assert.deepEqual(api.policy.rateLimit, { requestsPerSecond: 10, burst: 10, perClient: false });
      assert.equal(api.destinations[0]?.endpoints[0]?.weight, 3, 'the weights key still applied');
    });
  }

  it('KV routes/<route>/policy sets and removes the upstream cap over the template block', () => {
    const capped = [withPolicy({ upstream: { maxConnections: 8, queueTimeoutMs: 1_000 } })];
    const raised = routeNamed(buildTable(snap, { 'routes/api/policy': '{"upstream": {"maxConnections": 2}}' }, capped), 'api').policy.upstream;
    assert.deepEqual(raised, { maxConnections: 2, queueTimeoutMs: 1_000 });
    assert.ok(Object.isFrozen(raised));
    const removed = routeNamed(buildTable(snap, { 'routes/api/policy': '{"upstream": {"maxConnections": null}}' }, capped), 'api').policy.upstream;
    assert.deepEqual(removed, { maxConnections: null, queueTimeoutMs: 1_000 });
    const bad = buildTable(snap, { 'routes/api/policy': '{"upstream": {"maxConnections": -1}}' }, capped);
    assert.match(bad.problems[0]?.message ?? '', /upstream\.maxConnections: expected an integer.*; key ignored/);
    assert.equal(routeNamed(bad, 'api').policy.upstream.maxConnections, 8);
  });

  it('a KV policy for a route that does not exist is silent', () => {
    assert.deepEqual(buildTable(snap, { 'routes/gone/policy': '{"concurrency": {"max": 1}}' }, templates).problems, []);
  });

  it('a template whose policy does not resolve is a ConfigError naming the file and route', () => {
    assert.throws(() => buildTable(snap, {}, [withPolicy({ rateLimit: { burst: 3 } })]), (err: unknown) =>
      err instanceof ConfigError && /templates\/test\.yaml: route "api": policy: rateLimit needs requestsPerSecond/.test(err.message));
    assert.throws(() => buildTable(snap, {}, [withPolicy({ timeouts: { connectMs: -1 } } as PolicyInput)]), /policy: timeouts\.connectMs/);
  });

  it('an `each` template gives its policy to every expansion', () => {
    const each = { ...template('{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: { service: 'users' } }), policy: { concurrency: { max: 2 } } };
    assert.deepEqual(routeNamed(buildTable(snap, {}, [each]), 'users').policy.concurrency, { max: 2 });
  });
});

describe('the template `policy:` block (templates-schema)', () => {
  it('parses YAML durations, sizes and lists into a policy layer', () => {
    const file = parseYamlWith('t.yaml', [
      'routes:',
      '  - name: api',
      '    to: [ { service: users } ]',
      '    policy:',
      '      timeouts: { connectMs: 250ms, totalMs: 5s }',
      '      retries: { count: 2, on: [connect-failure, reset, 503] }',
      '      rateLimit: { requestsPerSecond: 50, perClient: true }',
      '      maxBodyBytes: 1mb',
      '      upstream: { maxConnections: 64, queueTimeoutMs: 10s }',
      '',
    ].join('\n'), templatesFileSchema);
    assert.deepEqual(file.routes[0]?.policy, {
      timeouts: { connectMs: 250, totalMs: 5_000 },
      retries: { count: 2, on: ['connect-failure', 'reset', '503'] },
      rateLimit: { requestsPerSecond: 50, perClient: true },
      maxBodyBytes: 1_048_576,
      upstream: { maxConnections: 64, queueTimeoutMs: 10_000 },
    });
  });

  const bad: [string, RegExp][] = [
    ['    policy: { timeouts: { connect: 1s } }', /routes\.0\.policy: timeouts\.connect: unknown field/],
    ['    policy: { rateLimit: { burst: 5 } }', /routes\.0\.policy: rateLimit needs requestsPerSecond/],
    ['    policy:', /routes\.0\.policy: \(policy\): expected an object/],
    ['    policy: { upstream: { maxConnections: 0 } }', /routes\.0\.policy: upstream\.maxConnections: expected an integer from 1/],
  ];
  for (const [line, reason] of bad) {
    it(`rejects the file: ${line.trim()}`, () => {
          assert.throws(() => parseYamlWith('t.yaml', `routes:\n  - name: api\n    to: [ { service: users } ]\n${line}\n`, templatesFileSchema), reason);
    });
  }

  it('the benchmark policy block (bench/targets.ts) is valid', () => {
    const files = switchyardFiles({ upstreams: [] }, true);
    const policy = parseYamlWith('bench.yaml', files.template, templatesFileSchema).routes[0]?.policy;
    assert.equal(policy?.timeouts?.totalMs, 30_000);
    assert.equal(policy?.rateLimit?.requestsPerSecond, 10_000_000);
  });
});
