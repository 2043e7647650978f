/**
 * Trailer fields of a chunked upstream response reach a client that accepts them (`TE: trailers`,
 * as gRPC-over-HTTP/1.1 bridges and `curl -H 'TE: trailers'` send); a client that does not gets
 * none (RFC 9110 §6.5: a sender may only rely on trailers when the recipient accepts them).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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
