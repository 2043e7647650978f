import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { util } from 'undici';

/**
 * `Upgrade: h2c` offers (RFC 7540 §3.2; Java's default HttpClient sends one with every plain-HTTP
 * request, so does `curl --http2`). The proxy serves HTTP/1.1 only, and RFC 7540 lets a server
 * ignore the offer and answer over HTTP/1.1, which is what nginx does: the request is served as a
 * plain request, without the offer (`Upgrade: h2c`, `HTTP2-Settings` and their `Connection`
 * tokens), so no upstream ever sees it either.
 *
 * node's HTTP server hands a request with `Connection: upgrade` to the `upgrade` event, outside
 * the HTTP server. `replayAsPlainRequest` gives it back: the request head is written again without
 * the offer, put back in front of the socket's unread bytes (the body, pipelined requests) and the
 * socket goes through the HTTP server's connection listener once more, which parses it as a plain
 * request (request guard, routing, the plain exchange, keep-alive), exactly like one that never
 * carried the offer.
 */

const lowerName = util.headerNameToString;

/** The protocols of an Upgrade value other than h2c; undefined when it offers nothing else. */
export function upgradeProtocols(req: IncomingMessage): string | undefined {
  const value = req.headers.upgrade;
  if (value === undefined) return undefined;
  if (value.indexOf(',') === -1) return value.trim().toLowerCase() === 'h2c' ? undefined : value;
  const kept = value.split(',').map((t) => t.trim()).filter((t) => t !== '' && t.toLowerCase() !== 'h2c');
  return kept.length === 0 ? undefined : kept.join(', ');
}

/** The request offers only h2c: it is a plain request for this proxy. */
export function isH2cOffer(req: IncomingMessage): boolean {
  return req.headers.upgrade !== undefined && upgradeProtocols(req) === undefined;
}

/** The request head of `req` again, without the h2c offer. */
export function plainRequestHead(req: IncomingMessage): string {
  let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.${req.httpVersionMinor === 0 ? 0 : 1}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = lowerName(raw[i]!);
    let value = raw[i + 1]!;
    if (name === 'upgrade' || name === 'http2-settings') continue;
    if (name === 'connection') {
      value = value.split(',').map((t) => t.trim()).filter((t) => {
        const token = t.toLowerCase();
        return t !== '' && token !== 'upgrade' && token !== 'http2-settings';
      }).join(', ');
      if (value === '') continue;
    }
    text += `${raw[i]!}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}

type ConnectionListener = (socket: Socket) => void;
const LISTENERS = new WeakMap<object, ConnectionListener | null>();

/**
 * node's HTTP connection listener of the server that accepted `socket` (`connection` on a plain
 * server, `secureConnection` on a TLS one), found by the name node gives it; undefined if none.
 */
function connectionListener(socket: Socket): { server: Server; listener: ConnectionListener } | undefined {
  const server = (socket as Socket & { server?: Server }).server ?? (socket as Socket & { _tlsOptions?: { server?: Server } })._tlsOptions?.server;
  if (server === undefined) return undefined;
  let listener = LISTENERS.get(server);
  if (listener === undefined) {
    const event = (socket as { encrypted?: boolean }).encrypted === true ? 'secureConnection' : 'connection';
    const found = server.listeners(event).find((f) => f.name === 'connectionListener') as ConnectionListener | undefined;
    listener = found ?? null;
    LISTENERS.set(server, listener);
  }
  return listener === null ? undefined : { server, listener };
}

/**
 * Serve an h2c offer as the plain request it also is (see above). False when the socket cannot
 * go back to the HTTP server (then the caller closes it).
 */
export function replayAsPlainRequest(req: IncomingMessage, socket: Socket, head: Buffer): boolean {
  const target = connectionListener(socket);
  if (target === undefined || socket.destroyed) return false;
  const bytes = Buffer.from(plainRequestHead(req), 'latin1');
  socket.unshift(head.length === 0 ? bytes : Buffer.concat([bytes, head]));
  // An offer pipelined behind a request whose response is still being written: the socket goes
  // back to the HTTP server once that response is out, so responses keep their order.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight !== null && inFlight !== undefined && !inFlight.writableFinished) {
    // Until then nothing reads the socket (node left it neither flowing nor paused).
    inFlight.once('finish', () => {
      if (!socket.destroyed) target.listener.call(target.server, socket);
    });
    return true;
  }
  target.listener.call(target.server, socket);
  return true;
}
