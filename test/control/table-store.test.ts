import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SwitchyardError } from '../../src/errors.js';
import { TableStore } from '../../src/control/table-store.js';
import { buildTable } from '../../src/model/build-table.js';
import type { RoutingTable } from '../../src/model/types.js';
import { discovery, instance, template } from '../model/fixtures.js';

const table = (port: number): RoutingTable =>
  buildTable(discovery([instance('s', 's-1', { port })]), {}, [template('r', '/', [{ service: 's', weight: 1 }])]);

describe('TableStore.swap', () => {
  it('runs prepare, assigns, then swapped, with the previous table', () => {
    const store = new TableStore();
    const calls: string[] = [];
    store.onPrepare((next) => calls.push(`prepare ${String(store.current === next)}`));
    store.onSwapped((next, previous) => calls.push(`swapped ${String(store.current === next)} ${previous === undefined ? 'none' : 'previous'}`));
    store.swap(table(1));
    store.swap(table(2));
    assert.deepEqual(calls, ['prepare false', 'swapped true none', 'prepare false', 'swapped true previous']);
    assert.equal(store.version, 2);
  });

  it('a prepare hook that throws aborts the swap whole: table and version stay, aborted hooks undo, a typed error', () => {
    const store = new TableStore();
    const live = table(1);
    store.swap(live);
    const at = store.swappedAt;
    const aborted: [RoutingTable, RoutingTable | undefined][] = [];
    let fail = true;
    const made: string[] = [];
    store.onPrepare(() => made.push('first hook made something'));
    store.onPrepare(() => {
      if (fail) throw new Error('pool exploded');
    });
    store.onAborted((next, stays) => aborted.push([next, stays]));
    let swapped = 0;
    store.onSwapped(() => swapped++);
    const next = table(2);
    assert.throws(() => store.swap(next), (err: unknown) =>
      err instanceof SwitchyardError && err.code === 'SY_CONFIG_INVALID' && /table swap aborted while preparing: pool exploded/.test(err.message));
    assert.equal(store.current, live);
    assert.equal(store.version, 1);
    assert.equal(store.swappedAt, at);
    assert.equal(swapped, 0);
    assert.deepEqual(aborted, [[next, live]], 'the aborted hooks learn which table stays');
    assert.equal(made.length, 1);

    // The failure does not stick: the next swap applies.
    fail = false;
    store.swap(next);
    assert.equal(store.current, next);
    assert.equal(store.version, 2);
    assert.equal(swapped, 1);
  });

  it('a swapped hook that throws: the table is live, every other swapped hook still runs, then the error', () => {
    const store = new TableStore();
    const ran: string[] = [];
    store.onSwapped(() => {
      throw new Error('cleanup failed');
    });
    store.onSwapped(() => ran.push('second'));
    const next = table(1);
    assert.throws(() => store.swap(next), /table 1 is live, but releasing the old one failed: cleanup failed/);
    assert.equal(store.current, next);
    assert.equal(store.version, 1);
    assert.deepEqual(ran, ['second']);
  });
});
