/**
 * Requests node's parser refuses get the admin error shape (`{"error", "message"}` JSON, as every
 * other admin error), not node's bare 400 without a body.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AdminServer } from '../../src/admin/admin-server.js';
import { TableStore } from '../../src/control/table-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

/** Send raw bytes; resolves with everything received once the server closed the connection. */
function exchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('admin: parser errors answered as JSON', () => {
  let admin: AdminServer;
  let port = 0;

  before(async () => {
    admin = new AdminServer({
      store: new TableStore(),
      metrics: new Metrics({ defaultMetrics: false }),
      logger: createLogger({ level: 'silent' }),
      ready: () => true,
      config: () => ({}),
    });
    port = (await admin.listen('127.0.0.1', 0)).port;
  });

  after(() => admin.close());

  const cases: [string, Buffer, number, string][] = [
    ['raw UTF-8 in the target', Buffer.concat([Buffer.from('GET /api/conf'), Buffer.from('é', 'utf8'), Buffer.from(' HTTP/1.1\r\nhost: a\r\n\r\n')]), 400, 'SY_BAD_REQUEST'],
    ['Content-Length with Transfer-Encoding', Buffer.from('POST /healthz HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'), 400, 'SY_BAD_REQUEST'],
    ['a head over the limit', Buffer.from(`GET /healthz HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'SY_HEADERS_TOO_LARGE'],
  ];
  for (const [name, bytes, status, code] of cases) {
    it(`${name}: ${status} with the JSON error body`, async () => {
      const received = await exchange(port, bytes);
      assert.match(received, new RegExp(`^HTTP/1\\.1 ${status} `), received);
      const body = received.slice(received.indexOf('\r\n\r\n') + 4);
      assert.equal((JSON.parse(body) as { error: string }).error, code, received);
      assert.match(received, /\r\ncontent-type: application\/json\r\n/);
    });
  }
});
