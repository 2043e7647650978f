/** Errors that become Consul-style plain-text HTTP answers. */

/** An error with the status and plain-text body Consul would answer. */
export class ConsulHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ConsulHttpError';
  }
}
