/**
 * One Berth session: a state machine around one SDK `query()` in streaming-input mode.
 *
 * The subprocess is started on the first turn and held open across turns; if it goes away (killed after
 * a stuck interrupt, crashed, host restarted) the session goes `cold` and the next turn starts a new one
 * that resumes the transcript from the SessionStore. Turns run one at a time: user messages queue here,
 * and each is handed to the SDK only after the previous turn's `result`, so the CLI never merges them.
 *
 * The host may also retire a subprocess on purpose (see `recycle` and `killProcess`): the process is
 * detached from the session at once, and a turn that starts while it is still ending waits for it, so two
 * subprocesses of one session never write its transcript together.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  query,
  type CanUseTool,
  type Options,
  type PermissionResult,
  type Query,
  type SDKMessage,
  type SDKResultMessage,
  type SDKUserMessage,
  type SessionStore,
} from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError, isBerthError } from '../errors.js';
import { createPlainSpawner, type SpawnedTree } from '../sandbox/plain-spawn.js';
import type { ProcessTreeId } from '../sandbox/process-tree.js';
import type { SessionRecord, SessionRegistry, SessionStatus } from '../stores/types.js';
import { addUsage, type ContentBlock, type NewEvent, type StoredEvent, type StopReason } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import { InputQueue } from './input-queue.js';
import { mapSdkMessage, resultStopReason, resultUsage } from './map-sdk-message.js';
import { claimSpare, type ClaimableSpare } from './spare-claim.js';

/**
 * - `cold`: no subprocess; the next turn starts one (resuming the transcript if there is one).
 * - `idle`: a subprocess is alive and waiting for input. Recycling it (a soft limit crossed at a turn
 *   boundary) is `idle -> cold`.
 * - `running`: a turn is in progress. A subprocess killed mid-turn (it crashed, an interrupt did not
 *   settle, the hard RSS limit) ends the turn with an error: `running -> cold`.
 * - `requires_action`: a turn is paused until a client answers a tool confirmation.
 * - `suspended`: no subprocess, the transcript is durable in the store and the workspace is in the blob
 *   store (`cold -> suspended` once both are). The next turn hydrates it, on this host or another one.
 *   A turn whose hydration failed goes back to `suspended`.
 * - `closed`: terminated; nothing runs and nothing is accepted.
 */
export type SessionState = 'cold' | 'idle' | 'running' | 'requires_action' | 'suspended' | 'closed';

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  cold: ['running', 'suspended', 'closed'],
  idle: ['running', 'cold', 'closed'],
  running: ['idle', 'requires_action', 'cold', 'suspended', 'closed'],
  requires_action: ['running', 'cold', 'closed'],
  suspended: ['running', 'closed'],
  closed: [],
};

/** The status clients see for each state. */
const PUBLIC_STATUS: Record<SessionState, SessionStatus> = {
  cold: 'idle',
  idle: 'idle',
  running: 'running',
  requires_action: 'requires_action',
  suspended: 'suspended',
  closed: 'terminated',
};

/** User messages that may wait for their turn; more is a client out of control, not a conversation. */
export const MAX_QUEUED_MESSAGES = 100;

export interface SessionPaths {
  /** The agent's working directory; also what the SDK derives the transcript's projectKey from. */
  cwd: string;
  /** The tenant's `CLAUDE_CONFIG_DIR`. */
  configDir: string;
  /** The tenant's `HOME` for the subprocess. */
  home: string;
}

export interface SessionTimeouts {
  /** How long a tool confirmation may wait for the client before it is a deny. */
  confirmationMs: number;
  /** How long an interrupt may take to end the turn before the subprocess is killed. */
  interruptMs: number;
  /** SIGTERM-to-SIGKILL grace when a subprocess tree is killed. */
  killGraceMs: number;
}

export interface SessionOptions {
  record: SessionRecord;
  events: SessionEventStream;
  registry: SessionRegistry;
  /** The transcript store, already scoped to this session's tenant. */
  transcriptStore: SessionStore;
  paths: SessionPaths;
  /** The complete subprocess environment (see `buildAgentEnv`). */
  env: Record<string, string>;
  timeouts: SessionTimeouts;
  /** Makes the spawner of each subprocess; the plain one by default. */
  createSpawner?: () => SpawnedTree;
  /** Where failures that no client can see are reported. */
  onError?: (err: unknown) => void;
  /**
   * Called when a turn has ended and the subprocess is alive and idle: the turn boundary at which the host
   * may {@link Session.recycle} it. Runs before the next queued turn starts.
   */
  onTurnEnd?: (session: Session) => void;
  /**
   * Asked, synchronously, before user messages are accepted: `needsSlot` is true when the session holds
   * no subprocess and will need one. Throws to refuse the messages (nothing is stored then); may return
   * a promise that the turn awaits before it spawns (a subprocess being suspended to make room).
   */
  admit?: (session: Session, needsSlot: boolean) => Promise<void> | undefined;
  /** Runs before a subprocess is started: the host restores the workspace here when it must. */
  prepareStart?: (session: Session) => Promise<void>;
  /** A warm spare for the session's first subprocess, if the host has a fitting one. */
  claimSpare?: (session: Session) => ClaimableSpare | undefined;
  /**
   * More SDK options for each subprocess (a group's MCP bus, its shared directory), made anew per spawn.
   * They cannot replace the isolation levers or the session's own cwd, env, store and spawner.
   */
  processOptions?: () => Partial<Options>;
}

/** What the host's policies need to know about a live subprocess. */
export interface ProcessInfo {
  /** Undefined until the SDK has spawned the process. */
  tree: ProcessTreeId | undefined;
  spawnedAt: number;
  turnsSinceSpawn: number;
}

/** A user event as accepted by {@link Session.send}. */
export type UserEvent =
  | { type: 'user.message'; content: string | ContentBlock[] }
  | { type: 'user.interrupt' }
  | {
      type: 'user.tool_confirmation';
      tool_use_id: string;
      result: 'allow' | 'deny';
      message?: string | undefined;
    };

interface LiveProcess {
  query: Query;
  input: InputQueue<SDKUserMessage>;
  spawner: SpawnedTree;
  /** Ends when the subprocess's message stream ends, for whatever reason. */
  reader: Promise<void>;
  /** `total_cost_usd` of the last result: the SDK reports it summed over the process's life. */
  costSoFar: number;
  spawnedAt: number;
  /** Results this process has produced. */
  turns: number;
  /** For a claimed spare: resolves true once the claim is honoured, false when it was refused. */
  claim?: Promise<boolean>;
  /** The message that started the process: a refused claim hands it to the fallback process. */
  firstMessage?: SDKUserMessage;
  /** The warm spare this process was claimed from. */
  spare?: ClaimableSpare;
}

interface Turn {
  startedAt: number;
  done: Promise<void>;
  finish: () => void;
  interrupted: boolean;
}

interface PendingConfirmation {
  toolName: string;
  input: Record<string, unknown>;
  decide: (result: PermissionResult) => void;
}

export class Session {
  readonly id: string;
  private state: SessionState;
  private record: SessionRecord;
  private proc: LiveProcess | undefined;
  private turn: Turn | undefined;
  private readonly queue: SDKUserMessage[] = [];
  private pumping = false;
  private readonly pending = new Map<string, PendingConfirmation>();
  /** tool_use_id -> id of its `agent.tool_use` event, for `requires_action.event_ids`. */
  private readonly toolUseEvents = new Map<string, string>();
  private persisting: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  /** A subprocess detached by `recycle`, `killProcess` or `suspend` that is still being ended. */
  private retiring: Promise<void> | undefined;
  /** Admitted for a subprocess it has not started yet. */
  private slotReserved = false;
  private suspending: Promise<boolean> | undefined;
  /** The running turn started from `suspended` (so a failed hydration returns there). */
  private wasSuspended = false;
  /** What the next spawn waits for before it starts (room being made on the host). */
  private admission: Promise<void> | undefined;
  private lastActive = Date.now();
  /** Callers of {@link Session.whenNotBusy} waiting for the turns to end. */
  private notBusyWaiters: (() => void)[] = [];

  constructor(private readonly options: SessionOptions) {
    this.id = options.record.id;
    this.record = options.record;
    this.state =
      options.record.status === 'terminated'
        ? 'closed'
        : options.record.status === 'suspended'
          ? 'suspended'
          : 'cold';
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Whether the session counts against the host's capacity: it has a subprocess or is about to start one. */
  get holdsSlot(): boolean {
    return this.proc !== undefined || this.slotReserved;
  }

  /** When a client last sent it something or its last turn ended (epoch ms), for LRU and idle timeouts. */
  get lastActiveAt(): number {
    return this.lastActive;
  }

  /** True while a turn runs or messages wait for one. */
  get isBusy(): boolean {
    return this.turn !== undefined || this.pumping || this.queue.length > 0;
  }

  /** Resolves once no turn runs and no message waits for one (at once when that is so already). */
  whenNotBusy(): Promise<void> {
    if (!this.isBusy) return Promise.resolve();
    return new Promise((resolve) => this.notBusyWaiters.push(resolve));
  }

  /** True when nothing runs or waits: the host may suspend it. */
  get isQuiet(): boolean {
    return (
      (this.state === 'idle' || this.state === 'cold') &&
      !this.turn &&
      !this.pumping &&
      this.queue.length === 0 &&
      !this.slotReserved &&
      !this.suspending
    );
  }

  get events(): SessionEventStream {
    return this.options.events;
  }

  get currentState(): SessionState {
    return this.state;
  }

  get status(): SessionStatus {
    return PUBLIC_STATUS[this.state];
  }

  /** The registry record as this session last wrote it. */
  get snapshot(): SessionRecord {
    return { ...this.record, status: this.status };
  }

  /** The process-group leader's pid while a subprocess is alive (for tests and metrics). */
  get pid(): number | undefined {
    return this.proc?.spawner.tree?.leaderPid;
  }

  /** The live subprocess, for the host's recycling policies. */
  get processInfo(): ProcessInfo | undefined {
    const proc = this.proc;
    if (!proc) return undefined;
    return { tree: proc.spawner.tree, spawnedAt: proc.spawnedAt, turnsSinceSpawn: proc.turns };
  }

  /** Tool uses waiting for a confirmation. */
  get pendingToolUses(): string[] {
    return [...this.pending.keys()];
  }

  /**
   * Validates all events first (an invalid one rejects the whole batch and changes nothing), stores
   * them, then acts on them. Returns the stored events.
   */
  send(events: readonly UserEvent[]): StoredEvent[] {
    if (this.state === 'closed') {
      throw new BerthError('session_terminated', `Session ${this.id} is terminated`);
    }
    const messages = events.filter((e) => e.type === 'user.message').length;
    if (this.queue.length + messages > MAX_QUEUED_MESSAGES) {
      throw new BerthError(
        'queue_full',
        `Session ${this.id} already has ${this.queue.length} messages waiting; at most ${MAX_QUEUED_MESSAGES} may wait`,
      );
    }
    const answered = new Set<string>();
    for (const event of events) {
      if (event.type !== 'user.tool_confirmation') continue;
      if (!this.pending.has(event.tool_use_id) || answered.has(event.tool_use_id)) {
        throw new BerthError(
          'tool_use_not_pending',
          `Tool use ${event.tool_use_id} is not waiting for a confirmation in session ${this.id}`,
        );
      }
      answered.add(event.tool_use_id);
    }
    if (messages > 0) {
      // Last of the checks: admission may start suspending another session to make room.
      const needsSlot = !this.holdsSlot;
      const admission = this.options.admit?.(this, needsSlot);
      if (needsSlot) {
        this.slotReserved = true;
        this.admission = admission;
      }
    }
    this.lastActive = Date.now();
    const stored = this.events.emit(...(events as NewEvent[]));
    for (const event of events) {
      switch (event.type) {
        case 'user.message':
          this.queue.push({
            type: 'user',
            message: { role: 'user', content: event.content as SDKUserMessage['message']['content'] },
            parent_tool_use_id: null,
          });
          break;
        case 'user.interrupt':
          this.interrupt().catch((err: unknown) => this.report(err));
          break;
        case 'user.tool_confirmation':
          this.pending
            .get(event.tool_use_id)
            ?.decide(
              event.result === 'allow'
                ? { behavior: 'allow' }
                : { behavior: 'deny', message: event.message ?? 'The user denied this tool use.' },
            );
          break;
      }
    }
    this.pump();
    return stored;
  }

  /**
   * Ends the subprocess but keeps the session resumable (host shutdown). A running turn ends with
   * `session.error`. Resolves when every process of the tree is gone.
   */
  async stopProcess(reason: string): Promise<void> {
    const proc = this.proc;
    if (!proc) {
      await this.retiring;
      return;
    }
    if (this.turn) {
      this.events.emit({ type: 'session.error', error: { type: 'subprocess_stopped', message: reason } });
    }
    await this.endProcess(proc, { graceful: this.turn === undefined });
  }

  /**
   * Replaces the subprocess at a turn boundary (a soft limit was crossed): emits
   * `session.status_rescheduling`, ends the process gracefully (stdin EOF, grace, tree kill) and goes
   * `cold`; the next turn resumes the transcript in a fresh subprocess. Does nothing unless the session is
   * idle with a live subprocess. Resolves when the old tree is gone.
   */
  async recycle(reason: string): Promise<void> {
    const proc = this.proc;
    if (!proc || this.state !== 'idle') return;
    this.events.emit({ type: 'session.status_rescheduling', reason });
    this.proc = undefined;
    this.transition('cold');
    await this.retire(proc, { graceful: true });
  }

  /**
   * Kills the subprocess tree at once (the hard RSS limit). A turn in progress ends with `session.error`
   * of the given type and an error stop reason; the next message resumes in a fresh subprocess.
   */
  async killProcess(type: string, message: string): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.onProcessEnd(proc, undefined, { type, message });
    await this.retire(proc, { graceful: false });
  }

  /**
   * Suspends a quiet session (idle or cold, nothing queued): ends its subprocess gracefully, then runs
   * `work` (the host makes the transcript durable and snapshots the workspace) and goes `suspended`,
   * emitting `session.status_suspended`. A turn that arrives meanwhile waits for it, then hydrates.
   * Resolves false when the session was not quiet or `work` failed (it then stays `cold`, resumable on
   * this host, and its clients get a `session.error` of type `suspend_failed`).
   */
  suspend(reason: string, work: () => Promise<void>): Promise<boolean> {
    if (this.suspending) return this.suspending;
    if (!this.isQuiet) return Promise.resolve(false);
    const proc = this.proc;
    if (proc) {
      this.proc = undefined;
      this.transition('cold');
    }
    const previous = this.retiring;
    const suspending = (async () => {
      await previous;
      if (proc) await this.endProcess(proc, { graceful: true });
      await this.persisting;
      await work();
      if (this.state === 'cold') {
        this.transition('suspended');
        this.events.emit({ type: 'session.status_suspended', reason });
      }
      return true;
    })()
      .catch((err: unknown) => {
        this.events.emit({
          type: 'session.error',
          error: {
            type: 'suspend_failed',
            message: `The session could not be suspended (${describeError(err)}); it stays resumable on this host.`,
          },
        });
        return false;
      })
      .finally(() => (this.suspending = undefined));
    this.suspending = suspending;
    this.retiring = suspending.then(() => undefined);
    return suspending;
  }

  private retire(proc: LiveProcess, options: { graceful: boolean }): Promise<void> {
    const ending = this.endProcess(proc, options);
    const previous = this.retiring;
    this.retiring = Promise.all([previous, ending]).then(
      () => undefined,
      (err: unknown) => this.report(err),
    );
    return this.retiring;
  }

  /** Terminates the session for good (idempotent): kills its process tree and emits `status_terminated`. */
  close(reason = 'deleted'): Promise<void> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<void> {
    const wasClosed = this.state === 'closed';
    this.state = 'closed';
    this.queue.length = 0;
    for (const pending of this.pending.values()) {
      pending.decide({ behavior: 'deny', message: 'The session was closed.', interrupt: true });
    }
    if (this.proc)
      await this.endProcess(this.proc, { graceful: false }).catch((err: unknown) => this.report(err));
    await this.retiring;
    this.turn?.finish();
    if (!wasClosed) this.events.emit({ type: 'session.status_terminated', reason });
    this.persist({ status: 'terminated' });
    await this.persisting;
    await this.events.flush().catch((err: unknown) => this.report(err));
  }

  /** Moves to `to` and writes the new public status, with `patch`, in one registry update. */
  private transition(to: SessionState, patch: Partial<SessionRecord> = {}): void {
    if (this.state !== to && !TRANSITIONS[this.state].includes(to)) {
      throw new Error(`Session ${this.id}: illegal transition ${this.state} -> ${to}`);
    }
    const before = PUBLIC_STATUS[this.state];
    this.state = to;
    const update = PUBLIC_STATUS[to] === before ? patch : { ...patch, status: PUBLIC_STATUS[to] };
    if (Object.keys(update).length > 0) this.persist(update);
  }

  /** Registry writes are serialised so that a later patch never lands before an earlier one. */
  private persist(patch: Partial<SessionRecord>): void {
    this.record = { ...this.record, ...patch, updatedAt: Date.now() };
    this.persisting = this.persisting.then(() =>
      this.options.registry
        .update({ tenant: this.record.tenant, id: this.id }, patch)
        .catch((err: unknown) => this.report(err)),
    );
  }

  private report(err: unknown): void {
    this.options.onError?.(err);
  }

  private pump(): void {
    if (this.pumping || this.state === 'closed') return;
    this.pumping = true;
    void (async () => {
      try {
        // Start turns after the current call stack (an HTTP handler) has answered: spawning a subprocess
        // takes ~20 ms of synchronous work that the client's 202 should not wait for.
        await new Promise<void>((resolve) => setImmediate(resolve));
        for (let next = this.queue.shift(); next; next = this.queue.shift()) {
          if (this.state === 'closed') break;
          await this.runTurn(next);
        }
      } finally {
        this.pumping = false;
        // A reservation that no subprocess took up (the turns failed before a spawn) is given back.
        this.slotReserved = false;
        this.lastActive = Date.now();
        if (!this.isBusy) for (const resolve of this.notBusyWaiters.splice(0)) resolve();
      }
    })();
  }

  private async runTurn(message: SDKUserMessage): Promise<void> {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const turn: Turn = { startedAt: Date.now(), done, finish, interrupted: false };
    this.turn = turn;
    this.wasSuspended = this.state === 'suspended';
    this.transition('running');
    this.events.emit({ type: 'session.status_running' });
    try {
      if (this.proc) {
        this.proc.input.push(message);
      } else {
        // The previous subprocess must be gone before a new one resumes the same transcript, and the
        // room the host is making for this one must be made.
        await this.retiring;
        const admission = this.admission;
        this.admission = undefined;
        await admission;
        if (this.isClosed()) return;
        try {
          await this.options.prepareStart?.(this);
        } catch (err) {
          this.endTurnWithError(
            turn,
            isBerthError(err) ? err.code : 'hydrate_failed',
            `Could not start the turn: ${describeError(err)}`,
            this.state === 'running' && this.wasSuspended ? 'suspended' : undefined,
          );
          return;
        }
        if (this.isClosed()) return;
        this.startProcess(message);
      }
      await done;
    } catch (err) {
      this.endTurnWithError(turn, 'subprocess_failed', `Could not run the turn: ${describeError(err)}`);
    } finally {
      if (this.turn === turn) this.turn = undefined;
    }
  }

  /** Starts the subprocess that runs `first`: a claimed warm spare for a new session, else a spawn. */
  private startProcess(first: SDKUserMessage): LiveProcess {
    this.slotReserved = false;
    const spare = this.record.started ? undefined : this.options.claimSpare?.(this);
    // A spare that cannot be claimed (it died or was closed before we got to it) leaves a spawn.
    const claimed = spare ? this.claimProcess(spare, first) : undefined;
    return claimed ?? this.spawnProcess(first);
  }

  /** The process claimed from `spare`; undefined when it could not be claimed. */
  private claimProcess(spare: ClaimableSpare, first: SDKUserMessage): LiveProcess | undefined {
    const input = new InputQueue<SDKUserMessage>();
    const claim = claimSpare(spare, {
      prompt: input,
      cwd: this.options.paths.cwd,
      agent: this.record.agent,
      title: this.record.title ?? undefined,
      canUseTool: this.canUseTool,
      onRunsAnyway: (reason) => this.report(new Error(`session ${this.id}: ${reason}`)),
    });
    if (!claim) return undefined;
    const proc = this.track({
      query: claim.query,
      input,
      spawner: spare.spawner,
      claim: claim.claimed,
      firstMessage: first,
      spare,
    });
    input.push(first);
    return proc;
  }

  private track(
    parts: Pick<LiveProcess, 'query' | 'input' | 'spawner' | 'claim' | 'firstMessage' | 'spare'>,
  ): LiveProcess {
    const proc: LiveProcess = {
      ...parts,
      reader: Promise.resolve(),
      costSoFar: 0,
      spawnedAt: Date.now(),
      turns: 0,
    };
    proc.reader = this.read(proc);
    this.proc = proc;
    return proc;
  }

  private spawnProcess(first: SDKUserMessage): LiveProcess {
    const { paths, env, transcriptStore } = this.options;
    const record = this.record;
    const spawner = (this.options.createSpawner ?? createPlainSpawner)();
    const input = new InputQueue<SDKUserMessage>();
    const agent = record.agent;
    const options: Options = {
      ...this.options.processOptions?.(),
      cwd: paths.cwd,
      env,
      // The four isolation levers, always together: no settings files, no auto memory, a per-tenant
      // config dir (in env) and a per-session cwd.
      settingSources: [],
      sessionStore: transcriptStore,
      spawnClaudeCodeProcess: (o) => spawner.spawn(o),
      canUseTool: this.canUseTool,
      ...(record.started ? { resume: record.sdkSessionId } : { sessionId: record.sdkSessionId }),
      ...(agent.model !== undefined && { model: agent.model }),
      ...(agent.system_prompt !== undefined && { systemPrompt: agent.system_prompt }),
      ...(agent.allowed_tools !== undefined && { allowedTools: agent.allowed_tools }),
      ...(agent.disallowed_tools !== undefined && { disallowedTools: agent.disallowed_tools }),
      ...(agent.permission_mode !== undefined && { permissionMode: agent.permission_mode }),
      ...(agent.max_turns !== undefined && { maxTurns: agent.max_turns }),
    };
    const proc = this.track({ query: query({ prompt: input, options }), input, spawner });
    input.push(first);
    return proc;
  }

  /** Consumes the subprocess's messages for its whole life: stopping early would kill it (FACTS.md). */
  private async read(proc: LiveProcess): Promise<void> {
    let failure: unknown;
    let refused = false;
    try {
      for await (const message of proc.query) {
        // A refused claim answers with a `not_claimed` error result: none of that is the session's.
        if (proc.claim && !(await proc.claim)) {
          refused = true;
          break;
        }
        this.onMessage(proc, message);
      }
    } catch (err) {
      failure = err;
      if (proc.claim && !(await proc.claim)) refused = true;
    }
    if (refused) this.fallBack(proc);
    else this.onProcessEnd(proc, failure);
  }

  /** A claim was refused: the spare goes, and the first message runs in a normal subprocess. */
  private fallBack(proc: LiveProcess): void {
    proc.spawner.kill(this.options.timeouts.killGraceMs).catch((err: unknown) => this.report(err));
    if (this.proc !== proc || this.state === 'closed' || !proc.firstMessage) {
      if (this.proc === proc) this.onProcessEnd(proc, new Error('the warm spare refused the claim'));
      return;
    }
    this.proc = undefined;
    this.spawnProcess(proc.firstMessage);
  }

  private onMessage(proc: LiveProcess, message: SDKMessage): void {
    if (this.proc !== proc || this.state === 'closed') return;
    if (message.type === 'system' && message.subtype === 'init') {
      // A claimed spare runs under the session id the CLI chose; the transcript is keyed by it.
      if (proc.claim && message.session_id !== this.record.sdkSessionId) {
        this.persist({ started: true, sdkSessionId: message.session_id });
      } else if (!this.record.started) {
        this.persist({ started: true });
      }
    }
    if (message.type === 'result') {
      this.onResult(proc, message);
      return;
    }
    for (const event of mapSdkMessage(message)) {
      if (event.type === 'agent.tool_use') {
        // canUseTool may have announced this tool use already (it can run before we read the message).
        if (this.toolUseEvents.has(event.tool_use_id)) continue;
        const [stored] = this.events.emit(event);
        if (stored) this.toolUseEvents.set(event.tool_use_id, stored.id);
      } else {
        this.events.emit(event);
      }
    }
  }

  private onResult(proc: LiveProcess, result: SDKResultMessage): void {
    const turn = this.turn;
    const costUsd = Math.max(0, result.total_cost_usd - proc.costSoFar);
    proc.costSoFar = result.total_cost_usd;
    proc.turns += 1;
    if (proc.turns === 1) proc.spare?.firstTurnEnded();
    const usage = resultUsage(result, costUsd);
    const totals = { usage: addUsage(this.record.usage, usage), turns: this.record.turns + 1 };
    if (turn) this.finishTurn(turn, resultStopReason(result, turn.interrupted), usage, 'idle', totals);
    // A result with no turn of ours (an interrupt already ended it) still counts.
    else this.persist(totals);
  }

  private finishTurn(
    turn: Turn,
    stopReason: StopReason,
    usage: ReturnType<typeof resultUsage> | undefined,
    next: 'idle' | 'cold' | 'suspended',
    totals: Partial<SessionRecord> = {},
  ): void {
    if (this.turn !== turn || this.state === 'closed') {
      if (Object.keys(totals).length > 0) this.persist(totals);
      return;
    }
    this.turn = undefined;
    this.toolUseEvents.clear();
    this.transition(next, totals);
    this.events.emit({
      type: 'session.status_idle',
      stop_reason: stopReason,
      ...(usage && { usage }),
      duration_ms: Date.now() - turn.startedAt,
    });
    if (next === 'idle' && this.proc) {
      try {
        this.options.onTurnEnd?.(this);
      } catch (err) {
        this.report(err);
      }
    }
    turn.finish();
  }

  private endTurnWithError(turn: Turn, type: string, message: string, next?: 'suspended'): void {
    if (this.turn !== turn || this.state === 'closed') return;
    if (!turn.interrupted) this.events.emit({ type: 'session.error', error: { type, message } });
    this.finishTurn(
      turn,
      turn.interrupted ? { type: 'interrupted' } : { type: 'error', subtype: type },
      undefined,
      next ?? (this.proc ? 'idle' : 'cold'),
    );
  }

  /** Detaches an ended (or ending) subprocess; a turn in progress ends with `error`, or a generic one. */
  private onProcessEnd(proc: LiveProcess, failure: unknown, error?: { type: string; message: string }): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    // Whatever the CLI left behind (a background job of a tool) goes with it.
    proc.spawner.kill(this.options.timeouts.killGraceMs).catch((err: unknown) => this.report(err));
    for (const pending of this.pending.values()) {
      pending.decide({ behavior: 'deny', message: 'The subprocess ended.', interrupt: true });
    }
    const turn = this.turn;
    if (turn && error) {
      this.endTurnWithError(turn, error.type, error.message);
    } else if (turn) {
      const tail = proc.spawner.stderrTail().trim().split('\n').slice(-3).join(' | ');
      const why = failure ? describeError(failure) : 'the subprocess exited';
      this.endTurnWithError(
        turn,
        'subprocess_exited',
        `The agent's subprocess ended mid-turn: ${why}${tail ? ` (${tail})` : ''}`,
      );
    } else if (this.state === 'idle') {
      this.transition('cold');
    }
  }

  /** Ends a subprocess: stdin EOF and a grace period when graceful, then SIGTERM/SIGKILL to its tree. */
  private async endProcess(proc: LiveProcess, options: { graceful: boolean }): Promise<void> {
    const grace = this.options.timeouts.killGraceMs;
    proc.input.end();
    if (options.graceful) {
      await Promise.race([proc.reader, sleep(grace)]);
    }
    proc.query.close();
    await proc.spawner.kill(grace);
    await Promise.race([proc.reader, sleep(grace)]);
    if (this.proc === proc) this.onProcessEnd(proc, new Error('stopped'));
  }

  private async interrupt(): Promise<void> {
    const turn = this.turn;
    const proc = this.proc;
    if (!turn || !proc) return;
    turn.interrupted = true;
    for (const pending of this.pending.values()) {
      pending.decide({ behavior: 'deny', message: 'The user interrupted the turn.', interrupt: true });
    }
    const bound = this.options.timeouts.interruptMs;
    proc.query.interrupt().catch(() => undefined);
    const settled = await Promise.race([turn.done.then(() => true), sleep(bound).then(() => false)]);
    if (settled || this.proc !== proc) return;
    // The SDK's interrupt did not end the turn in time (a known failure in the field): kill the tree.
    // The session goes cold and the next message resumes the transcript in a new subprocess.
    await this.endProcess(proc, { graceful: false });
  }

  private readonly canUseTool: CanUseTool = async (toolName, input, { signal, toolUseID }) => {
    if (this.state === 'closed') return { behavior: 'deny', message: 'The session was closed.' };
    let eventId = this.toolUseEvents.get(toolUseID);
    if (eventId === undefined) {
      const [stored] = this.events.emit({
        type: 'agent.tool_use',
        tool_use_id: toolUseID,
        name: toolName,
        input,
        requires_confirmation: true,
      });
      eventId = stored?.id ?? toolUseID;
      this.toolUseEvents.set(toolUseID, eventId);
    }
    const decision = new Promise<PermissionResult>((resolve) => {
      let settled = false;
      const decide = (result: PermissionResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.pending.delete(toolUseID);
        resolve(result);
      };
      const timer = setTimeout(
        () =>
          decide({ behavior: 'deny', message: 'No confirmation arrived in time; the tool use was denied.' }),
        this.options.timeouts.confirmationMs,
      );
      const onAbort = (): void => decide({ behavior: 'deny', message: 'The turn was aborted.' });
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(toolUseID, { toolName, input, decide });
    });
    if (this.state === 'running') this.transition('requires_action');
    this.events.emit({
      type: 'session.status_idle',
      stop_reason: {
        type: 'requires_action',
        event_ids: [...this.pending.keys()].map((id) => this.toolUseEvents.get(id) ?? id),
      },
    });
    const result = await decision;
    if (this.state === 'requires_action' && this.pending.size === 0) {
      this.transition('running');
      this.events.emit({ type: 'session.status_running' });
    }
    return result.behavior === 'allow' ? { behavior: 'allow', updatedInput: input } : result;
  };
}

/** A fresh SDK session id (the SDK requires a UUID). */
export function newSdkSessionId(): string {
  return randomUUID();
}
