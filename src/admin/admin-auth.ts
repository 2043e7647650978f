import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * The admin token check: `Authorization: Bearer <token>`, compared in constant time. Both sides
 * are hashed first (SHA-256), so the comparison takes the same time whatever the presented
 * token's length or content; the token itself is kept only as its digest.
 */
export class AdminAuth {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = sha256(token);
  }

  /** Whether the request carries the token. */
  allows(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (header === undefined || header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return false;
    return timingSafeEqual(sha256(header.slice(7).trim()), this.digest);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
