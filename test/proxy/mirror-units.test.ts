/**
 * Unit tests of the mirroring pieces without sockets: the copy's Host and headers
 * (http/mirror.ts) and the BodyTap's two copies (retry and mirror) sharing one buffer.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { BodyTap, type BodySink } from '../../src/proxy/http/body-tap.js';
import { mirrorHeaders, shadowHost } from '../../src/proxy/http/mirror.js';
import { mirrorDropSet } from '../../src/proxy/runtime/mirror-route.js';

describe('mirror: the copy\'s Host and headers', () => {
  it('-shadow goes after the host name, before any port', () => {
    const cases: [string, string][] = [
      ['api.example.com', 'api.example.com-shadow'],
      ['api.example.com:8080', 'api.example.com-shadow:8080'],
      ['10.0.0.1:80', '10.0.0.1-shadow:80'],
      ['[::1]', '[::1]-shadow'],
      ['[::1]:8080', '[::1]-shadow:8080'],
    ];
    for (const [host, shadow] of cases) assert.equal(shadowHost(host), shadow, host);
  });

  it('credentials are left out unless kept; everything else is copied in order', () => {
    const headers = ['host', 'a.example', 'authorization', 'Bearer t', 'x-one', '1', 'cookie', 'c=1', 'proxy-authorization', 'Basic x', 'cookie', 'd=2', 'x-request-id', 'id-1'];
    assert.deepEqual(mirrorHeaders(headers, mirrorDropSet({ keepAuth: false })), ['host', 'a.example-shadow', 'x-one', '1', 'x-request-id', 'id-1']);
    assert.deepEqual(mirrorHeaders(headers, mirrorDropSet({ keepAuth: true })), ['host', 'a.example-shadow', 'authorization', 'Bearer t', 'x-one', '1', 'cookie', 'c=1', 'proxy-authorization', 'Basic x', 'cookie', 'd=2', 'x-request-id', 'id-1']);
  });

  it('removeHeaders are left out too, every field of the name, with or without keepAuth', () => {
    const headers = ['host', 'a.example', 'x-api-key', 'k123', 'authorization', 'Bearer t', 'x-one', '1', 'x-api-key', 'k456', 'cookie', 'c=1'];
    assert.deepEqual(mirrorHeaders(headers, mirrorDropSet({ keepAuth: false, removeHeaders: ['x-api-key'] })), ['host', 'a.example-shadow', 'x-one', '1']);
    assert.deepEqual(mirrorHeaders(headers, mirrorDropSet({ keepAuth: true, removeHeaders: ['x-api-key', 'cookie'] })),
      ['host', 'a.example-shadow', 'authorization', 'Bearer t', 'x-one', '1'], 'keepAuth keeps authorization; cookie is removed by name');
    assert.deepEqual([...mirrorDropSet({ keepAuth: true })], [], 'keepAuth and no list: nothing dropped');
  });
});

/** A BodySink that records what it was told. */
function sink(maxBytes: number): BodySink & { body?: Buffer; dropped?: string } {
  const out: BodySink & { body?: Buffer; dropped?: string } = {
    maxBytes,
    bodyComplete(body) { out.body = Buffer.from(body); },
    bodyDropped(reason) { out.dropped = reason; },
  };
  return out;
}

/** Stream `parts` through `tap` into a collector; the bytes that came out. */
async function through(tap: BodyTap, parts: readonly string[]): Promise<string> {
  const source = new PassThrough();
  const chunks: Buffer[] = [];
  const sinkStream = new PassThrough();
  sinkStream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = pipeline(source, tap, sinkStream);
  for (const part of parts) source.write(part);
  source.end();
  await done;
  return Buffer.concat(chunks).toString();
}

describe('mirror: BodyTap copies', () => {
  it('hands the whole body to the sink at the end, passing every chunk on unchanged', async () => {
    const s = sink(100);
    const tap = new BodyTap(-1, 0, s);
    assert.equal(await through(tap, ['ab', 'cd', 'ef']), 'abcdef');
    assert.equal(s.body?.toString(), 'abcdef');
    assert.equal(s.dropped, undefined);
    assert.equal(tap.replay(), undefined, 'no retry copy was asked for');
  });

  it('drops the sink past its bound (body_too_large) and keeps the retry copy within its own', async () => {
    const s = sink(3);
    const tap = new BodyTap(-1, 100, s);
    assert.equal(await through(tap, ['ab', 'cd', 'ef']), 'abcdef');
    assert.equal(s.dropped, 'body_too_large');
    assert.equal(s.body, undefined);
    assert.equal(tap.replay()?.toString(), 'abcdef');
  });

  it('forgetCopy (the response head came) drops the retry copy but not the mirror copy', async () => {
    const s = sink(100);
    const tap = new BodyTap(-1, 100, s);
    tap.forgetCopy();
    assert.equal(await through(tap, ['ab', 'cd']), 'abcd');
    assert.equal(s.body?.toString(), 'abcd');
    assert.equal(tap.replay(), undefined);
  });

  it('the retry copy past its bound is gone while the mirror copy within its bound stays', async () => {
    const s = sink(100);
    const tap = new BodyTap(-1, 3, s);
    assert.equal(await through(tap, ['ab', 'cd', 'ef']), 'abcdef');
    assert.equal(s.body?.toString(), 'abcdef');
    assert.equal(tap.replay(), undefined);
  });

  it('a stream destroyed before its end tells the sink: incomplete', () => {
    const s = sink(100);
    const tap = new BodyTap(-1, 0, s);
    tap.write('ab');
    tap.destroy();
    assert.equal(s.dropped, 'incomplete');
  });

  it("the route's limit: the sink is told body_too_large", async () => {
    const s = sink(100);
    const tap = new BodyTap(3, 0, s);
    await assert.rejects(through(tap, ['ab', 'cd']), { code: 'SY_BODY_TOO_LARGE' });
    assert.equal(s.dropped, 'body_too_large');
  });
});
