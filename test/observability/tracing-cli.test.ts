/**
 * Tracing wired in the built CLI (dist/cli.js): with `--workers 2` each worker loads the exporter
 * from the environment (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME) and exports its own spans,
 * and the spans still queued at SIGTERM are flushed before the process exits (the batch delay here
 * is a minute: only the shutdown flush can deliver them).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { Workspace } from '../support/switchyard.js';
import { waitFor } from '../support/wait.js';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

interface Exported {
  service: string | undefined;
  traceId: string;
}

describe('tracing from the environment, --workers 2', () => {
  let workspace: Workspace;
  let upstream: Server;
  let collector: Server;
  const exported: Exported[] = [];

  before(async () => {
    upstream = createServer((_req, res) => res.end('ok'));
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as {
          resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: { traceId: string }[] }[] }[];
        };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
          for (const ss of rs.scopeSpans) for (const s of ss.spans) exported.push({ service, traceId: s.traceId });
        }
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    workspace = await Workspace.create();
    await workspace.writeTemplate('r.yaml', 'routes:\n  - name: r\n    to: [ { service: s } ]\n');
    await workspace.writeServices(`services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }\n`);
  });

  after(async () => {
    upstream.closeAllConnections();
    upstream.close();
    collector.closeAllConnections();
    collector.close();
    await workspace?.remove();
  });

  it('every worker exports its spans, and the queued ones are flushed at SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--templates', workspace.templatesDir,
      '--services', workspace.servicesFile, '--drain-timeout', '2s', '--workers', '2'], {
      env: {
        PATH: process.env['PATH'],
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
        OTEL_SERVICE_NAME: 'edge-under-test',
        // JSON, so that the collector here can decode the spans (the default is http/protobuf).
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '60000',
      },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await waitFor('the listening log line', () => {
        const line = output.split('\n').find((l) => l.includes('switchyard listening'));
        return line === undefined ? undefined : (JSON.parse(line) as { proxy: AddressInfo }).proxy.port;
      }, 20_000);
      await waitFor('both workers to export', () => output.split('\n').filter((l) => l.includes('exporting trace spans')).length === 2, 10_000);
      const traceIds: string[] = [];
      const servingWorkers = (): Set<number | undefined> => new Set(output.split('\n').filter((l) => l.includes('"kind":"access"'))
        .map((l) => (JSON.parse(l) as { worker?: number }).worker));
      // New connections until both workers have served some (the kernel spreads accepts between them).
      for (let i = 0; i < 200 && (i < 4 || servingWorkers().size < 2); i++) {
        const traceId = `${(i + 1).toString(16).padStart(4, '0')}${'a'.repeat(28)}`;
        traceIds.push(traceId);
        const res = await request(`http://127.0.0.1:${port}/x${i}`, { headers: { traceparent: `00-${traceId}-${'b'.repeat(16)}-01`, connection: 'close' } });
        assert.equal(res.statusCode, 200);
        await res.body.text();
        // Access lines are written asynchronously (flushed every 100 ms): wait for this one.
        await waitFor('the access line', () => output.includes(`"path":"/x${i}"`), 5_000);
      }
      assert.equal(servingWorkers().size, 2, 'both workers served requests');
      assert.equal(exported.length, 0, 'nothing exported before the batch delay or a flush');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output);
      assert.deepEqual(exported.map((e) => e.traceId).sort(), traceIds.sort(), 'every span was flushed at shutdown');
      assert.ok(exported.every((e) => e.service === 'edge-under-test'), 'OTEL_SERVICE_NAME names the service');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
