import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { acceptingPid, socketInode } from '../../bench/socket-owner.js';
import { waitFor } from '../support/wait.js';

// /proc/net/tcp lines (proc(5)): 127.0.0.1:8080 (0x1F90) listening, and one accepted connection
// from port 0x9C40 (40000), inode 777, after an older connection between the same ports in TIME_WAIT.
const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:9C40 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 20 4 30 10 -1
`;

describe('socketInode', () => {
  it('finds the server side of an established connection, not the listener, a closed one or the client side', () => {
    assert.equal(socketInode(TABLE, 8080, 40000), '777');
    assert.equal(socketInode(TABLE, 40000, 8080), '778');
    assert.equal(socketInode(TABLE, 8080, 40001), undefined);
  });
});

describe('acceptingPid', () => {
  it('names this process for a connection this process accepted', async () => {
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = (server.address() as { port: number }).port;
    const client = connect(port, '127.0.0.1');
    try {
      await new Promise<void>((done) => client.once('connect', done));
      await waitFor('the server to accept the connection', () => accepted.length === 1);
      assert.equal(acceptingPid(port, client.localPort!, [process.pid]), process.pid);
      assert.equal(acceptingPid(port, client.localPort!, [1]), undefined);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });
});
