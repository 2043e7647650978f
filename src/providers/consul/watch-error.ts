import { ConsulError, type ErrorCode } from '../../errors.js';

/**
 * Why one Consul call failed or its answer was refused. `reason` is the metric label
 * (`switchyard_consul_errors_total{code}`); `code` is SY_CONSUL_ACL for token and permission
 * problems (403, or an answer emptied by ACL filtering), SY_CONSUL otherwise.
 * Messages are built here from facts (status, Consul's short error text), never from the token.
 */
export type WatchErrorReason =
  | 'unreachable' | 'reset' | 'timeout' | 'tls' | 'invalid' | 'no_leader' | 'acl_filtered' | `${number}`;

export class ConsulWatchError extends ConsulError {
  constructor(
    message: string,
    readonly reason: WatchErrorReason,
    options: { status?: number; acl?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.status, { cause: options.cause });
    // An answer emptied by ACL filtering is a permissions problem without being a 403.
    if (options.acl === true) (this as { code: ErrorCode }).code = 'SY_CONSUL_ACL';
  }
}
