/**
 * The sessions of one host. It creates and finds sessions for the API, loads them back from the registry
 * after a restart (they come back `cold` and resume from the transcript store on their next turn), and
 * stops every subprocess when the host closes. It also manages their lifetimes:
 * - admission: at most `capacity` subprocess trees (sessions' and warm spares') at once, the sizing
 *   formula's answer; when full, a parked spare is given up, else the least recently used idle session is
 *   suspended (if the store keeps transcripts), else the message is refused with `503 host_full`;
 * - recycling: it samples the RSS of each subprocess tree and applies the recycling policy (soft limits
 *   at turn boundaries, the hard RSS limit on every sample);
 * - idle suspend and hydrate: hybrid sessions idle past the idle timeout are suspended (transcript
 *   durable, workspace snapshotted, subprocess closed); the next message restores the workspace if this
 *   host's copy is not the latest and resumes;
 * - the warm pool: a new session's first turn claims a prewarmed spare when one fits;
 * - drain: no new work, running turns get a grace period, then every session is suspended.
 *
 * On-disk layout under the data dir:
 *   workspaces/<tenant>/<session id>/   the agent's cwd
 *   tenants/<tenant>/claude-config/     the tenant's CLAUDE_CONFIG_DIR
 *   tenants/<tenant>/home/              the tenant's HOME
 */
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Options, SessionStore } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';
import { ZERO_USAGE } from '../session/events.js';
import { SessionEventStream } from '../session/event-stream.js';
import { buildAgentEnv } from '../session/environment.js';
import { Session, newSdkSessionId, type SessionPaths, type SessionTimeouts } from '../session/session.js';
import type { ClaimableSpare } from '../session/spare-claim.js';
import { createPlainSpawner, type SpawnedTree } from '../sandbox/plain-spawn.js';
import { killMarkedProcessesNow, sweepMarkedProcesses, treeRssBytes } from '../sandbox/process-tree.js';
import { findLocalTranscript, reconcileTranscript } from '../stores/reconcile.js';
import { scopeTranscriptStore } from '../stores/scoped-store.js';
import { RecyclePolicy } from './recycle-policy.js';
import type { HostSizing } from './sizing.js';
import { WarmPool, type WarmPoolStats } from './warm-pool.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import {
  sessionKey,
  type AgentConfig,
  type EventLog,
  type ListPage,
  type Pattern,
  type SessionRecord,
  type SessionRef,
  type SessionRegistry,
} from '../stores/types.js';

export interface SessionHostOptions {
  registry: SessionRegistry;
  eventLog: EventLog;
  /** The transcript store; the host gives each tenant its own scope of it. */
  transcriptStore: SessionStore;
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
  createSpawner?: () => SpawnedTree;
  /** When subprocesses are recycled or killed for memory; none by default. */
  recyclePolicy?: RecyclePolicy;
  /** How often the RSS of every subprocess tree is sampled (only when a policy needs RSS). @default 5000 */
  rssSampleIntervalMs?: number;
  /** Failures that no client sees (a registry write that failed in the background). */
  onError?: (err: unknown) => void;
  /** The sizing inputs, shown in the host's info. */
  sizing?: HostSizing;
  /** How many subprocess trees (sessions' and warm spares') may live at once. @default Infinity */
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
}

/** What `GET /v1/hosts/self` and `/readyz` show. */
export interface HostInfo {
  status: 'ready' | 'draining';
  capacity: {
    agents_per_host: number | null;
    host_ram_bytes: number | null;
    overhead_bytes: number | null;
    session_ceiling_bytes: number | null;
  };
  /** Subprocess trees held: sessions with a subprocess (or about to start one) and warm spares. */
  slots: { used: number; sessions: number; spares: number; tasks: number; free: number | null };
  sessions: { loaded: number; running: number; suspended: number };
  warm_pool: WarmPoolStats & { size: number };
}

/** How long a transcript flush may take before a suspension gives up (the entries stay spooled). */
const FLUSH_TIMEOUT_MS = 10_000;
/** What a refused client is told to wait before trying again. */
const HOST_FULL_RETRY_AFTER_S = 5;
/** Sessions suspended at once while draining. */
const DRAIN_CONCURRENCY = 4;

/** The warm pool's key for spares that ephemeral tasks claim (not a valid tenant id, so never one). */
const TASK_SPARES = '_tasks';

/** Directories a spare was prewarmed with, which the claimer takes over. */
interface SparedDirs {
  root: string;
  configDir: string;
  home: string;
}

/** Agent configs a claim can carry in full (the rest is fixed when a spare is prewarmed). */
const CLAIMABLE_AGENT_KEYS: ReadonlySet<string> = new Set(['model', 'permission_mode']);

export interface CreateSessionInput {
  id?: string | undefined;
  title?: string | undefined;
  metadata?: Record<string, string> | undefined;
  pattern?: Pattern | undefined;
  agent?: AgentConfig | undefined;
}

async function ensureDirs(paths: SessionPaths): Promise<void> {
  await Promise.all([paths.cwd, paths.configDir, paths.home].map((dir) => mkdir(dir, { recursive: true })));
}

function newSessionId(): string {
  return `sess_${randomBytes(15).toString('base64url')}`;
}

export interface DrainResult {
  suspended: number;
  failed: number;
  /** Turns still running at the end of the grace period, whose subprocesses were stopped. */
  stoppedTurns: number;
}

/** The last RSS sample of a session's subprocess tree, tied to that subprocess by its leader pid. */
interface RssSample {
  leaderPid: number;
  bytes: number;
}

export class SessionHost {
  private readonly sessions = new Map<string, Session>();
  private readonly loading = new Map<string, Promise<Session | undefined>>();
  private closing: Promise<void> | undefined;
  private readonly policy: RecyclePolicy;
  private readonly rss = new WeakMap<Session, RssSample>();
  private readonly sampleTimer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private readonly capacity: number;
  private readonly pool: WarmPool | undefined;
  private readonly idleTimer: NodeJS.Timeout | undefined;
  private draining: Promise<DrainResult> | undefined;
  /** Slots held by subprocesses that are not sessions' (ephemeral tasks). */
  private extraSlots = 0;
  /** Sessions created with extra process options (group agents), which a spare cannot carry. */
  private readonly customized = new WeakSet<Session>();

  constructor(private readonly options: SessionHostOptions) {
    this.capacity = options.capacity ?? Infinity;
    const poolSize = options.warmPoolSize ?? 0;
    if (poolSize > 0) {
      this.pool = new WarmPool({
        size: poolSize,
        // Tenants' spares first; task spares when the pool has room for more than one kind.
        initialTenants: [...(options.warmPoolTenants ?? ['default']), TASK_SPARES],
        spareOptions: (tenant) => this.spareOptions(tenant),
        createSpawner: options.createSpawner ?? createPlainSpawner,
        hasRoom: () => this.usedSlots() < this.capacity,
        killGraceMs: options.timeouts.killGraceMs,
        ...(options.onError && { onError: options.onError }),
      });
      this.pool.fill();
    }
    const idle = options.idleTimeoutMs ?? 0;
    if (idle > 0 && options.workspaces && options.canSuspend) {
      this.idleTimer = setInterval(() => this.suspendIdle(idle), Math.min(5000, Math.max(100, idle / 4)));
      this.idleTimer.unref();
    }
    this.policy = options.recyclePolicy ?? new RecyclePolicy();
    if (this.policy.needsRss) {
      this.sampleTimer = setInterval(() => {
        this.sampling ??= this.sampleAll().finally(() => (this.sampling = undefined));
      }, options.rssSampleIntervalMs ?? 5000);
      this.sampleTimer.unref();
    }
  }

  /** The last RSS sample of the session's current subprocess tree, in bytes. */
  lastRssBytes(session: Session): number | undefined {
    const sample = this.rss.get(session);
    const leaderPid = session.processInfo?.tree?.leaderPid;
    return sample && sample.leaderPid === leaderPid ? sample.bytes : undefined;
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
    const sizing = this.options.sizing;
    const sessions = this.liveSessions;
    const sessionSlots = sessions.filter((s) => s.holdsSlot).length;
    const spares = this.pool?.trees ?? 0;
    const tasks = this.extraSlots;
    const finite = Number.isFinite(this.capacity);
    return {
      status: this.draining || this.closing ? 'draining' : 'ready',
      capacity: {
        agents_per_host: finite ? this.capacity : null,
        host_ram_bytes: sizing?.hostRamBytes ?? null,
        overhead_bytes: sizing?.overheadBytes ?? null,
        session_ceiling_bytes: sizing?.sessionCeilingBytes ?? null,
      },
      slots: {
        used: sessionSlots + spares + tasks,
        sessions: sessionSlots,
        spares,
        tasks,
        free: finite ? Math.max(0, this.capacity - sessionSlots - spares - tasks) : null,
      },
      sessions: {
        loaded: sessions.length,
        running: sessions.filter((s) => s.isBusy).length,
        suspended: sessions.filter((s) => s.currentState === 'suspended').length,
      },
      warm_pool: { size: this.options.warmPoolSize ?? 0, ...this.warmPoolStats },
    };
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
    this.assertOpen();
    const pattern = input.pattern ?? this.options.defaultPattern;
    if (pattern === 'hybrid' && this.options.hybridUnavailable) {
      throw new BerthError(
        'invalid_request',
        `pattern hybrid is not available on this host: ${this.options.hybridUnavailable}`,
      );
    }
    const id = input.id ?? newSessionId();
    if (!ID_PATTERN.test(id)) {
      throw new BerthError(
        'invalid_session_id',
        `${JSON.stringify(id.slice(0, 80))} is not a session id: ids match ${ID_PATTERN.source}`,
      );
    }
    const now = Date.now();
    const record: SessionRecord = {
      id,
      tenant,
      title: input.title ?? null,
      metadata: input.metadata ?? {},
      pattern,
      agent: input.agent ?? {},
      status: 'idle',
      sdkSessionId: newSdkSessionId(),
      started: false,
      createdAt: now,
      updatedAt: now,
      usage: { ...ZERO_USAGE },
      turns: 0,
    };
    await this.options.registry.create(record);
    const { session, paths } = this.instantiate(record, 0, extras.processOptions);
    await ensureDirs(paths);
    return session;
  }

  /** The tenant's session, loading it from the registry if this host has not seen it yet. */
  async get(tenant: string, id: string): Promise<Session> {
    if (!ID_PATTERN.test(id)) {
      throw new BerthError(
        'invalid_session_id',
        `${JSON.stringify(id.slice(0, 80))} is not a session id: ids match ${ID_PATTERN.source}`,
      );
    }
    const ref = { tenant, id };
    const session = this.sessions.get(sessionKey(ref)) ?? (await this.load(ref));
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
    const ref = { tenant, id };
    this.sessions.delete(sessionKey(ref));
    const store = scopeTranscriptStore(this.options.transcriptStore, tenant);
    await store.delete?.({ projectKey: tenant, sessionId: record.sdkSessionId });
    await this.options.eventLog.deleteSession(sessionKey(ref));
    await this.options.registry.delete(ref);
    await this.options.workspaces?.remove(ref);
    const paths = this.pathsFor(record);
    await rm(paths.cwd, { recursive: true, force: true });
    if (record.pattern === 'multi-agent') {
      // A multi-agent session's config dir and home are its own (see pathsFor), so they go with it.
      await rm(path.dirname(paths.configDir), { recursive: true, force: true });
    }
  }

  /**
   * Drains the host (idempotent): no new sessions or turns are admitted, running turns get `graceMs` to
   * finish (then their subprocesses are stopped), and every session is suspended: transcript durable,
   * workspace snapshotted, subprocess closed. Sessions this host ran before a restart and never
   * snapshotted are loaded and suspended too. A later host hydrates them all.
   */
  drain(graceMs: number): Promise<DrainResult> {
    this.draining ??= this.doDrain(graceMs);
    return this.draining;
  }

  private async doDrain(graceMs: number): Promise<DrainResult> {
    await this.pool?.close();
    const deadline = Date.now() + graceMs;
    // Running tasks hold slots of their own; they get the same grace as turns.
    const busy = (): boolean => this.extraSlots > 0 || this.liveSessions.some((s) => s.isBusy);
    while (Date.now() < deadline && busy()) await sleep(50);
    const running = this.liveSessions.filter((s) => s.isBusy);
    await Promise.allSettled(
      running.map((s) => s.stopProcess('The host is draining and the turn ran past the grace period.')),
    );
    // Stopped turns end asynchronously; the queue of each is dropped by admission (host_draining).
    const settle = Date.now() + 2000;
    while (Date.now() < settle && this.liveSessions.some((s) => s.isBusy)) await sleep(20);
    for (const ref of (await this.options.workspaces?.unsaved()) ?? []) {
      await this.get(ref.tenant, ref.id).catch((err: unknown) => this.options.onError?.(err));
    }
    const result: DrainResult = { suspended: 0, failed: 0, stoppedTurns: running.length };
    const sessions = this.liveSessions.filter((s) => s.currentState === 'idle' || s.currentState === 'cold');
    for (let i = 0; i < sessions.length; i += DRAIN_CONCURRENCY) {
      const batch = sessions.slice(i, i + DRAIN_CONCURRENCY);
      const outcomes = await Promise.all(batch.map((s) => this.suspend(s, 'host_draining')));
      for (const ok of outcomes) {
        if (ok) result.suspended += 1;
        else result.failed += 1;
      }
    }
    await Promise.allSettled(this.liveSessions.map((s) => s.events.flush()));
    return result;
  }

  /** Stops every subprocess, leaving sessions resumable (idempotent). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.idleTimer);
      await this.pool?.close();
      clearInterval(this.sampleTimer);
      await this.sampling;
      await Promise.allSettled([...this.loading.values()]);
      await Promise.allSettled(this.liveSessions.map((s) => s.stopProcess('The host is shutting down.')));
      await Promise.allSettled(this.liveSessions.map((s) => s.events.flush()));
    })();
    return this.closing;
  }

  /**
   * Kills subprocesses that an earlier host on this data dir left behind (it was SIGKILLed, or crashed),
   * recognised by a config dir under this data dir. Call once at start, before any session runs.
   */
  async sweepOrphans(): Promise<number> {
    const killed = await sweepMarkedProcesses((env) => this.startedHere(env), {
      graceMs: this.options.timeouts.killGraceMs,
    });
    // Task spares' directories belong to spares, and no spare outlives its host.
    await rm(path.join(path.resolve(this.options.dataDir), 'tenants', TASK_SPARES), {
      recursive: true,
      force: true,
    });
    return killed;
  }

  /** SIGKILLs every process this host started, synchronously: for an exit that cannot wait. */
  killAllNow(): number {
    return killMarkedProcessesNow((env) => this.startedHere(env));
  }

  /** Whether an environment is one this host gave a subprocess: a config dir under its data dir. */
  private startedHere(env: readonly string[]): boolean {
    const prefix = `CLAUDE_CONFIG_DIR=${path.join(path.resolve(this.options.dataDir), 'tenants')}${path.sep}`;
    return env.some((v) => v.startsWith(prefix));
  }

  /**
   * Tells a session's clients, once per outage, that its transcript entries wait on this host because the
   * store is not accepting them. Keys are the transcript store's: the tenant and the SDK session id.
   */
  reportMirrorDelay(tenant: string, sdkSessionId: string, cause: unknown): void {
    const session = this.liveSessions.find(
      (s) => s.snapshot.tenant === tenant && s.snapshot.sdkSessionId === sdkSessionId,
    );
    session?.events.emit({
      type: 'session.error',
      error: {
        type: 'mirror_delayed',
        message: `Mirroring to the transcript store is delayed (${describeError(cause)}); entries are kept on this host and shipped when the store is back.`,
      },
    });
  }

  /** One pass over the live subprocess trees; /proc is read one tree at a time to keep the pass cheap. */
  private async sampleAll(): Promise<void> {
    for (const session of this.liveSessions) {
      if (this.closing) return;
      const tree = session.processInfo?.tree;
      if (!tree) continue;
      try {
        const bytes = await treeRssBytes(tree);
        // The subprocess may have been replaced while /proc was read: the sample is then of nothing live.
        if (session.processInfo?.tree?.leaderPid !== tree.leaderPid) continue;
        this.rss.set(session, { leaderPid: tree.leaderPid, bytes });
        const state = session.currentState;
        const over = this.policy.overHardLimit(bytes);
        if (over && (state === 'running' || state === 'requires_action')) {
          // Not awaited: the kill's grace period must not hold up the other sessions' samples.
          session
            .killProcess(
              'hard_rss_exceeded',
              `The agent's subprocess was killed mid-turn: ${over}. The next message resumes the conversation in a new subprocess.`,
            )
            .catch((err: unknown) => this.options.onError?.(err));
        }
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }

  /** At a turn boundary: recycles the subprocess when a soft limit is crossed. */
  private onTurnEnd(session: Session): void {
    const info = session.processInfo;
    if (!info || this.closing) return;
    const reason = this.policy.atTurnBoundary({
      turnsSinceSpawn: info.turnsSinceSpawn,
      rssBytes: this.lastRssBytes(session),
      ageMs: Date.now() - info.spawnedAt,
    });
    if (reason) session.recycle(reason).catch((err: unknown) => this.options.onError?.(err));
  }

  private assertOpen(): void {
    if (this.draining) {
      throw new BerthError('host_draining', 'This host is draining; send the request to another host', {
        retryAfterSeconds: 1,
      });
    }
    if (this.closing) throw new BerthError('not_ready', 'This host is shutting down');
  }

  /** Subprocess trees held or being started: sessions' and spares'. */
  private usedSlots(except?: Session): number {
    let used = (this.pool?.trees ?? 0) + this.extraSlots;
    for (const s of this.sessions.values()) if (s !== except && s.holdsSlot) used += 1;
    return used;
  }

  /**
   * Admission for a session's messages (see `SessionOptions.admit`). With room, or a spare the session
   * will claim, it is admitted at once; when full, a parked spare is given up, else the least recently
   * used quiet session is suspended and the new turn waits for its subprocess to end. Otherwise: 503.
   */
  private admit(session: Session, needsSlot: boolean): Promise<void> | undefined {
    this.assertOpen();
    if (!needsSlot || this.usedSlots(session) < this.capacity) return undefined;
    if (this.pool && this.claimable(session) && this.pool.has(session.snapshot.tenant)) return undefined;
    const evicted = this.pool?.evictOne();
    if (evicted) return evicted;
    const victim = this.options.canSuspend && this.options.workspaces ? this.lruQuiet(session) : undefined;
    if (victim) {
      return this.suspend(victim, 'capacity').then(() => undefined);
    }
    throw this.hostFull();
  }

  private hostFull(): BerthError {
    return new BerthError(
      'host_full',
      `This host runs ${this.capacity} agent subprocess(es), its capacity, and none of them is idle${
        this.options.canSuspend ? '' : ' and suspendable (the store does not keep transcripts)'
      }; try again shortly or on another host`,
      { retryAfterSeconds: HOST_FULL_RETRY_AFTER_S },
    );
  }

  private lruQuiet(except?: Session): Session | undefined {
    let best: Session | undefined;
    for (const s of this.sessions.values()) {
      if (s === except || !s.holdsSlot || !s.isQuiet) continue;
      if (!best || s.lastActiveAt < best.lastActiveAt) best = s;
    }
    return best;
  }

  /** Suspends a quiet session: its transcript durable in the store, its workspace snapshotted. */
  private suspend(session: Session, reason: string): Promise<boolean> {
    const workspaces = this.options.workspaces;
    if (!workspaces) return Promise.resolve(false);
    const record = session.snapshot;
    return session.suspend(reason, async () => {
      await session.events.flush();
      await this.options.flushTranscripts?.(AbortSignal.timeout(FLUSH_TIMEOUT_MS));
      await workspaces.save(record, this.pathsFor(record).cwd);
    });
  }

  private suspendIdle(idleMs: number): void {
    if (this.draining || this.closing) return;
    const cutoff = Date.now() - idleMs;
    for (const s of this.sessions.values()) {
      if (s.snapshot.pattern !== 'hybrid' || !s.isQuiet || s.lastActiveAt > cutoff) continue;
      this.suspend(s, 'idle_timeout').catch((err: unknown) => this.options.onError?.(err));
    }
  }

  /** Before a subprocess starts: no new work while draining; the workspace restored if it must be. */
  private async prepareStart(session: Session): Promise<void> {
    if (this.draining) {
      throw new BerthError('host_draining', 'This host is draining; the message runs on the next host');
    }
    const record = session.snapshot;
    await this.options.workspaces?.prepare(record, this.pathsFor(record).cwd);
  }

  /** Whether a claimed spare can run this session exactly as `query()` would. */
  private claimable(session: Session): boolean {
    const record = session.snapshot;
    return (
      !record.started &&
      !this.customized.has(session) &&
      Object.keys(record.agent).every((k) => CLAIMABLE_AGENT_KEYS.has(k))
    );
  }

  private claimSpare(session: Session): ClaimableSpare | undefined {
    return this.pool && this.claimable(session) ? this.pool.take(session.snapshot.tenant) : undefined;
  }

  /** What a spare for `tenant` runs with: the same as `Session`'s own spawn, minus the claimable part. */
  private async spareOptions(tenant: string): Promise<{ options: Options; dirs?: SparedDirs }> {
    if (tenant === TASK_SPARES) {
      // A task gets a config dir of its own; the spare's becomes that task's. Tasks keep no transcript.
      const root = path.join(path.resolve(this.options.dataDir), 'tenants', TASK_SPARES, randomUUID());
      const dirs = { root, configDir: path.join(root, 'claude-config'), home: path.join(root, 'home') };
      await ensureDirs({ ...dirs, cwd: root });
      return { options: { env: this.agentEnv(dirs), settingSources: [] }, dirs };
    }
    const paths = this.pathsFor({ tenant, id: 'spare' });
    await ensureDirs({ ...paths, cwd: paths.configDir });
    return {
      options: {
        env: this.agentEnv(paths),
        settingSources: [],
        sessionStore: scopeTranscriptStore(this.options.transcriptStore, tenant),
      },
    };
  }

  private agentEnv(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string> {
    return buildAgentEnv({
      modelEndpoint: this.options.modelEndpoint,
      apiKey: this.options.modelApiKey,
      configDir: paths.configDir,
      home: paths.home,
      path: this.options.agentPath,
    });
  }

  /**
   * A session's directories. Sessions of a tenant share its config dir and home, except multi-agent
   * sessions: agents sharing a container must not share those, so each gets its own.
   */
  pathsFor(record: Pick<SessionRecord, 'id' | 'tenant'> & { pattern?: Pattern }): SessionPaths {
    const dataDir = path.resolve(this.options.dataDir);
    const own =
      record.pattern === 'multi-agent'
        ? path.join(dataDir, 'tenants', record.tenant, 'agents', record.id)
        : path.join(dataDir, 'tenants', record.tenant);
    return {
      cwd: path.join(dataDir, 'workspaces', record.tenant, record.id),
      configDir: path.join(own, 'claude-config'),
      home: path.join(own, 'home'),
    };
  }

  /**
   * Fresh directories for one ephemeral task (its cwd, config dir and home), under the tenant's tree so
   * that the host's orphan sweep covers its processes. The caller removes `root` when the task ends.
   */
  taskPaths(tenant: string, taskId: string): SessionPaths & { root: string } {
    const root = path.join(path.resolve(this.options.dataDir), 'tenants', tenant, 'tasks', taskId);
    return {
      root,
      cwd: path.join(root, 'work'),
      configDir: path.join(root, 'claude-config'),
      home: path.join(root, 'home'),
    };
  }

  /** The subprocess environment for the given directories (see `buildAgentEnv`). */
  agentEnvFor(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string> {
    return this.agentEnv(paths);
  }

  /**
   * A slot for a subprocess that is not a session's (an ephemeral task's), admitted like a session's
   * first turn: room is made if it can be, else `host_full`. Resolves to the release function (idempotent).
   */
  async acquireSlot(): Promise<() => void> {
    this.assertOpen();
    let wait: Promise<void> | undefined;
    if (this.usedSlots() >= this.capacity) {
      wait = this.pool?.evictOne();
      if (!wait) {
        const victim = this.options.canSuspend && this.options.workspaces ? this.lruQuiet() : undefined;
        if (!victim) throw this.hostFull();
        wait = this.suspend(victim, 'capacity').then(() => undefined);
      }
    }
    this.extraSlots += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.extraSlots -= 1;
      this.pool?.fill();
    };
    try {
      await wait;
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * A warm spare for an ephemeral task: prewarmed with a config dir and home of its own, which become the
   * task's. Undefined when none is parked (the task then starts with `query()`).
   */
  takeTaskSpare(): ClaimableSpare | undefined {
    return this.pool?.take(TASK_SPARES);
  }

  private load(ref: SessionRef): Promise<Session | undefined> {
    const key = sessionKey(ref);
    let loading = this.loading.get(key);
    if (!loading) {
      loading = (async () => {
        const record = await this.options.registry.get(ref);
        if (!record) return undefined;
        const lastSeq = await this.options.eventLog.lastSeq(key);
        const { session, paths } = this.instantiate(record, lastSeq);
        // This host may never have run the session: its directories are made here, the same on every host.
        await ensureDirs(paths);
        if (record.status === 'suspended') {
          // A client that loads a suspended session is about to use it: start the download now.
          this.options.workspaces
            ?.fetch(record, paths.cwd)
            .catch((err: unknown) => this.options.onError?.(err));
        }
        if (record.status === 'running' || record.status === 'requires_action') {
          // The host that ran this turn is gone; the turn is over, the session is not. What its subprocess
          // wrote locally but the SDK never mirrored goes to the store first, if this is that host.
          const file = await findLocalTranscript(paths.configDir, record.sdkSessionId);
          if (file) {
            const store = scopeTranscriptStore(this.options.transcriptStore, record.tenant);
            await reconcileTranscript(file, store, {
              projectKey: record.tenant,
              sessionId: record.sdkSessionId,
            }).catch((err: unknown) => this.options.onError?.(err));
          }
          session.events.emit(
            {
              type: 'session.error',
              error: { type: 'host_restarted', message: 'The host restarted during this turn.' },
            },
            { type: 'session.status_idle', stop_reason: { type: 'error', subtype: 'host_restarted' } },
          );
          await this.options.registry.update(ref, { status: 'idle' });
        }
        return session;
      })().finally(() => this.loading.delete(key));
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
    const session = new Session({
      record,
      events: new SessionEventStream(sessionKey(record), this.options.eventLog, lastSeq),
      registry: this.options.registry,
      transcriptStore: scopeTranscriptStore(this.options.transcriptStore, record.tenant),
      paths,
      env: this.agentEnv(paths),
      timeouts: this.options.timeouts,
      ...(this.options.createSpawner && { createSpawner: this.options.createSpawner }),
      ...(this.options.onError && { onError: this.options.onError }),
      onTurnEnd: (s) => this.onTurnEnd(s),
      admit: (s, needsSlot) => this.admit(s, needsSlot),
      prepareStart: (s) => this.prepareStart(s),
      claimSpare: (s) => this.claimSpare(s),
      ...(processOptions && { processOptions }),
    });
    if (processOptions) this.customized.add(session);
    this.sessions.set(sessionKey(record), session);
    return { session, paths };
  }
}
