import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { parseCidr, parseCidrList, TrustedProxies } from '../../src/proxy/edge/client-address.js';
import { RequestGuard } from '../../src/proxy/edge/request-guard.js';
import { startUpstream, type EchoReply, type TestUpstream } from '../support/upstream.js';
import { deadline, send, simpleTable, startProxy, type TestProxy } from './harness.js';

const SPOOF = {
  'x-forwarded-for': '203.0.113.7',
  'x-real-ip': '203.0.113.8',
  forwarded: 'for=203.0.113.9;proto=https',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
};

async function echo(port: number, headers: Record<string, string | string[]>): Promise<EchoReply> {
  const reply = await send(port, { path: '/x', headers: { host: 'shop.example', ...headers } });
  assert.equal(reply.status, 200, reply.text());
  return reply.json<EchoReply>();
}

describe('X-Forwarded-For: untrusted clients', () => {
  let up: TestUpstream;
  let p: TestProxy;
  before(async () => {
    up = await startUpstream({ name: 'app', websocket: true });
    p = await startProxy(simpleTable([up.port]), { options: { trustedProxies: ['10.0.0.0/8', '::1/128'] } });
  });
  after(async () => {
    await p.close();
    await up.close();
  });

  it('replaces X-Forwarded-For, -Proto, -Host and X-Real-IP with what the proxy saw, and drops Forwarded', async () => {
    const seen = await echo(p.port, SPOOF);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['forwarded'], undefined);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'shop.example');
  });

  it('removes every X-Forwarded-For header, not just the first', async () => {
    const seen = await echo(p.port, { 'x-forwarded-for': ['1.1.1.1', '2.2.2.2, 3.3.3.3'], 'X-Real-IP': '4.4.4.4' });
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-for').length, 1);
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
  });

  it('adds X-Forwarded-For when the client sent none, and leaves X-Real-IP out', async () => {
    const seen = await echo(p.port, {});
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], undefined);
  });

  it('does the same for WebSocket upgrades', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/x`, { headers: SPOOF });
    try {
      const hello = await deadline(new Promise<EchoReply>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse((data as Buffer).toString()) as EchoReply));
        ws.once('error', reject);
      }), 5_000, 'the upgrade echo');
      assert.equal(hello.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(hello.headers['x-real-ip'], '127.0.0.1');
      assert.equal(hello.headers['forwarded'], undefined);
    } finally {
      ws.close();
    }
  });
});

describe('X-Forwarded-For: trusted proxies', () => {
  let up: TestUpstream;
  let p: TestProxy;
  before(async () => {
    up = await startUpstream({ name: 'app', websocket: true });
    p = await startProxy(simpleTable([up.port]), { options: { trustedProxies: ['127.0.0.0/8'] } });
  });
  after(async () => {
    await p.close();
    await up.close();
  });

  it('appends the client address and keeps X-Real-IP and Forwarded', async () => {
    const seen = await echo(p.port, SPOOF);
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], '203.0.113.8');
    assert.equal(seen.headers['forwarded'], 'for=203.0.113.9;proto=https');
  });

  it('joins repeated X-Forwarded-For headers in order before appending', async () => {
    const seen = await echo(p.port, { 'x-forwarded-for': ['1.1.1.1', '2.2.2.2, 3.3.3.3'] });
    assert.equal(seen.headers['x-forwarded-for'], '1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1');
  });

  it('appends on WebSocket upgrades too', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/x`, { headers: { 'x-forwarded-for': '198.51.100.1' } });
    try {
      const hello = await deadline(new Promise<EchoReply>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse((data as Buffer).toString()) as EchoReply));
        ws.once('error', reject);
      }), 5_000, 'the upgrade echo');
      assert.equal(hello.headers['x-forwarded-for'], '198.51.100.1, 127.0.0.1');
    } finally {
      ws.close();
    }
  });
});

describe('X-Forwarded-For: IPv4-mapped and IPv6 trusted proxies', () => {
  let up: TestUpstream;
  let mapped: TestProxy;
  let v6only: TestProxy;
  before(async () => {
    up = await startUpstream({ name: 'app' });
    mapped = await startProxy(simpleTable([up.port]), { options: { trustedProxies: ['::ffff:127.0.0.0/104'] } });
    v6only = await startProxy(simpleTable([up.port]), { options: { trustedProxies: ['::1'] } });
  });
  after(async () => {
    await mapped.close();
    await v6only.close();
    await up.close();
  });

  it('an IPv4-mapped CIDR trusts the IPv4 client', async () => {
    assert.equal((await echo(mapped.port, { 'x-forwarded-for': '203.0.113.7' })).headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  });

  it('an IPv6 CIDR does not trust an IPv4 client', async () => {
    assert.equal((await echo(v6only.port, { 'x-forwarded-for': '203.0.113.7' })).headers['x-forwarded-for'], '127.0.0.1');
  });
});

describe('trusted proxy CIDRs', () => {
  it('parses IPv4, IPv6 and single addresses, and refuses the rest', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseCidr(' 192.0.2.7 '), { address: '192.0.2.7', prefix: 32, family: 'ipv4' });
    assert.deepEqual(parseCidr('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
    assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), { address: '::ffff:10.0.0.0', prefix: 104, family: 'ipv6' });
    assert.deepEqual(parseCidrList('10.0.0.0/8, ,::1').map((c) => c.address), ['10.0.0.0', '::1']);
    for (const bad of ['', 'nope', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/8/8', '::1/129', '10.0.0/8', '256.0.0.1', 'example.com/8', '10.0.0.0/ 8']) {
      assert.throws(() => parseCidr(bad), Error, bad);
    }
  });

  const trusted = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::ffff:172.16.0.0/108']);
  const table: [string | undefined, boolean][] = [
    ['10.1.2.3', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['::ffff:10.1.2.3', true],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['fd12:3456::1', true],
    ['fe80::1', false],
    ['172.16.5.5', true],
    ['172.32.0.1', false],
    ['::ffff:172.16.0.1', true],
    ['::1', false],
    [undefined, false],
    ['garbage', false],
  ];
  for (const [address, expected] of table) {
    it(`${String(address)} is ${expected ? '' : 'not '}trusted`, () => {
      assert.equal(trusted.contains(address), expected);
    });
  }

  it('trusts nobody when empty, everybody with /0', () => {
    assert.equal(new TrustedProxies([]).contains('10.0.0.1'), false);
    const all = new TrustedProxies(['0.0.0.0/0', '::/0']);
    for (const address of ['1.2.3.4', '::ffff:1.2.3.4', '2001:db8::1']) assert.equal(all.contains(address), true, address);
  });

  it('decides once per connection', () => {
    class CountingGuard extends RequestGuard {
      lookups = 0;
      override isTrusted(address: string | undefined): boolean {
        this.lookups += 1;
        return super.isTrusted(address);
      }
    }
    const guard = new CountingGuard({ trustedProxies: ['10.0.0.0/8'] });
    const socket = { remoteAddress: '10.0.0.5' } as Socket;
    const request = (): IncomingMessage => ({
      socket,
      httpVersionMajor: 1,
      httpVersionMinor: 1,
      method: 'GET',
      url: '/x',
      rawHeaders: ['Host', 'a', 'X-Forwarded-For', '1.2.3.4'],
    }) as unknown as IncomingMessage;
    for (let i = 0; i < 5; i++) {
      const req = request();
      assert.equal(guard.admit(req, {} as ServerResponse), true);
      assert.deepEqual(req.rawHeaders, ['Host', 'a', 'X-Forwarded-For', '1.2.3.4'], 'trusted: kept');
    }
    assert.equal(guard.lookups, 1);
    const other = { remoteAddress: '203.0.113.1' } as Socket;
    const req = { ...request(), socket: other, headers: {} } as unknown as IncomingMessage;
    assert.equal(guard.admit(req, {} as ServerResponse), true);
    assert.deepEqual(req.rawHeaders, ['Host', 'a'], 'untrusted: removed');
    assert.equal(guard.lookups, 2);
  });
});
