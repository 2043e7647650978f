import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metrics } from '../../src/observability/metrics.js';
import { FileProvider } from '../../src/providers/file/file-provider.js';
import { captureLogger } from '../support/capture-logger.js';
import { waitFor } from '../support/wait.js';

const services = (id: string): string => `services:\n  s:\n    - { id: ${id}, address: 127.0.0.1, port: 1001 }\n`;

describe('services file: missing, deleted, re-created', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sy-watch-life-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('missing at start: rejected (nothing emitted), then read as soon as it is created', async () => {
    const dir = await mkdtemp(join(root, 'missing-'));
    const file = join(dir, 'services.yaml');
    const { logger, lines } = captureLogger();
    const provider = new FileProvider(file, 'switchyard/', logger, new Metrics({ defaultMetrics: false }));
    const seen: string[] = [];
    await provider.start((u) => seen.push(u.discovery!.instances['s']![0]!.id));
    try {
      assert.deepEqual(seen, []);
      assert.equal(provider.status().healthy, false);
      assert.ok(lines.some((l) => String(l['msg']).includes('services file rejected')));
      // As a deploy tool creates it: complete, renamed into place.
      await writeFile(join(dir, '.services.yaml.tmp'), services('v1'));
      await rename(join(dir, '.services.yaml.tmp'), file);
      await waitFor('the created file to be read', () => seen.at(-1) === 'v1');
      assert.equal(provider.status().healthy, true);
    } finally {
      await provider.stop();
    }
  });

  it('deleted (the last good version stays in force) and re-created: the new file is read, and is still watched', async () => {
    const dir = await mkdtemp(join(root, 'deleted-'));
    const file = join(dir, 'services.yaml');
    await writeFile(file, services('v0'));
    const provider = new FileProvider(file, 'switchyard/', captureLogger().logger, new Metrics({ defaultMetrics: false }));
    const seen: string[] = [];
    await provider.start((u) => seen.push(u.discovery!.instances['s']![0]!.id));
    try {
      await unlink(file);
      await waitFor('the deletion to be noticed', () => provider.status().healthy === false);
      assert.deepEqual(seen, ['v0'], 'a missing file emits nothing: the last good snapshot stays');
      await writeFile(file, services('v1'));
      await waitFor('the re-created file to be read', () => seen.at(-1) === 'v1');
      // The watch survived the deletion: a later in-place write is read too.
      await writeFile(file, services('v2'));
      await waitFor('the next write to be read', () => seen.at(-1) === 'v2');
    } finally {
      await provider.stop();
    }
  });
});
