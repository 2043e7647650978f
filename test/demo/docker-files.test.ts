/**
 * docker/ cannot be run on this machine (no Docker engine), so its files are checked against the
 * code they drive: every Switchyard command line in them parses with the real CLI parser, the
 * paths they copy and run exist, the demo services get the variables demo-service.ts reads, the
 * admin token Prometheus sends is the one Switchyard is given, and templates are mounted where the
 * command line says.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseCommandLine } from '../../src/config/config.js';

const root = resolve(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'docker', 'Dockerfile'), 'utf8');
// Compose files use YAML merge keys (`<<: *demo`).
const compose = parse(readFileSync(join(root, 'docker', 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string; entrypoint?: string[]; command?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[] }>;
};
const prometheus = parse(readFileSync(join(root, 'docker', 'prometheus.yml'), 'utf8')) as {
  scrape_configs: { authorization?: { credentials?: string }; static_configs: { targets: string[] }[]; metrics_path: string }[];
};

/** The JSON array of a Dockerfile instruction (`CMD [...]`, `ENTRYPOINT [...]`). */
function instruction(name: string): string[] {
  const line = dockerfile.split('\n').find((l) => l.startsWith(`${name} [`));
  assert.ok(line !== undefined, `the Dockerfile has ${name} in exec form`);
  return JSON.parse(line.slice(name.length + 1)) as string[];
}

describe('docker/: the files match the code they run', () => {
  it('the image runs dist/cli.js, built from src/cli.ts, and its default command parses', () => {
    assert.deepEqual(instruction('ENTRYPOINT'), ['node', 'dist/cli.js']);
    assert.ok(existsSync(join(root, 'src', 'cli.ts')));
    const action = parseCommandLine(instruction('CMD'), {});
    assert.equal(action.kind, 'run');
    const checked: string[] = [];
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const path of copied[1]!.split(' ')) {
        assert.ok(existsSync(join(root, path)), `COPY ${path} exists`);
        checked.push(path);
      }
    }
    // The loop above asserts nothing if no line matches (a COPY rewritten in JSON form, say): the
    // build context the image needs must have been checked.
    for (const needed of ['package.json', 'package-lock.json', 'src', 'templates']) assert.ok(checked.includes(needed), `COPY ${needed} checked`);
  });

  it('the compose switchyard command parses with its environment, with Consul and an admin token off loopback', () => {
    const sy = compose.services['switchyard']!;
    const action = parseCommandLine(sy.command!, sy.environment ?? {});
    assert.equal(action.kind, 'run');
    if (action.kind !== 'run') return;
    assert.equal(action.config.consul?.url, 'http://consul:8500');
    assert.equal(action.config.admin.host, '0.0.0.0');
    assert.equal(action.config.adminToken, sy.environment?.['SWITCHYARD_ADMIN_TOKEN']);
    const mount = sy.volumes?.find((v) => v.startsWith('../templates:'));
    assert.equal(mount?.split(':')[1], action.config.templatesDir, 'templates are mounted where --templates points');
  });

  it('Prometheus scrapes the admin port with the token Switchyard is given', () => {
    const job = prometheus.scrape_configs[0]!;
    assert.equal(job.metrics_path, '/metrics');
    assert.equal(job.authorization?.credentials, compose.services['switchyard']!.environment?.['SWITCHYARD_ADMIN_TOKEN']);
    assert.deepEqual(job.static_configs[0]!.targets, ['switchyard:8081']);
  });

  it('each demo service runs the built demo-service and gets the variables it reads', () => {
    const source = readFileSync(join(root, 'src', 'demo', 'demo-service.ts'), 'utf8');
    const read = new Set([...source.matchAll(/env\['([A-Z_]+)'\]/g)].map((m) => m[1]!));
    const demos = Object.entries(compose.services).filter(([, s]) => s.entrypoint?.includes('dist/demo/demo-service.js'));
    assert.ok(demos.length >= 4, 'users-1..3 and hello-1');
    assert.ok(existsSync(join(root, 'src', 'demo', 'demo-service.ts')));
    for (const [name, service] of demos) {
      const env = service.environment ?? {};
      for (const key of ['SERVICE_NAME', 'SERVICE_ID', 'SERVICE_ADDRESS', 'CONSUL_HTTP_ADDR', 'PORT']) {
        assert.ok(read.has(key), `demo-service.ts reads ${key}`);
        assert.ok(env[key] !== undefined, `${name} sets ${key}`);
      }
      assert.equal(env['SERVICE_ADDRESS'], name, `${name} registers the address other containers reach it by`);
    }
  });
});
