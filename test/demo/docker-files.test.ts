/**
 * docker/ cannot be run on this machine (no Docker engine), so its files are checked against the
 * code they drive: every Switchyard command line in them parses with the real CLI parser, the
 * paths they copy and run exist, the demo services get the variables demo-service.ts reads, the
 * admin token Prometheus sends is the one Switchyard is given, templates are mounted where the
 * command line says, Grafana's provisioning and dashboards are mounted where its provisioning
 * files point, and Switchyard sends its spans to the Jaeger service.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseCommandLine } from '../../src/config/config.js';

const root = resolve(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'docker', 'Dockerfile'), 'utf8');
// Compose files use YAML merge keys (`<<: *demo`).
const compose = parse(readFileSync(join(root, 'docker', 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string; entrypoint?: string[]; command?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[]; depends_on?: string[] }>;
};
const docker = join(root, 'docker');
const grafanaYaml = <T>(path: string): T => parse(readFileSync(join(docker, 'grafana', 'provisioning', path), 'utf8')) as T;

/** A compose service's bind mounts: host path (resolved from docker/) → container path. */
function mounts(service: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const volume of compose.services[service]?.volumes ?? []) {
    const [host, container] = volume.split(':');
    if (host!.startsWith('.')) out.set(resolve(docker, host!), container!);
  }
  return out;
}
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

  it('the image has the status page files where dist/admin looks for them (../../src/admin/ui)', () => {
    const copies = [...dockerfile.matchAll(/^COPY --from=build \/app\/(\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    assert.ok(copies.some(([from, to]) => from === 'dist' && to === './dist'));
    const ui = copies.find(([from]) => from === 'src/admin/ui');
    assert.ok(ui !== undefined, 'COPY --from=build /app/src/admin/ui');
    assert.equal(posix.normalize(ui[1]), 'src/admin/ui', 'kept at the same path relative to /app');
    assert.equal(posix.join('dist/admin', '../../src/admin/ui'), 'src/admin/ui');
    assert.match(dockerfile, /^COPY src \.\/src$/m, 'the build stage has src/');
    assert.ok(existsSync(join(root, 'src', 'admin', 'ui')) && statSync(join(root, 'src', 'admin', 'ui')).isDirectory(), 'src/admin/ui exists');
  });

  it('Switchyard sends spans to the Jaeger all-in-one service over OTLP/HTTP (4318)', () => {
    const sy = compose.services['switchyard']!;
    const endpoint = new URL(sy.environment?.['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? 'http://missing');
    assert.equal(endpoint.port, '4318');
    const jaeger = compose.services[endpoint.hostname];
    assert.ok(jaeger !== undefined, `${endpoint.hostname} is a compose service`);
    assert.match(jaeger.image ?? '', /^jaegertracing\/all-in-one:/);
    assert.ok(sy.depends_on?.includes(endpoint.hostname));
    assert.ok(jaeger.ports?.some((p) => p.endsWith(':16686')), 'the Jaeger UI is published');
  });

  it('Grafana is provisioned: the datasource is the compose Prometheus, the dashboard provider reads the mounted dashboards', () => {
    const grafana = compose.services['grafana'];
    assert.ok(grafana !== undefined);
    const env = grafana.environment ?? {};
    assert.ok(env['GF_AUTH_ANONYMOUS_ENABLED'] === 'true' && env['GF_AUTH_ANONYMOUS_ORG_ROLE'] === 'Viewer', 'anonymous viewer');
    assert.equal(env['GF_SECURITY_ADMIN_PASSWORD'], 'admin', 'admin/admin, as the compose header says');
    const mounted = mounts('grafana');
    const provisioning = mounted.get(join(docker, 'grafana', 'provisioning'));
    assert.equal(provisioning, '/etc/grafana/provisioning', 'provisioning mounted where Grafana reads it');
    for (const host of mounted.keys()) assert.ok(existsSync(host), `${host} exists`);

    const datasources = readdirSync(join(docker, 'grafana', 'provisioning', 'datasources'))
      .flatMap((f) => grafanaYaml<{ datasources: { uid: string; type: string; url: string }[] }>(join('datasources', f)).datasources);
    const prometheus = datasources.find((d) => d.type === 'prometheus');
    assert.ok(prometheus !== undefined);
    const url = new URL(prometheus.url);
    assert.ok(compose.services[url.hostname]?.image?.startsWith('prom/prometheus'), `${url.hostname} is the compose Prometheus`);
    assert.equal(url.port, '9090');

    const providers = readdirSync(join(docker, 'grafana', 'provisioning', 'dashboards'))
      .flatMap((f) => grafanaYaml<{ providers: { type: string; options: { path: string } }[] }>(join('dashboards', f)).providers);
    assert.equal(providers.length, 1);
    const dashboardsDir = [...mounted].find(([, container]) => container === providers[0]!.options.path)?.[0];
    assert.ok(dashboardsDir !== undefined, `a host directory is mounted at ${providers[0]!.options.path}`);
    const files = readdirSync(dashboardsDir).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 1);
    for (const file of files) {
      const dashboard = JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8')) as { uid: string; panels: { datasource?: { uid?: string } }[] };
      assert.ok(dashboard.uid !== '' && dashboard.panels.length > 0, `${file} is a dashboard`);
      for (const panel of dashboard.panels) {
        if (panel.datasource !== undefined) assert.equal(panel.datasource.uid, prometheus.uid, `${file}: panels use the provisioned datasource`);
      }
    }
    const home = env['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'];
    if (home !== undefined) assert.ok(files.map((f) => posix.join(providers[0]!.options.path, f)).includes(home), 'the home dashboard is a mounted file');
  });

  it('Prometheus still scrapes Switchyard, and Grafana starts after it', () => {
    assert.ok(compose.services['prometheus']?.volumes?.includes('./prometheus.yml:/etc/prometheus/prometheus.yml:ro'));
    assert.ok(compose.services['grafana']?.depends_on?.includes('prometheus'));
  });
});
