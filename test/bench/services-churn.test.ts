import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { CHURN_STATES, churnServices, startChurn } from '../../bench/services-churn.js';
import { servicesFileSchema } from '../../src/providers/file/services-schema.js';
import { servicesToDiscovery } from '../../src/providers/file/to-snapshot.js';
import { waitFor } from '../support/wait.js';

const UPSTREAMS = [1, 2, 3].map((i) => ({ id: `bench-${i}`, host: '127.0.0.1', port: 40_000 + i }));

const discovery = (text: string): string => JSON.stringify(servicesToDiscovery(servicesFileSchema.parse(parse(text))));

describe('churnServices', () => {
  it('gives a valid services file in every state, each different from the one before (a real swap)', () => {
    for (let step = 0; step < CHURN_STATES; step++) {
      const now = discovery(churnServices(UPSTREAMS, step));
      const next = discovery(churnServices(UPSTREAMS, step + 1));
      assert.notEqual(now, next, `state ${step} → ${step + 1} changes nothing`);
    }
  });

  it('cycles back to the plain file', () => {
    assert.equal(churnServices(UPSTREAMS, CHURN_STATES), churnServices(UPSTREAMS, 0));
    const plain = servicesFileSchema.parse(parse(churnServices(UPSTREAMS, 0)));
    assert.deepEqual(plain.services['bench']?.map((i) => [i.id, i.port, i.weights.passing]), UPSTREAMS.map((u) => [u.id, u.port, 1]));
  });

  it('adds an instance and changes a weight along the cycle', () => {
    const states = [0, 1, 2, 3].map((s) => servicesFileSchema.parse(parse(churnServices(UPSTREAMS, s))).services['bench']!);
    assert.deepEqual(states.map((list) => list.length), [3, 3, 4, 4]);
    assert.deepEqual(states.map((list) => list[0]!.weights.passing), [1, 2, 2, 1]);
  });
});

describe('startChurn', () => {
  const dir = mkdtempSync(join(tmpdir(), 'churn-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('rewrites the file at its rate and puts it back to the plain state when stopped', async () => {
    const file = join(dir, 'services.yaml');
    writeFileSync(file, churnServices(UPSTREAMS, 0));
    const churn = startChurn(file, UPSTREAMS, 50);
    const seen = new Set<string>();
    let rewrites: number;
    try {
      await waitFor('every churn state written', () => {
        seen.add(readFileSync(file, 'utf8'));
        return seen.size === CHURN_STATES;
      }, 10_000);
    } finally {
      rewrites = churn.stop(); // the interval must not outlive a failed wait
    }
    assert.ok(rewrites >= CHURN_STATES - 1, `rewrites ${rewrites}`);
    assert.equal(readFileSync(file, 'utf8'), churnServices(UPSTREAMS, 0));
  });
});
