import type { Logger } from '../../observability/logger.js';
import type { QueryMeta } from './blocking-query.js';
import type { AclProbe, ConsulReader } from './consul-client.js';
import { ConsulWatchError } from './watch-error.js';

/**
 * Decides whether an answer that would empty something (a pool, the catalog, the KV overrides)
 * may be applied. Refused, with the reason as a ConsulWatchError, when:
 *
 * - ACLs filtered it (`X-Consul-Results-Filtered-By-ACLs: true` on an empty answer);
 * - the cluster has no leader (the no-leader rule, docs/consul.md): a stale-fallback answer proves
 *   it; a streaming answer (`X-Consul-Query-Backend: streaming`, every blocking health read of
 *   Consul >= 1.10) carries `X-Consul-KnownLeader: false` whatever the cluster's state
 *   (agent/http.go setMeta writes the view's zero value; hashicorp/consul#9776), so for it
 *   `/v1/status/leader` is asked, only then: `""` means no leader; any other answer's
 *   `X-Consul-KnownLeader: false` means it;
 * - no token is set, ACLs are on, and the same anonymous reads never showed data for it
 *   (`anonymous`): Consul masks the filtered flag for requests without a token
 *   (agent/consul/rpc.go maskResultsFilteredByACLs), so an empty answer may be hiding what the
 *   anonymous token may not read. Whether ACLs are on is asked once (`/v1/acl/token/self`: 401
 *   off; 403 or 200 on), again after forgetAcl() (SIGHUP).
 *
 * The anonymous rule, and why "never showed data": ACL filtering depends on the token, not on
 * the data, so reads that showed data a moment before are allowed to read it, and their empty
 * answer is a real change (a deregistration). Refusing it froze the table on deregistered
 * instances (issue 7). What is left unprotected is an anonymous policy narrowed while Switchyard
 * runs: rare, and the applied empty answer is logged once as a warning naming CONSUL_HTTP_TOKEN.
 * (A token whose rights shrink is caught by the explicit-token path: its answers carry
 * X-Consul-Results-Filtered-By-ACLs.) "Data" for the catalog includes Consul's own `consul`
 * service, which Switchyard does not route: current Consul filters it like any other service
 * (agent/consul/acl.go aclFilter.filterServices -> allowService: a plain ServiceRead; older
 * releases exempted `consul` only with `acl_enforce_version_8 = false`, a setting since removed),
 * so an anonymous catalog that lists it proves the anonymous token reads services, while a
 * deny-all one lists nothing at all (`{}`).
 */
export class EmptyAnswerGuard {
  /** What /v1/acl/token/self said (asked only without a token, on an empty answer). */
  private acl: AclProbe | undefined;
  private warned = false;
  /** An empty answer was applied with ACLs on and no token, and said so (once). */
  private appliedWarned = false;
  /** Keys (`catalog`, `service:<name>`) for which some answer to this provider had data. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly client: ConsulReader,
    private readonly hasToken: boolean,
    private readonly logger: Logger,
  ) {}

  /** For the provider's status: whether ACLs are on (null: not asked) and the warning once an empty answer met them (refused or applied). */
  aclStatus(): { aclEnabled: boolean | null; aclWarning: string | null } {
    return {
      aclEnabled: this.acl === undefined || this.acl === 'unknown' ? null : this.acl === 'enabled',
      aclWarning: this.warned ? 'Consul has ACLs enabled and no token is set: empty answers may hide what the anonymous token may not read; set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE' : null,
    };
  }

  forgetAcl(): void {
    this.acl = undefined;
  }

  /** Records that an answer for `key` had data: the reads that gave it may read it. */
  saw(key: string): void {
    this.seen.add(key);
  }

  /**
   * Refuses an answer that would empty `what` for the wrong reason: ACL filtering (always: an empty
   * filtered answer says nothing about what is registered), or no leader (when it had data).
   */
  async emptied(what: string, empty: boolean, hadData: boolean, meta: QueryMeta, signal: AbortSignal): Promise<ConsulWatchError | undefined> {
    if (meta.filteredByAcls && empty) {
      const who = !this.hasToken
        ? 'no ACL token is configured (set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE) and the anonymous token may not read it'
        : 'the ACL token in CONSUL_HTTP_TOKEN lacks a policy granting read on it';
      return new ConsulWatchError(
        `${what}: Consul hid every result (X-Consul-Results-Filtered-By-ACLs: true): ${who}; the empty answer is not applied, the last data is kept`,
        'acl_filtered', { acl: true },
      );
    }
    if (!empty || !hadData) return undefined;
    const why = await this.noLeader(meta, signal);
    if (why === undefined) return undefined;
    return new ConsulWatchError(`${what}: ${why} and its answer would empty what was there; not applied, asking again`, 'no_leader');
  }

  /**
   * Why this answer's cluster has no leader, or undefined if it has one (the no-leader rule).
   * A streaming answer's `X-Consul-KnownLeader: false` is a zero value, not a fact: ask
   * `/v1/status/leader`, a plain read the streaming view does not answer.
   */
  private async noLeader(meta: QueryMeta, signal: AbortSignal): Promise<string | undefined> {
    // A stale-fallback answer proves there is no leader, whatever the headers say.
    if (meta.staleFallback === true) return 'Consul has no leader (its default reads fail with "No cluster leader")';
    if (meta.queryBackend === 'streaming') {
      let leader: string;
      try {
        leader = await this.client.leader(signal);
      } catch (err) {
        return `Consul's leader could not be confirmed (/v1/status/leader: ${(err as Error).message})`;
      }
      return leader === '' ? 'Consul has no leader (/v1/status/leader is empty)' : undefined;
    }
    return meta.knownLeader === false ? 'Consul has no known leader (X-Consul-KnownLeader: false)' : undefined;
  }

  /**
   * Without a token an empty answer may be ACL filtering Consul does not admit to (the header is
   * masked for anonymous requests, agent/consul/rpc.go): when ACLs are on, refuse it, naming the
   * token variable, unless answers for `key` had data before (the anonymous rule, above): then it
   * is a real change, applied with one warning. Asked once (`/v1/acl/token/self`), again after a
   * reload.
   */
  async anonymous(key: string, what: string, signal: AbortSignal): Promise<ConsulWatchError | undefined> {
    if (this.hasToken) return undefined;
    if (this.acl === undefined || this.acl === 'unknown') {
      try {
        this.acl = await this.client.aclProbe(signal);
      } catch {
        this.acl = 'unknown';
      }
      this.logger.debug({ acl: this.acl }, 'consul: asked /v1/acl/token/self whether ACLs are enabled');
    }
    if (this.acl !== 'enabled') return undefined;
    this.warned = true;
    if (this.seen.has(key)) {
      if (!this.appliedWarned) {
        this.appliedWarned = true;
        this.logger.warn({ code: 'SY_CONSUL_ACL', what }, `consul: ${what} came back empty and is applied (the same anonymous reads showed data before, so this is a deregistration), but Consul has ACLs enabled and no ACL token is configured: without a token Consul hides what the anonymous token may not read and does not say so; set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE`);
      }
      return undefined;
    }
    return new ConsulWatchError(
      `${what}: Consul answered with nothing, has ACLs enabled, and no ACL token is configured (set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE): without a token Consul hides what the anonymous token may not read and does not say so, and these reads never showed it any data, so the empty answer is not applied`,
      'acl_filtered', { acl: true },
    );
  }
}
