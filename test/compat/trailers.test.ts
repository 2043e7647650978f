/**
 * Trailer fields of a chunked upstream response reach a client that accepts them (`TE: trailers`,
 * as gRPC-over-HTTP/1.1 bridges and `curl -H 'TE: trailers'` send); a client that does not gets
 * none (RFC 9110 §6.5: a sender may only rely on trailers when the recipient accepts them).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeTable, startProxy, type TestProxy } from '../proxy/harness.js';
import { rawExchange } from '../support/raw-http.js';
import { missing, run } from './real-clients.js';

describe('compat: response trailers', () => {
  let upstream: Server;
  let p: TestProxy;
  /** The TE header each upstream request carried. */
  const te: (string | undefined)[] = [];

  before(async () => {
    upstream = createServer((req, res) => {
      te.push(req.headers.te as string | undefined);
      req.resume();
      res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Checksum' });
      res.write('part one\n');
      res.addTrailers({ 'X-Checksum': 'sha256=abc123' });
      res.end('part two\n');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    p = await startProxy(makeTable([{ name: 'grpcish', to: [{ service: 'g', endpoints: [{ id: 'g1', port: (upstream.address() as AddressInfo).port }] }] }]));
  });

  after(async () => {
    await p.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('relayed after the last chunk when the client sends TE: trailers (raw socket)', async () => {
    const result = await rawExchange(p.port, 'GET /t HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n', { deadlineMs: 5_000 });
    const text = result.data.toString('latin1');
    assert.match(text, /\r\n0\r\nX-Checksum: sha256=abc123\r\n\r\n$/, text);
    assert.match(text, /\r\nTrailer: X-Checksum\r\n/i);
    assert.equal(te.at(-1), 'trailers', 'the proxy asks the upstream for trailers on the client\'s behalf');
  });

  it('not sent to a client that did not ask for them', async () => {
    const result = await rawExchange(p.port, 'GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { deadlineMs: 5_000 });
    const text = result.data.toString('latin1');
    assert.match(text, /\r\n0\r\n\r\n$/);
    assert.doesNotMatch(text, /sha256=abc123/);
  });

  it("curl --raw -H 'TE: trailers' sees the trailer", { skip: missing('curl') }, async () => {
    const out = await run('curl', ['-s', '--raw', '--max-time', '10', '-H', 'TE: trailers', `http://127.0.0.1:${p.port}/curl`]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /part one/);
    assert.match(out.stdout, /X-Checksum: sha256=abc123/);
  });
});

/**
 * A `Trailer` field on a response that will not be chunked (HEAD, 304, an upstream Content-Length,
 * an HTTP/1.0 client) cannot be relayed: node refuses such a head (ERR_HTTP_TRAILER_INVALID).
 * nginx relays the response without the field; so does the proxy. Raw upstream bytes, since node's
 * own server would not produce these heads.
 */
describe('compat: Trailer field on responses that are not chunked', () => {
  let upstream: NetServer;
  let p: TestProxy;
  const ANSWERS: Record<string, string> = {
    '/chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx: 1\r\n\r\n',
    '/head': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\nConnection: close\r\n\r\n',
    '/304': 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nTrailer: x\r\nConnection: close\r\n\r\n',
    '/bad-304': 'HTTP/1.1 304 Not\x01Modified\r\nETag: "v1"\r\nConnection: close\r\n\r\n',
    '/cl': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTrailer: x\r\nConnection: close\r\n\r\nhello',
  };

  before(async () => {
    upstream = createNetServer((socket) => {
      let head = '';
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const path = head.split(' ')[1] ?? '/';
        socket.end(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    p = await startProxy(makeTable([{ name: 'raw', to: [{ service: 'r', endpoints: [{ id: 'r1', port: (upstream.address() as AddressInfo).port }] }] }]));
  });

  after(async () => {
    await p.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  /** Send `request` with TE: trailers; the one response, which must arrive complete before the close. */
  async function ask(request: string): Promise<{ text: string; status: number; reason: string; headers: Record<string, string>; body: string }> {
    const result = await rawExchange(p.port, request, { deadlineMs: 8_000 });
    const text = result.data.toString('latin1');
    assert.ok(result.closed, `the connection closed after the answer (no hang): ${text}`);
    assert.equal(result.responses.length, 1, text);
    const r = result.responses[0]!;
    return { text, status: r.status, reason: r.reason, headers: r.headers, body: r.body.toString('latin1') };
  }

  it('HEAD of a chunked response declaring Trailer: the upstream status, no Trailer field', async () => {
    const r = await ask('HEAD /head HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.trailer, undefined, r.text);
  });

  it('304 declaring Trailer: relayed as 304 Not Modified without the field', async () => {
    const r = await ask('GET /304 HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 304, r.text);
    assert.equal(r.reason, 'Not Modified');
    assert.equal(r.headers.etag, '"v1"');
    assert.equal(r.headers.trailer, undefined, r.text);
  });

  it('Content-Length plus Trailer: the body as sent, without the field', async () => {
    const r = await ask('GET /cl HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body, 'hello');
    assert.equal(r.headers.trailer, undefined, r.text);
  });

  it('a 304 head node refuses (a control character in its reason): a whole 502 Bad Gateway, with its body', async () => {
    // Keep-alive: a body the head announces but that never comes would hold the exchange open.
    const result = await rawExchange(p.port, 'GET /bad-304 HTTP/1.1\r\nHost: x\r\n\r\n', { deadlineMs: 8_000, responses: 1 });
    const text = result.data.toString('latin1');
    assert.equal(result.responses.length, 1, `one complete answer before the deadline: ${text}`);
    const r = result.responses[0]!;
    assert.equal(r.status, 502, text);
    assert.equal(r.reason, 'Bad Gateway', text);
    assert.equal(JSON.parse(r.body.toString()).error, 'SY_UPSTREAM_BAD_RESPONSE');
  });

  it('a chunked response with trailers to an HTTP/1.0 client sending TE: trailers: body to the close, no Trailer field', async () => {
    const r = await ask('GET /chunked HTTP/1.0\r\nHost: x\r\nTE: trailers\r\n\r\n');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body, 'hello');
    assert.equal(r.headers.trailer, undefined, r.text);
    assert.doesNotMatch(r.text, /x: 1/);
  });

  it('the same chunked response to an HTTP/1.1 client still carries Trailer and the trailer', async () => {
    const result = await rawExchange(p.port, 'GET /chunked HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n', { deadlineMs: 8_000 });
    const text = result.data.toString('latin1');
    assert.match(text, /\r\nTrailer: x\r\n/i, text);
    assert.match(text, /\r\n0\r\nx: 1\r\n\r\n$/, text);
  });
});
