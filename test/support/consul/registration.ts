/**
 * Validation and defaulting of `PUT /v1/agent/service/register` bodies, after Consul's
 * AgentRegisterService: case-insensitive (and snake_case) field names, ID defaulting to Name,
 * Weights defaulting to {Passing: 1, Warning: 1} and validated, check IDs `service:<ID>` (or
 * `service:<ID>:<n>` when there are several), checks starting `critical` unless Status is given,
 * and lan_ipv4 / wan_ipv4 tagged addresses filled from an IPv4 service address.
 */
import { parseGoDuration } from './blocking.js';
import { ConsulHttpError } from './errors.js';
import type { CheckStatus } from './types.js';

/** A registration after validation and defaulting, as the agent stores it. */
export interface NormalizedService {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  /** null when registered without Meta: Consul then answers `"Meta": null`. */
  meta: Record<string, string> | null;
  weights: { Passing: number; Warning: number };
  enableTagOverride: boolean;
  taggedAddresses: Record<string, { Address: string; Port: number }>;
  checks: Array<{
    checkId: string;
    name: string;
    status: CheckStatus;
    notes: string;
    type: string;
    interval: string;
    timeout: string;
  }>;
}

const STATUSES: readonly string[] = ['passing', 'warning', 'critical'];

/** Consul decodes registrations case-insensitively and accepts snake_case: so do we. */
function field(obj: Record<string, unknown>, name: string): unknown {
  const want = name.toLowerCase();
  for (const [key, value] of Object.entries(obj)) {
    if (key.replace(/_/g, '').toLowerCase() === want) return value;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeFailed(what: string): ConsulHttpError {
  return new ConsulHttpError(400, `Request decode failed: ${what}`);
}

function optString(obj: Record<string, unknown>, name: string): string | undefined {
  const value = field(obj, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw decodeFailed(`${name} must be a string`);
  return value;
}

function isIPv4(address: string): boolean {
  return /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(address);
}

function normalizeCheck(
  raw: unknown,
  serviceId: string,
  serviceName: string,
  position: number,
  total: number,
): NormalizedService['checks'][number] {
  if (!isRecord(raw)) throw decodeFailed('Check must be an object');
  let checkId = optString(raw, 'CheckID') ?? optString(raw, 'ID') ?? '';
  if (checkId === '') {
    checkId = `service:${serviceId}`;
    if (total > 1) checkId += `:${position + 1}`;
  }
  const name = optString(raw, 'Name') ?? `Service '${serviceName}' check`;
  const status = optString(raw, 'Status') ?? 'critical';
  if (!STATUSES.includes(status)) throw new ConsulHttpError(400, `Invalid check status: "${status}"`);
  const ttl = optString(raw, 'TTL');
  let type: string;
  if (ttl !== undefined) {
    const ms = parseGoDuration(ttl);
    if (ms === undefined) throw decodeFailed(`time: invalid duration "${ttl}"`);
    if (ms <= 0) throw new ConsulHttpError(400, 'Invalid check: TTL must be > 0 for TTL checks');
    type = 'ttl';
  } else if (optString(raw, 'HTTP') !== undefined) type = 'http';
  else if (optString(raw, 'TCP') !== undefined) type = 'tcp';
  else if (optString(raw, 'GRPC') !== undefined) type = 'grpc';
  else if (optString(raw, 'AliasService') !== undefined) type = 'alias';
  else if (Array.isArray(field(raw, 'Args')) || Array.isArray(field(raw, 'ScriptArgs'))) type = 'script';
  else {
    throw new ConsulHttpError(400, 'Invalid check: check type (TTL, HTTP, TCP, GRPC, Args, AliasService) missing');
  }
  return {
    checkId,
    name,
    status: status as CheckStatus,
    notes: optString(raw, 'Notes') ?? '',
    type,
    interval: type === 'ttl' ? '' : (optString(raw, 'Interval') ?? ''),
    timeout: type === 'ttl' ? '' : (optString(raw, 'Timeout') ?? ''),
  };
}

/** Validates and defaults an agent service registration like Consul's AgentRegisterService. */
export function normalizeRegistration(body: unknown): NormalizedService {
  if (!isRecord(body)) throw decodeFailed('body must be a JSON object');
  const name = optString(body, 'Name') ?? '';
  if (name === '') throw new ConsulHttpError(400, 'Missing service name');
  const id = optString(body, 'ID') || name;
  const tagsRaw = field(body, 'Tags');
  let tags: string[] = [];
  if (tagsRaw !== undefined && tagsRaw !== null) {
    if (!Array.isArray(tagsRaw) || !tagsRaw.every((t) => typeof t === 'string')) {
      throw decodeFailed('Tags must be an array of strings');
    }
    tags = [...(tagsRaw as string[])];
  }
  const address = optString(body, 'Address') ?? '';
  const portRaw = field(body, 'Port');
  let port = 0;
  if (portRaw !== undefined && portRaw !== null) {
    if (typeof portRaw !== 'number' || !Number.isInteger(portRaw)) throw decodeFailed('Port must be an integer');
    port = portRaw;
  }
  const metaRaw = field(body, 'Meta');
  let meta: Record<string, string> | null = null;
  if (metaRaw !== undefined && metaRaw !== null) {
    if (!isRecord(metaRaw) || !Object.values(metaRaw).every((v) => typeof v === 'string')) {
      throw decodeFailed('Meta must be a map of strings');
    }
    meta = { ...(metaRaw as Record<string, string>) };
  }
  let weights = { Passing: 1, Warning: 1 };
  const weightsRaw = field(body, 'Weights');
  if (weightsRaw !== undefined && weightsRaw !== null) {
    if (!isRecord(weightsRaw)) throw decodeFailed('Weights must be an object');
    const passing = field(weightsRaw, 'Passing') ?? 0;
    const warning = field(weightsRaw, 'Warning') ?? 0;
    if (typeof passing !== 'number' || typeof warning !== 'number') throw decodeFailed('Weights must be numbers');
    if (passing < 1) throw new ConsulHttpError(400, 'Invalid Weights: Passing must be greater than 0');
    if (warning < 0) throw new ConsulHttpError(400, 'Invalid Weights: Warning must be greater or equal than 0');
    weights = { Passing: passing, Warning: warning };
  }
  const enableTagOverride = field(body, 'EnableTagOverride') === true;
  const taggedAddresses: NormalizedService['taggedAddresses'] = {};
  const taggedRaw = field(body, 'TaggedAddresses');
  if (isRecord(taggedRaw)) {
    for (const [key, value] of Object.entries(taggedRaw)) {
      if (!isRecord(value)) continue;
      const a = field(value, 'Address');
      const p = field(value, 'Port');
      taggedAddresses[key] = { Address: typeof a === 'string' ? a : '', Port: typeof p === 'number' ? p : 0 };
    }
  }
  // The agent fills lan_ipv4 / wan_ipv4 from an IPv4 service address.
  if (isIPv4(address)) {
    taggedAddresses.lan_ipv4 ??= { Address: address, Port: port };
    taggedAddresses.wan_ipv4 ??= { Address: address, Port: port };
  }
  const rawChecks: unknown[] = [];
  const single = field(body, 'Check');
  if (single !== undefined && single !== null) rawChecks.push(single);
  const many = field(body, 'Checks');
  if (many !== undefined && many !== null) {
    if (!Array.isArray(many)) throw decodeFailed('Checks must be an array');
    rawChecks.push(...(many as unknown[]));
  }
  const checks = rawChecks.map((raw, i) => normalizeCheck(raw, id, name, i, rawChecks.length));
  return { id, name, tags, address, port, meta, weights, enableTagOverride, taggedAddresses, checks };
}
