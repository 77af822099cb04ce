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
import { BerthError, describeError } from '../errors.js';
import { createPlainSpawner, type SpawnedTree } from '../sandbox/plain-spawn.js';
import type { ProcessTreeId } from '../sandbox/process-tree.js';
import type { SessionRecord, SessionRegistry, SessionStatus } from '../stores/types.js';
import { addUsage, type ContentBlock, type NewEvent, type StoredEvent, type StopReason } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import { InputQueue } from './input-queue.js';
import { mapSdkMessage, resultStopReason, resultUsage } from './map-sdk-message.js';

/**
 * - `cold`: no subprocess; the next turn starts one (resuming the transcript if there is one).
 * - `idle`: a subprocess is alive and waiting for input. Recycling it (a soft limit crossed at a turn
 *   boundary) is `idle -> cold`.
 * - `running`: a turn is in progress. A subprocess killed mid-turn (it crashed, an interrupt did not
 *   settle, the hard RSS limit) ends the turn with an error: `running -> cold`.
 * - `requires_action`: a turn is paused until a client answers a tool confirmation.
 * - `closed`: terminated; nothing runs and nothing is accepted.
 */
export type SessionState = 'cold' | 'idle' | 'running' | 'requires_action' | 'closed';

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  cold: ['running', 'closed'],
  idle: ['running', 'cold', 'closed'],
  running: ['idle', 'requires_action', 'cold', 'closed'],
  requires_action: ['running', 'cold', 'closed'],
  closed: [],
};

/** The status clients see for each state. */
const PUBLIC_STATUS: Record<SessionState, SessionStatus> = {
  cold: 'idle',
  idle: 'idle',
  running: 'running',
  requires_action: 'requires_action',
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
  /** A subprocess detached by `recycle` or `killProcess` that is still being ended. */
  private retiring: Promise<void> | undefined;

  constructor(private readonly options: SessionOptions) {
    this.id = options.record.id;
    this.record = options.record;
    this.state = options.record.status === 'terminated' ? 'closed' : 'cold';
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
      }
    })();
  }

  private async runTurn(message: SDKUserMessage): Promise<void> {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const turn: Turn = { startedAt: Date.now(), done, finish, interrupted: false };
    this.turn = turn;
    this.transition('running');
    this.events.emit({ type: 'session.status_running' });
    try {
      // The previous subprocess must be gone before a new one resumes the same transcript.
      if (!this.proc && this.retiring) await this.retiring;
      if (this.state === 'closed') return;
      const proc = this.proc ?? this.startProcess();
      proc.input.push(message);
      await done;
    } catch (err) {
      this.endTurnWithError(turn, 'subprocess_failed', `Could not run the turn: ${describeError(err)}`);
    } finally {
      if (this.turn === turn) this.turn = undefined;
    }
  }

  private startProcess(): LiveProcess {
    const { paths, env, transcriptStore } = this.options;
    const record = this.record;
    const spawner = (this.options.createSpawner ?? createPlainSpawner)();
    const input = new InputQueue<SDKUserMessage>();
    const agent = record.agent;
    const options: Options = {
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
    const q = query({ prompt: input, options });
    const proc: LiveProcess = {
      query: q,
      input,
      spawner,
      reader: Promise.resolve(),
      costSoFar: 0,
      spawnedAt: Date.now(),
      turns: 0,
    };
    proc.reader = this.read(proc);
    this.proc = proc;
    return proc;
  }

  /** Consumes the subprocess's messages for its whole life: stopping early would kill it (FACTS.md). */
  private async read(proc: LiveProcess): Promise<void> {
    let failure: unknown;
    try {
      for await (const message of proc.query) this.onMessage(proc, message);
    } catch (err) {
      failure = err;
    }
    this.onProcessEnd(proc, failure);
  }

  private onMessage(proc: LiveProcess, message: SDKMessage): void {
    if (this.proc !== proc || this.state === 'closed') return;
    if (message.type === 'system' && message.subtype === 'init' && !this.record.started) {
      this.persist({ started: true });
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
    next: 'idle' | 'cold',
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

  private endTurnWithError(turn: Turn, type: string, message: string): void {
    if (this.turn !== turn || this.state === 'closed') return;
    if (!turn.interrupted) this.events.emit({ type: 'session.error', error: { type, message } });
    this.finishTurn(
      turn,
      turn.interrupted ? { type: 'interrupted' } : { type: 'error', subtype: type },
      undefined,
      this.proc ? 'idle' : 'cold',
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
