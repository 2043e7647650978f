import { createServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.js';
import type { TableStore } from '../control/table-store.js';
import type { TlsCertificates } from '../tls/cert-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ProxyResponse } from './http/proxy-response.js';
import { ProxyHandler, type HandlerOptions } from './http/handler.js';
import { guardListener, listenerServerOptions, type ListenerLimits } from './edge/listener-guard.js';
import { RequestGuard } from './edge/request-guard.js';
import { RuntimeStore } from './runtime/runtime.js';
import type { Upstreams } from './runtime/upstreams.js';
import { UpgradeProxy } from './upgrade/upgrade-proxy.js';

/**
 * Listener limits (listener-guard.ts: header timeout 10 s, request timeout 5 min, keep-alive 65 s,
 * 16 KiB of headers, 10 000 connections) and request guard options (trusted proxies, at most 100
 * header fields), plus the proxy's own.
 */
export interface ProxyOptions extends HandlerOptions, ListenerLimits {
  /** Default drain time for `close()`. Default 10 s. */
  drainTimeoutMs?: number;
  /**
   * Port of the TLS listener, for redirects of plain HTTP to HTTPS. When unset or 0, `listenTls`
   * sets it to the port it bound.
   */
  httpsPort?: number;
}

/**
 * The proxy's options from the command line: listener limits, request guard settings, drain time
 * and the TLS port (for redirects). One place for the single process (app.ts) and each cluster
 * worker (cluster/worker.ts), which imports it without the control plane's modules.
 */
export function proxyOptionsOf(config: Config): ProxyOptions {
  const { listener } = config;
  return {
    headersTimeoutMs: listener.headersTimeoutMs,
    requestTimeoutMs: listener.requestTimeoutMs,
    keepAliveTimeoutMs: listener.keepAliveTimeoutMs,
    maxConnections: listener.maxConnections,
    maxHeaderSize: listener.maxHeaderSize,
    maxHeaderCount: listener.maxHeaderCount,
    trustedProxies: config.trustedProxies,
    drainTimeoutMs: config.drainTimeoutMs,
    httpsPort: config.tls?.listen.port,
  };
}

export interface ProxyDeps {
  store: TableStore;
  /** The proxy owns it from now on: `close()` closes it. */
  upstreams: Upstreams;
  /** Root logger or a `component` child; access lines are its child `{ kind: 'access' }`. */
  logger?: Logger;
  /** `--access-log`: a logger writing access lines to a file, or false for none; default `logger`'s destination. */
  accessLogger?: Logger | false;
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
  /** The TLS listener, once `listenTls` was called. */
  readonly tlsServer: HttpsServer | undefined;
  /**
   * Also listen with TLS (once): the same request, upgrade and client-error handling as the plain
   * listener, certificates by SNI from `certificates`, reloaded without dropping connections.
   */
  listenTls(host: string, port: number, certificates: TlsCertificates): Promise<AddressInfo>;
  /**
   * Drain start (SIGTERM, before any shutdown delay): keep accepting and serving, but every answer
   * from now on carries `Connection: close` and ends its connection, so keep-alive clients open a
   * fresh connection for their next request instead of reusing one the listener's close would drop
   * under them (Envoy's HTTP/1.1 drain, HAProxy's soft-stop). Idempotent; `close()` implies it.
   */
  beginDrain(): void;
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
  const accessLogger = deps.accessLogger === false ? undefined : deps.accessLogger ?? logger;
  const handler = new ProxyHandler(runtimes, accessLogger, options, new RequestGuard(options, logger, metrics));
  const upgrades = new UpgradeProxy(handler);

  // Shared by the plain and the TLS listener (listenTls).
  const serverOptions: ServerOptions<typeof IncomingMessage, typeof ProxyResponse> = {
    ServerResponse: ProxyResponse,
    keepAlive: true,
    noDelay: true,
    ...listenerServerOptions(options),
  };
  const server = createServer<typeof IncomingMessage, typeof ProxyResponse>(serverOptions, handler.handle);
  // `Expect: 100-continue`: node would answer 100 Continue before any check; the exchange sends it
  // only once the request is admitted, so an oversized upload gets its 413 first (as nginx does).
  server.on('checkContinue', handler.handleContinue);
  // Upgrades through the request guard, CONNECT refused, parser errors answered, connection cap.
  guardListener(server, handler.guard, upgrades.handle, options, logger);

  let closing: Promise<void> | undefined;
  let tls: { server: HttpsServer; detach: () => void } | undefined;

  return {
    server,
    runtimes,
    handler,
    upgrades,
    get tlsServer() {
      return tls?.server;
    },
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
    listenTls(host: string, port: number, certificates: TlsCertificates): Promise<AddressInfo> {
      if (tls !== undefined) return Promise.reject(new Error('the TLS listener is already started'));
      const tlsServer = createHttpsServer<typeof IncomingMessage, typeof ProxyResponse>({ ...serverOptions, ...certificates.serverOptions() });
      mirrorListener(server, tlsServer);
      tls = { server: tlsServer, detach: certificates.attach(tlsServer) };
      return new Promise((resolve, reject) => {
        tlsServer.once('error', reject);
        tlsServer.listen(port, host, () => {
          tlsServer.off('error', reject);
          const address = tlsServer.address() as AddressInfo;
          if (options.httpsPort === undefined || options.httpsPort === 0) options.httpsPort = address.port;
          logger?.info({ address: address.address, port: address.port }, 'proxy listening with TLS');
          resolve(address);
        });
      });
    },
    beginDrain(): void {
      // The exchange reads it for every answer (closeAfterAnswer): res.shouldKeepAlive = false.
      handler.closing = true;
    },
    close(drainMs = options.drainTimeoutMs ?? 10_000): Promise<void> {
      closing ??= (async () => {
        handler.closing = true;
        const listeners: (Server | HttpsServer)[] = tls === undefined ? [server] : [server, tls.server];
        tls?.detach();
        const closed = Promise.all(listeners.map((s) => new Promise<void>((resolve) => {
          if (!s.listening) resolve();
          else s.close(() => resolve());
        })));
        for (const s of listeners) s.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, drainMs, 'timeout'); });
        const outcome = await Promise.race([handler.idle().then(() => 'idle' as const), deadline]);
        if (outcome === 'timeout') logger?.warn({ inflight: handler.inflight, drainMs }, 'drain timeout: closing remaining connections');
        upgrades.destroyAll();
        for (const s of listeners) s.closeAllConnections();
        await Promise.race([closed, deadline]);
        clearTimeout(timer);
        await upstreams.close(Math.max(0, Math.min(drainMs, 1_000)));
        logger?.info('proxy closed');
      })();
      return closing;
    },
  };
}

/** Events whose listeners the TLS listener copies from the plain one, so both handle requests alike. */
const MIRRORED_EVENTS = ['request', 'upgrade', 'clientError', 'connect', 'checkContinue', 'checkExpectation', 'dropRequest', 'drop'] as const;

/**
 * Give the TLS listener what the plain listener got after its creation: its request-level
 * listeners and the limits node keeps as properties (the creation options are shared through
 * `serverOptions`). Runs when the TLS listener starts, so whatever createProxy wires onto `server`
 * applies to both.
 */
function mirrorListener(from: Server, to: HttpsServer): void {
  for (const event of MIRRORED_EVENTS) {
    for (const listener of from.listeners(event)) to.on(event, listener as (...args: unknown[]) => void);
  }
  to.keepAliveTimeout = from.keepAliveTimeout;
  to.headersTimeout = from.headersTimeout;
  to.requestTimeout = from.requestTimeout;
  to.timeout = from.timeout;
  to.maxHeadersCount = from.maxHeadersCount;
  to.maxRequestsPerSocket = from.maxRequestsPerSocket;
  to.maxConnections = from.maxConnections;
}
