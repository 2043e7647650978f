/**
 * A 405 names the methods that are served (RFC 9110 §15.5.6: the origin MUST send Allow), for
 * TRACE (refused by the request guard) and CONNECT (refused by the listener guard, raw bytes).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { deadline, makeTable, startProxy, type TestProxy } from './harness.js';

/** Send raw bytes; resolves with everything received once the proxy closed the connection. */
function exchange(port: number, bytes: string): Promise<string> {
  return deadline(new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  }), 10_000, 'raw exchange');
}

describe('proxy: 405 carries Allow', () => {
  let p: TestProxy;

  before(async () => {
    p = await startProxy(makeTable([{ name: 'r', path: '/', to: [{ service: 's', endpoints: [{ id: 's1', port: 9 }] }] }]));
  });

  after(() => p.close());

  for (const [name, bytes] of [
    ['TRACE', 'TRACE /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n'],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n'],
  ] as const) {
    it(`${name}: 405 SY_METHOD_NOT_ALLOWED with Allow`, async () => {
      const received = await exchange(p.port, bytes);
      assert.match(received, /^HTTP\/1\.1 405 /);
      const allow = /\r\nallow: ([^\r]*)\r\n/i.exec(received);
      assert.equal(allow?.[1], 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH', received);
      assert.match(received, /SY_METHOD_NOT_ALLOWED/);
    });
  }
});
