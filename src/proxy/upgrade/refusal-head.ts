import { maxHeaderSize } from 'node:http';

/**
 * Largest upstream answer head (status line and headers, up to and including the blank line) the
 * upgrade path relays: node's `http.maxHeaderSize` (16 KiB), which is also undici's default
 * `maxHeaderSize`, the limit the plain path applies (its overflow is 502 SY_UPSTREAM_BAD_RESPONSE).
 */
export const UPSTREAM_HEAD_LIMIT = maxHeaderSize;

/** Hop-by-hop fields of a refused upgrade's head that must not reach the client (RFC 9110 §7.6.1). */
const DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'x-request-id']);

/**
 * The head of an upstream's non-101 answer to an upgrade, as the client gets it: the upstream's
 * status line and fields in their order and case, minus hop-by-hop fields (and those its
 * `Connection` nominates) and its own `x-request-id`, plus `connection: close` (the proxy closes
 * the client connection after the answer, so it must not promise keep-alive) and the request's
 * `x-request-id`. Framing fields (Content-Length, Transfer-Encoding) stay: the body that follows
 * is relayed byte for byte. `head` ends with the blank line (CRLF CRLF).
 */
export function refusalHead(head: Buffer, requestId: string): Buffer {
  const lines = head.toString('latin1').split('\r\n');
  const nominated = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'connection') {
      for (const token of line.slice(colon + 1).split(',')) nominated.add(token.trim().toLowerCase());
    }
  }
  let text = `${lines[0]!}\r\n`;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    if (DROPPED.has(name) || nominated.has(name)) continue;
    text += `${line}\r\n`;
  }
  text += `connection: close\r\nx-request-id: ${requestId}\r\n\r\n`;
  return Buffer.from(text, 'latin1');
}
