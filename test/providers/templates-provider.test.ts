import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RouteTemplate } from '../../src/model/types.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DirectoryTemplatesProvider, toTemplate } from '../../src/providers/templates/templates-provider.js';
import { templatesFileSchema } from '../../src/providers/templates/templates-schema.js';
import { parseYamlChecked } from '../../src/providers/yaml-file.js';
import { captureLogger } from '../support/capture-logger.js';
import { waitFor } from '../support/wait.js';

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

describe('templates provider', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-templates-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every *.yaml, follows changes, keeps the last good version of a broken file', async () => {
    await writeFile(join(dir, 'a.yaml'), 'routes:\n  - name: a\n    match: { path: /a }\n    to: [ { service: sa } ]\n');
    await writeFile(join(dir, 'b.yaml'), 'routes:\n  - name: b\n    match: { host: b.example, path: /b }\n    strip: /b\n    to: [ { service: sb, tag: v1, weight: 3 } ]\n');
    await writeFile(join(dir, 'notes.txt'), 'ignored');
    const { logger, lines } = captureLogger();
    const metrics = new Metrics({ defaultMetrics: false });
    const provider = new DirectoryTemplatesProvider(dir, logger, metrics);
    let latest: readonly RouteTemplate[] = [];
    // Each emission with the provider's view of broken files at that moment: a wait below can then
    // pick the emission of a read that saw the broken file (the emission before it, still holding
    // a2, would otherwise satisfy "a2 is still there" without the keep-last-good rule).
    const emissions: { names: string[]; broken: Record<string, string> }[] = [];
    const brokenNow = (): Record<string, string> => ({ ...(provider.status().detail as { broken: Record<string, string> }).broken });
    await provider.start((templates) => {
      latest = templates;
      emissions.push({ names: templates.map((t) => t.name), broken: brokenNow() });
    });
    try {
      assert.deepEqual(latest.map((t) => t.name), ['a', 'b']);
      const b = latest[1]!;
      assert.deepEqual(b.match, { hosts: ['b.example'], path: '/b' });
      assert.equal(b.strip, '/b');
      assert.deepEqual(b.to, [{ service: 'sb', tag: 'v1', weight: 3 }]);
      assert.deepEqual(latest[0]!.to, [{ service: 'sa', weight: 1 }], 'weight defaults to 1');

      await writeAtomic(join(dir, 'a.yaml'), 'routes:\n  - name: a2\n    to: [ { service: sa } ]\n');
      await waitFor('a2 to replace a', () => latest.some((t) => t.name === 'a2'));
      assert.deepEqual(latest.map((t) => t.name), ['a2', 'b'], 'a is gone with the old a.yaml');
      assert.deepEqual(latest.find((t) => t.name === 'a2')!.match, { hosts: [], path: '/' }, 'match defaults to path /');

      await writeAtomic(join(dir, 'a.yaml'), 'routes:\n  - name: broken\n    to: not-a-list\n');
      const rejected = await waitFor('an emission from a read that rejected a.yaml', () => emissions.find((e) => e.broken['a.yaml']?.includes('routes.0.to')));
      assert.deepEqual(rejected.names, ['a2', 'b'], 'the last good version of a.yaml stays in force');
      assert.ok(lines.some((l) => String(l['msg']).includes('template rejected')), 'the rejection is logged');
      const errors = await metrics.configErrors.get();
      assert.equal(errors.values.find((v) => v.labels.kind === 'template')?.value, 1);

      await writeAtomic(join(dir, 'a.yaml'), 'routes: [ { name: a3, to: [ { service: sa } ]\n  - oops: [\n');
      const invalid = await waitFor('an emission from a read that found invalid YAML', () => emissions.find((e) => e.broken['a.yaml']?.includes('invalid YAML')));
      assert.deepEqual(invalid.names, ['a2', 'b'], 'still the last good version after invalid YAML');
      assert.ok(lines.some((l) => String(l['msg']).includes('invalid YAML')), 'invalid YAML is logged');
      assert.equal((await metrics.configErrors.get()).values.find((v) => v.labels.kind === 'template')?.value, 2, 'one count per distinct problem');
      assert.ok(emissions.every((e) => !e.names.includes('broken') && !e.names.includes('a3')), 'no route of a rejected file was ever emitted');

      await unlink(join(dir, 'a.yaml'));
      await waitFor('a.yaml routes to go away', () => latest.length === 1 && latest[0]!.name === 'b');
    } finally {
      await provider.stop();
    }
  });

  it('rejects unknown fields and bad values with a clear message', async () => {
    const sub = await mkdtemp(join(dir, 'strict-'));
    await writeFile(join(sub, 'x.yaml'), 'routes:\n  - name: x\n    to: [ { service: s, weight: -1 } ]\n    retries: 3\n');
    const { logger, lines } = captureLogger();
    const provider = new DirectoryTemplatesProvider(sub, logger, new Metrics({ defaultMetrics: false }));
    let latest: readonly RouteTemplate[] | undefined;
    await provider.start((t) => {
      latest = t;
    });
    await provider.stop();
    assert.deepEqual(latest, []);
    const message = String(lines.find((l) => String(l['msg']).includes('template rejected'))?.['msg']);
    assert.match(message, /x\.yaml/);
    // Both problems are named (not one or the other): the file is rejected for each of them.
    assert.match(message, /routes\.0\.to\.0\.weight: .*>=0/);
    assert.match(message, /routes\.0: Unrecognized key: "retries"/);
  });
});

describe('templates schema: gateway options (issue 10)', () => {
  const ISSUE_EXAMPLE = [
    'routes:',
    '  - name: partner-api',
    '    match:',
    '      host: ["api.example.com", "*.partners.example.com"]',
    '      path: /api',
    '      methods: [GET, POST]',
    '      headers: { x-canary: "1", x-tenant: "*" }',
    '      query: { beta: "true" }',
    '    rewrite: { path: /v2 }',
    '    headers:',
    '      request:  { set: { x-gateway: switchyard }, remove: [x-debug] }',
    '      response: { set: { strict-transport-security: "max-age=31536000" }, remove: [server] }',
    '    sticky: { cookie: sy_affinity, ttlMs: 1h }',
    '    mirror: { service: api-shadow, percent: 10 }',
    '    to: [ { service: api, tag: v2 } ]',
    '  - name: old-home',
    '    match: { host: www.example.com, path: /home.php }',
    '    redirect: { to: "https://www.example.com/home", status: 301, keepQuery: true }',
    '',
  ].join('\n');

  function templatesOf(text: string): RouteTemplate[] {
    const parsed = parseYamlChecked(text, templatesFileSchema);
    assert.ok(!('problems' in parsed), JSON.stringify('problems' in parsed ? parsed.problems : undefined));
    return parsed.data.routes.map((r) => toTemplate(r, 'f.yaml'));
  }

  function problemsOf(text: string): { line: number | undefined; path: string; message: string }[] {
    const parsed = parseYamlChecked(text, templatesFileSchema);
    assert.ok('problems' in parsed, 'the file is refused');
    return parsed.problems.map((p) => ({ line: p.line, path: p.path, message: p.message }));
  }

  it('the issue\'s example becomes RouteTemplates with normalised options', () => {
    const [api, home] = templatesOf(ISSUE_EXAMPLE);
    assert.deepEqual(api!.match, { hosts: ['api.example.com', '*.partners.example.com'], path: '/api' });
    assert.deepEqual(api!.options, {
      conditions: { methods: ['GET', 'POST'], headers: [['x-canary', '1'], ['x-tenant', '*']], query: [['beta', 'true']] },
      rewrite: { path: '/v2' },
      headers: { request: { set: [['x-gateway', 'switchyard']], remove: ['x-debug'] }, response: { set: [['strict-transport-security', 'max-age=31536000']], remove: ['server'] } },
      sticky: { cookie: 'sy_affinity', ttlMs: 3_600_000 },
      mirror: { service: 'api-shadow', percent: 10, keepAuth: false, maxBodyBytes: 65_536, timeoutMs: 5_000, maxInFlight: 64 },
    });
    assert.deepEqual(api!.to, [{ service: 'api', tag: 'v2', weight: 1 }]);
    assert.deepEqual(home!.to, [], 'a redirect route has no destinations');
    assert.deepEqual(home!.options, { redirect: { to: 'https://www.example.com/home', status: 301, keepQuery: true } });
    assert.equal(templatesOf('routes:\n  - name: a\n    to: [ { service: s } ]\n')[0]!.options, undefined, 'no options: none');
  });

  const refusals: [string, string, number, string, RegExp][] = [
    ['a hop-by-hop header edit', 'x-gateway: switchyard', 11, 'routes.0.headers.request.set.connection', /header "connection" cannot be edited/],
    ['TRACE among the methods', 'methods: [GET, POST]', 6, 'routes.0.match.methods.1', /TRACE is refused before routing/],
    ['a regex with lookbehind', 'rewrite: { path: /v2 }', 9, 'routes.0.rewrite.regex', /not a valid RE2 pattern/],
    ['an unknown sticky field', 'ttlMs: 1h', 13, 'routes.0.sticky.path', /unknown field \(known: cookie, ttlMs\)/],
    ['a number as a header condition', 'x-canary: "1"', 7, 'routes.0.match.headers.x-canary', /quote numbers/],
    ['a mirror percent over 100', 'percent: 10', 14, 'routes.0.mirror.percent', /from 0 to 100/],
    ['a bad redirect status', 'status: 301', 18, 'routes.1.redirect.status', /one of 301, 302, 303, 307, 308/],
    ['a redirect with destinations', 'keepQuery: true }', 18, 'routes.1.redirect', /a redirect route answers by itself: it has no "to"/],
    ['no destinations and no redirect', '    to: [ { service: api, tag: v2 } ]\n', 2, 'routes.0.to', /required \(only a redirect route has no "to"\)/],
    ['strip with rewrite.path', 'rewrite: { path: /v2 }', 9, 'routes.0.rewrite', /strip and rewrite both rewrite the path/],
    ['an unknown match field', 'query: { beta: "true" }', 9, 'routes.0.match', /Unrecognized key: "cookies"/],
  ];
  const replacement: Record<string, string> = {
    'a hop-by-hop header edit': 'connection: close',
    'TRACE among the methods': 'methods: [GET, TRACE]',
    'a regex with lookbehind': 'rewrite: { regex: "(?<=a)b", to: /x }',
    'an unknown sticky field': 'ttlMs: 1h, path: /',
    'a number as a header condition': 'x-canary: 1',
    'a mirror percent over 100': 'percent: 110',
    'a bad redirect status': 'status: 300',
    'a redirect with destinations': 'keepQuery: true }\n    to: [ { service: x } ]',
    'no destinations and no redirect': '',
    'strip with rewrite.path': 'rewrite: { path: /v2 }\n    strip: /api',
    'an unknown match field': 'query: { beta: "true" }\n      cookies: { a: b }',
  };
  for (const [title, find, line, path, message] of refusals) {
    it(`refuses ${title} at its line`, () => {
      const problems = problemsOf(ISSUE_EXAMPLE.replace(find, replacement[title]!));
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.deepEqual([problems[0]!.line, problems[0]!.path], [line, path]);
      assert.match(problems[0]!.message, message);
    });
  }
});
