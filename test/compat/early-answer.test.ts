/**
 * Early answers to uploads reach the client: a 413, a 502 or an upstream's early 401, sent while
 * the client is still sending its body, is read by real clients (curl, python3 http.client)
 * instead of being lost to a reset (the proxy's lingering close reads and discards the rest of
 * the body, bounded, as nginx does). `Expect: 100-continue` with a Content-Length over the
 * route's limit gets the 413 without `100 Continue`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTable, startProxy, type TestProxy } from '../proxy/harness.js';
import { waitFor } from '../support/wait.js';
import { rawExchange } from '../support/raw-http.js';
import { refusedPort, startUpstream, type TestUpstream } from '../support/upstream.js';
import { missing, run } from './real-clients.js';

const UPLOAD_BYTES = 8 * 1024 * 1024;

/** python3 http.client: POST `bytes` bytes to the URL's path; prints the status and the body. */
const PYTHON_POST = `
import http.client, sys
port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = dict(h.split(': ', 1) for h in sys.argv[4:])
conn = http.client.HTTPConnection('127.0.0.1', port, timeout=20)
try:
    conn.request('POST', path, body=b'x' * size, headers=headers)
    r = conn.getresponse()
    print(r.status, r.read().decode())
except Exception as e:
    print('ERROR', type(e).__name__, e)
`;

describe('compat: early answers to uploads', () => {
  let up: TestUpstream;
  let p: TestProxy;
  let dir: string;
  let file: string;

  before(async () => {
    up = await startUpstream({ name: 'uploads' });
    const dead = await refusedPort();
    p = await startProxy(makeTable([
      { name: 'small', path: '/small', to: [{ service: 'uploads', endpoints: [{ id: 'u1', port: up.port }] }], policy: { maxBodyBytes: 1024 } },
      { name: 'open', path: '/open', to: [{ service: 'uploads', endpoints: [{ id: 'u1', port: up.port }] }] },
      { name: 'dead', path: '/dead', to: [{ service: 'dead', endpoints: [{ id: 'd1', port: dead }] }] },
    ]));
    dir = mkdtempSync(join(tmpdir(), 'sy-upload-'));
    file = join(dir, 'upload.bin');
    writeFileSync(file, Buffer.alloc(UPLOAD_BYTES, 0x61));
  });

  after(async () => {
    await p.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function curlUpload(path: string, ...extra: string[]): Promise<{ code: number | null; status: string; body: string }> {
    const out = await run('curl', ['-s', '-S', '--max-time', '20', '-T', file, '-w', '\n%{http_code}', ...extra, `http://127.0.0.1:${p.port}${path}`], 30_000);
    const lines = out.stdout.split('\n');
    return { code: out.code, status: lines.at(-1)!, body: `${lines.slice(0, -1).join('\n')}${out.stderr}` };
  }

  it('curl -T of 8 MiB over maxBodyBytes (no Expect): the 413 reaches curl', { skip: missing('curl') }, async () => {
    const out = await curlUpload('/small/a', '-H', 'Expect:');
    assert.equal(out.status, '413', out.body);
    assert.match(out.body, /SY_BODY_TOO_LARGE/);
  });

  it('curl -T of 8 MiB (curl sends Expect: 100-continue): 413', { skip: missing('curl') }, async () => {
    const out = await curlUpload('/small/b');
    assert.equal(out.status, '413', out.body);
  });

  it('curl -T of 8 MiB to an upstream that refuses connections: the 502 reaches curl', { skip: missing('curl') }, async () => {
    const out = await curlUpload('/dead/c', '-H', 'Expect:');
    assert.equal(out.status, '502', out.body);
    assert.match(out.body, /SY_UPSTREAM_CONNECT/);
  });

  it("curl -T of 8 MiB to an upstream that answers 401 without reading the body: curl reads the upstream's 401", { skip: missing('curl') }, async () => {
    const out = await curlUpload('/open/d', '-H', 'Expect:', '-H', 'x-test-action: early', '-H', 'x-test-status: 401');
    assert.equal(out.status, '401', out.body);
    assert.match(out.body, /early/);
  });

  it('python3 http.client POST of 4 MiB over maxBodyBytes: reads the 413', { skip: missing('python3') }, async () => {
    const out = await run('python3', ['-c', PYTHON_POST, String(p.port), '/small/e', String(4 * 1024 * 1024)], 30_000);
    assert.match(out.stdout, /^413 .*SY_BODY_TOO_LARGE/, out.stdout + out.stderr);
  });

  it('python3 http.client POST of 4 MiB to an upstream that refuses connections: reads the 502', { skip: missing('python3') }, async () => {
    const out = await run('python3', ['-c', PYTHON_POST, String(p.port), '/dead/i', String(4 * 1024 * 1024)], 30_000);
    assert.match(out.stdout, /^502 .*SY_UPSTREAM_CONNECT/, out.stdout + out.stderr);
  });

  it("python3 http.client POST of 4 MiB, upstream's early 401: reads the 401", { skip: missing('python3') }, async () => {
    const out = await run('python3', ['-c', PYTHON_POST, String(p.port), '/open/f', String(4 * 1024 * 1024), 'x-test-action: early', 'x-test-status: 401'], 30_000);
    assert.match(out.stdout, /^401 early/, out.stdout + out.stderr);
  });

  it('Expect: 100-continue with a Content-Length over the limit: 413 without 100 Continue', async () => {
    const head = `PUT /small/g HTTP/1.1\r\nHost: x\r\nContent-Length: ${UPLOAD_BYTES}\r\nExpect: 100-continue\r\n\r\n`;
    const result = await rawExchange(p.port, head, { responses: 1, deadlineMs: 5_000 });
    const text = result.data.toString('latin1');
    assert.doesNotMatch(text, /100 Continue/);
    assert.match(text, /^HTTP\/1\.1 413 /);
  });

  it('Expect: 100-continue within the limit: 100 Continue, then the upload is forwarded', async () => {
    const head = 'PUT /small/h HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n';
    const result = await rawExchange(p.port, `${head}hello`, { responses: 2, deadlineMs: 5_000 });
    const text = result.data.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n/);
    assert.match(text, /HTTP\/1\.1 200 /);
    await waitFor('the 200 access line', () => p.accessLines().some((l) => l.path === '/small/h' && l.status === 200));
  });
});
