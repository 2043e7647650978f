import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawExchange, type RawOptions } from '../support/raw-http.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { makeTable, send, startProxy, type LogLine, type TestProxy } from './harness.js';

/**
 * Requests refused before routing (request guard, listener guard) write one access line each, as
 * nginx and HAProxy log their 400/405/408/431; a normal request still writes exactly one.
 */

const OPTIONS = { maxHeaderSize: 4096, headersTimeoutMs: 300, requestTimeoutMs: 1_000, connectionsCheckingIntervalMs: 50 };

function table(port: number) {
  return makeTable([{ name: 'public', path: '/', to: [{ service: 'app', endpoints: [{ id: 'a1', port }] }] }]);
}

const CASES: { name: string; bytes: string; status: number; error: string; reason: string; method: string; path: string; raw?: RawOptions }[] = [
  { name: 'TRACE', bytes: 'TRACE /t HTTP/1.1\r\nHost: a\r\n\r\n', status: 405, error: 'SY_METHOD_NOT_ALLOWED', reason: 'method', method: 'TRACE', path: '/t' },
  { name: 'CONNECT', bytes: 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', status: 405, error: 'SY_METHOD_NOT_ALLOWED', reason: 'method', method: 'CONNECT', path: 'a:443' },
  { name: 'bad Host', bytes: 'GET /h HTTP/1.1\r\nHost: a b\r\n\r\n', status: 400, error: 'SY_BAD_REQUEST', reason: 'host', method: 'GET', path: '/h' },
  { name: 'upgrade with a bad Host', bytes: 'GET /ws HTTP/1.1\r\nHost: a b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', status: 400, error: 'SY_BAD_REQUEST', reason: 'host', method: 'GET', path: '/ws' },
  { name: 'head over --max-header-size', bytes: `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(5000)}\r\n\r\n`, status: 431, error: 'SY_HEADERS_TOO_LARGE', reason: 'headers_too_large', method: '', path: '' },
  { name: 'malformed request line', bytes: 'GET /x HTTP/1.1 junk\r\nHost: a\r\n\r\n', status: 400, error: 'SY_BAD_REQUEST', reason: 'parse', method: '', path: '' },
  // An incomplete head, never finished: only the 300 ms header timeout ends it.
  { name: 'slow head', bytes: 'GET /slow HTTP/1.1\r\nHost: a\r\n', status: 408, error: 'SY_REQUEST_TIMEOUT', reason: 'timeout', method: '', path: '', raw: { deadlineMs: 10_000 } },
];

describe('access lines for refused requests', () => {
  let up: TestUpstream;
  let p: TestProxy;
  let off: TestProxy;
  let marker = 0;

  before(async () => {
    up = await startUpstream({ name: 'app' });
    p = await startProxy(table(up.port), { options: OPTIONS });
    off = await startProxy(table(up.port), { options: { ...OPTIONS, accessLog: false } });
  });

  after(async () => {
    await off.close();
    await p.close();
    await up.close();
  });

  /** The access lines an action writes: those before the line of a normal request sent after it. */
  async function linesOf(proxy: TestProxy, action: () => Promise<void>): Promise<LogLine[]> {
    const before = proxy.accessLines().length;
    await action();
    const path = `/marker-${++marker}`;
    assert.equal((await send(proxy.port, { path })).status, 200);
    if (proxy === off) return proxy.accessLines().slice(before);
    const lines = await waitFor(`the access line of ${path}`, () => {
      const all = proxy.accessLines().slice(before);
      return all.some((l) => l.path === path) ? all : undefined;
    });
    const at = lines.findIndex((l) => l.path === path);
    assert.equal(lines.length, at + 1, 'the marker wrote one line');
    return lines.slice(0, at);
  }

  for (const c of CASES) {
    it(`${c.name}: one access line with ${c.status} ${c.error} (${c.reason})`, async () => {
      const lines = await linesOf(p, async () => {
        const r = await rawExchange(p.port, c.bytes, c.raw);
        assert.deepEqual(r.responses.map((x) => x.status), [c.status]);
        assert.equal(r.closed, true);
      });
      assert.equal(lines.length, 1, JSON.stringify(lines));
      const line = lines[0]!;
      assert.equal(line.status, c.status);
      assert.equal(line.error, c.error);
      assert.equal(line.reason, c.reason);
      assert.equal(line.route, '(none)');
      assert.equal(line.method, c.method);
      assert.equal(line.path, c.path);
      assert.equal(line.ms, 0);
      assert.equal(line.end, undefined);
      assert.equal(line.upstream, undefined);
      assert.ok(typeof line.reqId === 'string' && line.reqId !== '', 'a request id');
      assert.equal(line.traceId, undefined);
    });
  }

  it('a 408 while the body arrives: one line, the exchange\'s, with the id the answer carries', async () => {
    let id: string | undefined;
    const lines = await linesOf(p, async () => {
      // The body never completes: the 1 s request timeout answers while the exchange is open.
      const r = await rawExchange(p.port, 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nxx', { deadlineMs: 10_000 });
      assert.deepEqual(r.responses.map((x) => x.status), [408]);
      id = r.responses[0]!.headers['x-request-id'];
    });
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.path, '/upload');
    assert.equal(lines[0]!.status, 408);
    assert.equal(lines[0]!.route, 'public');
    assert.ok(id !== undefined && lines[0]!.reqId === id, `${id} in ${JSON.stringify(lines[0])}`);
  });

  it('a normal request still writes exactly one line', async () => {
    const lines = await linesOf(p, async () => {
      assert.equal((await send(p.port, { path: '/normal' })).status, 200);
    });
    assert.deepEqual(lines.map((l) => [l.path, l.status, l.route]), [['/normal', 200, 'public']]);
  });

  it('--access-log off: refusals write no access line', async () => {
    const lines = await linesOf(off, async () => {
      for (const c of CASES.slice(0, 5)) {
        const r = await rawExchange(off.port, c.bytes, c.raw);
        assert.deepEqual(r.responses.map((x) => x.status), [c.status]);
      }
    });
    assert.deepEqual(lines, []);
    assert.deepEqual(off.accessLines(), []);
  });
});
