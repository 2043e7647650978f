import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RouteTemplate } from '../../src/model/types.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DirectoryTemplatesProvider } from '../../src/providers/templates/templates-provider.js';
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
