/** TLS clients for the tests: a bare handshake, and an HTTP/1.1 keep-alive client that exposes its sockets. */
import type { X509Certificate } from 'node:crypto';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Client, buildConnector } from 'undici';

export interface HandshakeResult {
  /** The certificate the server presented. */
  readonly peer: X509Certificate;
  readonly protocol: string | null;
  readonly alpn: string | false | null;
  readonly socket: TLSSocket;
}

/**
 * Handshake with 127.0.0.1:port, sending `servername` as SNI (none when undefined: node sends no SNI
 * for an IP address). The chain is not verified unless `options` says so: these calls look at
 * which certificate was chosen. The caller ends the socket (or uses `handshakeOnce`).
 */
export function handshake(port: number, servername: string | undefined, options: ConnectionOptions = {}): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ...(servername === undefined ? {} : { servername }),
      rejectUnauthorized: false,
      ALPNProtocols: ['h2', 'http/1.1'],
      ...options,
    });
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve({ peer: socket.getPeerX509Certificate()!, protocol: socket.getProtocol(), alpn: socket.alpnProtocol, socket });
    });
    socket.once('error', reject);
  });
}

/** Handshake, note the certificate, close. */
export async function peerSerial(port: number, servername: string | undefined): Promise<string> {
  const { peer, socket } = await handshake(port, servername);
  socket.destroy();
  return peer.serialNumber;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * undici Client to https://127.0.0.1:port with a fixed SNI name and CA, verifying the chain and the
 * name. `sockets` lists every TLS connection it opened, so a test can tell reuse from reconnects.
 */
export class TlsHttpClient {
  readonly sockets: TLSSocket[] = [];
  /** Serial of the certificate each connection was set up with, read at the handshake (node may drop the peer certificate once a TLS 1.3 session ticket arrives). */
  readonly serials: string[] = [];
  private readonly client: Client;

  constructor(port: number, servername: string, ca: string | string[]) {
    const base = buildConnector({ ca, servername, rejectUnauthorized: true });
    this.client = new Client(`https://127.0.0.1:${port}`, {
      keepAliveTimeout: 60_000,
      connect: (opts, callback) => base({ ...opts, servername }, (err, socket) => {
        if (socket !== null) {
          this.sockets.push(socket as TLSSocket);
          this.serials.push((socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? '');
        }
        if (err === null) callback(null, socket!);
        else callback(err, null);
      }),
    });
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    const res = await this.client.request({ method: 'GET', path, headers });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  }

  /** Certificate serial of the most recent connection. */
  get serial(): string | undefined {
    return this.serials.at(-1);
  }

  close(): Promise<void> {
    return this.client.destroy();
  }
}
