import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { makeTable, send, simpleTable, startProxy, type TestProxy } from './harness.js';

async function tally(port: number, n: number, agent: Agent, path = '/'): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const reply = await send(port, { path, agent });
    assert.equal(reply.status, 200);
    const name = reply.json<EchoReply>().upstream;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

describe('proxy: smooth weighted round-robin', () => {
  const ups: TestUpstream[] = [];
  let agent: Agent;
  const proxies: TestProxy[] = [];

  before(async () => {
    for (const name of ['a', 'b', 'c']) ups.push(await startUpstream({ name }));
    agent = new Agent({ keepAlive: true, maxSockets: 4 });
  });

  after(async () => {
    agent.destroy();
    for (const p of proxies) await p.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  async function proxyFor(table: ReturnType<typeof makeTable>): Promise<TestProxy> {
    const p = await startProxy(table);
    proxies.push(p);
    return p;
  }

  it('splits 3:1 between destinations exactly: 300/100 over 400 requests', async () => {
    const [a, b] = ups as [TestUpstream, TestUpstream];
    const p = await proxyFor(makeTable([{
      name: 'split',
      to: [
        { service: 'users', tag: 'v1', weight: 3, endpoints: [{ id: 'a', port: a.port }] },
        { service: 'users', tag: 'v2', weight: 1, endpoints: [{ id: 'b', port: b.port }] },
      ],
    }]));
    assert.deepEqual(await tally(p.port, 400, agent), { a: 300, b: 100 });
  });

  it('splits 2:1:1 between endpoints of a destination exactly', async () => {
    const [a, b, c] = ups as [TestUpstream, TestUpstream, TestUpstream];
    const p = await proxyFor(makeTable([{
      name: 'pool',
      to: [{ service: 'users', endpoints: [{ id: 'a', port: a.port, weight: 2 }, { id: 'b', port: b.port }, { id: 'c', port: c.port }] }],
    }]));
    assert.deepEqual(await tally(p.port, 200, agent), { a: 100, b: 50, c: 50 });
  });

  it('interleaves smoothly: with 3:1 no endpoint gets more than 3 in a row', async () => {
    const [a, b] = ups as [TestUpstream, TestUpstream];
    const p = await proxyFor(makeTable([{
      name: 'smooth',
      to: [{ service: 'users', endpoints: [{ id: 'a', port: a.port, weight: 3 }, { id: 'b', port: b.port, weight: 1 }] }],
    }]));
    const sequence: string[] = [];
    for (let i = 0; i < 16; i++) sequence.push((await send(p.port, { agent })).json<EchoReply>().upstream);
    assert.deepEqual(sequence.slice(0, 8), ['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a']);
  });

  it('keeps balancer state across a swap to an equivalent table', async () => {
    const [a, b] = ups as [TestUpstream, TestUpstream];
    const p = await proxyFor(simpleTable([a.port, b.port]));
    assert.equal((await send(p.port, { agent })).json<EchoReply>().upstream, 'a');
    // A new table object with the same ids and weights: the cycle continues with b.
    // (A fresh balancer would start over with a.)
    p.store.swap(simpleTable([a.port, b.port]));
    assert.equal((await send(p.port, { agent })).json<EchoReply>().upstream, 'b');
    p.store.swap(simpleTable([a.port, b.port]));
    assert.equal((await send(p.port, { agent })).json<EchoReply>().upstream, 'a');
    assert.equal(p.upstreams.size, 2, 'no pool was created or retired by equivalent swaps');
  });

  it('keeps the destination-level cycle across swaps too: 3:1 stays exact over 400 with a swap every 7 requests', async () => {
    const [a, b] = ups as [TestUpstream, TestUpstream];
    const table = () => makeTable([{
      name: 'split-swapped',
      to: [
        { service: 'users', tag: 'v1', weight: 3, endpoints: [{ id: 'a', port: a.port }] },
        { service: 'users', tag: 'v2', weight: 1, endpoints: [{ id: 'b', port: b.port }] },
      ],
    }]);
    const p = await proxyFor(table());
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      if (i % 7 === 0) p.store.swap(table());
      const name = (await send(p.port, { agent })).json<EchoReply>().upstream;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    assert.deepEqual(counts, { a: 300, b: 100 });
  });

  it('starts a fresh exact split when weights change', async () => {
    const [a, b] = ups as [TestUpstream, TestUpstream];
    const table = (wa: number, wb: number) => makeTable([{
      name: 'reweighted',
      to: [{ service: 'users', endpoints: [{ id: 'a', port: a.port, weight: wa }, { id: 'b', port: b.port, weight: wb }] }],
    }]);
    const p = await proxyFor(table(1, 1));
    await tally(p.port, 3, agent);
    p.store.swap(table(1, 4));
    assert.deepEqual(await tally(p.port, 50, agent), { a: 10, b: 40 });
  });
});
