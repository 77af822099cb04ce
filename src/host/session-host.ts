/**
 * The sessions of one host. It creates and finds sessions for the API, loads them back from the registry
 * after a restart (they come back `cold` and resume from the transcript store on their next turn), and
 * stops every subprocess when the host closes. It samples the RSS of each subprocess tree and applies the
 * recycling policy: soft limits at turn boundaries, the hard RSS limit on every sample.
 *
 * On-disk layout under the data dir:
 *   workspaces/<tenant>/<session id>/   the agent's cwd
 *   tenants/<tenant>/claude-config/     the tenant's CLAUDE_CONFIG_DIR
 *   tenants/<tenant>/home/              the tenant's HOME
 */
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';
import { ZERO_USAGE } from '../session/events.js';
import { SessionEventStream } from '../session/event-stream.js';
import { buildAgentEnv } from '../session/environment.js';
import { Session, newSdkSessionId, type SessionPaths, type SessionTimeouts } from '../session/session.js';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import { sweepMarkedProcesses, treeRssBytes } from '../sandbox/process-tree.js';
import { findLocalTranscript, reconcileTranscript } from '../stores/reconcile.js';
import { scopeTranscriptStore } from '../stores/scoped-store.js';
import { RecyclePolicy } from './recycle-policy.js';
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
}

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

  constructor(private readonly options: SessionHostOptions) {
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

  async create(tenant: string, input: CreateSessionInput): Promise<Session> {
    this.assertOpen();
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
      pattern: input.pattern ?? this.options.defaultPattern,
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
    const { session, paths } = this.instantiate(record, 0);
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
    await rm(this.pathsFor(record).cwd, { recursive: true, force: true });
  }

  /** Stops every subprocess, leaving sessions resumable (idempotent). */
  close(): Promise<void> {
    this.closing ??= (async () => {
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
  sweepOrphans(): Promise<number> {
    const prefix = `CLAUDE_CONFIG_DIR=${path.join(path.resolve(this.options.dataDir), 'tenants')}${path.sep}`;
    return sweepMarkedProcesses((env) => env.some((v) => v.startsWith(prefix)), {
      graceMs: this.options.timeouts.killGraceMs,
    });
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
    if (this.closing) throw new BerthError('not_ready', 'This host is shutting down');
  }

  pathsFor(record: Pick<SessionRecord, 'id' | 'tenant'>): SessionPaths {
    const dataDir = path.resolve(this.options.dataDir);
    return {
      cwd: path.join(dataDir, 'workspaces', record.tenant, record.id),
      configDir: path.join(dataDir, 'tenants', record.tenant, 'claude-config'),
      home: path.join(dataDir, 'tenants', record.tenant, 'home'),
    };
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

  private instantiate(record: SessionRecord, lastSeq: number): { session: Session; paths: SessionPaths } {
    const paths = this.pathsFor(record);
    const session = new Session({
      record,
      events: new SessionEventStream(sessionKey(record), this.options.eventLog, lastSeq),
      registry: this.options.registry,
      transcriptStore: scopeTranscriptStore(this.options.transcriptStore, record.tenant),
      paths,
      env: buildAgentEnv({
        modelEndpoint: this.options.modelEndpoint,
        apiKey: this.options.modelApiKey,
        configDir: paths.configDir,
        home: paths.home,
        path: this.options.agentPath,
      }),
      timeouts: this.options.timeouts,
      ...(this.options.createSpawner && { createSpawner: this.options.createSpawner }),
      ...(this.options.onError && { onError: this.options.onError }),
      onTurnEnd: (s) => this.onTurnEnd(s),
    });
    this.sessions.set(sessionKey(record), session);
    return { session, paths };
  }
}
