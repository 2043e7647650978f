/**
 * Test harness for the proxy: a RoutingTable builder that satisfies the model's contract (the real
 * buildTable lives in src/model/), a proxy on an ephemeral 127.0.0.1 port with captured logs and
 * its own metrics registry and a small HTTP client. Bounded waiting: test/support/wait.ts.
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import { TableStore } from '../../src/control/table-store.js';
import { resolvePolicy } from '../../src/model/policy.js';
import { parsePolicyInput } from '../../src/model/policy-parse.js';
import type { Destination, Endpoint, Route, RouteOptions, RoutingTable } from '../../src/model/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createProxy, type Proxy, type ProxyOptions } from '../../src/proxy/server.js';
import { Upstreams, type UpstreamOptions } from '../../src/proxy/runtime/upstreams.js';

export interface EndpointSpec {
  /** Instance id; the endpoint id is `service/id`. */
  id: string;
  port: number;
  address?: string;
  weight?: number;
}

export interface DestinationSpec {
  service: string;
  tag?: string;
  weight?: number;
  endpoints: EndpointSpec[];
}

export interface RouteSpec {
  name: string;
  host?: string;
  path?: string;
  strip?: string;
  to: DestinationSpec[];
  /** A policy block over the defaults, as a template's `policy:` (durations may be '500ms' strings). */
  policy?: Record<string, unknown>;
  /** Gateway options, normalised (the model's RouteOptions; hosts and path are above). */
  options?: RouteOptions;
  /** A resolved mirror (its pool built like a destination's). */
  mirror?: Route['mirror'];
}

function endpointOf(service: string, spec: EndpointSpec): Endpoint {
  const address = spec.address ?? '127.0.0.1';
  const weight = spec.weight ?? 1;
  return Object.freeze({
    id: `${service}/${spec.id}`,
    instanceId: spec.id,
    service,
    address,
    port: spec.port,
    origin: `http://${address.includes(':') ? `[${address}]` : address}:${spec.port}`,
    status: 'passing',
    weight,
    state: weight > 0 ? 'active' : 'draining',
    tags: Object.freeze([]),
  } satisfies Endpoint);
}

function destinationOf(spec: DestinationSpec): Destination {
  const endpoints = spec.endpoints.map((e) => endpointOf(spec.service, e));
  const active = endpoints.filter((e) => e.weight > 0);
  const configured = spec.weight ?? 1;
  return Object.freeze({
    key: spec.tag === undefined ? spec.service : `${spec.service}:${spec.tag}`,
    service: spec.service,
    tag: spec.tag,
    weight: active.length === 0 ? 0 : configured,
    configuredWeight: configured,
    endpoints: Object.freeze(endpoints),
    active: Object.freeze(active),
  });
}

function hostOf(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const h = host.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  const next = path.charAt(prefix.length);
  return next === '' || next === '/';
}

/** A frozen RoutingTable with the spec's matching rules (host beats no host, longest segment prefix). */
export function makeTable(specs: RouteSpec[]): RoutingTable {
  const routes: Route[] = specs.map((spec) => {
    const destinations = spec.to.map(destinationOf);
    const layer = spec.policy === undefined ? undefined : parsePolicyInput(spec.policy);
    const policy = typeof layer === 'string' ? layer : resolvePolicy([layer]);
    if (typeof policy === 'string') throw new Error(`route ${spec.name}: policy: ${policy}`);
    return Object.freeze({
      name: spec.name,
      hosts: spec.host === undefined ? [] : [spec.host.toLowerCase()],
      path: spec.path ?? '/',
      strip: spec.strip,
      conditions: spec.options?.conditions,
      rewrite: spec.options?.rewrite,
      headers: spec.options?.headers,
      sticky: spec.options?.sticky,
      mirror: spec.mirror,
      redirect: spec.options?.redirect,
      destinations: Object.freeze(destinations),
      active: Object.freeze(destinations.filter((d) => d.weight > 0)),
      origin: 'template',
      source: 'test',
      policy,
    } satisfies Route);
  });
  const ordered = [...routes].sort((a, b) =>
    (a.hosts.length === 0 ? 1 : 0) - (b.hosts.length === 0 ? 1 : 0) || b.path.length - a.path.length);
  return Object.freeze({
    routes: Object.freeze(routes),
    problems: Object.freeze([]),
    services: Object.freeze([...new Set(specs.flatMap((s) => s.to.map((d) => d.service)))]),
    lookup(host: string | undefined, path: string): Route | undefined {
      const h = hostOf(host);
      const q = path.indexOf('?');
      const p = q === -1 ? path : path.slice(0, q);
      return ordered.find((r) => (r.hosts.length === 0 || (h !== undefined && r.hosts.includes(h))) && prefixMatches(r.path, p));
    },
  });
}

/** One route `name` on `/` to one service with the given endpoints (weight 1 each). */
export function simpleTable(ports: number[], extra: Partial<RouteSpec> = {}): RoutingTable {
  return makeTable([{
    name: 'app',
    ...extra,
    to: [{ service: 'app', endpoints: ports.map((port, i) => ({ id: `app-${i + 1}`, port })) }],
  }]);
}

export interface LogLine {
  level: number;
  component?: string;
  kind?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface TestProxy {
  proxy: Proxy;
  store: TableStore;
  upstreams: Upstreams;
  metrics: Metrics;
  logs: LogLine[];
  port: number;
  /** Access log lines so far. */
  accessLines(): LogLine[];
  close(drainMs?: number): Promise<void>;
}

export async function startProxy(table: RoutingTable | undefined, settings: { options?: ProxyOptions; upstream?: UpstreamOptions } = {}): Promise<TestProxy> {
  const logs: LogLine[] = [];
  let pending = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString('utf8');
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        logs.push(JSON.parse(pending.slice(0, newline)) as LogLine);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
      callback();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const metrics = new Metrics({ defaultMetrics: false });
  const store = new TableStore();
  if (table !== undefined) store.swap(table);
  const upstreams = new Upstreams(settings.upstream ?? {}, logger, metrics);
  const proxy = createProxy({ store, upstreams, logger, metrics, options: settings.options ?? {} });
  const address = await proxy.listen('127.0.0.1', 0);
  return {
    proxy,
    store,
    upstreams,
    metrics,
    logs,
    port: address.port,
    accessLines: () => logs.filter((l) => l.kind === 'access'),
    close: (drainMs = 2_000) => proxy.close(drainMs),
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

export interface SendOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  agent?: Agent | false;
  timeoutMs?: number;
}

/** One request over a real socket to 127.0.0.1:port; resolves with the whole response. */
export function send(port: number, options: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: options.method ?? 'GET',
      path: options.path ?? '/',
      headers: options.headers ?? {},
      agent: options.agent ?? false,
      timeout: options.timeoutMs ?? 10_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body,
          text: () => body.toString('utf8'),
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Reject after `ms` with a message naming what did not happen. */
export function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Sum of a metric's values matching `labels`; `series` picks e.g. a histogram's `_count`. */
export async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}, series?: string): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const data = await metric.get();
  let total = 0;
  for (const value of data.values) {
    if (series !== undefined && (value as { metricName?: string }).metricName !== series) continue;
    const l = value.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, v]) => String(l[k]) === v)) total += value.value;
  }
  return total;
}
