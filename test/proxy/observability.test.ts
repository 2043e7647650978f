import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { makeTable, metricValue, send, startProxy, waitFor, type TestProxy } from './harness.js';

describe('proxy: access log and metrics', () => {
  let up: TestUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startUpstream({ name: 'obs' });
    p = await startProxy(makeTable([
      { name: 'shop', path: '/shop', to: [{ service: 'shop', endpoints: [{ id: 's1', port: up.port }] }] },
      { name: 'empty', path: '/empty', to: [{ service: 'none', endpoints: [] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('writes one access log line per request with route, upstream, status, duration and request id', async () => {
    const reply = await send(p.port, { method: 'POST', path: '/shop/cart?id=3', headers: { 'x-request-id': 'log-me', 'x-test-status': '201' }, body: 'x' });
    assert.equal(reply.status, 201);
    await waitFor(() => p.accessLines().some((l) => l.reqId === 'log-me'), 'the access log line');
    const lines = p.accessLines().filter((l) => l.reqId === 'log-me');
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.route, 'shop');
    assert.equal(line.upstream, up.origin);
    assert.equal(line.endpoint, 'shop/s1');
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/shop/cart?id=3');
    assert.equal(line.status, 201);
    assert.equal(typeof line.ms, 'number');
    assert.ok((line.ms as number) >= 0 && (line.ms as number) < 5_000);
    assert.equal(line.level, 30);
  });

  it('logs requests without a route or endpoint too, with the generated request id', async () => {
    const miss = await send(p.port, { path: '/missing' });
    const empty = await send(p.port, { path: '/empty' });
    await waitFor(() => p.accessLines().some((l) => l.reqId === miss.headers['x-request-id']) && p.accessLines().some((l) => l.reqId === empty.headers['x-request-id']), 'both lines');
    const missLine = p.accessLines().find((l) => l.reqId === miss.headers['x-request-id'])!;
    assert.equal(missLine.route, '(none)');
    assert.equal(missLine.status, 404);
    assert.equal(missLine.error, undefined);
    const emptyLine = p.accessLines().find((l) => l.reqId === empty.headers['x-request-id'])!;
    assert.equal(emptyLine.route, 'empty');
    assert.equal(emptyLine.status, 503);
    assert.equal(emptyLine.upstream, undefined);
  });

  it('counts requests by route and status code and observes their duration', async () => {
    const before200 = await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '200' });
    const beforeHist = await metricValue(p.metrics, 'switchyard_request_duration_seconds', { route: 'shop' }, 'switchyard_request_duration_seconds_count');
    for (let i = 0; i < 3; i++) await send(p.port, { path: '/shop' });
    await send(p.port, { path: '/shop', headers: { 'x-test-status': '418' } });
    await send(p.port, { path: '/nope' });
    await waitFor(async () => await metricValue(p.metrics, 'switchyard_requests_total', { route: '(none)', code: '404' }) >= 1, 'the 404 to be counted');
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '200' }) - before200, 3);
    assert.equal(await metricValue(p.metrics, 'switchyard_requests_total', { route: 'shop', code: '418' }), 1);
    assert.equal(await metricValue(p.metrics, 'switchyard_request_duration_seconds', { route: 'shop' }, 'switchyard_request_duration_seconds_count') - beforeHist, 4);
    const text = await p.metrics.registry.metrics();
    assert.match(text, /switchyard_requests_total\{route="shop",code="418"\} 1/);
    assert.match(text, /switchyard_upstream_pools 1/);
  });
});
