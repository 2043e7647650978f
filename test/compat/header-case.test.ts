/**
 * Response header names reach the client as the upstream spelled them (nginx keeps them; some
 * legacy clients compare names case-sensitively), and a byte-exact replay of Go's net/http client
 * request shape goes through untouched.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeTable, startProxy, type TestProxy } from '../proxy/harness.js';
import { rawExchange } from '../support/raw-http.js';
import { missing, run } from './real-clients.js';

/** The response head a legacy upstream writes, names in its own spelling. */
const UPSTREAM_ANSWER = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: "v1"\r\nX-Custom-Thing: yes\r\nWWW-Authenticate: Basic realm="r"\r\nx-lower-case: kept\r\nContent-Length: 2\r\n\r\nok';

describe('compat: header name case and Go request shape', () => {
  let upstream: Server;
  let p: TestProxy;
  const seen: string[] = [];
  const sockets = new Set<Socket>();

  before(async () => {
    // A raw upstream: node's own server would re-spell nothing either, but this one shows what is sent.
    upstream = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        while (head.includes('\r\n\r\n')) {
          const end = head.indexOf('\r\n\r\n') + 4;
          seen.push(head.slice(0, end));
          head = head.slice(end);
          socket.write(UPSTREAM_ANSWER);
        }
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    p = await startProxy(makeTable([{ name: 'legacy', to: [{ service: 'legacy', endpoints: [{ id: 'l1', port: (upstream.address() as AddressInfo).port }] }] }]));
  });

  after(async () => {
    await p.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('keeps the upstream spelling of every response header name (raw socket)', async () => {
    const result = await rawExchange(p.port, 'GET /case HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { deadlineMs: 5_000 });
    const text = result.data.toString('latin1');
    for (const line of ['Content-Type: text/plain', 'ETag: "v1"', 'X-Custom-Thing: yes', 'WWW-Authenticate: Basic realm="r"', 'x-lower-case: kept']) {
      assert.ok(text.includes(`\r\n${line}\r\n`), `${line} in\n${text}`);
    }
  });

  it('curl -i shows the upstream spelling', { skip: missing('curl') }, async () => {
    const out = await run('curl', ['-s', '-i', '--max-time', '10', `http://127.0.0.1:${p.port}/curl`]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /\r\nETag: "v1"\r\n/);
    assert.match(out.stdout, /\r\nX-Custom-Thing: yes\r\n/);
  });

  it("Go net/http's request shape (byte-exact replay): forwarded with its headers, answered 200", async () => {
    // What Go 1.22's http.Get sends: Host, User-Agent, Accept-Encoding, in this order and case.
    const go = `GET /go?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n`;
    const result = await new Promise<string>((resolve, reject) => {
      const socket = connect(p.port, '127.0.0.1', () => socket.write(go));
      let data = '';
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
        if (data.endsWith('\r\n\r\nok')) {
          socket.destroy();
          resolve(data);
        }
      });
      socket.on('error', reject);
      setTimeout(() => reject(new Error(`no answer: ${data}`)), 5_000).unref();
    });
    assert.match(result, /^HTTP\/1\.1 200 OK\r\n/);
    const forwarded = seen.find((h) => h.startsWith('GET /go?q=1 '))!;
    assert.match(forwarded, /\r\nuser-agent: Go-http-client\/1\.1\r\n/i);
    assert.match(forwarded, /\r\naccept-encoding: gzip\r\n/i);
    assert.match(forwarded, /\r\nhost: 127\.0\.0\.1:\d+\r\n/i);
  });
});
