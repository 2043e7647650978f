/**
 * /api/status: what the status page shows, in one answer: every route with its match rule, its
 * destinations' configured and effective weights, each endpoint's health, drain and ejection state,
 * requests in flight and its last minute (requests/s, error rate, p50/p99 latency), the state and
 * age of every configuration source, and the last rejected build. Admin-time code: it allocates
 * freely; the page asks every 1-2 s, so it stays linear in the table's size.
 */
import type { RoutingTable } from '../model/types.js';
import { destinationHead, endpointHead } from '../model/views.js';
import { percentileMs, WINDOW_SECONDS, type EndpointSample, type StatsSample } from '../proxy/runtime/endpoint-window.js';
import type { EjectionSource } from './routes-view.js';

/** The traffic windows: the runtime in a single process; every worker's, merged, with --workers > 1. */
export interface StatsSource {
  stats(): StatsSample | Promise<ClusterStats>;
}

/** Samples merged over the workers, and how many answered in time. */
export interface ClusterStats extends StatsSample {
  readonly workers: { readonly asked: number; readonly answered: number };
}

/** The parts of /api/config (app.ts configView) the status page shows; read defensively. */
interface ControlState {
  readonly lifecycle?: string;
  readonly lastRejectedBuild?: { readonly at: number; readonly code: string; readonly message: string } | null;
  readonly providers?: readonly {
    name: string; healthy: boolean; synced: boolean; lastSyncAt?: number; lastError?: string;
    /** The templates provider's files rejected now, file name → error (templates-provider.ts). */
    detail?: { broken?: Readonly<Record<string, string>> };
  }[];
  readonly problems?: readonly { kind: string; source: string; message: string }[];
}

/** Problems shown on the page at most (the count is always whole; /api/routes lists them all). */
const MAX_PROBLEMS = 50;

interface Traffic {
  readonly inflight: number;
  readonly requests: number;
  readonly rps: number;
  readonly errorRate: number | null;
  /** Failed attempts (connect error, reset, timeout, 5xx), retried ones included. */
  readonly failures: number;
  readonly p50: number | null;
  readonly p99: number | null;
}

/** An endpoint's or route's last minute; null when it had no request, no failure and none in flight. */
function traffic(requests: number, errors: number, failures: number, inflight: number, latency: readonly number[] | null): Traffic | null {
  if (requests === 0 && failures === 0 && inflight === 0) return null;
  const p = (q: number): number | null => {
    const ms = latency === null ? undefined : percentileMs(latency, q);
    return ms === undefined ? null : Math.round(ms * 100) / 100;
  };
  return {
    inflight,
    requests,
    rps: Math.round((requests / WINDOW_SECONDS) * 100) / 100,
    errorRate: requests === 0 ? null : Math.round((errors / requests) * 10_000) / 10_000,
    failures,
    p50: p(0.5),
    p99: p(0.99),
  };
}

const IDLE: EndpointSample = { route: '', endpoint: '', requests: 0, errors: 0, failures: 0, inflight: 0, latency: null };

export function statusView(input: {
  table: RoutingTable | undefined;
  version: number;
  swappedAt: number;
  ready: boolean;
  control: unknown;
  ejections: EjectionSource | undefined;
  stats: StatsSample | ClusterStats;
  now?: number;
}): unknown {
  const { table, stats } = input;
  const now = input.now ?? Date.now();
  const control = (typeof input.control === 'object' && input.control !== null ? input.control : {}) as ControlState;
  const byEndpoint = new Map<string, Map<string, EndpointSample>>();
  for (const e of stats.endpoints) {
    let route = byEndpoint.get(e.route);
    if (route === undefined) byEndpoint.set(e.route, (route = new Map()));
    route.set(e.endpoint, e);
  }
  const ejected = new Map<string, string>();
  for (const e of input.ejections?.ejectedEndpoints() ?? []) ejected.set(`${e.route}\u0000${e.endpoint}`, e.until);

  const routes = (table?.routes ?? []).map((route) => {
    const samples = byEndpoint.get(route.name);
    let requests = 0;
    let errors = 0;
    let failures = 0;
    let latency: number[] | null = null;
    // Object.assign, not spreads: a spread of a non-literal object took most of this view's time
    // (~8 ms of ~20 ms at 2,000 endpoints); the page asks every second.
    const destinations = route.destinations.map((d) => Object.assign(destinationHead(d), {
      endpoints: d.endpoints.map((e) => {
        const sample = samples?.get(e.id) ?? IDLE;
        requests += sample.requests;
        errors += sample.errors;
        failures += sample.failures;
        if (sample.latency !== null) {
          if (latency === null) latency = [...sample.latency];
          else for (let i = 0; i < latency.length; i++) latency[i]! += sample.latency[i]!;
        }
        const until = ejected.get(`${route.name}\u0000${e.id}`);
        return Object.assign(endpointHead(e), {
          ejected: until !== undefined,
          ejectedUntil: until ?? null,
          traffic: traffic(sample.requests, sample.errors, sample.failures, sample.inflight, sample.latency),
        });
      }),
    }));
    return {
      name: route.name,
      host: route.hosts[0] ?? null,
      hosts: route.hosts,
      path: route.path,
      strip: route.strip ?? null,
      origin: route.origin,
      source: route.source,
      traffic: traffic(requests, errors, failures, stats.routeInflight[route.name] ?? 0, latency),
      destinations,
    };
  });

  const problems = control.problems ?? table?.problems ?? [];
  return {
    generatedAt: new Date(now).toISOString(),
    windowSeconds: WINDOW_SECONDS,
    version: input.version,
    swappedAt: input.swappedAt === 0 ? null : new Date(input.swappedAt).toISOString(),
    lifecycle: control.lifecycle ?? null,
    ready: input.ready,
    workers: 'workers' in stats ? stats.workers : null,
    sources: (control.providers ?? []).map((p) => ({
      name: p.name,
      healthy: p.healthy,
      synced: p.synced,
      lastSyncAt: p.lastSyncAt === undefined ? null : new Date(p.lastSyncAt).toISOString(),
      ageSeconds: p.lastSyncAt === undefined ? null : Math.max(0, Math.round((now - p.lastSyncAt) / 1000)),
      lastError: p.lastError ?? null,
      // Files of this source rejected now (their routes: the last good version's, or none).
      rejectedFiles: Object.entries(p.detail?.broken ?? {}).map(([file, message]) => ({ file, message })),
    })),
    lastRejectedBuild: control.lastRejectedBuild == null ? null : {
      at: new Date(control.lastRejectedBuild.at).toISOString(),
      code: control.lastRejectedBuild.code,
      message: control.lastRejectedBuild.message,
    },
    problemCount: problems.length,
    problems: problems.slice(0, MAX_PROBLEMS),
    routes,
  };
}
