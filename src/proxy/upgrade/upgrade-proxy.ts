import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ForwardContext } from '../http/forward-context.js';
import { isH2cOffer, replayAsPlainRequest } from './h2c-offer.js';
import { Tunnel } from './tunnel.js';

/**
 * The `upgrade` listener: an h2c offer goes back to the HTTP server as a plain request
 * (h2c-offer.ts); every other upgrade request becomes a Tunnel. Keeps the open tunnels for
 * shutdown.
 */
export class UpgradeProxy {
  private readonly ctx: ForwardContext;
  private readonly tunnels = new Set<Tunnel>();

  constructor(ctx: ForwardContext) {
    this.ctx = ctx;
  }

  /** Open tunnels. */
  get size(): number {
    return this.tunnels.size;
  }

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (isH2cOffer(req)) {
      if (!replayAsPlainRequest(req, socket as Socket, head)) socket.destroy();
      return;
    }
    const tunnel = new Tunnel(this.ctx, req, socket as Socket, performance.now(), this.tunnels);
    tunnel.run(head);
  };

  /**
   * Tear down every open tunnel: the end of a shutdown's drain. From now on what ends is logged
   * as `end: drain_cut` (plain exchanges cut next by the server included).
   */
  destroyAll(): void {
    this.ctx.cutting = true;
    for (const tunnel of this.tunnels) tunnel.destroy();
  }
}
