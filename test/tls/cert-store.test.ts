import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { CertStore } from '../../src/tls/cert-store.js';
import { certificateHostnames, normaliseHostname } from '../../src/tls/certificate-pair.js';
import { waitFor } from '../support/wait.js';
import { CertDir, HAVE_OPENSSL, makePair, type Pair } from './certs.js';

const logger = createLogger({ level: 'silent' });

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  let total = 0;
  for (const value of (await metric.get()).values) {
    const l = value.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, v]) => String(l[k]) === v)) total += value.value;
  }
  return total;
}
const skip = HAVE_OPENSSL ? false : 'openssl is not installed';

describe('normaliseHostname', () => {
  const cases: [string, string | undefined][] = [
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['*.example.com', '*.example.com'],
    ['*.com', undefined],
    ['a.*.example.com', undefined],
    ['*', undefined],
    ['', undefined],
    ['exa mple.com', undefined],
    ['under_score.test', 'under_score.test'],
    ['localhost', 'localhost'],
  ];
  for (const [raw, expected] of cases) {
    it(`${JSON.stringify(raw)} → ${JSON.stringify(expected)}`, () => assert.equal(normaliseHostname(raw), expected));
  }
});

describe('CertStore', { skip }, () => {
  const made: Record<string, Pair> = {};
  const dirs: CertDir[] = [];
  const stores: CertStore[] = [];

  const newDir = async (): Promise<CertDir> => {
    const dir = await CertDir.create();
    dirs.push(dir);
    return dir;
  };
  const open = async (dir: CertDir, metrics = new Metrics({ defaultMetrics: false }), watch = false): Promise<CertStore> => {
    const store = await CertStore.open(dir.dir, logger, metrics, { watch });
    stores.push(store);
    return store;
  };

  before(async () => {
    const specs = {
      a: { cn: 'a.test', dns: ['a.test', 'alias.test'] },
      cnOnly: { cn: 'cn-only.test' },
      wild: { cn: 'wild', dns: ['*.wild.test'] },
      zzz: { cn: 'zzz.test', dns: ['zzz.test'] },
      shortLived: { cn: 'shared.test', dns: ['shared.test'], days: 10 },
      longLived: { cn: 'shared.test', dns: ['shared.test'], days: 90 },
    };
    const pairs = await Promise.all(Object.values(specs).map((spec) => makePair(spec)));
    Object.keys(specs).forEach((name, i) => { made[name] = pairs[i]!; });
  });

  after(async () => {
    for (const store of stores) await store.close();
    for (const dir of dirs) await dir.cleanup();
  });

  it('reads the subject CN and subjectAltName DNS names', () => {
    assert.deepEqual(certificateHostnames(new X509Certificate(made['a']!.cert)), ['a.test', 'alias.test']);
    assert.deepEqual(certificateHostnames(new X509Certificate(made['cnOnly']!.cert)), ['cn-only.test']);
    // A CN that is no hostname (`wild`) is still indexed as a name; the wildcard SAN is kept as written.
    assert.deepEqual(certificateHostnames(new X509Certificate(made['wild']!.cert)), ['wild', '*.wild.test']);
  });

  it('indexes exact names, SANs and one-label wildcards; the first pair by name is the default without default.*', async () => {
    const dir = await newDir();
    for (const name of ['zzz', 'a', 'cnOnly', 'wild']) await dir.install(name, made[name]!);
    const metrics = new Metrics({ defaultMetrics: false });
    const store = await open(dir, metrics);
    const index = store.current;
    assert.deepEqual(index.pairs.map((p) => p.name), ['a', 'cnOnly', 'wild', 'zzz']);
    assert.equal(index.defaultPair.name, 'a');
    const picks: [string | undefined, string][] = [
      ['a.test', 'a'], ['ALIAS.test.', 'a'], ['cn-only.test', 'cnOnly'], ['one.wild.test', 'wild'],
      ['two.one.wild.test', 'a'], ['wild.test', 'a'], ['zzz.test', 'zzz'], ['nope.test', 'a'], [undefined, 'a'], ['', 'a'],
    ];
    for (const [name, expected] of picks) assert.equal(index.select(name).name, expected, String(name));
    assert.equal(index.lookup('nope.test'), undefined);
    assert.equal(await metricValue(metrics, 'switchyard_tls_certificates'), 4);
    assert.equal(await metricValue(metrics, 'switchyard_tls_certificate_expiry_timestamp_seconds', { certificate: 'zzz' }),
      Math.floor(new Date(new X509Certificate(made['zzz']!.cert).validTo).getTime() / 1000));
  });

  it('prefers default.crt/default.key as the default', async () => {
    const dir = await newDir();
    await dir.install('a', made['a']!);
    await dir.install('default', made['zzz']!);
    const store = await open(dir);
    assert.equal(store.current.defaultPair.name, 'default');
    assert.equal(store.current.select('unknown.test').serial, made['zzz']!.serial);
    assert.equal(store.current.select('a.test').serial, made['a']!.serial);
  });

  it('gives a name two certificates claim to the one valid longer, whatever the file names', async () => {
    const dir = await newDir();
    await dir.install('a-new', made['longLived']!);
    await dir.install('z-old', made['shortLived']!);
    assert.equal((await open(dir)).current.select('shared.test').serial, made['longLived']!.serial);
    const other = await newDir();
    await other.install('a-old', made['shortLived']!);
    await other.install('z-new', made['longLived']!);
    assert.equal((await open(other)).current.select('shared.test').serial, made['longLived']!.serial);
  });

  it('starts with the good pairs when some are broken, counting each broken one', async () => {
    const dir = await newDir();
    await dir.install('a', made['a']!);
    await dir.write('nokey.crt', made['zzz']!.cert);
    await dir.write('mismatch.crt', made['zzz']!.cert);
    await dir.write('mismatch.key', made['a']!.key);
    await dir.write('garbage.crt', 'hello\n');
    await dir.write('garbage.key', made['a']!.key);
    await dir.write('notes.txt', 'ignored');
    const metrics = new Metrics({ defaultMetrics: false });
    const store = await open(dir, metrics);
    assert.deepEqual(store.current.pairs.map((p) => p.name), ['a']);
    assert.equal(await metricValue(metrics, 'switchyard_config_errors_total', { kind: 'tls' }), 3);
    const broken = store.status().broken;
    assert.deepEqual(Object.keys(broken).sort(), ['garbage', 'mismatch', 'nokey']);
    assert.match(broken['nokey']!, /nokey\.key.*missing/);
    assert.match(broken['mismatch']!, /mismatch\.key: the key does not belong to the certificate/);
    assert.match(broken['garbage']!, /not a PEM certificate/);
  });

  it('fails to open, with the reason, a missing directory, an empty one, or one with only broken pairs', async () => {
    const expectFailure = async (path: string, reason: RegExp): Promise<void> => {
      await assert.rejects(CertStore.open(path, logger, new Metrics({ defaultMetrics: false }), { watch: false }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_CONFIG_INVALID');
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, reason);
        return true;
      });
    };
    const root = await newDir();
    await expectFailure(`${root.root}/does-not-exist`, /cannot read the TLS certificate directory: ENOENT/);
    await expectFailure(root.dir, /no usable certificate pair \(NAME\.crt \+ NAME\.key\)$/);
    await root.write('only.crt', made['a']!.cert);
    await expectFailure(root.dir, /no usable certificate pair.*only\.key/);
  });

  it('reloads: unchanged pairs are kept as they are, a changed one is swapped in and counted, nothing at all is refused', async () => {
    const dir = await newDir();
    await dir.install('a', made['a']!);
    await dir.install('zzz', made['zzz']!);
    const metrics = new Metrics({ defaultMetrics: false });
    const store = await open(dir, metrics);
    const first = store.current;
    const swaps: string[] = [];
    store.onSwap((next, previous) => swaps.push(`${previous.pairs.length}→${next.pairs.length}`));

    await store.reload();
    assert.equal(store.current, first, 'no change, no new index');
    assert.equal(await metricValue(metrics, 'switchyard_tls_reloads_total'), 0);

    const renewed = await makePair({ cn: 'a.test', dns: ['a.test'] });
    await dir.install('a', renewed);
    await store.reload();
    assert.notEqual(store.current, first);
    assert.equal(store.current.select('a.test').serial, renewed.serial);
    assert.equal(store.current.pairs.find((p) => p.name === 'zzz'), first.pairs.find((p) => p.name === 'zzz'), 'the unchanged pair is the same object');
    assert.equal(await metricValue(metrics, 'switchyard_tls_reloads_total'), 1);

    const beforeEmpty = store.current;
    for (const file of ['a.crt', 'a.key', 'zzz.crt', 'zzz.key']) await dir.remove(file);
    await store.reload();
    assert.equal(store.current, beforeEmpty, 'an empty directory does not take the certificates away');
    assert.equal(await metricValue(metrics, 'switchyard_config_errors_total', { kind: 'tls' }), 1);
    await store.reload();
    assert.equal(await metricValue(metrics, 'switchyard_config_errors_total', { kind: 'tls' }), 1, 'the same problem is counted once');
    assert.deepEqual(swaps, ['2→2']);
  });

  it('watches the directory: a pair replaced by rename is picked up without a call to reload', async () => {
    const dir = await newDir();
    await dir.install('a', made['a']!);
    const store = await open(dir, new Metrics({ defaultMetrics: false }), true);
    const renewed = await makePair({ cn: 'a.test', dns: ['a.test'] });
    await dir.install('a', renewed);
    await waitFor('the renewed pair', () => store.current.select('a.test').serial === renewed.serial);
    await dir.install('zzz', made['zzz']!);
    await waitFor('the added pair', () => store.current.lookup('zzz.test')?.serial === made['zzz']!.serial);
  });
});
