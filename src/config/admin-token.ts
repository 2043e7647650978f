import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/** The flag or variable wins over the file. (Consul does the opposite: CONSUL_HTTP_TOKEN_FILE wins over CONSUL_HTTP_TOKEN.) The token never appears in a message. */
export function adminToken(token: string | undefined, file: string | undefined): string | undefined {
  if (token !== undefined) {
    if (token.trim() === '') throw new UsageError('--admin-token: empty value');
    return token;
  }
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`--admin-token-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text === '') throw new UsageError(`--admin-token-file: ${file} is empty`);
  return text;
}
