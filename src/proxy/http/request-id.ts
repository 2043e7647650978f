import { randomBytes } from 'node:crypto';

/**
 * Request ids unique across processes without a crypto call per request: a random per-generator
 * prefix (72 bits) and a base-36 counter. `a1B2c3D4e5F6-1`, `a1B2c3D4e5F6-2`, ...
 */
export class RequestIdGenerator {
  private readonly prefix: string;
  private counter = 0;

  constructor(prefix = randomBytes(9).toString('base64url')) {
    this.prefix = `${prefix}-`;
  }

  next(): string {
    this.counter += 1;
    return this.prefix + this.counter.toString(36);
  }
}
