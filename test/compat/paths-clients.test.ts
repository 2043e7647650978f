/**
 * Real clients (curl, python3 http.client) against Switchyard in front of an upstream that records
 * every byte: request paths arrive as the client sent them (`//` kept, percent-encoding kept,
 * URL-in-path APIs work); only dot segments are resolved, for matching and forwarding alike.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { Switchyard } from '../../src/app.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/recording-upstream.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';

const CLIENT_TIMEOUT_MS = 20_000;

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: CLIENT_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** One GET with python3's http.client, the target sent exactly as given; prints the status. */
const PYTHON_GET = `
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)
c.request('GET', sys.argv[2])
r = c.getresponse()
r.read()
print(r.status)
`;

describe('compat: paths reach the upstream as curl and python3 sent them', () => {
  let workspace: Workspace;
  let upstream: RecordingUpstream;
  let app: Switchyard;
  let base = '';

  before(async () => {
    upstream = await startRecordingUpstream('recorder');
    workspace = await Workspace.create();
    await workspace.writeTemplate('all.yaml', 'routes:\n  - name: all\n    match: { path: / }\n    to: [ { service: recorder } ]\n');
    await workspace.writeServices(`services:\n  recorder:\n    - { id: r-1, address: 127.0.0.1, port: ${upstream.port} }\n`);
    app = await startTestSwitchyard(workspace);
    base = `http://127.0.0.1:${app.proxyAddress.port}`;
  });

  after(async () => {
    await app?.stop();
    await upstream?.close();
    await workspace?.remove();
  });

  /** The request lines the upstream received so far (raw bytes). */
  function requestLines(): string[] {
    return upstream.rawText().split('\r\n').filter((l) => /^GET \S+ HTTP\/1\.1$/.test(l));
  }

  /**
   * The one request line `send` made the upstream receive. The curl and python3 cases expect the
   * same line, so "the last line" alone would also be met by the previous case's request: count.
   */
  async function newRequestLine(send: () => Promise<void>): Promise<string> {
    const before = requestLines().length;
    await send();
    const lines = requestLines();
    assert.equal(lines.length, before + 1, 'exactly one request reached the upstream');
    return lines.at(-1)!;
  }

  // [what the client sends, what the upstream must receive]
  const CASES: [string, string][] = [
    ['/fetch/https://example.com/x', '/fetch/https://example.com/x'],
    ['/a//b///c', '/a//b///c'],
    ['/%41%42/%7e%2d', '/%41%42/%7e%2d'],
    ['/a%2fb/%2F/c', '/a%2fb/%2F/c'],
    ['/fetch/http://example.com/%41?u=//x&v=%zz', '/fetch/http://example.com/%41?u=//x&v=%zz'],
    // Dot segments are still resolved (curl needs --path-as-is to send them).
    ['/x/%2e%2e/fetch//y', '/fetch//y'],
    ['/x/y/../../fetch/https://example.com/z', '/fetch/https://example.com/z'],
  ];

  for (const [sent, received] of CASES) {
    it(`curl: ${sent} arrives as ${received}`, async () => {
      const line = await newRequestLine(async () => {
        const status = await run('curl', ['-sS', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `${base}${sent}`]);
        assert.equal(status, '200');
      });
      assert.equal(line, `GET ${received} HTTP/1.1`);
    });

    it(`python3 http.client: ${sent} arrives as ${received}`, async () => {
      const line = await newRequestLine(async () => {
        const status = await run('python3', ['-c', PYTHON_GET, String(app.proxyAddress.port), sent]);
        assert.equal(status.trim(), '200');
      });
      assert.equal(line, `GET ${received} HTTP/1.1`);
    });
  }

  it('python3 http.client: an encoded dot-dot above the root is still refused, and nothing reaches the upstream', async () => {
    const before = upstream.requests.length;
    const status = await run('python3', ['-c', PYTHON_GET, String(app.proxyAddress.port), '/%2e%2e/etc/passwd']);
    assert.equal(status.trim(), '400');
    assert.equal(upstream.requests.length, before);
    assert.doesNotMatch(upstream.rawText(), /passwd/);
  });
});
