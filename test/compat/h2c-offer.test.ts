/**
 * `Upgrade: h2c` offers are answered over HTTP/1.1 and never forwarded (nginx ignores the offer
 * the same way). Java's default HttpClient sends one with every plain-HTTP request, `curl --http2`
 * too. Real clients where installed, and byte-exact replays of what they send.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTable, startProxy, type TestProxy } from '../proxy/harness.js';
import { rawExchange } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { missing, run } from './real-clients.js';

/** What Java 11-17's HttpClient (HTTP/2 preferred, the default) sends for a GET over plain HTTP, byte for byte. */
function javaGet(port: number, path: string): string {
  return `GET ${path} HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nContent-Length: 0\r\nHost: 127.0.0.1:${port}\r\n`
    + 'HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\nUpgrade: h2c\r\nUser-Agent: Java-http-client/17.0.15\r\n\r\n';
}

/** Java 17.0.15's POST: the same offer, the body in the next segment (captured from a real run). */
function javaPost(port: number, path: string, body: string): string {
  return `POST ${path} HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nContent-Length: ${body.length}\r\nHost: 127.0.0.1:${port}\r\n`
    + 'HTTP2-Settings: AAEAAEAAAAIAAAAAAAMAAAAAAAQBAAAAAAUAAEAAAAYABgAA\r\nUpgrade: h2c\r\nUser-Agent: Java-http-client/17.0.15\r\n\r\n' + body;
}

const JAVA_CLIENT = `
import java.net.URI;
import java.net.http.*;
public class Client {
  public static void main(String[] a) throws Exception {
    HttpClient c = HttpClient.newHttpClient();
    for (int i = 1; i < a.length; i++) {
      HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(a[0] + a[i]));
      if (a[i].startsWith("/post")) b.POST(HttpRequest.BodyPublishers.ofString("hello from java"));
      HttpResponse<String> r = c.send(b.build(), HttpResponse.BodyHandlers.ofString());
      System.out.println(r.statusCode() + " " + r.version());
    }
  }
}
`;

describe('compat: Upgrade: h2c offers', () => {
  let up: RecordingUpstream;
  let p: TestProxy;

  before(async () => {
    up = await startRecordingUpstream('app');
    p = await startProxy(makeTable([{ name: 'app', to: [{ service: 'app', endpoints: [{ id: 'a1', port: up.port }] }] }]));
  });

  after(async () => {
    await p.close();
    await up.close();
  });

  /** The upstream got the request without any part of the offer. */
  function assertNoOffer(url: string): void {
    const seen = up.requests.filter((r) => r.url === url);
    assert.equal(seen.length, 1, `${url} reached the upstream once`);
    const names = seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.ok(!names.includes('upgrade'), 'no Upgrade header upstream');
    assert.ok(!names.includes('http2-settings'), 'no HTTP2-Settings upstream');
    const connection = seen[0]!.headers.connection;
    assert.ok(connection === undefined || !/upgrade|http2-settings/i.test(String(connection)), `Connection upstream: ${String(connection)}`);
  }

  it("Java HttpClient's GET (byte-exact replay): 200 over HTTP/1.1, the offer dropped, the connection kept for the next request", async () => {
    const result = await rawExchange(p.port, javaGet(p.port, '/java-get') + javaGet(p.port, '/java-again'), { responses: 2, deadlineMs: 5_000 });
    assert.equal(result.responses.length, 2, `two answers on one connection: ${result.data.toString('latin1')} ${JSON.stringify(up.requests.map((r) => r.url))}`);
    for (const response of result.responses) {
      assert.equal(response.status, 200);
      assert.equal(response.headers.upgrade, undefined, 'no 101, no Upgrade in the answer');
    }
    assert.match(result.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    assertNoOffer('/java-get');
    assertNoOffer('/java-again');
  });

  it("Java HttpClient's POST with a body (byte-exact replay): the body reaches the upstream whole", async () => {
    const result = await rawExchange(p.port, javaPost(p.port, '/java-post', 'hello from java'), { responses: 1, deadlineMs: 5_000 });
    assert.equal(result.responses[0]?.status, 200);
    assertNoOffer('/java-post');
    assert.equal(up.requests.find((r) => r.url === '/java-post')?.body, 'hello from java');
  });

  it('a real Java HttpClient (GET then POST on one client): 200 HTTP_1_1 each', { skip: missing('java') }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-java-'));
    try {
      writeFileSync(join(dir, 'Client.java'), JAVA_CLIENT);
      const out = await run('java', [join(dir, 'Client.java'), `http://127.0.0.1:${p.port}`, '/real-java', '/post-real-java'], 60_000);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(out.stdout.trim().split('\n'), ['200 HTTP_1_1', '200 HTTP_1_1']);
      assertNoOffer('/real-java');
      assertNoOffer('/post-real-java');
      assert.equal(up.requests.find((r) => r.url === '/post-real-java')?.body, 'hello from java');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('curl --http2 (h2c offer): 200 over HTTP/1.1', { skip: missing('curl') }, async () => {
    const out = await run('curl', ['-s', '--http2', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `http://127.0.0.1:${p.port}/curl-h2c`]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, '200 1.1');
    assertNoOffer('/curl-h2c');
  });

  it('an offer next to another protocol (h2c, websocket) still goes the upgrade way, without h2c', async () => {
    const result = await rawExchange(p.port, `GET /both HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n`, { deadlineMs: 3_000 });
    // The recording upstream is no WebSocket server: it answers 200 and the tunnel relays it.
    assert.equal(result.responses[0]?.status, 200);
    const seen = up.requests.find((r) => r.url === '/both');
    assert.equal(seen?.headers.upgrade, 'websocket');
  });
});
