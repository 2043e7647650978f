#!/usr/bin/env node
/**
 * A demo service for docker compose: answers every request with JSON naming itself, and registers
 * itself in Consul with an HTTP health check (deregistering on SIGTERM). Configured by env:
 * SERVICE_NAME, SERVICE_ID, SERVICE_TAGS (comma separated), SERVICE_ADDRESS (how others reach it),
 * PORT, CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN.
 */
import { createServer } from 'node:http';
import Consul from 'consul';
import { parseConsulAddress } from '../config/config.js';

const env = process.env;
const name = env['SERVICE_NAME'] ?? 'users';
const id = env['SERVICE_ID'] ?? `${name}-1`;
const tags = (env['SERVICE_TAGS'] ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '');
const port = Number(env['PORT'] ?? '9000');
const address = env['SERVICE_ADDRESS'] ?? id;
let healthy = true;

const server = createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok\n' : 'failing\n');
    return;
  }
  // Flip this instance's health from outside: curl -X POST .../toggle-health (through Switchyard).
  if (req.url?.endsWith('/toggle-health') && req.method === 'POST') healthy = !healthy;
  const body = `${JSON.stringify({ service: name, instance: id, tags, method: req.method, path: req.url, healthy })}\n`;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
});

async function main(): Promise<void> {
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  const url = new URL(parseConsulAddress(env['CONSUL_HTTP_ADDR'] ?? '127.0.0.1:8500', env));
  const consul = new Consul({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    secure: url.protocol === 'https:',
    ...(env['CONSUL_HTTP_TOKEN'] ? { defaults: { token: env['CONSUL_HTTP_TOKEN'] } } : {}),
  });
  const registration = {
    id, name, tags, address, port,
    meta: { demo: 'true' },
    check: { name: `${id} http`, http: `http://${address}:${port}/health`, interval: '2s', timeout: '1s', deregistercriticalserviceafter: '1m' },
  };
  // Consul may still be starting: retry until it takes the registration.
  for (let attempt = 1; ; attempt++) {
    try {
      await consul.agent.service.register(registration);
      break;
    } catch (err) {
      process.stderr.write(`demo-service ${id}: register failed (attempt ${attempt}): ${(err as Error).message}\n`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * attempt)));
    }
  }
  process.stdout.write(`demo-service ${id} (${name} [${tags.join(',')}]) on ${address}:${port}, registered in Consul\n`);
  const stop = async (): Promise<void> => {
    await consul.agent.service.deregister(id).catch(() => undefined);
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

void main();
