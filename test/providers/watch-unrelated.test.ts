import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RouteTemplate } from '../../src/model/types.js';
import { Metrics } from '../../src/observability/metrics.js';
import { FileProvider } from '../../src/providers/file/file-provider.js';
import { DirectoryTemplatesProvider } from '../../src/providers/templates/templates-provider.js';
import { watchDirectory } from '../../src/providers/watch-dir.js';
import { captureLogger } from '../support/capture-logger.js';
import { waitFor } from '../support/wait.js';

const services = (id: string): string => `services:\n  s:\n    - { id: ${id}, address: 127.0.0.1, port: 1001 }\n`;
const template = (name: string): string => `routes:\n  - name: ${name}\n    to: [ { service: s } ]\n`;

/** Names an editor, a shell redirect or a deploy tool writes next to a watched file. */
const UNRELATED = ['switchyard.log', '.services.yaml.swp', 'services.yaml~', '4913', '.services.yaml.tmp', 'notes.txt'];
const WRITES = 1000;

/** A provider under test, reduced to what these tests need: start, count reads, see the newest value. */
interface Subject {
  readonly dir: string;
  readonly file: string;
  /** Reads the provider made because the watcher asked (reload() calls after start). */
  reads(): number;
  /** Every value emitted, in order (services: instance id; templates: route names). */
  readonly seen: string[];
  content(id: string): string;
  stop(): Promise<void>;
}

async function fileSubject(dir: string): Promise<Subject> {
  const file = join(dir, 'services.yaml');
  await writeFile(file, services('v0'));
  const provider = new FileProvider(file, 'switchyard/', captureLogger().logger, new Metrics({ defaultMetrics: false }));
  const seen: string[] = [];
  await provider.start((u) => seen.push(u.discovery!.instances['s']![0]!.id));
  return withReadCount(provider, { dir, file, seen, content: services, stop: () => provider.stop() });
}

async function templatesSubject(dir: string): Promise<Subject> {
  const file = join(dir, 'routes.yaml');
  await writeFile(file, template('v0'));
  const provider = new DirectoryTemplatesProvider(dir, captureLogger().logger, new Metrics({ defaultMetrics: false }));
  const seen: string[] = [];
  await provider.start((t: readonly RouteTemplate[]) => seen.push(t.map((r) => r.name).join(',')));
  return withReadCount(provider, { dir, file, seen, content: template, stop: () => provider.stop() });
}

/** Count reload() calls: the watcher's only way to make the provider read. */
function withReadCount(provider: { reload(): Promise<void> }, rest: Omit<Subject, 'reads'>): Subject {
  let reads = 0;
  const reload = provider.reload.bind(provider);
  provider.reload = () => {
    reads += 1;
    return reload();
  };
  return { ...rest, reads: () => reads };
}

for (const [kind, make] of [['services file', fileSubject], ['templates', templatesSubject]] as const) {
  describe(`${kind}: the directory watch`, () => {
    let root: string;
    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'sy-watch-'));
    });
    after(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it(`${WRITES} writes of unrelated files in the directory (a log, editor temp files) cause no read`, async () => {
      // Created before the watch starts: an entry appearing changes the directory (chokidar lists
      // it once); writing to one afterwards must cost nothing.
      const dir = await mkdtemp(join(root, 'unrelated-'));
      for (const name of UNRELATED) await writeFile(join(dir, name), '');
      const subject = await make(dir);
      // A watcher that takes every name (the pre-fix behaviour, still used by the TLS directory):
      // its trailing read after the writes proves the watch has delivered and settled all of them
      // before the final check, without a fixed sleep.
      let witnessed = 0;
      const witness = await watchDirectory(subject.dir, () => false, () => witnessed++, captureLogger().logger);
      try {
        for (let i = 0; i < WRITES; i++) {
          await appendFile(join(subject.dir, UNRELATED[i % UNRELATED.length]!), `{"line":${i}}\n`);
        }
        await waitFor('the witness to read after the burst of unrelated writes', () => witnessed > 0, 10_000);
        assert.equal(subject.reads(), 0, 'no read for any unrelated write');
        assert.deepEqual(subject.seen, ['v0'], 'nothing emitted again');
        // The watcher is alive: the watched file's own change is still read.
        await writeFile(subject.file, subject.content('v1'));
        await waitFor('the watched file change to be read', () => subject.seen.at(-1) === 'v1');
        assert.ok(subject.reads() > 0);
      } finally {
        await witness.close();
        await subject.stop();
      }
    });

    it('a temp file renamed into place, and vim\'s rename-to-backup save, are picked up', async () => {
      const subject = await make(await mkdtemp(join(root, 'rename-')));
      try {
        const tmp = join(subject.dir, `.${'services.yaml'}.tmp`);
        await writeFile(tmp, subject.content('v1'));
        await rename(tmp, subject.file);
        await waitFor('the renamed-into-place file to be read', () => subject.seen.at(-1) === 'v1');
        // vim (backupcopy=no): probe file 4913, move the original to name~, write a new file, drop the backup.
        const probe = join(subject.dir, '4913');
        await writeFile(probe, '');
        await unlink(probe);
        await rename(subject.file, `${subject.file}~`);
        await writeFile(subject.file, subject.content('v2'));
        await unlink(`${subject.file}~`);
        await waitFor('the vim-saved file to be read', () => subject.seen.at(-1) === 'v2');
      } finally {
        await subject.stop();
      }
    });

    it('a burst of rewrites by temp file and rename ends with the newest content', async () => {
      const subject = await make(await mkdtemp(join(root, 'burst-')));
      try {
        const last = 200;
        for (let n = 1; n <= last; n++) {
          const tmp = join(subject.dir, `.${n % 2}.tmp`);
          await writeFile(tmp, subject.content(`v${n}`));
          await rename(tmp, subject.file);
          await new Promise((resolve) => setImmediate(resolve));
        }
        await waitFor('the newest version to be read', () => subject.seen.at(-1) === `v${last}`, 10_000);
      } finally {
        await subject.stop();
      }
    });
  });
}

describe('services file behind a symlink swap (Kubernetes ConfigMap volume layout)', () => {
  it('follows the swap of ..data although the file name itself never changes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-watch-cm-'));
    try {
      const version = async (v: string): Promise<void> => {
        await mkdir(join(dir, `..${v}`));
        await writeFile(join(dir, `..${v}`, 'services.yaml'), services(v));
        await symlink(`..${v}`, join(dir, '..data_tmp'));
        await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      };
      await version('v1');
      await symlink(join('..data', 'services.yaml'), join(dir, 'services.yaml'));
      const provider = new FileProvider(join(dir, 'services.yaml'), 'switchyard/', captureLogger().logger, new Metrics({ defaultMetrics: false }));
      const seen: string[] = [];
      await provider.start((u) => seen.push(u.discovery!.instances['s']![0]!.id));
      try {
        assert.deepEqual(seen, ['v1']);
        await version('v2');
        await rm(join(dir, '..v1'), { recursive: true });
        await waitFor('the swapped-in version to be read', () => seen.at(-1) === 'v2');
      } finally {
        await provider.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
