/**
 * Upgrade smuggling ("WebSocket smuggling"): a client sends an upgrade request the upstream answers
 * without 101, then keeps talking on the connection. If the proxy has already turned the
 * connection into a raw tunnel, the follow-up requests reach the upstream unrouted (any path, any
 * Host), bypassing every route boundary.
 *
 * The Tunnel pipes client bytes to the upstream only after a 101, and closes both sides after
 * relaying any other answer.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { waitFor } from '../support/wait.js';
import { deadline, makeTable, startProxy, type TestProxy } from './harness.js';

function openConnections(up: RecordingUpstream): Promise<number> {
  return new Promise((resolve, reject) => up.server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

describe('proxy: upgrade answered without 101', () => {
  let up: RecordingUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startRecordingUpstream('rec');
    p = await startProxy(makeTable([{ name: 'public', path: '/public', to: [{ service: 'rec', endpoints: [{ id: 'r1', port: up.port }] }] }]), {
      options: { accessLog: false },
    });
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  it('does not leave a raw tunnel that forwards unrouted requests', async () => {
    const socket = connect(p.port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
    socket.on('error', () => { /* closed by the proxy while writing */ });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await waitFor("the upstream's non-101 answer to reach the client", () => /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
    assert.doesNotMatch(answer, /^HTTP\/1\.1 101/);
    // The smuggling attempt: more bytes on the connection after the answer.
    if (!socket.destroyed && socket.writable) socket.write('GET /admin/smuggled HTTP/1.1\r\nHost: internal\r\n\r\n');
    // What only the fix makes true: the proxy closes the client connection after relaying the
    // answer (a raw tunnel would keep it open), and the upstream connection ends, after which the
    // upstream has recorded every byte it will ever get from this exchange.
    await deadline(closed, 5_000, 'the proxy to close the client connection after a non-101 answer');
    await waitFor('the upstream connection to end', async () => await openConnections(up) === 0);
    assert.deepEqual(up.requests.map((r) => r.url), ['/public/x']);
    assert.doesNotMatch(up.rawText(), /smuggled/);
  });
});
