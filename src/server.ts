/**
 * Berth's server: the core that a config opens (host/open-core.ts: the data dir's lock, the stores, the
 * model endpoint, the session host and the task runner) plus the HTTP API, listening.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { ServeConfig } from './config.js';
import { BerthError } from './errors.js';
import { Cleanups } from './host/cleanups.js';
import type { DrainResult } from './host/drain.js';
import { openBerthCore, type BerthCore, type StartOptions } from './host/open-core.js';
import { errorLogger } from './observe/logger.js';
import type { SessionHost } from './host/session-host.js';
import { createApp, type RouteGroup } from './http/app.js';
import { metricsApp } from './http/metrics.js';
import type { Telemetry } from './observe/telemetry.js';
import { ClusterRouting } from './http/forward.js';
import { groupRoutes } from './http/group-routes.js';
import { taskRoutes } from './http/task-routes.js';
import type { MockModel } from './testing/mock-model.js';

export { openBerthCore, type BerthCore, type StartOptions } from './host/open-core.js';

/**
 * How long the API's open responses get, at shutdown, to finish before their connections are cut: event
 * streams sending their last events (a drain's), then ending. Bounds a client that stops reading.
 */
const RESPONSES_SETTLE_MS = 2000;

export interface BerthServer {
  /** `http://HOST:PORT` of the API. */
  readonly url: string;
  /** `http://HOST:PORT` of the metrics listener (`--metrics-port`); undefined without one. */
  readonly metricsUrl: string | undefined;
  /** Where the server's logs, metrics and spans go. */
  readonly telemetry: Telemetry;
  readonly host: SessionHost;
  /** The built-in scripted model, when the config asked for it. */
  readonly mockModel: MockModel | undefined;
  /** The model proxy's address on the host's loopback (sandboxed agents reach it through a socket). */
  readonly modelProxyUrl: string;
  /** How agents are confined, in a line (`--sandbox`). */
  readonly confinement: string;
  /** Multi-host mode: the live hosts at the last heartbeat (this one included); 1 on a host of its own. */
  readonly liveHosts: number;
  /**
   * Stops accepting requests, ends open event streams (each sends what was published first, then ends),
   * ends every subprocess (sessions stay resumable), closes the stores.
   */
  close(): Promise<void>;
  /**
   * The graceful shutdown of SIGTERM: `/readyz` turns 503, nothing new is admitted, running turns get
   * the drain timeout, every session is suspended; then {@link close}, so open event streams get the
   * drain's events (`session.status_suspended`) before they end.
   */
  drain(): Promise<DrainResult>;
}

/** {@link openBerthCore} plus the HTTP API, listening. */
export async function startBerth(config: ServeConfig, options: StartOptions = {}): Promise<BerthServer> {
  const core = await openBerthCore(config, options);
  const { telemetry } = core;
  const onError = errorLogger(telemetry.log);
  const cleanups = new Cleanups(onError);
  cleanups.add(() => core.close());
  try {
    let ready = true;
    const streamsClosing = new AbortController();
    const app = createApp({
      host: core.host,
      apiKeys: config.apiKeys,
      maxBodyBytes: config.maxBodyBytes,
      heartbeatMs: config.heartbeatMs,
      isReady: () => ready,
      streamsClosing: streamsClosing.signal,
      routes: extraRoutes(core, config),
      tenantLimits: config.tenantLimits,
      onError,
      cluster: core.leases && new ClusterRouting(core.leases),
      metricsPublic: config.observe.metricsPublic,
      telemetry,
      catalog: core.catalog,
      network: { confined: core.confinesNetwork, agentMemoryBytes: core.agentMemoryBytes },
    });
    const server = await listen(app.fetch, config.port, config.host);
    const responses = trackResponses(server);
    cleanups.add(async () => {
      // Streams end once they have sent what was published (all of a drain's events: this runs after
      // it); their connections are cut only then, so a socket is never destroyed with events unsent.
      streamsClosing.abort();
      await responses.settled(RESPONSES_SETTLE_MS);
      await closeServer(server);
    });
    let metricsUrl: string | undefined;
    if (config.observe.metricsPort !== null) {
      const metricsServer = await listen(
        metricsApp(telemetry, { apiKeys: config.apiKeys, metricsPublic: config.observe.metricsPublic }).fetch,
        config.observe.metricsPort,
        config.host,
      );
      cleanups.add(() => closeServer(metricsServer));
      metricsUrl = urlOf(metricsServer);
    }
    return {
      url: urlOf(server),
      metricsUrl,
      telemetry,
      host: core.host,
      mockModel: core.mockModel,
      modelProxyUrl: core.modelProxyUrl,
      confinement: core.confinement,
      get liveHosts() {
        return core.leases?.hosts.length ?? 1;
      },
      close() {
        ready = false;
        return cleanups.run();
      },
      async drain() {
        ready = false;
        const drained = core.host.drain(config.drainTimeoutMs);
        // Routers stop sending new work at the next read of the host list, not a heartbeat later.
        void core.leases?.heartbeat();
        const result = await drained;
        await cleanups.run();
        return result;
      },
    };
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}

/** The API's route groups beyond sessions: ephemeral tasks and multi-agent groups. */
function extraRoutes(core: BerthCore, config: ServeConfig): RouteGroup[] {
  return [
    taskRoutes({ tasks: core.tasks, heartbeatMs: config.heartbeatMs }),
    groupRoutes({ host: core.host, dataDir: config.dataDir, heartbeatMs: config.heartbeatMs }),
  ];
}

function listen(
  fetch: (req: Request) => Response | Promise<Response>,
  port: number,
  hostname: string,
): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname }, () => resolve(server));
    server.once('error', (err: Error) =>
      reject(new BerthError('invalid_config', `Cannot listen on ${hostname}:${port}: ${err.message}`)),
    );
  });
}

function urlOf(server: ServerType): string {
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${hostPart}:${address.port}`;
}

/** The server's responses in flight; `settled` waits at most `ms` for those open now to finish. */
function trackResponses(server: ServerType): { settled(ms: number): Promise<void> } {
  const open = new Set<Promise<void>>();
  (server as http.Server).on('request', (_req, res: http.ServerResponse) => {
    // 'close' also comes when the client goes away first.
    const done = new Promise<void>((resolve) => res.once('close', () => resolve()));
    open.add(done);
    void done.then(() => open.delete(done));
  });
  return {
    async settled(ms) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      await Promise.race([Promise.all(open), timeout]);
      clearTimeout(timer);
    },
  };
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    // A stream that has not ended by now (a forwarded one, a client that stopped reading) would hold
    // close() forever.
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}
