/**
 * ACL enforcement, reduced to what a watcher meets: token lookup (403 "ACL not found" for an
 * unknown secret), the anonymous token for requests without one, and per-resource checks with
 * Consul's error texts (acl/errors.go):
 * - KV reads and writes denied: plain "Permission denied" (KVS.Get / KVS.Apply return
 *   acl.ErrPermissionDenied).
 * - Agent writes denied: "Permission denied: anonymous token lacks permission 'service:write' on
 *   \"web\". The anonymous token is used implicitly when a request does not specify a token."
 * - List reads (catalog, health, KV recurse/keys) are filtered instead, and the response carries
 *   `X-Consul-Results-Filtered-By-ACLs: true` when something was removed.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Access, AclPolicy } from './types.js';

export const ANONYMOUS_ACCESSOR_ID = '00000000-0000-0000-0000-000000000002';
export const MANAGEMENT_POLICY: AclPolicy = { key: 'write', service: 'write', node: 'write' };
export const READ_POLICY: AclPolicy = { key: 'read', service: 'read', node: 'read' };
export const DENY_POLICY: AclPolicy = {};

export type AclResource = 'key' | 'service' | 'node';

export interface AclIdentity {
  anonymous: boolean;
  accessorId: string;
  policy: AclPolicy;
}

/** What a request may do: ACLs disabled (everything allowed), a known identity, or an unknown secret. */
export type Resolution = { kind: 'disabled' } | { kind: 'identity'; identity: AclIdentity } | { kind: 'not-found' };

const RANK: Record<Access, number> = { deny: 0, read: 1, write: 2 };

/**
 * The token of a request, in Consul's order: deprecated `?token=`, then `X-Consul-Token`, then
 * `Authorization: Bearer`.
 */
export function extractToken(query: URLSearchParams, headers: IncomingHttpHeaders): string | undefined {
  const fromQuery = query.get('token');
  if (fromQuery) return fromQuery;
  const header = headers['x-consul-token'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader) return fromHeader;
  const auth = headers.authorization;
  if (auth) {
    const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (match?.[1]) return match[1];
  }
  return undefined;
}

export class AclStore {
  private readonly tokens = new Map<string, AclIdentity>();
  private anonymous: AclIdentity = { anonymous: true, accessorId: ANONYMOUS_ACCESSOR_ID, policy: DENY_POLICY };

  constructor(managementToken?: string) {
    if (managementToken) this.addToken(managementToken, MANAGEMENT_POLICY);
  }

  get enabled(): boolean {
    return this.tokens.size > 0;
  }

  /** Adds (or replaces) a token; returns its accessor ID (used in denial messages). */
  addToken(secret: string, policy: AclPolicy): string {
    const accessorId = randomUUID();
    this.tokens.set(secret, { anonymous: false, accessorId, policy: { ...policy } });
    return accessorId;
  }

  removeToken(secret: string): void {
    this.tokens.delete(secret);
  }

  setAnonymousPolicy(policy: AclPolicy): void {
    this.anonymous = { ...this.anonymous, policy: { ...policy } };
  }

  resolve(secret: string | undefined): Resolution {
    if (!this.enabled) return { kind: 'disabled' };
    if (secret === undefined || secret === '') return { kind: 'identity', identity: this.anonymous };
    // Consul resolves the well-known anonymous accessor secret "anonymous" to the anonymous token.
    if (secret === 'anonymous') return { kind: 'identity', identity: this.anonymous };
    const identity = this.tokens.get(secret);
    return identity ? { kind: 'identity', identity } : { kind: 'not-found' };
  }
}

/** Whether `resolution` grants `level` on `resource` named `name`. */
export function allows(resolution: Resolution, resource: AclResource, name: string, level: 'read' | 'write'): boolean {
  if (resolution.kind === 'disabled') return true;
  if (resolution.kind === 'not-found') return false;
  const policy = resolution.identity.policy;
  const access = policy[resource] ?? 'deny';
  if (RANK[access] < RANK[level]) return false;
  const prefix = resource === 'key' ? policy.keyPrefix : resource === 'service' ? policy.servicePrefix : undefined;
  return prefix === undefined || name.startsWith(prefix);
}

/** Consul's PermissionDeniedError text with attribution (used by the agent endpoints). */
export function permissionDeniedMessage(
  resolution: Resolution,
  resource: AclResource,
  level: 'read' | 'write',
  name: string,
): string {
  const identity = resolution.kind === 'identity' ? resolution.identity : undefined;
  const who = !identity || identity.anonymous ? 'anonymous token' : `token with AccessorID '${identity.accessorId}'`;
  let message = `Permission denied: ${who} lacks permission '${resource}:${level}' on ${JSON.stringify(name)}`;
  if (!identity || identity.anonymous) {
    message += '. The anonymous token is used implicitly when a request does not specify a token.';
  }
  return message;
}
