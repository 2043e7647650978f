import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metrics } from '../../src/observability/metrics.js';
import { FileProvider } from '../../src/providers/file/file-provider.js';
import type { DiscoveryUpdate } from '../../src/providers/provider.js';
import { captureLogger } from '../support/capture-logger.js';
import { waitFor } from '../support/wait.js';

const SERVICES = `
services:
  users:
    - { id: users-1, address: 127.0.0.1, port: 9001, tags: [v1], status: passing }
    - { id: users-2, address: 127.0.0.1, port: 9002, tags: [v2], status: warning,
        weights: { passing: 10, warning: 1 } }
  db:
    - { id: db-1, address: 10.0.0.5, port: 5432 }
kv:
  switchyard/routes/api-users/weights: '{"users:v1": 50, "users:v2": 50}'
  switchyard/services/users/weights: { users-1: 0 }
  other/app/key: ignored
`;

describe('file provider', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-services-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('turns the services file into Consul-shaped discovery and prefix-relative KV', async () => {
    const file = join(dir, 'services.yaml');
    await writeFile(file, SERVICES);
    const { logger } = captureLogger();
    const provider = new FileProvider(file, 'switchyard/', logger, new Metrics({ defaultMetrics: false }));
    let update: DiscoveryUpdate | undefined;
    await provider.start((u) => {
      update = u;
    });
    await provider.stop();
    assert.ok(update?.discovery && update.kv);
    assert.deepEqual(update.discovery.catalog, { users: ['v1', 'v2'], db: [] });
    const users2 = update.discovery.instances['users']![1]!;
    assert.deepEqual(users2, {
      id: 'users-2', service: 'users', address: '127.0.0.1', port: 9002, tags: ['v2'], status: 'warning',
      weights: { passing: 10, warning: 1 }, meta: {},
    });
    const db1 = update.discovery.instances['db']![0]!;
    assert.equal(db1.status, 'passing', 'status defaults to passing');
    assert.deepEqual(db1.weights, { passing: 1, warning: 1 }, 'weights default to 1 and 1, as in Consul');
    assert.deepEqual(update.kv, {
      'routes/api-users/weights': '{"users:v1": 50, "users:v2": 50}',
      'services/users/weights': '{"users-1":0}',
    });
    assert.equal(provider.status().synced, true);
  });

  it('rejects a broken file, keeps the last good snapshot, and follows a burst of rewrites to its final state', async () => {
    const file = join(dir, 'burst.yaml');
    const write = async (text: string): Promise<void> => {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    };
    const version = (n: number): string => `services:\n  s:\n    - { id: s-${n}, address: 127.0.0.1, port: ${1000 + n} }\n`;
    await write(version(0));
    const { logger, lines } = captureLogger();
    const metrics = new Metrics({ defaultMetrics: false });
    const provider = new FileProvider(file, 'switchyard/', logger, metrics);
    const seen: string[] = [];
    await provider.start((u) => seen.push(u.discovery!.instances['s']![0]!.id));
    try {
      assert.deepEqual(seen, ['s-0']);
      await write('services:\n  s:\n    - { id: s-x, address: 127.0.0.1, port: 99999 }\n');
      await waitFor('the rejection to be logged', () => lines.some((l) => String(l['msg']).includes('services file rejected')));
      assert.deepEqual(seen, ['s-0'], 'nothing emitted for a broken file');
      assert.equal(provider.status().healthy, false);
      assert.match(provider.status().lastError ?? '', /port/);
      const errors = await metrics.configErrors.get();
      assert.equal(errors.values.find((v) => v.labels.kind === 'services')?.value, 1, 'counted once');

      for (let n = 1; n <= 30; n++) {
        await write(version(n));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor('the final version to be read', () => seen.at(-1) === 's-30', 10_000);
      assert.ok(!seen.includes('s-x'), 'the broken version was never emitted');
      assert.equal(provider.status().healthy, true);
    } finally {
      await provider.stop();
    }
  });

  it('a rejected file is logged and counted once, however often it is read again unchanged', async () => {
    const sub = join(dir, 'noisy');
    await mkdir(sub, { recursive: true });
    const file = join(sub, 'services.yaml');
    await writeFile(file, 'services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: 1001 }\n');
    const { logger, lines } = captureLogger();
    const metrics = new Metrics({ defaultMetrics: false });
    const provider = new FileProvider(file, 'switchyard/', logger, metrics);
    await provider.start(() => undefined);
    const rejections = (): string[] => lines.filter((l) => String(l['msg']).includes('services file rejected')).map((l) => String(l['msg']));
    try {
      await writeFile(file, 'services: [oops');
      await waitFor('the rejection', () => rejections().length === 1);
      // Re-reads of the same broken file (a touch, the trailing read after a burst).
      const reads = 5;
      for (let i = 0; i < reads; i++) await provider.reload();
      assert.equal(rejections().length, 1, `still one line after ${reads} re-reads of the same broken file`);
      await writeFile(file, 'services:\n  s:\n    - { id: s-x, address: 127.0.0.1, port: 99999 }\n');
      await waitFor('the second, different rejection', () => rejections().length >= 2 && /port/.test(rejections().at(-1)!));
      assert.equal(rejections().length, 2, 'one line per distinct problem, not one per re-read');
      const errors = await metrics.configErrors.get();
      assert.equal(errors.values.find((v) => v.labels.kind === 'services')?.value, 2);
    } finally {
      await provider.stop();
    }
  });
});
