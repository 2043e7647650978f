/**
 * /api/match on gateway routes, over real HTTP: a redirect route is explained as the redirect the
 * proxy sends (outcome `redirected`, its status and Location), and a rewriting route shows the
 * path the upstream gets (`upstreamTarget` after the rewrite). Each answer is checked against
 * what the running proxy does with the same request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { AdminServer } from '../../src/admin/admin-server.js';
import { explainReport } from '../../src/commands/explain.js';
import { buildTable } from '../../src/model/build-table.js';
import { discovery, instance } from '../model/fixtures.js';
import { conditions } from '../model/precedence-support.js';
import { send, startProxy, type TestProxy } from '../proxy/harness.js';
import { startMatchAdmin } from './match-admin.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';

interface MatchJson {
  outcome: string;
  status: number | null;
  reason: string;
  location?: string | null;
  route?: { name: string; upstreamTarget: string | null };
}

describe('admin: /api/match on redirect and rewrite routes', () => {
  let up: TestUpstream;
  let p: TestProxy;
  let admin: AdminServer;
  let base = '';

  before(async () => {
    up = await startUpstream({ name: 'up' });
    const snap = discovery([instance('api', 'api-1', { port: up.port })]);
    p = await startProxy(buildTable(snap, {}, [
      { name: 'old', match: { hosts: ['www.example.com'], path: '/home.php' }, to: [], source: 't.yaml',
        options: { redirect: { to: 'https://{host}/home{path}', status: 301, keepQuery: true } } },
      { name: 'v2', match: { hosts: [], path: '/api' }, to: [{ service: 'api', weight: 1 }], source: 't.yaml',
        options: { rewrite: { path: '/v2' } } },
      { name: 'reads', match: { hosts: ['r.example.com'], path: '/' }, to: [{ service: 'api', weight: 1 }], source: 't.yaml',
        options: { conditions: conditions({ methods: ['GET'] }) } },
    ]));
    ({ admin, base } = await startMatchAdmin(p));
  });

  after(async () => {
    await admin.close();
    await p.close();
    await up.close();
  });

  async function match(query: string): Promise<MatchJson> {
    const res = await request(`${base}/api/match?${query}`);
    assert.equal(res.statusCode, 200);
    return (await res.body.json()) as MatchJson;
  }

  it('a redirect route: outcome redirected with the status and Location the proxy sends', async () => {
    const m = await match(`host=WWW.example.com:8080&path=/home.php?a=1`);
    assert.equal(m.outcome, "redirected", m.reason);
    assert.equal(m.status, 301);
    assert.equal(m.location, 'https://www.example.com/home/home.php?a=1');
    assert.equal(m.route?.upstreamTarget, null);
    assert.match(m.reason, /redirect route: the answer is 301 to https:\/\/www\.example\.com\/home\/home\.php\?a=1/);
    const text = explainReport(m as unknown as Parameters<typeof explainReport>[0], 'GET', { all: false, methodAndHeadersAsked: true });
    assert.match(text, /^Answer\s+Switchyard answers 301 itself \(route "old" is a redirect route\): Location https:\/\/www\.example\.com\/home\/home\.php\?a=1$/m);
    assert.doesNotMatch(text, /Destinations and endpoints/, 'no empty destination table for a redirect route');
    const reply = await send(p.port, { method: 'GET', path: '/home.php?a=1', headers: { host: 'WWW.example.com:8080' } });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, m.location);
  });

  it('switchyard explain: a HEAD request held by a GET route says GET includes HEAD', async () => {
    const m = await match('host=r.example.com&method=HEAD&path=/x');
    assert.equal(m.outcome, 'routed', m.reason);
    const text = explainReport(m as unknown as Parameters<typeof explainReport>[0], 'HEAD', { all: false, methodAndHeadersAsked: true });
    assert.match(text, /^Matched\s+method GET \(GET includes HEAD\): held$/m);
    const reply = await send(p.port, { method: 'HEAD', path: '/x', headers: { host: 'r.example.com' } });
    assert.equal(reply.status, 200);
  });

  it('a rewrite route: upstreamTarget is the rewritten path the upstream receives', async () => {
    const m = await match(`path=/api/users?x=1`);
    assert.equal(m.outcome, "routed", m.reason);
    assert.equal(m.route?.upstreamTarget, '/v2/users?x=1');
    const reply = await send(p.port, { method: 'GET', path: '/api/users?x=1', headers: { host: 'a.example' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.json<EchoReply>().url, m.route?.upstreamTarget);
  });
});
