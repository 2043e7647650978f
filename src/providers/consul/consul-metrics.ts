import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The Consul provider's metrics, registered on the one registry (`metrics.registry`). Looked up
 * before they are created so that several providers sharing a registry (tests) share the series.
 *
 * - `switchyard_consul_up`: 1 while every Consul watch's last attempt succeeded, else 0.
 * - `switchyard_consul_last_sync_timestamp_seconds`: Unix time of the last successful answer.
 * - `switchyard_consul_errors_total{watch, code}`: failed or refused answers; `watch` is `catalog`,
 *   `health` or `kv`; `code` is the HTTP status (`403`, `500`, ...), `unreachable`, `reset`,
 *   `timeout`, `tls`, `invalid` (a body that is not what Consul sends), `no_leader` (an answer that
 *   would empty a pool while Consul has no known leader) or `acl_filtered` (an answer emptied by ACL
 *   filtering).
 * - `switchyard_consul_stale_fallback`: 1 while some watch reads `?stale` because the cluster has no
 *   leader (the data may lag; nothing can change in Consul until there is a leader again).
 */
export interface ConsulMetrics {
  readonly up: Gauge;
  readonly lastSync: Gauge;
  readonly errors: Counter<'watch' | 'code'>;
  readonly staleFallback: Gauge;
}

export function consulMetrics(registry: Registry): ConsulMetrics {
  const up = (registry.getSingleMetric('switchyard_consul_up') as Gauge | undefined) ?? new Gauge({
    name: 'switchyard_consul_up',
    help: '1 while every Consul watch\'s last attempt succeeded, 0 otherwise',
    registers: [registry],
  });
  const lastSync = (registry.getSingleMetric('switchyard_consul_last_sync_timestamp_seconds') as Gauge | undefined) ?? new Gauge({
    name: 'switchyard_consul_last_sync_timestamp_seconds',
    help: 'Unix time of the last successful answer from Consul',
    registers: [registry],
  });
  const errors = (registry.getSingleMetric('switchyard_consul_errors_total') as Counter<'watch' | 'code'> | undefined) ?? new Counter({
    name: 'switchyard_consul_errors_total',
    help: 'Failed or refused Consul answers by watch (catalog, health, kv) and code (HTTP status, unreachable, reset, timeout, tls, invalid, no_leader, acl_filtered)',
    labelNames: ['watch', 'code'] as const,
    registers: [registry],
  });
  const staleFallback = (registry.getSingleMetric('switchyard_consul_stale_fallback') as Gauge | undefined) ?? new Gauge({
    name: 'switchyard_consul_stale_fallback',
    help: '1 while some Consul watch reads ?stale because the cluster has no leader, 0 otherwise',
    registers: [registry],
  });
  return { up, lastSync, errors, staleFallback };
}
