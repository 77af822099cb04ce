/**
 * Berth's server: the core that a config opens (host/open-core.ts: the data dir's lock, the stores, the
 * model endpoint, the session host and the task runner) plus the HTTP API, listening.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { ServeConfig } from './config.js';
import { BerthError } from './errors.js';
import { Cleanups } from './host/cleanups.js';
import type { DrainResult } from './host/drain.js';
import { errorLogger, openBerthCore, type BerthCore, type StartOptions } from './host/open-core.js';
import type { SessionHost } from './host/session-host.js';
import { createApp, type RouteGroup } from './http/app.js';
import { ClusterRouting } from './http/forward.js';
import { groupRoutes } from './http/group-routes.js';
import { taskRoutes } from './http/task-routes.js';
import type { MockModel } from './testing/mock-model.js';

export { openBerthCore, type BerthCore, type StartOptions } from './host/open-core.js';

export interface BerthServer {
  /** `http://HOST:PORT` of the API. */
  readonly url: string;
  readonly host: SessionHost;
  /** The built-in scripted model, when the config asked for it. */
  readonly mockModel: MockModel | undefined;
  /** The model proxy's address on the host's loopback (sandboxed agents reach it through a socket). */
  readonly modelProxyUrl: string;
  /** How agents are confined, in a line (`--sandbox`). */
  readonly confinement: string;
  /** Multi-host mode: the live hosts at the last heartbeat (this one included); 1 on a host of its own. */
  readonly liveHosts: number;
  /** Stops accepting requests, ends every subprocess (sessions stay resumable), closes the stores. */
  close(): Promise<void>;
  /**
   * The graceful shutdown of SIGTERM: `/readyz` turns 503, nothing new is admitted, running turns get
   * the drain timeout, every session is suspended; then {@link close}.
   */
  drain(): Promise<DrainResult>;
}

/** {@link openBerthCore} plus the HTTP API, listening. */
export async function startBerth(config: ServeConfig, options: StartOptions = {}): Promise<BerthServer> {
  const onError = errorLogger(options);
  const core = await openBerthCore(config, options);
  const cleanups = new Cleanups(onError);
  cleanups.add(() => core.close());
  try {
    let ready = true;
    const app = createApp({
      host: core.host,
      apiKeys: config.apiKeys,
      maxBodyBytes: config.maxBodyBytes,
      heartbeatMs: config.heartbeatMs,
      isReady: () => ready,
      routes: extraRoutes(core, config),
      tenantLimits: config.tenantLimits,
      onError,
      cluster: core.leases && new ClusterRouting(core.leases),
      metricsPublic: config.metricsPublic,
      catalog: core.catalog,
      network: { confined: core.confinesNetwork, agentMemoryBytes: core.agentMemoryBytes },
    });
    const server = await listen(app.fetch, config.port, config.host);
    cleanups.add(() => closeServer(server));
    const address = server.address() as AddressInfo;
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return {
      url: `http://${hostPart}:${address.port}`,
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

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    // Open SSE streams would hold close() forever; the sessions behind them are already stopped.
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}
