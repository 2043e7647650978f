import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TableStore } from '../control/table-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ERROR_BODIES, errorBody, rawErrorResponse } from './error-response.js';
import { ProxyResponse } from './forward.js';
import { ProxyHandler, type HandlerOptions } from './handler.js';
import { RuntimeStore } from './runtime.js';
import type { Upstreams } from './upstreams.js';
import { UpgradeProxy } from './websocket.js';

const HEADERS_TOO_LARGE = errorBody('SY_HEADERS_TOO_LARGE', 'the request head is too large');

export interface ProxyOptions extends HandlerOptions {
  /** Idle time of a client keep-alive connection (node's `server.keepAliveTimeout`). Default 65 s, above common load balancer idle timeouts. */
  keepAliveTimeoutMs?: number;
  /** Time a client has to send a complete request head. Default 60 s. */
  headersTimeoutMs?: number;
  /** Time a client has to send a complete request (head and body); 0 disables it so large uploads can stream. Default 0. */
  requestTimeoutMs?: number;
  /** Default drain time for `close()`. Default 10 s. */
  drainTimeoutMs?: number;
}

export interface ProxyDeps {
  store: TableStore;
  /** The proxy owns it from now on: `close()` closes it. */
  upstreams: Upstreams;
  /** Root logger or a `component` child; access lines are its child `{ kind: 'access' }`. */
  logger?: Logger;
  metrics: Metrics;
  options?: ProxyOptions;
}

export interface Proxy {
  readonly server: Server;
  readonly runtimes: RuntimeStore;
  readonly handler: ProxyHandler;
  readonly upgrades: UpgradeProxy;
  /** Listen on host:port (port 0 picks one); resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo>;
  /**
   * Graceful shutdown: stop accepting, close idle keep-alive connections, ask busy ones to close
   * after their response, let in-flight requests finish for at most `drainMs`, then destroy what is
   * left (connections and WebSocket tunnels) and close the upstream pools.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * The proxy server: node:http with keep-alive, wired to the table store through a RuntimeStore
 * (pools and balancers reconciled make-before-break on every swap).
 */
export function createProxy(deps: ProxyDeps): Proxy {
  const { store, upstreams, metrics, options = {} } = deps;
  // Accept the root logger or one already bound to a component, without binding `component` twice.
  const logger = deps.logger === undefined || deps.logger.bindings()['component'] !== undefined
    ? deps.logger
    : deps.logger.child({ component: 'proxy' });
  const runtimes = new RuntimeStore(metrics);
  runtimes.attach(store, upstreams);
  const handler = new ProxyHandler(runtimes, logger, options);
  const upgrades = new UpgradeProxy(handler, upstreams.options.connectTimeoutMs);

  const server = createServer<typeof IncomingMessage, typeof ProxyResponse>({
    ServerResponse: ProxyResponse,
    keepAlive: true,
    noDelay: true,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
    headersTimeout: options.headersTimeoutMs ?? 60_000,
    requestTimeout: options.requestTimeoutMs ?? 0,
  }, handler.handle);
  server.on('upgrade', upgrades.handle);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    logger?.debug({ err: err.message, code: err.code }, 'client error');
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'SY_HEADERS_TOO_LARGE' : 'SY_BAD_REQUEST';
    socket.end(rawErrorResponse(code, code === 'SY_BAD_REQUEST' ? ERROR_BODIES.SY_BAD_REQUEST : HEADERS_TOO_LARGE, 'none'));
  });

  let closing: Promise<void> | undefined;

  return {
    server,
    runtimes,
    handler,
    upgrades,
    listen(host: string, port: number): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          logger?.info({ address: address.address, port: address.port }, 'proxy listening');
          resolve(address);
        });
      });
    },
    close(drainMs = options.drainTimeoutMs ?? 10_000): Promise<void> {
      closing ??= (async () => {
        handler.closing = true;
        const closed = new Promise<void>((resolve) => {
          if (!server.listening) resolve();
          else server.close(() => resolve());
        });
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, drainMs, 'timeout'); });
        const outcome = await Promise.race([handler.idle().then(() => 'idle' as const), deadline]);
        if (outcome === 'timeout') logger?.warn({ inflight: handler.inflight, drainMs }, 'drain timeout: closing remaining connections');
        upgrades.destroyAll();
        server.closeAllConnections();
        await Promise.race([closed, deadline]);
        clearTimeout(timer);
        await upstreams.close(Math.max(0, Math.min(drainMs, 1_000)));
        logger?.info('proxy closed');
      })();
      return closing;
    },
  };
}
