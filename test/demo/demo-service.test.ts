import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { ConsulTestServer } from '../support/consul/server.js';
import { waitFor } from '../support/wait.js';

/** The docker compose demo service, run as compose runs it, against the Consul API test server. */
const DEMO = new URL('../../dist/demo/demo-service.js', import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('demo service (docker compose)', () => {
  let consul: ConsulTestServer;
  before(async () => {
    consul = await ConsulTestServer.start({ jitter: false });
  });
  after(async () => {
    await consul.stop();
  });

  it('registers itself with tags and an HTTP check, answers, and deregisters on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [DEMO], {
      env: {
        PATH: process.env['PATH'], CONSUL_HTTP_ADDR: consul.address, PORT: String(port),
        SERVICE_NAME: 'hello', SERVICE_ID: 'hello-7', SERVICE_ADDRESS: '127.0.0.1', SERVICE_TAGS: 'public, urlprefix-/greet strip=/greet',
      },
    });
    try {
      const entry = await waitFor('the registration', async () => {
        const res = await request(`${consul.url}/v1/health/service/hello`);
        const list = await res.body.json() as { Service: { ID: string; Tags: string[]; Port: number; Address: string }; Checks: { CheckID: string }[] }[];
        return list[0];
      }, 10_000);
      assert.equal(entry.Service.ID, 'hello-7');
      assert.deepEqual(entry.Service.Tags, ['public', 'urlprefix-/greet strip=/greet']);
      assert.equal(entry.Service.Port, port);
      assert.equal(entry.Service.Address, '127.0.0.1');
      assert.ok(entry.Checks.some((c) => c.CheckID === 'service:hello-7'));
      const answer = await (await request(`http://127.0.0.1:${port}/x`)).body.json() as { instance: string; path: string };
      assert.deepEqual([answer.instance, answer.path], ['hello-7', '/x']);
      assert.equal((await request(`http://127.0.0.1:${port}/health`)).statusCode, 200);
    } finally {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    const after = await (await request(`${consul.url}/v1/health/service/hello`)).body.json() as unknown[];
    assert.deepEqual(after, []);
  });
});
