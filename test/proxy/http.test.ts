import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, makeTable, send, startProxy, type TestProxy } from './harness.js';

describe('proxy: HTTP forwarding', () => {
  let users: TestUpstream;
  let api: TestUpstream;
  let fallback: TestUpstream;
  let p: TestProxy;

  before(async () => {
    users = await startUpstream({ name: 'users' });
    api = await startUpstream({ name: 'api' });
    fallback = await startUpstream({ name: 'fallback' });
    p = await startProxy(makeTable([
      { name: 'users', path: '/users', strip: '/users', to: [{ service: 'users', endpoints: [{ id: 'u1', port: users.port }] }] },
      { name: 'api-host', host: 'api.example.com', to: [{ service: 'api', endpoints: [{ id: 'a1', port: api.port }] }] },
      { name: 'nostrip', path: '/keep', to: [{ service: 'users', endpoints: [{ id: 'u1', port: users.port }] }] },
      { name: 'fallback', path: '/', to: [{ service: 'fallback', endpoints: [{ id: 'f1', port: fallback.port }] }] },
      { name: 'empty', path: '/empty', to: [{ service: 'gone', endpoints: [] }] },
      { name: 'drained', path: '/drained', to: [{ service: 'drained', endpoints: [{ id: 'd1', port: users.port, weight: 0 }] }] },
    ]));
  });

  after(async () => {
    await p.close();
    await Promise.all([users.close(), api.close(), fallback.close()]);
  });

  for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    it(`forwards ${method} with its body and the upstream's status`, async () => {
      const body = method === 'GET' || method === 'DELETE' || method === 'OPTIONS' ? undefined : `payload for ${method} ✓`;
      const reply = await send(p.port, {
        method,
        path: '/keep/item?x=1',
        headers: { 'x-test-status': '201', ...(body === undefined ? {} : { 'content-type': 'text/plain; charset=utf-8' }) },
        body,
      });
      assert.equal(reply.status, 201);
      const echo = reply.json<EchoReply>();
      assert.equal(echo.upstream, 'users');
      assert.equal(echo.method, method);
      assert.equal(echo.url, '/keep/item?x=1');
      assert.equal(echo.body, body ?? '');
      if (body !== undefined) assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));
    });
  }

  it('forwards HEAD: the head with its content-length, no body', async () => {
    const reply = await send(p.port, { method: 'HEAD', path: '/keep' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-upstream'], 'users');
    assert.ok(Number(reply.headers['content-length']) > 0);
    assert.equal(reply.body.length, 0);
  });

  it('forwards a chunked request body (no content-length) intact', async () => {
    const reply = await new Promise<EchoReply>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: p.port, method: 'POST', path: '/keep', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as EchoReply));
      });
      req.on('error', reject);
      req.write('part-1;');
      req.write('part-2;');
      req.end('part-3');
    });
    assert.equal(reply.body, 'part-1;part-2;part-3');
    // Re-framed hop by hop: chunked again, or a content-length when the whole body had already arrived.
    assert.ok(reply.headers['transfer-encoding'] === 'chunked' || reply.headers['content-length'] === '20');
  });

  it('strips the route prefix on a segment boundary', async () => {
    const cases: [string, string][] = [['/users', '/'], ['/users/', '/'], ['/users/42?full=1', '/42?full=1'], ['/users?q=a', '/?q=a']];
    for (const [path, expected] of cases) {
      // A client's own X-Forwarded-Prefix never passes: the proxy says what it stripped.
      const echo = (await send(p.port, { path, headers: { 'x-forwarded-prefix': '/evil' } })).json<EchoReply>();
      assert.equal(echo.upstream, 'users', path);
      assert.equal(echo.url, expected, path);
      assert.equal(echo.headers['x-forwarded-prefix'], '/users', `${path}: the stripped prefix is told to the upstream`);
    }
    // `/usersx` is not under `/users`: it falls through to the catch-all route, path untouched.
    const other = (await send(p.port, { path: '/usersx/1', headers: { 'x-forwarded-prefix': '/evil' } })).json<EchoReply>();
    assert.equal(other.upstream, 'fallback');
    assert.equal(other.url, '/usersx/1');
    assert.equal(other.headers['x-forwarded-prefix'], undefined, 'nothing stripped, no prefix header');
  });

  it('routes by host, case-insensitively and ignoring the port', async () => {
    for (const host of ['api.example.com', 'API.Example.COM:8080']) {
      const echo = (await send(p.port, { path: '/users/1', headers: { host } })).json<EchoReply>();
      assert.equal(echo.upstream, 'api', host);
      assert.equal(echo.url, '/users/1', 'a host route does not strip');
      assert.equal(echo.headers.host, host, 'the client Host is forwarded');
    }
    const echo = (await send(p.port, { path: '/x', headers: { host: 'other.example.com' } })).json<EchoReply>();
    assert.equal(echo.upstream, 'fallback');
  });

  it('sets X-Forwarded-For (an untrusted client\'s replaced), -Proto and -Host', async () => {
    const echo = (await send(p.port, {
      path: '/keep',
      headers: { host: 'shop.example.com', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'evil' },
    })).json<EchoReply>();
    // Not from a --trusted-proxies address: replaced (appending is tested in hardening-xff.test.ts).
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-host'], 'shop.example.com');
    const plain = (await send(p.port, { path: '/keep' })).json<EchoReply>();
    assert.equal(plain.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('keeps a client X-Request-Id and returns it', async () => {
    const reply = await send(p.port, { path: '/keep', headers: { 'x-request-id': 'client-id-123' } });
    assert.equal(reply.headers['x-request-id'], 'client-id-123');
    assert.equal(reply.json<EchoReply>().headers['x-request-id'], 'client-id-123');
  });

  it('generates a unique X-Request-Id when the client sends none', async () => {
    const a = await send(p.port, { path: '/keep' });
    const b = await send(p.port, { path: '/keep' });
    const idA = a.headers['x-request-id'];
    const idB = b.headers['x-request-id'];
    assert.equal(typeof idA, 'string');
    assert.ok((idA as string).length >= 8);
    assert.notEqual(idA, idB);
    assert.equal(a.json<EchoReply>().headers['x-request-id'], idA, 'the upstream sees the same id');
    // The upstream's own X-Request-Id never replaces or duplicates the proxy's.
    const c = await send(p.port, { path: '/keep', headers: { 'x-test-response-headers': JSON.stringify({ 'x-request-id': 'upstream-id' }) } });
    assert.notEqual(c.headers['x-request-id'], 'upstream-id');
    assert.equal(c.rawHeaders.filter((h) => h.toLowerCase() === 'x-request-id').length, 1);
  });

  it('removes hop-by-hop request headers, including those named in Connection', async () => {
    // A raw request: node's client refuses some of these headers.
    const head = [
      'GET /keep HTTP/1.1',
      'Host: hop.example.com',
      'Connection: keep-alive, X-Secret-Hop',
      'Keep-Alive: timeout=30',
      'Proxy-Connection: keep-alive',
      'TE: trailers',
      'Trailer: x-checksum',
      'Upgrade: h2c',
      'X-Secret-Hop: must not pass',
      'X-End-To-End: must pass',
      '', '',
    ].join('\r\n');
    const response = await deadline(rawExchange(p.port, head), 5_000, 'raw request');
    const body = response.slice(response.indexOf('\r\n\r\n') + 4);
    const echo = JSON.parse(body) as EchoReply;
    for (const name of ['keep-alive', 'proxy-connection', 'trailer', 'upgrade', 'x-secret-hop']) {
      assert.equal(echo.headers[name], undefined, `${name} reached the upstream`);
    }
    // The proxy relays trailers to this client, so it sends its own `TE: trailers` (hop-by-hop).
    assert.equal(echo.headers.te, 'trailers');
    assert.equal(echo.headers.connection, 'keep-alive', "undici's own connection header, not the client's");
    assert.equal(echo.headers['x-end-to-end'], 'must pass');
  });

  it('removes hop-by-hop response headers, including those named in Connection', async () => {
    const reply = await send(p.port, {
      path: '/keep',
      headers: {
        'x-test-response-headers': JSON.stringify({
          connection: 'keep-alive, X-Upstream-Hop',
          'keep-alive': 'timeout=99',
          'proxy-connection': 'keep-alive',
          trailer: 'x-checksum',
          upgrade: 'h2c',
          'x-upstream-hop': 'secret',
          'x-end-to-end': 'visible',
        }),
      },
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-upstream-hop'], undefined);
    assert.equal(reply.headers['proxy-connection'], undefined);
    assert.equal(reply.headers.trailer, undefined);
    assert.equal(reply.headers.upgrade, undefined);
    assert.notEqual(reply.headers['keep-alive'], 'timeout=99');
    assert.equal(reply.headers['x-end-to-end'], 'visible');
  });

  it('answers 404 SY_NO_ROUTE as JSON when no route matches', async () => {
    const q = await startProxy(makeTable([{ name: 'only', path: '/only', to: [{ service: 'users', endpoints: [{ id: 'u1', port: users.port }] }] }]));
    try {
      const reply = await send(q.port, { path: '/nowhere' });
      assert.equal(reply.status, 404);
      assert.match(String(reply.headers['content-type']), /application\/json/);
      const body = reply.json<{ error: string; message: string }>();
      assert.equal(body.error, 'SY_NO_ROUTE');
      assert.equal(typeof body.message, 'string');
      assert.equal(typeof reply.headers['x-request-id'], 'string');
    } finally {
      await q.close();
    }
  });

  it('answers 404 before any table is live', async () => {
    const q = await startProxy(undefined);
    try {
      const reply = await send(q.port, { path: '/' });
      assert.equal(reply.status, 404);
      assert.equal(reply.json<{ error: string }>().error, 'SY_NO_ROUTE');
    } finally {
      await q.close();
    }
  });

  it('answers 503 SY_NO_ENDPOINT for a route without endpoints or with only drained ones', async () => {
    for (const path of ['/empty', '/drained/x']) {
      const reply = await send(p.port, { path });
      assert.equal(reply.status, 503, path);
      const body = reply.json<{ error: string; message: string }>();
      assert.equal(body.error, 'SY_NO_ENDPOINT');
      assert.match(body.message, /"(empty|drained)"/);
    }
  });

  it('streams both ways: chunk 2 is sent only after chunk 1 came back through the proxy', async () => {
    const received: string[] = [];
    await deadline(new Promise<void>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1', port: p.port, method: 'POST', path: '/keep', agent: false,
        headers: { 'x-test-action': 'stream-echo', 'content-type': 'application/octet-stream' },
      }, (res) => {
        assert.equal(res.statusCode, 200);
        res.setEncoding('utf8');
        let buffered = '';
        res.on('data', (text: string) => {
          buffered += text;
          if (buffered === 'chunk-1|') {
            received.push(buffered);
            buffered = '';
            req.write('chunk-2|');
          } else if (buffered === 'chunk-2|') {
            received.push(buffered);
            buffered = '';
            req.end('chunk-3|');
          } else if (buffered === 'chunk-3|') {
            received.push(buffered);
            buffered = '';
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      req.on('error', reject);
      req.flushHeaders();
      req.write('chunk-1|');
    }), 5_000, 'duplex streaming through the proxy');
    assert.deepEqual(received, ['chunk-1|', 'chunk-2|', 'chunk-3|']);
  });

  it('streams a large request body and a large response body without buffering them', async () => {
    const size = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 0x62);
    let peak = 0;
    const base = process.memoryUsage().rss;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss - base); }, 5);
    try {
      // Upload: the client writes with backpressure, the upstream counts.
      const upload = await deadline(new Promise<{ bytes: number }>((resolve, reject) => {
        const req = httpRequest({
          host: '127.0.0.1', port: p.port, method: 'PUT', path: '/keep', agent: false,
          headers: { 'x-test-action': 'count', 'content-length': String(size) },
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as { bytes: number }));
        });
        req.on('error', reject);
        let sent = 0;
        const pump = (): void => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) {
              req.once('drain', pump);
              return;
            }
          }
          req.end();
        };
        pump();
      }), 60_000, 'large upload');
      assert.equal(upload.bytes, size);

      // Download: the upstream generates, the client counts.
      const downloaded = await deadline(new Promise<number>((resolve, reject) => {
        const req = httpRequest({
          host: '127.0.0.1', port: p.port, method: 'GET', path: '/keep', agent: false,
          headers: { 'x-test-action': 'generate', 'x-test-bytes': String(size) },
        }, (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => { bytes += c.length; });
          res.on('end', () => resolve(bytes));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      }), 60_000, 'large download');
      assert.equal(downloaded, size);
    } finally {
      clearInterval(sampler);
    }
    // Buffering either body would add ~96 MiB to the process (client, proxy and upstream share it).
    assert.ok(peak < 64 * 1024 * 1024, `RSS grew by ${(peak / 1048576).toFixed(1)} MiB`);
  });

  it('relays an answer that comes before the request body ended, then closes that client connection', async () => {
    const size = 16 * 1024 * 1024;
    const outcome = await deadline(new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1', port: p.port, method: 'POST', path: '/keep', agent: false,
        headers: { 'x-test-action': 'early', 'content-length': String(size) },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      });
      req.on('error', () => { /* the proxy may cut the upload once it answered */ });
      req.on('close', () => reject(new Error('connection closed without a response')));
      req.write(Buffer.alloc(64 * 1024));
      // The rest of the body never comes until after the answer; the upload is abandoned.
    }), 5_000, 'early answer');
    assert.equal(outcome.status, 200);
    assert.equal(outcome.body, 'early');
    assert.equal(outcome.connection, 'close');
    // The proxy is fine afterwards.
    assert.equal((await send(p.port, { path: '/keep' })).status, 200);
  });

  it('keeps client connections alive across requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const reply = await new Promise<number>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/keep', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(req.socket?.localPort ?? -1));
          });
          req.on('error', reject);
          req.end();
        });
        ports.add(reply);
      }
      assert.equal(ports.size, 1, 'all five requests used one client connection');
    } finally {
      agent.destroy();
    }
  });
});

/** Write a raw request head on a fresh connection; resolve with the complete response text (content-length framed). */
function rawExchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end));
      if (length !== null && text.length >= end + 4 + Number(length[1])) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', reject);
    socket.write(head);
  });
}
