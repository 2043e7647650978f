/** The pure conversions of Consul answers: catalog, health (check aggregation), KV. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { catalogFromServices } from '../../../src/providers/consul/catalog.js';
import { aggregateStatus, instancesFromHealth, type ConsulCheck } from '../../../src/providers/consul/health.js';
import { kvFromEntries } from '../../../src/providers/consul/kv.js';

const check = (CheckID: string, Status: string, ServiceID = ''): ConsulCheck => ({ CheckID, Status, ServiceID });
const serf = (status = 'passing'): ConsulCheck => check('serfHealth', status);
const svc = (status: string, id = 'web-1'): ConsulCheck => check(`service:${id}`, status, id);

describe('consul data: check aggregation', () => {
  const table: [string, ConsulCheck[], string][] = [
    ['no checks', [], 'passing'],
    ['all passing', [serf(), svc('passing')], 'passing'],
    ['service warning', [serf(), svc('warning')], 'warning'],
    ['node warning', [serf('warning'), svc('passing')], 'warning'],
    ['service critical', [serf(), svc('critical')], 'critical'],
    ['node critical (serfHealth)', [serf('critical'), svc('passing')], 'critical'],
    ['warning and critical', [svc('warning'), check('service:web-1:2', 'critical', 'web-1')], 'critical'],
    ['service maintenance', [serf(), svc('passing'), check('_service_maintenance:web-1', 'critical', 'web-1')], 'maintenance'],
    ['node maintenance', [check('_node_maintenance', 'critical'), serf(), svc('passing')], 'maintenance'],
    ['maintenance beats critical', [svc('critical'), check('_node_maintenance', 'critical')], 'maintenance'],
    ['status "maintenance"', [check('x', 'maintenance')], 'maintenance'],
    ['unknown status fails closed', [svc('unknown')], 'critical'],
  ];
  for (const [name, checks, want] of table) {
    it(`${name} → ${want}`, () => assert.equal(aggregateStatus(checks), want));
  }
});

describe('consul data: health entries → instances', () => {
  const entry = (over: { id?: string; node?: string; nodeAddress?: string; address?: string | null; weights?: unknown; tags?: string[] | null; meta?: Record<string, string> | null; checks?: ConsulCheck[] }) => ({
    Node: { Node: over.node ?? 'n1', Address: over.nodeAddress ?? '10.0.0.1', Datacenter: 'dc1' },
    Service: {
      ID: over.id ?? 'web-1', Service: 'web', Tags: over.tags === undefined ? ['v1'] : over.tags,
      Address: over.address === undefined ? '10.1.0.1' : over.address, Port: 8080,
      Meta: over.meta === undefined ? null : over.meta,
      ...(over.weights === undefined ? {} : { Weights: over.weights }),
    },
    Checks: over.checks ?? [serf(), svc('passing', over.id ?? 'web-1')],
  });

  it('maps fields, defaults weights to 1/1 and meta to {}', () => {
    const [i] = instancesFromHealth([entry({})]);
    assert.deepEqual(i, {
      id: 'web-1', service: 'web', address: '10.1.0.1', port: 8080, tags: ['v1'], status: 'passing',
      weights: { passing: 1, warning: 1 }, meta: {},
    });
  });

  it('honours Service.Weights', () => {
    const [i] = instancesFromHealth([entry({ weights: { Passing: 10, Warning: 2 }, meta: { version: '2' } })]);
    assert.deepEqual(i?.weights, { passing: 10, warning: 2 });
    assert.deepEqual(i?.meta, { version: '2' });
  });

  it('an empty or null Service.Address means the node address', () => {
    assert.equal(instancesFromHealth([entry({ address: '' })])[0]?.address, '10.0.0.1');
    assert.equal(instancesFromHealth([entry({ address: null })])[0]?.address, '10.0.0.1');
  });

  it('null Tags and null Checks are tolerated', () => {
    const [i] = instancesFromHealth([{ ...entry({ tags: null }), Checks: null }]);
    assert.deepEqual(i?.tags, []);
    assert.equal(i?.status, 'passing');
  });

  it('sorts by id; the same service ID on two nodes becomes ID@node', () => {
    const list = instancesFromHealth([entry({ id: 'web', node: 'n2' }), entry({ id: 'web', node: 'n1' }), entry({ id: 'a' })]);
    assert.deepEqual(list.map((i) => i.id), ['a', 'web@n1', 'web@n2']);
  });

  it('null and [] are no instances; a wrong shape throws', () => {
    assert.deepEqual(instancesFromHealth(null), []);
    assert.deepEqual(instancesFromHealth([]), []);
    assert.throws(() => instancesFromHealth({ not: 'a list' }));
    assert.throws(() => instancesFromHealth([{ Node: {}, Service: {} }]));
  });
});

describe('consul data: catalog', () => {
  it('drops the consul service, sorts names and tags', () => {
    assert.deepEqual(catalogFromServices({ web: ['v2', 'public', 'v2'], consul: [], api: null }), { api: [], web: ['public', 'v2'] });
    assert.deepEqual(Object.keys(catalogFromServices({ b: [], a: [] })), ['a', 'b']);
  });
  it('rejects what is not a map of tag lists', () => {
    assert.throws(() => catalogFromServices(['web']));
    assert.throws(() => catalogFromServices({ web: 'v1' }));
  });
});

describe('consul data: KV', () => {
  it('removes the prefix, decodes null as "", drops the folder key and foreign keys', () => {
    const kv = kvFromEntries([
      { Key: 'switchyard/', Value: null },
      { Key: 'switchyard/routes/api/weights', Value: '{"a":1}' },
      { Key: 'switchyard/empty', Value: null },
      { Key: 'elsewhere/x', Value: 'y' },
    ], 'switchyard/');
    assert.deepEqual(kv, { empty: '', 'routes/api/weights': '{"a":1}' });
  });
  it('undefined (404) is no keys', () => {
    assert.deepEqual(kvFromEntries(undefined, 'switchyard/'), {});
  });
});
