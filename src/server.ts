/**
 * The one place where Berth's parts are chosen and wired together from a config: the store, the model
 * endpoint (or the built-in scripted model), the session host and the HTTP API.
 */
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import type { ServeConfig } from './config.js';
import { BerthError, describeError } from './errors.js';
import { RecyclePolicy } from './host/recycle-policy.js';
import { SessionHost, type DrainResult } from './host/session-host.js';
import { agentsPerHost } from './host/sizing.js';
import { WorkspaceSync } from './workspace/workspace-sync.js';
import { createApp, type RouteGroup } from './http/app.js';
import { groupRoutes } from './http/group-routes.js';
import { taskRoutes } from './http/task-routes.js';
import { DurableMirror } from './stores/durable-mirror.js';
import { openStores, type Stores } from './stores/open-stores.js';
import { TaskRunner } from './tasks/task-runner.js';
import { startMockModel, type MockModel } from './testing/index.js';
import { loadScenarioFile } from './testing/scenario-file.js';
import { openBlobStore, type BlobStore } from './workspace/open-blob-store.js';

export interface BerthServer {
  /** `http://HOST:PORT` of the API. */
  readonly url: string;
  readonly host: SessionHost;
  /** The built-in scripted model, when the config asked for it. */
  readonly mockModel: MockModel | undefined;
  /** Stops accepting requests, ends every subprocess (sessions stay resumable), closes the stores. */
  close(): Promise<void>;
  /**
   * The graceful shutdown of SIGTERM: `/readyz` turns 503, nothing new is admitted, running turns get
   * the drain timeout, every session is suspended; then {@link close}.
   */
  drain(): Promise<DrainResult>;
}

export interface StartOptions {
  /** Where background failures go; stderr by default. */
  log?: (line: string) => void;
}

/** How long a stopping host waits for its spool to reach the store; what is left ships at the next start. */
const MIRROR_DRAIN_MS = 5000;

export interface BerthCore {
  readonly host: SessionHost;
  /** The Messages API URL the agents use. */
  readonly modelEndpoint: string;
  /** The built-in scripted model, when the config asked for it. */
  readonly mockModel: MockModel | undefined;
  /** Where workspace snapshots and task results live. */
  readonly blob: BlobStore;
  /** Ephemeral tasks, run on the host's slots. */
  readonly tasks: TaskRunner;
  /** Ends every subprocess (sessions stay resumable) and closes the stores and the scripted model. */
  close(): Promise<void>;
}

/** The store, the model endpoint (or the built-in scripted model) and the session host, without HTTP. */
export async function openBerthCore(config: ServeConfig, options: StartOptions = {}): Promise<BerthCore> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const onError = errorLogger(options);
  const cleanups = new Cleanups(onError);
  try {
    let mockModel: MockModel | undefined;
    let modelEndpoint = config.modelEndpoint;
    if (modelEndpoint === null) {
      const scenarios = config.mockScript ? await loadScenarioFile(config.mockScript, '--mock-script') : [];
      const model = await startMockModel({ scenarios });
      cleanups.add(() => model.close());
      mockModel = model;
      modelEndpoint = model.url;
    }
    const stores: Stores = await openStores(config.store);
    cleanups.add(() => stores.close());
    const blob = await openBlobStore(config.blobStore, config.dataDir);
    cleanups.add(() => blob.close());
    const hybridUnavailable = !stores.shared
      ? `its store (${config.store.replace(/:.*/, ':')}...) is not reachable from other hosts, so a suspended session could not hydrate anywhere else; use a postgres://, redis:// or s3:// --store`
      : !blob.shared
        ? `its blob store (${blob.description}) is this host's disk, so a suspended workspace could not be restored anywhere else; use an s3:// --blob-store`
        : undefined;
    if (config.pattern === 'hybrid' && hybridUnavailable) {
      throw new BerthError('invalid_config', `--pattern hybrid is refused: ${hybridUnavailable}`);
    }
    // The mirror is made before the host it reports to.
    const reportTo: { host?: SessionHost } = {};
    let { transcriptStore, registry, eventLog } = stores;
    let flushTranscripts: ((signal: AbortSignal) => Promise<void>) | undefined;
    if (stores.shared) {
      // A networked store can be down; the mirror keeps every write on this host's disk until it is back.
      const mirror = new DurableMirror({
        backend: stores.transcriptStore,
        eventLog: stores.eventLog,
        registry: stores.registry,
        spoolPath: path.join(config.dataDir, 'spool.db'),
        onDelayed: (key, err) => reportTo.host?.reportMirrorDelay(key.projectKey, key.sessionId, err),
        onRecovered: (backlog) =>
          log(`berth: the transcript store is back; shipping ${backlog} spooled batch(es)`),
      });
      cleanups.add(async () => {
        await mirror.drain(AbortSignal.timeout(MIRROR_DRAIN_MS)).catch(() => {
          log(`berth: ${mirror.backlog} transcript batch(es) stay spooled for the next start`);
        });
        await mirror.close();
      });
      transcriptStore = mirror;
      flushTranscripts = (signal) => mirror.drain(signal);
      registry = mirror.registry;
      eventLog = mirror.eventLog;
    }
    const host = new SessionHost({
      registry,
      eventLog,
      transcriptStore,
      dataDir: config.dataDir,
      modelEndpoint,
      modelApiKey: config.modelApiKey,
      agentPath: config.agentPath,
      defaultPattern: config.pattern,
      timeouts: {
        confirmationMs: config.confirmationTimeoutMs,
        interruptMs: config.interruptTimeoutMs,
        killGraceMs: config.killGraceMs,
      },
      recyclePolicy: new RecyclePolicy(config.recycle),
      rssSampleIntervalMs: config.rssSampleIntervalMs,
      onError,
      sizing: config.sizing,
      capacity: agentsPerHost(config.sizing),
      canSuspend: !config.store.startsWith('memory:'),
      idleTimeoutMs: config.idleTimeoutMs,
      workspaces: new WorkspaceSync({
        blob,
        dataDir: config.dataDir,
        maxSnapshotBytes: config.snapshotLimitBytes,
      }),
      ...(flushTranscripts && { flushTranscripts }),
      warmPoolSize: config.warmPool,
      warmPoolTenants: config.apiKeys.size > 0 ? [...new Set(config.apiKeys.values())] : ['default'],
      ...(hybridUnavailable && { hybridUnavailable }),
    });
    reportTo.host = host;
    cleanups.add(() => host.close());
    const orphans = await host.sweepOrphans();
    if (orphans > 0) log(`berth: killed ${orphans} process(es) that an earlier host left running`);
    const tasks = new TaskRunner({
      host,
      blob,
      dataDir: config.dataDir,
      killGraceMs: config.killGraceMs,
      onError,
    });
    cleanups.add(() => tasks.close());
    const swept = await tasks.sweep();
    if (swept > 0) log(`berth: removed ${swept} task sandbox(es) an earlier host left; those tasks failed`);
    return { host, modelEndpoint, mockModel, blob, tasks, close: () => cleanups.run() };
  } catch (err) {
    await cleanups.run();
    throw err;
  }
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
      onError,
    });
    const server = await listen(app.fetch, config.port, config.host);
    cleanups.add(() => closeServer(server));
    const address = server.address() as AddressInfo;
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return {
      url: `http://${hostPart}:${address.port}`,
      host: core.host,
      mockModel: core.mockModel,
      close() {
        ready = false;
        return cleanups.run();
      },
      async drain() {
        ready = false;
        const result = await core.host.drain(config.drainTimeoutMs);
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

function errorLogger(options: StartOptions): (err: unknown) => void {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  return (err) => log(`berth: ${describeError(err)}`);
}

/** Cleanup steps run last-added first, each once, every one even if another fails. */
class Cleanups {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;

  constructor(private readonly onError: (err: unknown) => void) {}

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch(this.onError);
    })();
    return this.running;
  }
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
