import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool } from 'undici';
import { buildTable } from '../../src/model/build-table.js';
import { addressProblem, portProblem } from '../../src/model/endpoint-address.js';
import { originFor } from '../../src/model/service-endpoints.js';
import { discovery, instance, routeNamed, template } from './fixtures.js';

/** Does undici accept this origin? What the runtime does with every endpoint at swap time. */
function undiciAccepts(origin: string): boolean {
  try {
    void new Pool(origin).destroy();
    return true;
  } catch {
    return false;
  }
}

const GOOD = [
  '127.0.0.1', '10.0.0.7', '0.0.0.0', '255.255.255.255',
  '::1', '::', '[::1]', 'fe80::1', '2001:db8::5', '2001:0db8:0000:0000:0000:0000:0000:0001', '1:2:3:4:5:6:7::', '::ffff:10.0.0.1', 'FE80::A',
  'localhost', 'users.internal', 'users.internal.', 'my_service_1', 'a-b.example', 'xn--bcher-kva.example', 'UPPER.Example', 'a1.b2', '3com.example',
  'a'.repeat(63), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
];

const BAD: [string, RegExp][] = [
  ['', /empty address/],
  ['bad host', /" " is not allowed/],
  ['a\tb', /is not allowed/],
  ['fe80::1%eth0', /IPv6 zones/],
  ['[fe80::1%25eth0]', /IPv6 zones/],
  ['host:8080', /not an IP address or DNS name/],
  ['http://x', /not an IP address or DNS name/],
  ['[::1]:80', /unclosed|not an IP address/],
  ['[::1', /unclosed/],
  ['1::2::3', /not an IP address/],
  ['1:2:3:4:5:6:7:8:9', /not an IP address/],
  ['1:2:3:4:5:6:7:8::', /not an IP address/],
  ['12345:1::', /not an IP address/],
  ['::ffff:999.0.0.1', /not an IP address/],
  ['999.1.1.1', /ending in a number/],
  ['1.2.3', /ending in a number/],
  ['127.1', /ending in a number/],
  ['12345', /ending in a number/],
  ['010.0.0.1', /ending in a number/],
  ['a.0x1f', /ending in a number/],
  ['host/path', /"\/" is not allowed/],
  ['host?x', /"\?" is not allowed/],
  ['host#x', /"#" is not allowed/],
  ['user@host', /"@" is not allowed/],
  ['%41', /"%" is not allowed/],
  ['foo..bar', /1 to 63 characters/],
  ['.foo', /1 to 63 characters/],
  ['-foo', /start or end with "-"/],
  ['foo-', /start or end with "-"/],
  ['a'.repeat(64), /1 to 63 characters/],
  [`${'a'.repeat(63)}.`.repeat(4) + 'a', /1 to 253 characters/],
  ['ä.example', /punycode/],
];

describe('addressProblem', () => {
  for (const address of GOOD) {
    it(`accepts ${JSON.stringify(address)}, and undici can open a pool for it`, () => {
      assert.equal(addressProblem(address), undefined);
      assert.ok(undiciAccepts(originFor(address, 80)), originFor(address, 80));
    });
  }
  for (const [address, reason] of BAD) {
    it(`refuses ${JSON.stringify(address)}`, () => assert.match(addressProblem(address) ?? 'accepted', reason));
  }
  it('refuses every address undici cannot open a pool for (the ones Consul lets through)', () => {
    for (const address of ['bad host', 'fe80::1%eth0', '', 'host:port', 'http://x', 'a b', '999.1.1.1', '1::2::3', 'host/path', 'host?x', 'host#x', '[::1]:80']) {
      assert.equal(undiciAccepts(originFor(address, 80)), false, `undici accepts ${address}: the test corpus is wrong`);
      assert.notEqual(addressProblem(address), undefined, address);
    }
  });
});

describe('portProblem', () => {
  for (const port of [1, 80, 65535]) it(`accepts ${port}`, () => assert.equal(portProblem(port), undefined));
  for (const port of [0, -1, 65536, 80.5, Number.NaN]) it(`refuses ${port}`, () => assert.match(portProblem(port) ?? 'accepted', /not in 1\.\.65535/));
});

describe('unusable instances in a table', () => {
  it('are left out of their pool as problems of kind endpoint; the good instances serve', () => {
    const snap = discovery([
      instance('s', 's-1', { port: 9001 }),
      instance('s', 's-2', { address: 'bad host' }),
      instance('s', 's-3', { address: 'fe80::1%eth0' }),
      instance('s', 's-4', { port: 70000 }),
      instance('s', 's-5', { address: '::1', port: 9005 }),
    ]);
    const t = buildTable(snap, {}, [template('r', '/', [{ service: 's', weight: 1 }])]);
    const destination = routeNamed(t, 'r').destinations[0]!;
    assert.deepEqual(destination.endpoints.map((e) => e.origin), ['http://127.0.0.1:9001', 'http://[::1]:9005']);
    assert.deepEqual(t.problems.map((p) => [p.kind, p.source]), [['endpoint', 's/s-2'], ['endpoint', 's/s-3'], ['endpoint', 's/s-4']]);
    assert.match(t.problems[0]!.message, /unusable address "bad host" port 9000: .*instance left out/);
  });
});
