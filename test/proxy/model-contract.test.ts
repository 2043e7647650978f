/**
 * The proxy against the real model: tables from `buildTable`, not the test helper. The runtime maps
 * the Route objects `lookup` returns to its own state by identity, so this locks that contract.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildTable } from '../../src/model/build-table.js';
import type { DiscoverySnapshot, KvSnapshot, RouteTemplate, ServiceInstance } from '../../src/model/types.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { send, startProxy, type TestProxy } from './harness.js';

function instance(service: string, id: string, port: number, tags: string[], status: ServiceInstance['status'] = 'passing'): ServiceInstance {
  return { id, service, address: '127.0.0.1', port, tags, status, weights: { passing: 1, warning: 1 }, meta: {} };
}

describe('proxy: tables from the real buildTable', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let p: TestProxy;
  let discovery: DiscoverySnapshot;
  const templates: RouteTemplate[] = [
    {
      name: 'api-users',
      match: { hosts: ['api.example.com'], path: '/users' },
      strip: '/users',
      to: [{ service: 'users', tag: 'v1', weight: 3 }, { service: 'users', tag: 'v2', weight: 1 }],
      source: 'test.yaml',
    },
  ];

  before(async () => {
    v1 = await startUpstream({ name: 'v1' });
    v2 = await startUpstream({ name: 'v2' });
    discovery = {
      catalog: { users: ['v1', 'v2'] },
      instances: { users: [instance('users', 'users-1', v1.port, ['v1']), instance('users', 'users-2', v2.port, ['v2'])] },
    };
    p = await startProxy(buildTable(discovery, {}, templates));
  });

  after(async () => {
    await p.close();
    await Promise.all([v1.close(), v2.close()]);
  });

  it('routes, strips and splits 3:1 exactly', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const reply = await send(p.port, { path: '/users/7', headers: { host: 'API.example.com:8080' } });
      assert.equal(reply.status, 200);
      const echo = reply.json<EchoReply>();
      assert.equal(echo.url, '/7');
      counts[echo.upstream] = (counts[echo.upstream] ?? 0) + 1;
    }
    assert.deepEqual(counts, { v1: 30, v2: 10 });
    assert.equal((await send(p.port, { path: '/users/7', headers: { host: 'other.example.com' } })).status, 404);
  });

  it('follows a KV weight override after a swap, and answers 503 when the pool is drained', async () => {
    const kv: KvSnapshot = { 'routes/api-users/weights': '{"users:v1": 1, "users:v2": 1}' };
    p.store.swap(buildTable(discovery, kv, templates));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const name = (await send(p.port, { path: '/users', headers: { host: 'api.example.com' } })).json<EchoReply>().upstream;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    assert.deepEqual(counts, { v1: 10, v2: 10 });

    p.store.swap(buildTable(discovery, { 'services/users/weights': '{"users-1": 0, "users-2": 0}' }, templates));
    const reply = await send(p.port, { path: '/users', headers: { host: 'api.example.com' } });
    assert.equal(reply.status, 503);
    assert.equal(reply.json<{ error: string }>().error, 'SY_NO_ENDPOINT');
  });
});
