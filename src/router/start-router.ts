/**
 * `berth router` assembled: the shared store's host registry, the {@link HostDirectory} over it, the
 * {@link Router} and an HTTP server, listening. The one place that chooses the defaults.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BerthError, describeError } from '../errors.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { redactUrl } from '../redact.js';
import { openStores, type Stores } from '../stores/open-stores.js';
import { HostDirectory } from './host-directory.js';
import { UpstreamClient } from './proxy.js';
import type { RouterConfig } from './router-config.js';
import { Router } from './router.js';

/** Options of {@link startRouter}. */
export interface StartRouterOptions {
  /** Where failures of the router and the store go. @default a log on stderr as the config says */
  log?: Logger;
  /**
   * On {@link RouterServer.close}, how long requests in flight (not event streams, which end at once) may
   * take to finish before their connections are closed, in ms.
   * @default 5000
   */
  closeGraceMs?: number;
}

export interface RouterServer {
  /** `http://HOST:PORT`. */
  url: string;
  router: Router;
  directory: HostDirectory;
  /**
   * Stops listening, ends event streams (their clients reconnect elsewhere), gives other requests the
   * grace period, then closes every connection and the store. Idempotent.
   */
  close(): Promise<void>;
}

export async function startRouter(
  config: RouterConfig,
  options: StartRouterOptions = {},
): Promise<RouterServer> {
  const log =
    options.log ??
    (await createLogger({ level: config.logLevel, ...(config.logFormat && { format: config.logFormat }) }));
  const onError = (err: unknown): void => log.error({ err }, 'router failure');
  const stores = await openStores(config.store, { timeoutMs: config.storeTimeoutMs });
  const { coordination } = stores;
  if (!coordination) {
    await stores.close().catch(onError);
    throw new BerthError(
      'invalid_config',
      `--store ${redactUrl(config.store)}: this store has no host registry; the router needs PostgreSQL or Redis`,
    );
  }
  const directory = new HostDirectory({
    coordination,
    refreshMs: config.refreshMs,
    storeTimeoutMs: config.storeTimeoutMs,
    onError,
  });
  const upstream = new UpstreamClient();
  const router = new Router({
    directory,
    upstream,
    apiKeys: config.apiKeys,
    maxBodyBytes: config.maxBodyBytes,
    readyMaxAgeMs: config.refreshMs,
    onError,
  });
  const server = http.createServer(router.handle);
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    directory.close();
    upstream.close();
    await stores.close().catch(onError);
    throw err;
  }
  directory.start();
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostPart}:${address.port}`,
    router,
    directory,
    close() {
      closing ??= shutdown({
        server,
        router,
        directory,
        upstream,
        stores,
        graceMs: options.closeGraceMs ?? 5000,
        onError,
      });
      return closing;
    },
  };
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(new BerthError('invalid_config', `Cannot listen on ${host}:${port}: ${describeError(err)}`)),
    );
    server.listen(port, host, () => resolve());
  });
}

interface ShutdownParts {
  server: http.Server;
  router: Router;
  directory: HostDirectory;
  upstream: UpstreamClient;
  stores: Stores;
  graceMs: number;
  onError: (err: unknown) => void;
}

/** Every step runs, whatever another one does. */
async function shutdown(parts: ShutdownParts): Promise<void> {
  const { server, router } = parts;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  router.endStreams();
  const deadline = Date.now() + parts.graceMs;
  while (router.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  server.closeAllConnections();
  await closed;
  parts.directory.close();
  parts.upstream.close();
  await parts.stores.close().catch(parts.onError);
}
