/**
 * The sessions of one host: it creates, finds, lists and deletes them for the API, loads them back from
 * the registry after a restart (they come back `cold` and resume from the transcript store on their next
 * turn), and wires the parts that manage their lifetimes, each in its own module:
 * - layout.ts: where everything lives under the data dir, and the agents' environment;
 * - admission.ts: the slots (sessions', spares' and tasks' subprocess trees) and making room;
 * - warm-pool.ts: prewarmed spares that a new session's first turn claims;
 * - recycler.ts: RSS sampling and the recycling policy;
 * - suspension.ts: suspending sessions (idle, for room, on drain) and hydrating them on their next turn;
 * - drain.ts: SIGTERM's graceful drain;
 * - host-state.ts: the host's own states (`ready | draining | closing | closed`);
 * - orphans.ts, restart-recovery.ts: what a host that died left (processes; a turn cut short);
 * - session-record.ts, host-info.ts: a new session's record; what `/v1/hosts/self` shows.
 * The data dir's lock (data-dir-lock.ts) is taken before a host is made (open-core.ts); `start` asks for
 * it, sweeps what an earlier host left, and only then starts the warm pool.
 */
import type { Options } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../errors.js';
import { createPlainSpawner, type CreateSpawner } from '../sandbox/plain-spawn.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { SessionEventStream } from '../session/event-stream.js';
import { makeTelemetry, type Telemetry } from '../observe/telemetry.js';
import { inSpan, recordingTracer } from '../observe/spans.js';
import { agentTelemetryEnv } from './agent-telemetry-env.js';
import { sessionTelemetry } from './session-telemetry.js';
import { removeSessionData } from './session-removal.js';
import { Session, type SessionPaths, type SessionTimeouts } from '../session/session.js';
import type { ClaimableSpare } from '../session/spare-claim.js';
import { scopeTranscriptStore } from '../stores/scoped-store.js';
import {
  sessionKey,
  type CompleteSessionStore,
  type EventLog,
  type ListPage,
  type Pattern,
  type SessionRecord,
  type SessionRef,
  type SessionRegistry,
} from '../stores/types.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import { Admission } from './admission.js';
import type { DataDirLock } from './data-dir-lock.js';
import { drainSessions, type DrainResult } from './drain.js';
import { hostInfo, type HostInfo } from './host-info.js';
import { HostLifecycle, type HostState } from './host-state.js';
import { DataDirLayout, TASK_SPARES, ensureDirs } from './layout.js';
import { killAllNow, sweepOrphans } from './orphans.js';
import { RecyclePolicy } from './recycle-policy.js';
import type { TenantLimitsTable } from './tenant-limits.js';
import { Recycler } from './recycler.js';
import { checkSessionId, newSessionRecord, type CreateSessionInput } from './session-record.js';
import type { HostSizing } from './sizing.js';
import { assertNetworkEnforced } from '../sandbox/spawn-owner.js';
import type { SessionLeases } from './session-leases.js';
import { loadSession } from './session-load.js';
import { fenceOff, stillOwned } from './session-fencing.js';
import { Suspension } from './suspension.js';
import { WarmPool, spareCanRun, type SpareEnvironment, type WarmPoolStats } from './warm-pool.js';

export type { CreateSessionInput } from './session-record.js';
export type { DrainResult } from './drain.js';
export type { HostInfo } from './host-info.js';
export type { HostState } from './host-state.js';

export interface SessionHostOptions {
  registry: SessionRegistry;
  eventLog: EventLog;
  /** The transcript store, with every method (removing a session deletes its transcript); scoped per tenant. */
  transcriptStore: CompleteSessionStore;
  dataDir: string;
  /** The Messages API the subprocesses use. */
  modelEndpoint: string;
  /** The API key the subprocesses send. */
  modelApiKey: string;
  /** `PATH` for the agents' tools. */
  agentPath: string;
  /** The pattern of sessions created without one. */
  defaultPattern: Pattern;
  timeouts: SessionTimeouts;
  /** The Agent SDK, for sessions and warm spares. @default sdkRuntime */
  runtime?: AgentRuntime;
  createSpawner?: CreateSpawner;
  /** Whether agents' `network.allowed_domains` are enforced (a sandbox); refused when they are not. */
  enforcesNetwork?: boolean;
  /**
   * Whether the pool keeps spares for tasks. A sandboxed host does not: a task spare serves any tenant's
   * task, so it could run neither as the task's tenant's uid nor with its directory inside. @default true
   */
  taskSpares?: boolean;
  /** Runs on a session's directories once they exist (the sandbox gives them to the tenant's uid). */
  prepareDirs?: ((tenant: string, paths: SessionPaths) => Promise<void>) | undefined;
  /** When subprocesses are recycled or killed for memory; none by default. */
  recyclePolicy?: RecyclePolicy;
  /** How often the RSS of every subprocess tree is sampled (only when a policy needs RSS). @default 5000 */
  rssSampleIntervalMs?: number;
  /** Failures that no client sees (a registry write that failed in the background). */
  onError?: (err: unknown) => void;
  /** Where sessions' logs, metrics and spans go (session-telemetry.ts). @default quiet */
  telemetry?: Telemetry;
  /** Agents' CLIs export their own telemetry to this OTLP endpoint (agent-telemetry-env.ts). @default none */
  agentTelemetry?: string | undefined;
  /** The sizing inputs, shown in the host's info. */
  sizing?: HostSizing;
  /** How many subprocess trees (sessions', warm spares' and tasks') may live at once. @default Infinity */
  capacity?: number;
  /**
   * The store keeps transcripts across subprocesses (anything but `memory:`), so an idle session may be
   * suspended to make room for another. @default false
   */
  canSuspend?: boolean;
  /** Hybrid sessions quiet for this long are suspended; 0 = never. @default 0 */
  idleTimeoutMs?: number;
  /** Workspace snapshots; without it sessions cannot be suspended or hydrated. */
  workspaces?: WorkspaceSync;
  /** Resolves once every transcript entry written so far is in the store (the mirror's drain). */
  flushTranscripts?: (signal: AbortSignal) => Promise<void>;
  /** Warm spares to keep. @default 0 */
  warmPoolSize?: number;
  /** Tenants the first spares are prewarmed for. @default ['default'] */
  warmPoolTenants?: readonly string[];
  /** Why this host cannot run hybrid sessions (its stores do not reach other hosts); unset when it can. */
  hybridUnavailable?: string;
  /** Per-tenant limits (`--tenant-limits`); the host enforces `live`. @default none */
  tenantLimits?: TenantLimitsTable;
  /** Multi-host mode: a session is run here only while this host holds its lease (session-leases.ts). */
  leases?: SessionLeases | undefined;
}

export class SessionHost {
  private readonly sessions = new Map<string, Session>();
  private readonly loading = new Map<string, Promise<Session | undefined>>();
  private readonly life = new HostLifecycle();
  private readonly layout: DataDirLayout;
  private readonly pool: WarmPool | undefined;
  private readonly admission: Admission;
  private readonly suspension: Suspension;
  private readonly recycler: Recycler;
  private draining: Promise<DrainResult> | undefined;
  private closing: Promise<void> | undefined;
  private started = false;
  readonly telemetry: Telemetry;
  /** Sessions created with extra process options (group agents), which a spare cannot carry. */
  private readonly customized = new WeakSet<Session>();

  constructor(private readonly options: SessionHostOptions) {
    this.telemetry = options.telemetry ?? makeTelemetry();
    this.layout = new DataDirLayout(options);
    const live = (): Iterable<Session> => this.sessions.values();
    const poolSize = options.warmPoolSize ?? 0;
    if (poolSize > 0) {
      this.pool = new WarmPool({
        size: poolSize,
        // Tenants' spares first; task spares when the pool has room for more than one kind.
        initialTenants: [
          ...(options.warmPoolTenants ?? ['default']),
          ...(options.taskSpares === false ? [] : [TASK_SPARES]),
        ],
        spareSetup: (tenant) => this.spareSetup(tenant),
        createSpawner:
          options.createSpawner ?? (() => createPlainSpawner({ killGraceMs: options.timeouts.killGraceMs })),
        hasRoom: () => this.admission.usedSlots() < this.admission.capacity,
        killGraceMs: options.timeouts.killGraceMs,
        ...(options.onError && { onError: options.onError }),
        ...(options.runtime && { runtime: options.runtime }),
      });
    }
    this.suspension = new Suspension({
      layout: this.layout,
      workspaces: options.workspaces,
      canSuspend: options.canSuspend ?? false,
      flushTranscripts: options.flushTranscripts,
      sessions: live,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      isReady: () => this.life.state === 'ready',
      onError: options.onError,
      // Suspended here, it may hydrate anywhere: the lease goes back.
      // Not while a message that arrived meanwhile runs, nor a group's agent (its group lives here).
      onSuspended:
        options.leases &&
        (async (s) => {
          if (s.currentState === 'suspended' && !s.isBusy && !this.customized.has(s)) {
            await options.leases!.release(s.snapshot);
          }
        }),
    });
    this.admission = new Admission({
      capacity: options.capacity ?? Infinity,
      pool: this.pool,
      taskSpares: options.taskSpares,
      sessions: live,
      assertOpen: () => this.life.assertAdmitting(),
      claimable: (s) => !this.customized.has(s) && spareCanRun(s.snapshot),
      suspend: this.suspension.available ? (s) => this.suspension.suspend(s, 'capacity') : undefined,
      storeKeepsTranscripts: options.canSuspend ?? false,
      tenantLimits: options.tenantLimits,
    });
    this.recycler = new Recycler({
      policy: options.recyclePolicy ?? new RecyclePolicy(),
      sampleIntervalMs: options.rssSampleIntervalMs ?? 5000,
      sessions: live,
      isStopping: () => this.life.state === 'closing' || this.life.state === 'closed',
      onError: options.onError,
    });
  }

  /** The host's state (see host-state.ts). */
  get state(): HostState {
    return this.life.state;
  }

  /** The last RSS sample of the session's current subprocess tree, in bytes. */
  lastRssBytes(session: Session): number | undefined {
    return this.recycler.lastRssBytes(session);
  }

  /** Live (in-memory) sessions, for health and tests. */
  get liveSessions(): readonly Session[] {
    return [...this.sessions.values()];
  }

  /** The warm pool's counters (zeros without a pool). */
  get warmPoolStats(): WarmPoolStats {
    return this.pool?.stats ?? { parked: 0, starting: 0, prewarmed: 0, claimed: 0, refused: 0, lost: 0 };
  }

  info(): HostInfo {
    return hostInfo({
      state: this.life.state,
      capacity: this.admission.capacity,
      sizing: this.options.sizing,
      slots: this.admission.counts(),
      sessions: this.liveSessions,
      warmPool: { size: this.options.warmPoolSize ?? 0, ...this.warmPoolStats },
    });
  }

  /**
   * Creates a session. `processOptions` adds SDK options to each of its subprocesses (a group's message
   * bus and shared directory); they live in this host's memory only.
   */
  async create(
    tenant: string,
    input: CreateSessionInput,
    extras: { processOptions?: () => Partial<Options> } = {},
  ): Promise<Session> {
    this.life.assertAdmitting();
    const pattern = input.pattern ?? this.options.defaultPattern;
    if (pattern === 'hybrid' && this.options.hybridUnavailable) {
      throw new BerthError(
        'invalid_request',
        `pattern hybrid is not available on this host: ${this.options.hybridUnavailable}`,
      );
    }
    assertNetworkEnforced(input.agent, this.options.enforcesNetwork);
    const record = newSessionRecord(tenant, input, pattern);
    const leases = this.options.leases;
    const claimed = await leases?.claim(record);
    // Within the tenant's `sessions` limit (admission.ts); nothing is stored over it.
    await this.admission.storeSession(record, this.options.registry).catch(async (err: unknown) => {
      // Only a lease this call took: an existing session's (session_exists) stays with its holder.
      if (claimed?.taken) await leases?.release(record);
      throw err;
    });
    leases?.bindTranscript(record, record.sdkSessionId);
    const { session, paths } = this.instantiate(record, 0, extras.processOptions);
    await this.makeDirs(record.tenant, paths);
    return session;
  }

  /** The tenant's session, loading it from the registry if this host has not seen it yet. */
  async get(tenant: string, id: string): Promise<Session> {
    checkSessionId(id);
    const ref = { tenant, id };
    let session = this.sessions.get(sessionKey(ref));
    // Multi-host: an object here runs only while no other host ran the session since it was made.
    const leases = this.options.leases;
    if (session && leases && !(await this.stillOwned(session, leases))) session = undefined;
    session ??= await this.load(ref);
    // Another tenant's session is simply not found: ids are per tenant, so none can leak.
    if (!session) {
      throw new BerthError('session_not_found', `No session ${JSON.stringify(id)}`);
    }
    return session;
  }

  async list(
    tenant: string,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<ListPage<SessionRecord>> {
    const result = await this.options.registry.list(tenant, page);
    // Live sessions know their status better than the registry's last background write.
    return { ...result, data: result.data.map((r) => this.sessions.get(sessionKey(r))?.snapshot ?? r) };
  }

  /** Terminates the session, then removes its record, events, transcript and working directory. */
  async delete(tenant: string, id: string): Promise<void> {
    const session = await this.get(tenant, id);
    const record = session.snapshot;
    await session.close('deleted');
    const { eventLog, registry, workspaces, leases } = this.options;
    await removeSessionData(record, {
      ...{ eventLog, registry, workspaces, leases, paths: this.pathsFor(record) },
      transcriptStore: scopeTranscriptStore(this.options.transcriptStore, tenant),
      forget: () => this.sessions.delete(sessionKey(record)),
    });
  }

  /**
   * Drains the host (`ready -> draining`; idempotent, see drain.ts): nothing new is admitted, running
   * turns get `graceMs` to finish, then every session is suspended. Throws once the host is closing.
   */
  drain(graceMs: number): Promise<DrainResult> {
    if (this.draining) return this.draining;
    this.life.to('draining');
    this.draining = drainSessions(
      {
        sessions: () => this.liveSessions,
        pool: this.pool,
        whenTasksDone: () => this.admission.whenTasksDone(),
        suspend: (s, reason) => this.suspension.suspend(s, reason),
        unsaved: async () => (await this.options.workspaces?.unsaved()) ?? [],
        load: (ref) => this.get(ref.tenant, ref.id),
        onError: this.options.onError,
      },
      graceMs,
    );
    return this.draining;
  }

  /** Stops every subprocess, leaving sessions resumable (`-> closing -> closed`; idempotent). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.life.to('closing');
      // Every step runs whatever the one before did.
      this.suspension.close();
      await this.pool?.close().catch((err: unknown) => this.options.onError?.(err));
      await this.recycler.close();
      await Promise.allSettled([...this.loading.values()]);
      await Promise.allSettled(this.liveSessions.map((s) => s.stopProcess('The host is shutting down.')));
      await Promise.allSettled(this.liveSessions.map((s) => s.events.flush()));
      this.life.to('closed');
    })();
    return this.closing;
  }

  /**
   * Starts the host's own subprocesses (the warm pool), after killing what an earlier host on this data
   * dir left running (see orphans.ts): in that order, or the sweep would take the new spares for orphans.
   * Call once, holding the data dir's lock; resolves to how many leftover processes were killed.
   */
  async start(lock: DataDirLock): Promise<number> {
    if (this.started) throw new Error('SessionHost.start: called twice');
    this.started = true;
    const killed = await sweepOrphans(this.layout, lock, { graceMs: this.options.timeouts.killGraceMs });
    this.pool?.fill();
    return killed;
  }

  /** SIGKILLs every process this host started, synchronously: for an exit that cannot wait. */
  killAllNow(): number {
    return killAllNow(this.layout);
  }

  /** Multi-host: another host took the session's lease over (see session-fencing.ts). */
  fenceOff(key: string): void {
    fenceOff(this.sessions, key, this.sessions.get(key), this.options.onError);
  }

  /**
   * Suspends a quiet session (suspension.ts): resolves false when it was not quiet, was made with extra
   * process options (a group's agent, which lives in this host's memory), or a step failed.
   */
  suspend(session: Session, reason: string): Promise<boolean> {
    if (this.customized.has(session)) return Promise.resolve(false);
    return this.suspension.suspend(session, reason);
  }

  /** A session's directories (see layout.ts). */
  pathsFor(record: Pick<SessionRecord, 'id' | 'tenant'> & { pattern?: Pattern }): SessionPaths {
    return this.layout.sessionPaths(record);
  }

  /** Fresh directories for one ephemeral task (see layout.ts); the caller removes `root` when it ends. */
  taskPaths(tenant: string, taskId: string): SessionPaths & { root: string } {
    return this.layout.taskPaths(tenant, taskId);
  }

  /** The subprocess environment for the given directories (see `buildAgentEnv`). */
  agentEnvFor(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string> {
    return this.layout.agentEnv(paths);
  }

  /**
   * A slot for an ephemeral task's subprocess (see admission.ts): room is made if it can be, else
   * `host_full` (or `quota_exceeded` at the tenant's `live` limit). Resolves to the release function (idempotent).
   */
  acquireSlot(tenant: string): Promise<() => void> {
    return this.admission.acquireSlot(tenant);
  }

  /**
   * A warm spare for an ephemeral task: prewarmed with a config dir and home of its own, which become the
   * task's. Undefined when none is parked (the task then starts with `query()`).
   */
  takeTaskSpare(): ClaimableSpare | undefined {
    return this.admission.takeTaskSpare();
  }

  /** Before a subprocess starts: nothing starts unless the host is ready; the workspace restored if it must be. */
  private async prepareStart(session: Session): Promise<void> {
    this.life.assertStarting();
    const leases = this.options.leases;
    if (leases && !(await this.stillOwned(session, leases))) {
      throw new BerthError('lease_lost', 'Another host ran this session since; send the message again');
    }
    const record = session.snapshot;
    const { workspaces } = this.options;
    const attributes = { 'berth.tenant': record.tenant, 'berth.session_id': record.id };
    const hydrate = () => workspaces!.prepare(record, this.pathsFor(record).cwd);
    if (workspaces) await inSpan(recordingTracer(this.telemetry), 'berth.hydrate', attributes, hydrate);
    // A restore takes seconds: the host may have begun draining or closing meanwhile.
    this.life.assertStarting();
  }

  /** A session's directories, made (and, sandboxed, given to its tenant's uid: a claimed spare writes there). */
  private async makeDirs(tenant: string, paths: SessionPaths): Promise<void> {
    await ensureDirs(paths);
    await this.options.prepareDirs?.(tenant, paths);
  }

  /** What a spare for `tenant` runs with: the same as a session's own spawn, minus the claimable part. */
  private async spareSetup(tenant: string): Promise<SpareEnvironment> {
    const { env: base, cwd, dirs } = await this.layout.spareEnvironment(tenant);
    const env = { ...base, ...agentTelemetryEnv(this.options.agentTelemetry, { tenant }) };
    // Task spares keep no transcript; a tenant's spare mirrors into the tenant's scope.
    if (dirs) return { env, cwd, dirs };
    return { env, cwd, transcriptStore: scopeTranscriptStore(this.options.transcriptStore, tenant) };
  }

  private stillOwned(session: Session, leases: SessionLeases): Promise<boolean> {
    return stillOwned(this.sessions, session, leases, this.options.onError);
  }

  private load(ref: SessionRef): Promise<Session | undefined> {
    const key = sessionKey(ref);
    let loading = this.loading.get(key);
    if (!loading) {
      const { registry, eventLog, transcriptStore, leases, workspaces, onError } = this.options;
      loading = loadSession(ref, {
        ...{ registry, eventLog, transcriptStore, leases, workspaces, onError },
        instantiate: (record, lastSeq) => this.instantiate(record, lastSeq),
        makeDirs: (tenant, paths) => this.makeDirs(tenant, paths),
      })
        .catch((err: unknown) => {
          // Half loaded (its restart recovery failed): the next request loads it again.
          this.sessions.delete(key);
          throw err;
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, loading);
    }
    return loading;
  }

  private instantiate(
    record: SessionRecord,
    lastSeq: number,
    processOptions?: () => Partial<Options>,
  ): { session: Session; paths: SessionPaths } {
    const paths = this.pathsFor(record);
    const seen = sessionTelemetry(this.telemetry, record);
    const session = new Session({
      record,
      events: new SessionEventStream(sessionKey(record), this.options.eventLog, lastSeq),
      registry: this.options.registry,
      transcriptStore: scopeTranscriptStore(this.options.transcriptStore, record.tenant),
      paths,
      env: { ...this.layout.agentEnv(paths), ...agentTelemetryEnv(this.options.agentTelemetry, record) },
      timeouts: this.options.timeouts,
      runtime: this.options.runtime,
      createSpawner: this.options.createSpawner,
      // The session's own log, with its tenant and id; else whatever the host reports to.
      onError: this.options.telemetry ? seen.onError : this.options.onError,
      observer: seen.observer,
      onTurnEnd: (s) => this.recycler.onTurnEnd(s),
      admit: (s, needsSlot) => this.admission.admit(s, needsSlot),
      prepareStart: (s) => this.prepareStart(s),
      claimSpare: (s) => this.admission.claimSpare(s),
      processOptions,
    });
    session.events.subscribe(seen.onEvent);
    if (processOptions) this.customized.add(session);
    this.options.leases?.bindObject(session, record);
    this.sessions.set(sessionKey(record), session);
    return { session, paths };
  }
}
