import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessLog, jsonString } from '../../src/observability/access-log.js';
import { boundLine, LINE_LIMIT_BYTES } from '../../src/observability/line-bound.js';
import { captureLogger } from '../support/capture-logger.js';

describe('access log line', () => {
  it('writes pino-shaped JSON with the logger bindings and every field', () => {
    const { logger, lines } = captureLogger();
    const log = new AccessLog(logger.child({ component: 'proxy' }), { kind: 'access' });
    log.write({
      reqId: 'r-1', routeJson: jsonString('api "users"'), upstream: 'http://127.0.0.1:9001', endpoint: 'users/users-1',
      method: 'GET', path: '/a\\b"c\u0001?q=ü', status: 200, ms: 1.23456, error: 'SY_UPSTREAM_RESET', reason: 'other side closed', attempts: 2, end: 'upstream_reset',
    });
    log.write({ reqId: 'r-2', routeJson: '"(none)"', upstream: undefined, endpoint: undefined, method: 'POST', path: '/', status: 404, ms: 0.5, error: undefined, reason: undefined, attempts: undefined });
    assert.equal(lines.length, 2);
    const [first, second] = lines as [Record<string, unknown>, Record<string, unknown>];
    assert.equal(first['level'], 30);
    assert.ok(!Number.isNaN(Date.parse(String(first['time']))));
    assert.equal(first['app'], 'switchyard');
    assert.equal(first['component'], 'proxy');
    assert.equal(first['kind'], 'access');
    assert.equal(first['route'], 'api "users"');
    assert.equal(first['path'], '/a\\b"c\u0001?q=ü');
    assert.deepEqual([first['status'], first['ms'], first['error'], first['attempts'], first['end']], [200, 1.235, 'SY_UPSTREAM_RESET', 2, 'upstream_reset']);
    assert.deepEqual(Object.keys(second).filter((k) => ['upstream', 'endpoint', 'error', 'reason', 'attempts', 'end', 'upgrade'].includes(k)), []);
    assert.equal(second['route'], '(none)');
  });

  it('follows the logger level', () => {
    const { logger, lines } = captureLogger('warn');
    const log = new AccessLog(logger, { kind: 'access' });
    assert.equal(log.enabled, false);
    log.write({ reqId: 'x', routeJson: '"r"', upstream: undefined, endpoint: undefined, method: 'GET', path: '/', status: 200, ms: 1, error: undefined, reason: undefined, attempts: undefined });
    assert.equal(lines.length, 0);
  });

  it('stays within 4096 bytes (one atomic pipe write): a long path is cut and marked, the rest kept', () => {
    const { logger, text } = captureLogger();
    const log = new AccessLog(logger, { kind: 'access' });
    for (const path of ['/' + 'a'.repeat(10_000), '/' + '\u0001'.repeat(3000), '/' + 'é'.repeat(5000)]) {
      log.write({ reqId: 'r-long', routeJson: '"r"', upstream: 'http://127.0.0.1:1', endpoint: 'e', method: 'GET', path, status: 414, ms: 1, error: undefined, reason: 'x'.repeat(3000), attempts: undefined });
    }
    const raw = text().split('\n');
    assert.equal(raw.length, 3);
    for (const line of raw) {
      assert.ok(Buffer.byteLength(line) + 1 <= LINE_LIMIT_BYTES, `${Buffer.byteLength(line)} bytes`);
      const record = JSON.parse(line) as Record<string, unknown>;
      assert.match(String(record['path']), /…\[cut \d+ chars\]$/);
      assert.deepEqual([record['reqId'], record['status'], record['upstream']], ['r-long', 414, 'http://127.0.0.1:1']);
    }
  });

  it('a long pino line is cut to 4096 bytes, still JSON with its fields, marked truncated', () => {
    const long = `${JSON.stringify({ level: 50, time: 't', app: 'switchyard', err: { message: 'boom', stack: 's'.repeat(9000) }, msg: 'failed' })}\n`;
    const cut = boundLine(long);
    assert.ok(Buffer.byteLength(cut) <= LINE_LIMIT_BYTES);
    assert.ok(cut.endsWith('\n'));
    const record = JSON.parse(cut) as { err: { message: string; stack: string }; msg: string; truncated: boolean };
    assert.deepEqual([record.err.message, record.msg, record.truncated], ['boom', 'failed', true]);
    assert.match(record.err.stack, /^s+…\[cut \d+ chars\]$/);
    const short = '{"level":30,"msg":"ok"}\n';
    assert.equal(boundLine(short), short, 'short lines untouched');
  });
});
