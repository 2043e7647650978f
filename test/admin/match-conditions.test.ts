/**
 * /api/match with match conditions and wildcard hosts, over real HTTP: `method=` and repeatable
 * `header=NAME:VALUE` (and the query in the target) reach the lookup, are echoed back, and each
 * candidate carries its conditions' verdicts. Every answer is checked against what the running
 * proxy does with the same request (which upstream answered).
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
import { Workspace } from '../support/switchyard.js';
import { startCluster, type RunningCluster } from '../cluster/cluster-process.js';

interface Verdict { kind: string; name: string | null; expected: string | string[]; held: boolean; seen: string[] }
interface Candidate { route: string; host: string | null; hostMatch: string; path: string; prefixMatches: boolean; conditionCount: number; conditions: Verdict[]; conditionsHold: boolean; chosen: boolean }
interface MatchJson {
  outcome: string;
  reason: string;
  request: { host: string | null; target: string; method: string; headers: [string, string][] };
  route?: { name: string; hosts: string[]; conditions: { methods: string[]; headers: Record<string, string>; query: Record<string, string> } | null };
  candidates?: Candidate[];
}

describe('admin: /api/match with match conditions', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let p: TestProxy;
  let admin: AdminServer;
  let base = '';

  before(async () => {
    [v1, v2] = await Promise.all([startUpstream({ name: 'v1' }), startUpstream({ name: 'v2' })]);
    const snap = discovery([instance('api', 'api-1', { port: v1.port, tags: ['v1'] }), instance('api', 'api-2', { port: v2.port, tags: ['v2'] })]);
    const to = (tag: string) => [{ service: 'api', tag, weight: 1 }];
    const t = (name: string, hosts: string[], path: string, tag: string, when?: Parameters<typeof conditions>[0]) => ({
      name, match: { hosts, path }, to: to(tag), source: `templates/${name}.yaml`, ...(when === undefined ? {} : { options: { conditions: conditions(when) } }),
    });
    p = await startProxy(buildTable(snap, {}, [
      t('api', ['api.example.com'], '/api', 'v1'),
      t('api-canary', ['api.example.com'], '/api', 'v2', { headers: { 'x-canary': '1' } }),
      t('partner-post', ['*.partners.example.com'], '/api', 'v2', { methods: ['POST'] }),
      t('beta', [], '/beta', 'v2', { query: { beta: 'true' } }),
      t('beta-plain', [], '/beta', 'v1'),
      t('docs-get', ['docs.example.com'], '/docs', 'v2', { methods: ['GET'] }),
    ]));
    ({ admin, base } = await startMatchAdmin(p));
  });

  after(async () => {
    await admin.close();
    await p.close();
    await Promise.all([v1.close(), v2.close()]);
  });

  async function match(query: string): Promise<MatchJson> {
    const res = await request(`${base}/api/match?${query}`);
    assert.equal(res.statusCode, 200);
    return (await res.body.json()) as MatchJson;
  }

  /** The upstream that answers the same request through the proxy (404 → null). */
  async function served(host: string, path: string, method: string, headers: Record<string, string> = {}): Promise<string | null> {
    const reply = await send(p.port, { method, path, headers: { host, ...headers } });
    if (reply.status === 404) return null;
    assert.equal(reply.status, 200, reply.text());
    return reply.json<EchoReply>().upstream;
  }

  it('a header condition: the canary route with header=, the plain one without; the proxy agrees', async () => {
    const canary = await match('host=api.example.com&method=GET&header=X-Canary:%201&path=/api/x');
    assert.equal(canary.route?.name, 'api-canary');
    assert.deepEqual(canary.request.headers, [['X-Canary', '1']], 'echoed, value trimmed');
    assert.equal(canary.request.method, 'GET');
    assert.deepEqual(canary.route?.conditions, { methods: [], headers: { 'x-canary': '1' }, query: {} });
    const chosen = canary.candidates?.find((c) => c.chosen);
    assert.deepEqual(chosen?.conditions, [{ kind: 'header', name: 'x-canary', expected: '1', held: true, seen: ['1'] }]);
    assert.match(canary.reason, /route "api-canary" is for host "api\.example\.com" .*its conditions hold \(header x-canary = "1"\)/);
    assert.equal(await served('api.example.com', '/api/x', 'GET', { 'x-canary': '1' }), 'v2');

    const plain = await match('host=api.example.com&header=x-canary:2&path=/api/x');
    assert.equal(plain.route?.name, 'api');
    assert.equal(plain.request.method, 'GET', 'GET by default');
    const lost = plain.candidates?.find((c) => c.route === 'api-canary');
    assert.deepEqual([lost?.conditionsHold, lost?.conditions[0]?.seen], [false, ['2']]);
    assert.match(plain.reason, /passed over because a condition failed: "api-canary" \(header x-canary = "1"\)/);
    assert.equal(await served('api.example.com', '/api/x', 'GET', { 'x-canary': '2' }), 'v1');
  });

  it('a wildcard host with a method condition; GET does not match a POST-only route; the suffix itself is not covered', async () => {
    const post = await match('host=eu.partners.example.com&method=POST&path=/api');
    assert.equal(post.route?.name, 'partner-post');
    assert.deepEqual(post.candidates?.map((c) => [c.route, c.host, c.hostMatch]), [['partner-post', '*.partners.example.com', 'wildcard'], ['beta', null, 'any'], ['beta-plain', null, 'any']]);
    assert.match(post.reason, /covers host "eu\.partners\.example\.com" with the wildcard "\*\.partners\.example\.com"/);
    assert.equal(await served('eu.partners.example.com', '/api', 'POST'), 'v2');

    const head = await match('host=x.partners.example.com&method=HEAD&path=/api');
    assert.equal(head.outcome, 'no-route', 'HEAD is not POST');
    assert.equal((await send(p.port, { method: 'HEAD', path: '/api', headers: { host: 'x.partners.example.com' } })).status, 404);
    const get = await match('host=a.b.partners.example.com&method=GET&path=/api');
    assert.equal(get.outcome, 'no-route');
    assert.deepEqual(get.candidates?.[0]?.conditions, [{ kind: 'method', name: null, expected: ['POST'], held: false, seen: ['GET'] }]);
    assert.match(get.reason, /^no route matches: 1 route\(s\) for host "a\.b\.partners\.example\.com" \(1 by wildcard\) and 2 for any host; the path falls under the prefix of 1, but a condition of each fails/);
    assert.equal(await served('a.b.partners.example.com', '/api', 'GET'), null);

    assert.equal((await match('host=partners.example.com&method=POST&path=/api')).outcome, 'no-route');
    assert.equal(await served('partners.example.com', '/api', 'POST'), null);
  });

  it('HEAD on a GET route: chosen, the configured list shown as written, the verdict text says GET includes HEAD; the proxy serves it', async () => {
    const head = await match('host=docs.example.com&method=HEAD&path=/docs/x');
    assert.equal(head.route?.name, 'docs-get');
    assert.deepEqual(head.route?.conditions?.methods, ['GET'], 'the configured list, not a normalised one');
    assert.deepEqual(head.candidates?.find((c) => c.chosen)?.conditions, [{ kind: 'method', name: null, expected: ['GET'], held: true, seen: ['HEAD'] }]);
    assert.match(head.reason, /its conditions hold \(method GET \(GET includes HEAD\)\)/);
    const reply = await send(p.port, { method: 'HEAD', path: '/docs/x', headers: { host: 'docs.example.com' } });
    assert.deepEqual([reply.status, reply.body.length], [200, 0]);
    const post = await match('host=docs.example.com&method=POST&path=/docs/x');
    assert.equal(post.outcome, 'no-route');
    assert.match(post.reason, /"docs-get" \(method GET \(GET includes HEAD\)\)/);
    assert.equal(await served('docs.example.com', '/docs/x', 'POST'), null);
  });

  it('a query condition reads the target\'s query (decoded); the proxy agrees', async () => {
    const beta = await match('path=/beta/x?beta=tru%65');
    assert.equal(beta.route?.name, 'beta');
    assert.deepEqual(beta.candidates?.find((c) => c.chosen)?.conditions, [{ kind: 'query', name: 'beta', expected: 'true', held: true, seen: ['true'] }]);
    assert.equal(await served('any.example', '/beta/x?beta=tru%65', 'GET'), 'v2');
    const plain = await match('path=/beta/x?beta=false');
    assert.equal(plain.route?.name, 'beta-plain');
    assert.equal(await served('any.example', '/beta/x?beta=false', 'GET'), 'v1');
  });

  it('bad method= or header= parameters: 400 with the reason and the usage', async () => {
    const cases: [string, RegExp][] = [
      ['method=G%20T&path=/', /method="G T" is not an HTTP method/],
      ['header=novalue&path=/', /header="novalue": expected NAME:VALUE/],
      ['header=x%0Ay:1&path=/', /expected NAME:VALUE with NAME an HTTP token/],
      ['header=x:a%0Db&path=/', /the value has a control character/],
      ['header=Host:a.com&path=/', /give the Host as host=/],
    ];
    for (const [query, message] of cases) {
      const res = await request(`${base}/api/match?${query}`);
      assert.equal(res.statusCode, 400, query);
      const body = (await res.body.json()) as { message: string };
      assert.match(body.message, message, query);
      assert.match(body.message, /usage: \/api\/match/, query);
    }
  });

  it('switchyard explain prints each condition\'s verdict and why each candidate lost (its report over this answer)', async () => {
    const m = await match('host=api.example.com&method=POST&header=x-canary:2&path=/api/x');
    const text = explainReport(m as unknown as Parameters<typeof explainReport>[0], 'POST', { all: true, methodAndHeadersAsked: true });
    assert.match(text, /^\s+x-canary: 2$/m);
    assert.match(text, /^\s+api-canary\s+api\.example\.com\s+\/api\s+header x-canary = "1": failed \(sent "2"\)\s+lost: a condition failed$/m);
    assert.match(text, /^\s+\*\s+api\s+api\.example\.com\s+\/api\s+chosen$/m);
    assert.doesNotMatch(text, /^Note/m, 'the server echoes the method');
    const held = explainReport(await match('host=api.example.com&header=x-canary:1&path=/api') as unknown as Parameters<typeof explainReport>[0], 'GET', { all: false, methodAndHeadersAsked: true });
    assert.match(held, /^Matched\s+header x-canary = "1": held$/m);
    assert.match(held, /^\s+api\s+api\.example\.com\s+\/api\s+lost: the chosen route has more conditions \(1 to 0\)$/m);
    const wildcard = explainReport(await match('host=x.partners.example.com&method=POST&path=/api') as unknown as Parameters<typeof explainReport>[0], 'POST', { all: true, methodAndHeadersAsked: true });
    assert.match(wildcard, /^\s+\*\s+partner-post\s+\*\.partners\.example\.com\s+\/api\s+method POST: held\s+chosen$/m);
  });

  it('/api/match answers without method= and header= as before (GET, no headers)', async () => {
    const m = await match('host=api.example.com&path=/api');
    assert.deepEqual([m.route?.name, m.request.method, m.request.headers], ['api', 'GET', []]);
  });
});

describe('admin: /api/match with --workers 2 (the primary asks a worker: sy:explain carries method and headers)', () => {
  let up: TestUpstream;
  let workspace: Workspace;
  let cluster: RunningCluster;

  before(async () => {
    up = await startUpstream({ name: 'up' });
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', `routes:
  - name: api
    match: { host: ["api.example.com", "*.partners.example.com"], path: /api }
    to: [ { service: app } ]
  - name: api-canary
    match: { host: ["api.example.com", "*.partners.example.com"], path: /api, methods: [GET], headers: { x-canary: "1" } }
    to: [ { service: app } ]
`);
    await workspace.writeServices(`services:\n  app:\n    - { id: app-1, address: 127.0.0.1, port: ${up.port} }\n`);
    cluster = await startCluster(workspace);
    await cluster.everyWorkerPast(0);
  });

  after(async () => {
    await cluster?.kill();
    await up?.close();
    await workspace?.remove();
  });

  it('the worker explains with the method and headers it was given, and echoes them', async () => {
    const ask = async (query: string): Promise<MatchJson> => {
      const res = await cluster.adminGet(`/api/match?${query}`);
      assert.equal(res.status, 200, res.text);
      return JSON.parse(res.text) as MatchJson;
    };
    const canary = await ask('host=a.b.partners.example.com&method=GET&header=X-Canary:1&path=/api/x');
    assert.deepEqual([canary.route?.name, canary.request.method, canary.request.headers], ['api-canary', 'GET', [['X-Canary', '1']]]);
    assert.deepEqual(canary.route?.hosts, ['api.example.com', '*.partners.example.com']);
    assert.deepEqual(canary.route?.conditions, { methods: ['GET'], headers: { 'x-canary': '1' }, query: {} });
    const post = await ask('host=api.example.com&method=POST&header=x-canary:1&path=/api/x');
    assert.equal(post.route?.name, 'api');
    assert.deepEqual(post.candidates?.find((c) => c.route === 'api-canary')?.conditions.map((v) => [v.kind, v.held]), [['method', false], ['header', true]]);
  });
});
