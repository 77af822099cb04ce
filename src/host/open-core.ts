/**
 * Opening Berth without HTTP: the data dir's lock, the model endpoint (or the built-in scripted model),
 * the stores (behind the durable mirror when they are networked), the blob store, the session host and
 * the task runner, wired from a compiled config. The server (src/server.ts) adds the HTTP API on top;
 * `berth run` and `berth plan` use this alone.
 *
 * Order matters at start: the data dir's lock comes first, because what follows (the orphan sweep, the
 * task sandbox sweep, the stores' files) must never touch a data dir that a live host is using. Close runs
 * the steps backwards, so the lock is given back last.
 */
import path from 'node:path';
import type { ServeConfig } from '../config.js';
import { BerthError } from '../errors.js';
import { createLogger, errorLogger, type Logger } from '../observe/logger.js';
import { makeTelemetry, type Telemetry } from '../observe/telemetry.js';
import { recordingTracer } from '../observe/spans.js';
import { tracingParts } from '../observe/tracing.js';
import { ModelProxy } from '../sandbox/model-proxy.js';
import { createPlainSpawner, type CreateSpawner } from '../sandbox/plain-spawn.js';
import { Sandbox } from '../sandbox/sandbox.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { DurableMirror } from '../stores/durable-mirror.js';
import { openStores, storeBackend, type Stores } from '../stores/open-stores.js';
import { storeCalls } from '../observe/store-calls.js';
import { hostFigures } from './host-figures.js';
import { TaskRunner } from '../tasks/task-runner.js';
import type { MockModel } from '../testing/mock-model.js';
import { openBlobStore, type BlobStore } from '../workspace/open-blob-store.js';
import { WorkspaceSync } from '../workspace/workspace-sync.js';
import { Cleanups } from './cleanups.js';
import { lockDataDir } from './data-dir-lock.js';
import { RecyclePolicy } from './recycle-policy.js';
import { SessionHost } from './session-host.js';
import { agentsPerHost } from './sizing.js';
import { seedStoredSpend } from './stored-usage.js';
import { reportMirrorDelay } from './mirror-delay.js';
import { Rebalancer } from './rebalance.js';
import { SessionLeases } from './session-leases.js';
import type { HostEntry } from '../stores/coordination.js';
import type { Fence } from '../stores/types.js';
import type { Catalog } from '../stores/catalog.js';

export interface StartOptions {
  /** Where logs, metrics and spans go. @default a log on stderr as the config says, no tracing */
  telemetry?: Telemetry;
  /** Where the agents' subprocesses come from. @default sdkRuntime (the real Agent SDK) */
  runtime?: AgentRuntime;
}

/** What an agent environment holds until its spawner grants the process a token: no key at all. */
const UNGRANTED_KEY = 'sk-berth-not-granted';

/** How long a stopping host waits for its spool to reach the store; what is left ships at the next start. */
const MIRROR_DRAIN_MS = 5000;

export interface BerthCore {
  readonly host: SessionHost;
  /** The Messages API URL the agents use. */
  readonly modelEndpoint: string;
  /** The built-in scripted model, when the config asked for it. */
  readonly mockModel: MockModel | undefined;
  /** The model proxy on the loopback (sandboxed agents reach it through its Unix socket). */
  readonly modelProxyUrl: string;
  /** How agents are confined, in a line. */
  readonly confinement: string;
  /** Where workspace snapshots and task results live. */
  readonly blob: BlobStore;
  /** Ephemeral tasks, run on the host's slots. */
  readonly tasks: TaskRunner;
  /** Multi-host mode (`--advertise-url`): this host's registration and session leases. */
  readonly leases: SessionLeases | undefined;
  /** Agents and environments (the Managed Agents API's). */
  readonly catalog: Catalog;
  /** True when agents have no direct network (`--sandbox bwrap`): an environment's network is enforced. */
  readonly confinesNetwork: boolean;
  /** Each agent's memory limit where agents get a cgroup (a session may ask for less); else undefined. */
  readonly agentMemoryBytes: number | undefined;
  /** Where the host's logs, metrics and spans go. */
  readonly telemetry: Telemetry;
  /** Ends every subprocess (sessions stay resumable) and closes the stores and the scripted model. */
  close(): Promise<void>;
}

/** The store, the model endpoint (or the built-in scripted model) and the session host, without HTTP. */
export async function openBerthCore(config: ServeConfig, options: StartOptions = {}): Promise<BerthCore> {
  const telemetry = options.telemetry ?? (await defaultTelemetry(config));
  const log = telemetry.log;
  const onError = errorLogger(log);
  const cleanups = new Cleanups(onError);
  // Its own telemetry only, closed last (its spans flushed); a caller's stays the caller's to close.
  if (!options.telemetry && telemetry.close) cleanups.add(telemetry.close);
  try {
    const lock = await lockDataDir(config.dataDir);
    cleanups.add(() => lock.release());
    let mockModel: MockModel | undefined;
    let modelEndpoint = config.modelEndpoint;
    if (modelEndpoint === null) {
      // Loaded here only: a server with a real model never loads src/testing/ (scripts/check-production-imports.ts).
      const [{ startMockModel }, { loadScenarioFile }, { DEFAULT_SCENARIOS }] = await Promise.all([
        import('../testing/mock-model.js'),
        import('../testing/scenario-file.js'),
        import('../testing/default-scenarios.js'),
      ]);
      const scenarios = config.mockScript
        ? await loadScenarioFile(config.mockScript, '--mock-script')
        : DEFAULT_SCENARIOS;
      const model = await startMockModel({ scenarios });
      cleanups.add(() => model.close());
      mockModel = model;
      modelEndpoint = model.url;
    }
    // The host, once made: the stores' and the proxy's callbacks reach it through this.
    const reportTo: { host?: SessionHost } = {};
    // Agents reach the model only through the proxy, with a token of their own: the real key stays here.
    // It also meters their model use and refuses a tenant over its `usd` budget.
    const proxy = await ModelProxy.start({
      upstream: modelEndpoint,
      apiKey: config.modelApiKey,
      onError,
      budgetUsd: (tenant) => config.tenantLimits.limitsFor(tenant).usd,
      ownerBudget: (owner) => sessionBudget(reportTo.host, owner),
      metrics: telemetry.metrics,
    });
    cleanups.add(() => proxy.close());
    // Checked before anything else starts: a host that cannot confine its agents does not start.
    const sandbox =
      config.sandbox === 'bwrap'
        ? await Sandbox.open({
            dataDir: config.dataDir,
            egressAllowPrivate: config.egressAllowPrivate,
            uids: config.agentUids,
            limits: { memoryBytes: config.sizing.sessionCeilingBytes, pids: config.agentPids },
            log: (line) => log.warn(line),
          })
        : undefined;
    if (sandbox) {
      cleanups.add(() => sandbox.close());
      await proxy.listenUnix(sandbox.modelSocket);
    }
    const createSpawner: CreateSpawner = (owner) =>
      createPlainSpawner({
        killGraceMs: config.killGraceMs,
        grant: () => proxy.grant(owner),
        wrap: sandbox && ((request) => sandbox.wrap(request, owner)),
      });
    const leftInCgroups = (await sandbox?.sweep()) ?? 0;
    if (leftInCgroups > 0) {
      log.warn({ killed: leftInCgroups }, "killed processes left in the cgroups of an earlier host's agents");
    }
    const stores: Stores = await openStores(config.store, {
      timeoutMs: config.storeTimeoutMs,
      observe: storeCalls(telemetry, storeBackend(config.store)),
    });
    cleanups.add(() => stores.close());
    const blob = await openBlobStore(config.blobStore, config.dataDir, { timeoutMs: config.storeTimeoutMs });
    cleanups.add(() => blob.close());
    const hybridUnavailable = !stores.shared
      ? `its store (${config.store.replace(/:.*/, ':')}...) is not reachable from other hosts, so a suspended session could not hydrate anywhere else; use a postgres://, redis:// or s3:// --store`
      : !blob.shared
        ? `its blob store (${blob.description}) is this host's disk, so a suspended workspace could not be restored anywhere else; use an s3:// --blob-store`
        : undefined;
    if (config.pattern === 'hybrid' && hybridUnavailable) {
      throw new BerthError('invalid_config', `--pattern hybrid is refused: ${hybridUnavailable}`);
    }
    // The mirror (and, on many hosts, the leases) are made before the host they report to.
    const leases = config.cluster ? clusterLeases(config, stores, reportTo, onError) : undefined;
    const rebalancer: { round?: (hosts: readonly HostEntry[]) => void } = {};
    leases?.onHeartbeat((hosts) => rebalancer.round?.(hosts));
    let { transcriptStore, registry, eventLog } = stores;
    let flushTranscripts: ((signal: AbortSignal) => Promise<void>) | undefined;
    let backlog = (): { entries: number; oldestSeconds: number } => ({ entries: 0, oldestSeconds: 0 });
    if (stores.shared) {
      // A networked store can be down; the mirror keeps every write on this host's disk until it is back.
      const mirror = new DurableMirror({
        backend: stores.transcriptStore,
        eventLog: stores.eventLog,
        registry: stores.registry,
        spoolPath: path.join(config.dataDir, 'spool.db'),
        storeTimeoutMs: config.storeTimeoutMs,
        onDelayed: (key, err) =>
          reportTo.host && reportMirrorDelay(reportTo.host, key.projectKey, key.sessionId, err),
        ...(leases && {
          fenceFor: (kind, scope, name) =>
            leases.fenceFor(kind, scope, name) ??
            (kind === 'transcript' ? bindTranscript(reportTo.host, leases, scope, name) : undefined),
          superseded: {
            coordination: leases.coordination,
            hostId: leases.hostId,
            onLost: (lease, token) => leases.lost(lease, token),
          },
        }),
        onRecovered: (backlog) =>
          log.info({ backlog }, 'the transcript store is back; shipping the spooled batches'),
      });
      cleanups.add(async () => {
        await mirror.drain(AbortSignal.timeout(MIRROR_DRAIN_MS)).catch(() => {
          log.warn({ backlog: mirror.backlog }, 'transcript batches stay spooled for the next start');
        });
        await mirror.close();
      });
      transcriptStore = mirror;
      flushTranscripts = (signal) => mirror.drain(signal);
      backlog = () => mirror.backlogFigures;
      registry = mirror.registry;
      eventLog = mirror.eventLog;
    }
    // A budget holds across restarts: a budgeted tenant's spend starts from what its stored sessions cost.
    await seedStoredSpend({
      registry,
      tenants: config.apiKeys.size > 0 ? config.apiKeys.values() : ['default'],
      budgetUsd: (tenant) => config.tenantLimits.limitsFor(tenant).usd,
      seed: (tenant, usd) => proxy.meter.seed(tenant, usd),
    });
    const host = new SessionHost({
      registry,
      eventLog,
      transcriptStore,
      dataDir: config.dataDir,
      modelEndpoint: proxy.url,
      // Each process's spawner puts its own token here (see createSpawner).
      modelApiKey: UNGRANTED_KEY,
      createSpawner,
      enforcesNetwork: sandbox !== undefined,
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
      telemetry,
      sizing: config.sizing,
      capacity: agentsPerHost(config.sizing),
      canSuspend: !config.store.startsWith('memory:'),
      idleTimeoutMs: config.idleTimeoutMs,
      workspaces: new WorkspaceSync({
        blob,
        dataDir: config.dataDir,
        maxSnapshotBytes: config.snapshotLimitBytes,
        tracer: recordingTracer(telemetry),
      }),
      agentTelemetry: (config.observe.agentTelemetry && config.observe.otlpEndpoint) || undefined,
      ...(flushTranscripts && { flushTranscripts }),
      warmPoolSize: config.warmPool,
      // A task spare serves any tenant: sandboxed, it could run neither as the task's uid nor in its directory.
      taskSpares: sandbox === undefined,
      prepareDirs: sandbox && ((tenant, paths) => sandbox.prepareDirs(tenant, paths)),
      warmPoolTenants: config.apiKeys.size > 0 ? [...new Set(config.apiKeys.values())] : ['default'],
      ...(hybridUnavailable && { hybridUnavailable }),
      tenantLimits: config.tenantLimits.withSpend((tenant) => proxy.spentUsd(tenant)),
      ...(options.runtime && { runtime: options.runtime }),
      leases,
    });
    reportTo.host = host;
    telemetry.metrics.watch(hostFigures(host, backlog));
    // Cleanups run backwards: the leases go back once every subprocess has stopped, not before.
    if (leases) cleanups.add(() => leases.stop());
    cleanups.add(() => host.close());
    const orphans = await host.start(lock);
    if (orphans > 0) log.warn({ killed: orphans }, 'killed processes that an earlier host left running');
    if (leases) {
      // Sessions move between hosts only when their workspaces can follow them.
      if (stores.shared && blob.shared) {
        const moves = new Rebalancer(
          host,
          leases.hostId,
          (s) => leases.holds(s.snapshot),
          (s) => leases.release(s.snapshot),
          onError,
        );
        rebalancer.round = (hosts) => moves.round(hosts);
      }
      await leases.start();
    }
    const tasks = new TaskRunner({
      host,
      blob,
      dataDir: config.dataDir,
      killGraceMs: config.killGraceMs,
      createSpawner,
      enforcesNetwork: sandbox !== undefined,
      onError,
      log,
      runtime: options.runtime,
    });
    cleanups.add(() => tasks.close());
    const swept = await tasks.sweep();
    if (swept > 0)
      log.warn({ removed: swept }, 'removed task sandboxes an earlier host left; those tasks failed');
    return {
      host,
      modelEndpoint,
      mockModel,
      modelProxyUrl: proxy.url,
      confinement: sandbox?.describe() ?? 'unconfined (--sandbox none): they can read what the server can',
      blob,
      tasks,
      leases,
      catalog: stores.catalog,
      confinesNetwork: sandbox !== undefined,
      agentMemoryBytes: sandbox?.agentMemoryBytes,
      telemetry,
      close: () => cleanups.run(),
    };
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}

/** Multi-host mode's leases on the store's coordination (the config was checked: the store has it). */
function clusterLeases(
  config: ServeConfig,
  stores: Stores,
  reportTo: { host?: SessionHost },
  onError: (err: unknown) => void,
): SessionLeases {
  const cluster = config.cluster!;
  if (!stores.coordination) {
    throw new BerthError(
      'invalid_config',
      '--advertise-url: this store keeps no leases; use PostgreSQL or Redis',
    );
  }
  return new SessionLeases({
    coordination: stores.coordination,
    hostId: cluster.hostId,
    advertiseUrl: cluster.advertiseUrl,
    ttlMs: cluster.leaseTtlMs,
    announce: () => {
      const info = reportTo.host?.info();
      return {
        state: info?.status === 'ready' ? 'ready' : 'draining',
        capacity: agentsPerHost(config.sizing),
        slotsFree: info?.slots.free ?? 0,
      };
    },
    onLost: (key) => reportTo.host?.fenceOff(key),
    onError,
  });
}

/**
 * The fence of a transcript write whose SDK session id the leases do not know yet: a session that started
 * on a warm spare takes the spare's id. Found among the host's sessions, and bound for the next write.
 */
function bindTranscript(
  host: SessionHost | undefined,
  leases: SessionLeases,
  tenant: string,
  sdkSessionId: string,
): Fence | undefined {
  const session = host?.liveSessions.find(
    (s) => s.snapshot.tenant === tenant && s.snapshot.sdkSessionId === sdkSessionId,
  );
  if (!session) return undefined;
  leases.bindTranscript(session.snapshot, sdkSessionId);
  return leases.fenceFor('transcript', tenant, sdkSessionId);
}

/** A session's own budget (the API's `budget`) and its stored spend, for the model proxy. */
function sessionBudget(
  host: SessionHost | undefined,
  owner: { tenant: string; id?: string | undefined },
): { limitUsd: number; spentUsd: number } | undefined {
  const record = host?.liveSessions.find(
    (s) => s.id === owner.id && s.snapshot.tenant === owner.tenant,
  )?.snapshot;
  const budget = record?.managed?.budget;
  return budget ? { limitUsd: budget.max_list_cost_cents / 100, spentUsd: record.usage.cost_usd } : undefined;
}

/**
 * What `openBerthCore` reports to when its caller gave nothing: a log as the config says, and spans to
 * the OTLP endpoint when one is configured (its `close` flushes and unregisters them).
 */
export async function defaultTelemetry(config: ServeConfig, log?: Logger): Promise<Telemetry> {
  const { logFormat, logLevel, otlpTracesUrl } = config.observe;
  return makeTelemetry({
    log: log ?? (await createLogger({ level: logLevel, ...(logFormat && { format: logFormat }) })),
    ...(await tracingParts(otlpTracesUrl, config.cluster?.hostId)),
  });
}
