import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { AdminServer } from '../../src/admin/admin-server.js';
import { TableStore } from '../../src/control/table-store.js';
import { httpStatusFor, type ErrorCode } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

/** Every admin error is a code of the one code -> status map (src/errors.ts), in the proxy's error shape. */
describe('admin: errors from the one code map', () => {
  let admin: AdminServer;
  let base = '';

  before(async () => {
    admin = new AdminServer({
      store: new TableStore(),
      metrics: new Metrics({ defaultMetrics: false }),
      logger: createLogger({ level: 'silent' }),
      ready: () => true,
      config: () => { throw new Error('broken config view'); },
    });
    const address = await admin.listen('127.0.0.1', 0);
    base = `http://127.0.0.1:${address.port}`;
  });

  after(async () => {
    await admin.close();
  });

  async function errorOf(path: string, method: 'GET' | 'POST' = 'GET'): Promise<{ status: number; code: ErrorCode; headers: Record<string, unknown> }> {
    const res = await request(`${base}${path}`, { method });
    const body = (await res.body.json()) as { error: ErrorCode; message: string };
    assert.equal(typeof body.message, 'string');
    assert.equal(res.headers['cache-control'], 'no-store', 'the shared serialiser');
    return { status: res.statusCode, code: body.error, headers: res.headers };
  }

  it('unknown endpoint: SY_NOT_FOUND, 404 from the map', async () => {
    const e = await errorOf('/nope');
    assert.equal(e.code, 'SY_NOT_FOUND');
    assert.equal(e.status, httpStatusFor('SY_NOT_FOUND'));
    assert.equal(e.status, 404);
  });

  it('a write method: SY_METHOD_NOT_ALLOWED, 405 with Allow', async () => {
    const e = await errorOf('/healthz', 'POST');
    assert.equal(e.code, 'SY_METHOD_NOT_ALLOWED');
    assert.equal(e.status, 405);
    assert.equal(e.headers.allow, 'GET, HEAD');
  });

  it('a failing handler: SY_INTERNAL, 500 from the map', async () => {
    const e = await errorOf('/api/config');
    assert.equal(e.code, 'SY_INTERNAL');
    assert.equal(e.status, httpStatusFor('SY_INTERNAL'));
  });

  it('/api/match without a path: SY_BAD_REQUEST, 400', async () => {
    const e = await errorOf('/api/match');
    assert.equal(e.code, 'SY_BAD_REQUEST');
    assert.equal(e.status, 400);
  });
});
