import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiscoveryMerger, mergeDiscovery, mergeKv } from '../../src/control/merge.js';
import type { DiscoverySnapshot, ServiceInstance } from '../../src/model/types.js';

const inst = (service: string, id: string, port: number, tags: string[] = []): ServiceInstance => ({
  id, service, address: '127.0.0.1', port, tags, status: 'passing', weights: { passing: 1, warning: 1 }, meta: {},
});

describe('mergeDiscovery (several discovery providers, in order)', () => {
  const file: DiscoverySnapshot = {
    catalog: { users: ['v1'], billing: [] },
    instances: { users: [inst('users', 'u-1', 9001, ['v1']), inst('users', 'u-2', 9002, ['v1'])], billing: [inst('billing', 'b-1', 9101)] },
  };
  const consul: DiscoverySnapshot = {
    catalog: { users: ['v2', 'v1'], orders: ['a'] },
    instances: { users: [inst('users', 'u-2', 9202, ['v2']), inst('users', 'u-3', 9003, ['v2'])], orders: [] },
  };

  it('unites catalogs (tags deduplicated and sorted) and keeps every service', () => {
    const merged = mergeDiscovery([file, consul]);
    assert.deepEqual(merged.catalog, { users: ['v1', 'v2'], billing: [], orders: ['a'] });
    assert.deepEqual(Object.keys(merged.instances).sort(), ['billing', 'orders', 'users']);
    assert.deepEqual(merged.instances['orders'], [], 'a service with no instances stays present with []');
  });

  it('concatenates instances; a later provider replaces an instance with the same id (same service)', () => {
    const users = mergeDiscovery([file, consul]).instances['users']!;
    assert.deepEqual(users.map((i) => [i.id, i.port]), [['u-1', 9001], ['u-2', 9202], ['u-3', 9003]]);
  });

  it('the order of providers decides who wins', () => {
    const users = mergeDiscovery([consul, file]).instances['users']!;
    assert.equal(users.find((i) => i.id === 'u-2')?.port, 9002);
  });

  it('the same id in two services are two instances', () => {
    const a: DiscoverySnapshot = { catalog: { x: [] }, instances: { x: [inst('x', 'same', 1)] } };
    const b: DiscoverySnapshot = { catalog: { y: [] }, instances: { y: [inst('y', 'same', 2)] } };
    const merged = mergeDiscovery([a, b]);
    assert.equal(merged.instances['x']?.[0]?.port, 1);
    assert.equal(merged.instances['y']?.[0]?.port, 2);
  });

  it('one snapshot is returned as it is; none gives an empty snapshot', () => {
    assert.equal(mergeDiscovery([file]), file);
    assert.deepEqual(mergeDiscovery([]), { catalog: {}, instances: {} });
  });

  it('does not modify its inputs', () => {
    const before = JSON.stringify([file, consul]);
    mergeDiscovery([file, consul]);
    assert.equal(JSON.stringify([file, consul]), before);
  });
});

describe('mergeKv', () => {
  it('later snapshots override earlier ones key by key', () => {
    assert.deepEqual(mergeKv([{ a: '1', b: '1' }, { b: '2', c: '2' }]), { a: '1', b: '2', c: '2' });
  });
  it('one snapshot is returned as it is; none gives {}', () => {
    const one = { a: '1' };
    assert.equal(mergeKv([one]), one);
    assert.deepEqual(mergeKv([]), {});
  });
  it('does not modify its inputs', () => {
    const first = { a: '1' };
    mergeKv([first, { a: '2' }]);
    assert.deepEqual(first, { a: '1' });
  });
});

describe('DiscoveryMerger (the watcher keeps one)', () => {
  it('gives the same merged arrays for services whose inputs are the same arrays; a new array only for the changed one', () => {
    const file: DiscoverySnapshot = { catalog: { users: ['v1'], web: [] }, instances: { users: [inst('users', 'u-1', 9001)], web: [inst('web', 'w-1', 9101)] } };
    const consul: DiscoverySnapshot = { catalog: { users: ['v2'], api: [] }, instances: { users: [inst('users', 'u-2', 9002)], api: [inst('api', 'a-1', 9201)] } };
    const merger = new DiscoveryMerger();
    const first = merger.merge([file, consul]);
    // Consul's next snapshot: api changed (a new array), users kept its arrays.
    const next: DiscoverySnapshot = { catalog: consul.catalog, instances: { ...consul.instances, api: [inst('api', 'a-1', 9202)] } };
    const second = merger.merge([file, next]);
    assert.equal(second.instances['users'], first.instances['users']);
    assert.equal(second.instances['web'], first.instances['web']);
    assert.equal(second.catalog['users'], first.catalog['users']);
    assert.notEqual(second.instances['api'], first.instances['api']);
    assert.deepEqual(second, mergeDiscovery([file, next]), 'the same content as a one-shot merge');
  });
});
