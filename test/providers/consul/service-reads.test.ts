/**
 * ServiceReads (the non-blocking per-service reads that replaced one blocking query per service)
 * driven by a fake read: bounded concurrency, sweep reads behind urgent ones, coalescing, identity
 * of unchanged answers, and a lagging server's answer read again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Answer } from '../../../src/providers/consul/blocking-query.js';
import { ServiceReads } from '../../../src/providers/consul/service-reads.js';
import { waitFor } from '../../support/wait.js';

function body(name: string, port: number): unknown {
  return [{ Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: `${name}-1`, Service: name, Port: port }, Checks: [] }];
}

interface Pending { name: string; resolve: (answer: Answer<unknown>) => void }

function harness(options: { floor?: (name: string) => number } = {}) {
  const pending: Pending[] = [];
  const calls: string[] = [];
  const changes: string[] = [];
  let inFlight = 0;
  let peak = 0;
  const reads = new ServiceReads({
    read: (name) => {
      calls.push(name);
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      return new Promise((resolve) => pending.push({ name, resolve: (answer) => {
        inFlight -= 1;
        resolve(answer);
      } }));
    },
    veto: () => Promise.resolve(undefined),
    floor: (name) => options.floor?.(name) ?? 0,
    sawData: () => undefined,
    onChange: (name) => changes.push(name),
    onSuccess: () => undefined,
    onFailure: () => undefined,
  }, { concurrency: 4, sweepConcurrency: 2, backoffBaseMs: 5, backoffMaxMs: 20, lagRetryMs: 2, random: () => 0.5 });
  /** Answers every read in flight (port by name) and lets the reads settle. */
  async function answerAll(port = 1, index = 10): Promise<void> {
    for (const p of pending.splice(0)) p.resolve({ body: body(p.name, port), meta: { index, knownLeader: true, lastContactMs: 0, filteredByAcls: false } });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  return { reads, pending, calls, changes, answerAll, peak: () => peak };
}

describe('service reads', () => {
  it('reads nothing before enable(); then at most 4 at once; each wanted service once', async () => {
    const h = harness();
    h.reads.setWanted(['a', 'b', 'c', 'd', 'e', 'f']);
    assert.equal(h.calls.length, 0, 'not before the list watches answered');
    h.reads.enable();
    assert.equal(h.pending.length, 4);
    await h.answerAll();
    await h.answerAll();
    assert.deepEqual(h.calls.sort(), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.equal(h.peak(), 4);
    assert.ok(h.reads.allSynced());
  });

  it('a sweep runs at most 2 reads at once and yields to urgent reads', async () => {
    const h = harness();
    h.reads.setWanted(['a', 'b', 'c', 'd', 'e', 'f']);
    h.reads.enable();
    await h.answerAll();
    await h.answerAll();
    h.calls.length = 0;
    h.reads.markAll('sweep');
    assert.equal(h.pending.length, 2, 'two sweep reads at once');
    h.reads.mark('f', 'urgent');
    assert.deepEqual(h.pending.map((p) => p.name).sort(), ['a', 'b', 'f'], 'the urgent read starts beside the sweep');
    await h.answerAll();
    assert.equal(h.pending.length, 2);
  });

  it('marks while a read runs make one more read; an unchanged answer keeps its array', async () => {
    const h = harness();
    h.reads.setWanted(['a']);
    h.reads.enable();
    await h.answerAll(1);
    const first = h.reads.current('a');
    h.reads.mark('a', 'urgent');
    assert.equal(h.pending.length, 1, 'the read starts at once');
    h.reads.mark('a', 'urgent');
    h.reads.mark('a', 'sweep');
    await h.answerAll(1);
    assert.equal(h.reads.current('a'), first, 'same answer, same array');
    assert.equal(h.pending.length, 1, 'the two marks made while it ran: one more read');
    await h.answerAll(1);
    assert.equal(h.pending.length, 0, 'then nothing');
    assert.equal(h.reads.current('a'), first);
    h.reads.mark('a', 'urgent');
    await h.answerAll(2);
    assert.notEqual(h.reads.current('a'), first, 'a changed answer is a new array');
    assert.deepEqual(h.changes, ['a', 'a']);
  });

  it('an answer below the health state\'s floor (a lagging server) is read again, not applied; at most 5 times', async () => {
    let floor = 0;
    const h = harness({ floor: () => floor });
    h.reads.setWanted(['a']);
    h.reads.enable();
    await h.answerAll(1, 10);
    floor = 12;
    h.reads.mark('a', 'urgent');
    await h.answerAll(2, 11);
    assert.equal(h.reads.current('a')?.[0]?.port, 1, 'the stale answer is not applied');
    await waitFor('read again', () => h.pending.length === 1, 2_000);
    await h.answerAll(2, 12);
    assert.equal(h.reads.current('a')?.[0]?.port, 2);
    assert.equal(h.reads.state('a')?.rereads, 1);
    floor = 100;
    h.reads.mark('a', 'urgent');
    for (let i = 0; i < 6; i++) {
      await waitFor('a read', () => h.pending.length === 1, 2_000);
      await h.answerAll(3, 50);
    }
    assert.equal(h.reads.current('a')?.[0]?.port, 3, 'applied after 5 lagging answers');
  });
});
