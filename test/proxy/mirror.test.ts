/**
 * Request mirroring (src/proxy/http/mirror.ts): what a copy carries (method, rewritten path,
 * body, forwarded headers, Host with `-shadow`, no credentials unless keepAuth, no removeHeaders
 * whatever keepAuth says, while the main request keeps them), sampling, the
 * body bound (Content-Length and chunked), chunked bodies streaming to the main upstream while the
 * copy is kept, and upgrades never mirrored. Bounds under a slow or dead mirror and table swaps:
 * mirror-bounds.test.ts.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { send } from './harness.js';
import { mirrorCount, mirrorCounts, mirrorTo, sendChunked, startRig, traffic, withRig } from './mirror-support.js';
import type { EchoReply, TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

describe('mirror: what a copy carries', () => {
  const rig = withRig((to, port) => [
    { name: 'shadowed', path: '/api', strip: '/api', to, mirror: mirrorTo([port]) },
    { name: 'keep-auth', path: '/auth', to, mirror: mirrorTo([port], { keepAuth: true }) },
    { name: 'plain', path: '/plain', to },
    { name: 'keyed', path: '/keyed', to, mirror: mirrorTo([port], { removeHeaders: ['x-api-key', 'x-tenant-secret'] }) },
    { name: 'keyed-auth', path: '/keyed-auth', to, mirror: mirrorTo([port], { keepAuth: true, removeHeaders: ['x-api-key', 'cookie'] }) },
  ]);

  it('copies method, rewritten path, body and forwarded headers; drops credentials; Host gets -shadow', async () => {
    const before = rig.mirror.requests.length;
    const reply = await send(rig.proxy.port, {
      method: 'POST',
      path: '/api/orders?x=1',
      body: 'order=42',
      headers: {
        host: 'shop.example.com:8080',
        authorization: 'Bearer secret-token',
        cookie: 'session=secret-cookie',
        'proxy-authorization': 'Basic c2VjcmV0',
        'x-custom': 'kept',
        'content-type': 'application/x-www-form-urlencoded',
      },
    });
    assert.equal(reply.status, 200);
    const echo = reply.json<EchoReply>();
    assert.equal(echo.url, '/orders?x=1');
    assert.equal(echo.headers.authorization, 'Bearer secret-token', 'the main upstream gets the credentials');

    const copy = await waitFor('the copy, complete', () => rig.mirror.requests.length > before && rig.mirror.requests[before]!.complete && rig.mirror.requests[before]);
    assert.equal(copy.method, 'POST');
    assert.equal(copy.url, '/orders?x=1', 'the path the main request got (prefix stripped)');
    assert.equal(copy.body.toString(), 'order=42');
    assert.equal(copy.headers.host, 'shop.example.com-shadow:8080');
    assert.equal(copy.headers['x-custom'], 'kept');
    assert.equal(copy.headers['content-type'], 'application/x-www-form-urlencoded');
    for (const name of ['authorization', 'cookie', 'proxy-authorization']) assert.equal(copy.headers[name], undefined, `${name} is not copied`);
    assert.equal(copy.headers['x-request-id'], reply.headers['x-request-id'], 'the same request id');
    assert.equal(copy.headers['x-request-id'], echo.headers['x-request-id']);
    for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'traceparent']) {
      assert.equal(copy.headers[name], echo.headers[name], `${name} as the main request's`);
    }
    await waitFor('ok counted', async () => (await mirrorCount(rig.proxy.metrics, 'shadowed', 'ok')) === 1);
  });

  it('keepAuth: the copy keeps Authorization, Cookie and Proxy-Authorization', async () => {
    const before = rig.mirror.requests.length;
    const reply = await send(rig.proxy.port, {
      path: '/auth/me',
      headers: { host: 'shop.example.com', authorization: 'Bearer t', cookie: 'a=1', 'proxy-authorization': 'Basic eA==' },
    });
    assert.equal(reply.status, 200);
    const copy = await waitFor('the copy', () => rig.mirror.requests[before]?.complete === true && rig.mirror.requests[before]);
    assert.equal(copy.url, '/auth/me');
    assert.equal(copy.method, 'GET');
    assert.equal(copy.headers.host, 'shop.example.com-shadow');
    assert.equal(copy.headers.authorization, 'Bearer t');
    assert.equal(copy.headers.cookie, 'a=1');
    assert.equal(copy.headers['proxy-authorization'], 'Basic eA==');
  });

  it('removeHeaders: the copy lacks them while the main upstream gets them; credentials still follow keepAuth', async () => {
    const headers: Record<string, string> = { host: 'shop.example.com', 'x-api-key': 'k123', 'x-tenant-secret': 's1', authorization: 'Bearer t', cookie: 'a=1', 'x-custom': 'kept' };
    for (const [path, keepAuth] of [['/keyed/one', false], ['/keyed-auth/two', true]] as const) {
      const before = rig.mirror.requests.length;
      const reply = await send(rig.proxy.port, { path, headers });
      assert.equal(reply.status, 200);
      const echo = reply.json<EchoReply>();
      for (const name of ['x-api-key', 'authorization', 'cookie']) assert.equal(echo.headers[name], headers[name], `${path}: the main upstream gets ${name}`);
      const copy = await waitFor(`the copy of ${path}`, () => rig.mirror.requests[before]?.complete === true && rig.mirror.requests[before]);
      assert.equal(copy.url, path);
      assert.equal(copy.headers['x-api-key'], undefined, `${path}: x-api-key is not copied`);
      assert.equal(copy.headers['x-custom'], 'kept');
      assert.equal(copy.headers['x-request-id'], echo.headers['x-request-id']);
      if (keepAuth) {
        assert.equal(copy.headers.authorization, 'Bearer t', 'keepAuth keeps Authorization');
        assert.equal(copy.headers.cookie, undefined, 'Cookie is listed in removeHeaders');
        assert.equal(copy.headers['x-tenant-secret'], 's1', 'not listed on this route');
      } else {
        assert.equal(copy.headers['x-tenant-secret'], undefined);
        assert.equal(copy.headers.authorization, undefined, 'credentials dropped without keepAuth');
        assert.equal(copy.headers.cookie, undefined);
      }
    }
    await waitFor('both copies counted ok', async () => (await mirrorCount(rig.proxy.metrics, 'keyed', 'ok')) === 1 && (await mirrorCount(rig.proxy.metrics, 'keyed-auth', 'ok')) === 1);
  });

  it('a route without a mirror sends no copy and counts nothing', async () => {
    const before = rig.mirror.requests.length;
    const mainBefore = rig.main.requests;
    const reply = await send(rig.proxy.port, { path: '/plain/x' });
    assert.equal(reply.status, 200);
    // A copy would be dispatched right after the main request, before the main answer comes back;
    // one more copied request on a mirrored route, answered after it, proves none was pending.
    await send(rig.proxy.port, { path: '/auth/after' });
    await waitFor('the later copy', () => rig.mirror.requests.length > before && rig.mirror.requests[rig.mirror.requests.length - 1]!.url === '/auth/after');
    assert.equal(rig.mirror.requests.filter((r) => r.url.startsWith('/plain')).length, 0);
    assert.equal(rig.main.requests, mainBefore + 2);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'plain'), {});
  });
});

describe('mirror: sampling', () => {
  const rig = withRig((to, port) => [
    { name: 'half', path: '/half', to, mirror: mirrorTo([port], { percent: 50 }) },
    { name: 'none', path: '/none', to, mirror: mirrorTo([port], { percent: 0 }) },
    { name: 'all', path: '/all', to, mirror: mirrorTo([port], { percent: 100 }) },
  ]);

  const twoHundreds = (n: number): number[] => Array.from({ length: n }, () => 200);

  it('percent 50 over 200 requests copies a binomial share; requests not sampled are not counted', async () => {
    assert.deepEqual(await traffic(rig, '/half', 200), twoHundreds(200));
    // Every decision is counted once the copy is answered: wait until what arrived is counted.
    const ok = await waitFor('copies counted', async () => {
      const counted = await mirrorCount(rig.proxy.metrics, 'half', 'ok');
      return counted > 0 && counted === rig.mirror.requests.filter((r) => r.url === '/half').length && counted;
    });
    // Binomial(200, 0.5): mean 100, sd ~7.1; [60, 140] is over 5.6 sd either side (p < 1e-7).
    assert.ok(ok >= 60 && ok <= 140, `copied ${ok} of 200`);
    assert.deepEqual(Object.keys(await mirrorCounts(rig.proxy.metrics, 'half')), ['ok'], 'only copies are counted');
    assert.equal(rig.main.requests >= 200, true);
  });

  it('percent 0 copies nothing and counts nothing; percent 100 copies every request', async () => {
    assert.deepEqual(await traffic(rig, '/none', 50), twoHundreds(50));
    assert.deepEqual(await traffic(rig, '/all', 50), twoHundreds(50));
    await waitFor('50 copies of /all counted', async () => (await mirrorCount(rig.proxy.metrics, 'all', 'ok')) === 50);
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/all').length, 50);
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/none').length, 0);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'none'), {});
  });
});

describe('mirror: bodies', () => {
  const rig = withRig((to, port) => [
    { name: 'bounded', path: '/', to, mirror: mirrorTo([port], { maxBodyBytes: 1024 }) },
    { name: 'limited', path: '/limited', to, policy: { maxBodyBytes: 512 }, mirror: mirrorTo([port], { maxBodyBytes: 1024 }) },
    { name: 'one-slot', path: '/one-slot', to, mirror: mirrorTo([port], { maxInFlight: 1 }) },
  ]);

  const count = async (result: string): Promise<number> => mirrorCount(rig.proxy.metrics, 'bounded', result);

  it('a Content-Length over maxBodyBytes is not mirrored (body_too_large); the main upstream gets it whole', async () => {
    const body = Buffer.alloc(2000, 0x62);
    const reply = await send(rig.proxy.port, { method: 'PUT', path: '/big', body, headers: { 'x-test-action': 'count' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.json<{ bytes: number }>().bytes, 2000);
    await waitFor('body_too_large', async () => (await count('body_too_large')) === 1);
    // A later small copy arrives after the big one would have: the big one was never sent.
    await send(rig.proxy.port, { method: 'PUT', path: '/small', body: 'tiny' });
    await waitFor('the small copy', () => rig.mirror.requests.some((r) => r.url === '/small' && r.complete));
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/big').length, 0);
  });

  it('a body exactly at maxBodyBytes is mirrored whole', async () => {
    const body = Buffer.alloc(1024, 0x63);
    const reply = await send(rig.proxy.port, { method: 'POST', path: '/exact', body });
    assert.equal(reply.status, 200);
    const copy = await waitFor('the copy', () => rig.mirror.requests.find((r) => r.url === '/exact' && r.complete));
    assert.ok(copy.body.equals(body));
  });

  it('a chunked body within the bound is mirrored whole, sent once the body is complete', async () => {
    const parts = [Buffer.from('first,'), Buffer.from('second,'), Buffer.alloc(300, 0x64)];
    const reply = await sendChunked(rig.proxy.port, '/chunked-small', parts);
    assert.equal(reply.status, 200);
    const echo = JSON.parse(reply.body.toString()) as EchoReply;
    assert.equal(echo.bodyLength, 313);
    const copy = await waitFor('the copy', () => rig.mirror.requests.find((r) => r.url === '/chunked-small' && r.complete));
    assert.ok(copy.body.equals(Buffer.concat(parts)));
    assert.equal(copy.headers['content-length'], '313', 'sent with its length, as a complete body');
    assert.equal(copy.headers['transfer-encoding'], undefined);
  });

  it('a chunked body streams to the main upstream while the copy is kept (nothing held back)', async () => {
    const parts = ['one|', 'two|', 'three|'];
    const copiesBefore = rig.mirror.requests.length;
    // stream-echo answers with each chunk as it arrives: part i+1 is written only once part i came
    // back through the proxy, so the main upstream had it before the body was complete.
    let echoed = '';
    let expected = '';
    const reply = await sendChunked(rig.proxy.port, '/streamed', parts, {
      headers: { 'x-test-action': 'stream-echo' },
      onData: (chunk) => { echoed += chunk.toString(); },
      between: async (i) => {
        expected += parts[i];
        await waitFor(`the main upstream echoed ${JSON.stringify(expected)}`, () => echoed === expected);
        assert.equal(rig.mirror.requests.length, copiesBefore, 'no copy before the body is complete');
      },
    });
    assert.equal(reply.body.toString(), 'one|two|three|');
    const copy = await waitFor('the copy', () => rig.mirror.requests.find((r) => r.url === '/streamed' && r.complete));
    assert.equal(copy.body.toString(), 'one|two|three|');
  });

  it('a chunked body over the bound: the copy is dropped (body_too_large), the main upstream gets every byte', async () => {
    const before = await count('body_too_large');
    const parts = Array.from({ length: 6 }, (_, i) => Buffer.alloc(400, 0x30 + i));
    const reply = await sendChunked(rig.proxy.port, '/chunked-big', parts);
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body.toString()) as EchoReply).bodyLength, 2400);
    await waitFor('body_too_large', async () => (await count('body_too_large')) === before + 1);
    await send(rig.proxy.port, { path: '/after-chunked-big' });
    await waitFor('a later copy', () => rig.mirror.requests.some((r) => r.url === '/after-chunked-big'));
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/chunked-big').length, 0);
  });

  it("a chunked body the route's own limit refuses (413) is not mirrored", async () => {
    const reply = await sendChunked(rig.proxy.port, '/limited/x', [Buffer.alloc(300, 0x41), Buffer.alloc(300, 0x42)]);
    assert.equal(reply.status, 413);
    await waitFor('counted', async () => (await mirrorCount(rig.proxy.metrics, 'limited', 'body_too_large')) === 1);
    assert.equal(rig.mirror.requests.filter((r) => r.url.startsWith('/limited')).length, 0);
  });

  it('a client that leaves mid-body: the copy is never sent (incomplete), its slot released', async () => {
    await abortMidBody(rig.proxy.port, '/one-slot/aborted', rig.main);
    await waitFor('incomplete counted', async () => (await mirrorCount(rig.proxy.metrics, 'one-slot', 'incomplete')) === 1);
    assert.equal(rig.mirror.requests.filter((r) => r.url === '/one-slot/aborted').length, 0);
    // The route's only slot is free again: the next request is copied, not shed.
    assert.equal((await send(rig.proxy.port, { method: 'POST', path: '/one-slot/next', body: 'x' })).status, 200);
    await waitFor('the next copy answered', async () => (await mirrorCount(rig.proxy.metrics, 'one-slot', 'ok')) === 1);
    assert.deepEqual(await mirrorCounts(rig.proxy.metrics, 'one-slot'), { incomplete: 1, ok: 1 });
  });
});

describe('mirror: the deadline covers the wait for the body', () => {
  const rig = withRig((to, port) => [{ name: 'short', path: '/', to, mirror: mirrorTo([port], { timeoutMs: 100, maxInFlight: 1 }) }]);

  it('a body still arriving when timeoutMs is up: the copy is dropped (timeout) and its slot freed; the main request completes', async () => {
    // The client holds its body open until the copy has timed out, then finishes it.
    const reply = await sendChunked(rig.proxy.port, '/slow-upload', ['first part|', 'last part'], {
      between: async (i) => {
        if (i === 0) await waitFor('the copy timed out', async () => (await mirrorCount(rig.proxy.metrics, 'short', 'timeout')) === 1);
      },
    });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body.toString()) as EchoReply).body, 'first part|last part');
    // The slot is free: the next request is copied and answered (ok).
    assert.equal((await send(rig.proxy.port, { path: '/next' })).status, 200);
    await waitFor('the next copy ok', async () => (await mirrorCount(rig.proxy.metrics, 'short', 'ok')) === 1);
    assert.deepEqual(rig.mirror.requests.map((r) => r.url), ['/next'], 'the timed-out copy was never sent');
  });
});

describe('mirror: upgrades', () => {
  it('a WebSocket upgrade on a mirrored route is not mirrored', async () => {
    const rig = await startRig((to, port) => [{ name: 'ws', path: '/', to, mirror: mirrorTo([port]) }]);
    const { mirror, proxy } = rig;
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/socket`);
      const first = await new Promise<string>((resolve, reject) => {
        ws.once('message', (data: Buffer) => resolve(data.toString()));
        ws.once('error', reject);
      });
      assert.equal((JSON.parse(first) as EchoReply).url, '/socket');
      ws.close();
      // A plain request after it is copied: the upgrade before it was not.
      await send(proxy.port, { path: '/plain-after' });
      await waitFor('the plain copy', () => mirror.requests.some((r) => r.url === '/plain-after'));
      assert.deepEqual(mirror.requests.map((r) => r.url), ['/plain-after']);
      await waitFor('one ok', async () => (await mirrorCounts(proxy.metrics, 'ws')).ok === 1);
      assert.deepEqual(await mirrorCounts(proxy.metrics, 'ws'), { ok: 1 });
    } finally {
      await rig.close();
    }
  });
});

/** Send part of a chunked body, wait until the main upstream has the request, then destroy the connection. */
async function abortMidBody(port: number, path: string, main: TestUpstream): Promise<void> {
  const before = main.requests;
  const req = request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { 'transfer-encoding': 'chunked' } });
  req.on('error', () => { /* destroyed on purpose */ });
  req.write('part of a body');
  await waitFor('the main upstream got the request', () => main.requests > before);
  req.destroy();
}
