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
import { makeTable, startProxy, type TestProxy } from './harness.js';

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
    socket.on('error', () => {});
    socket.write('GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (!socket.destroyed) socket.write('GET /admin/smuggled HTTP/1.1\r\nHost: internal\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.destroy();
    assert.deepEqual(up.requests.map((r) => r.url), ['/public/x']);
  });
});
