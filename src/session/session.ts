/**
 * One Berth session: the conversation's state machine (see `session-state.ts`) around one agent
 * subprocess at a time (see `agent-process.ts`) in streaming-input mode.
 *
 * The subprocess is started on the first turn and held open across turns; if it goes away (killed after
 * a stuck interrupt, crashed, host restarted) the session goes `cold` and the next turn starts a new one
 * that resumes the transcript from the SessionStore. Turns run one at a time: user messages queue here,
 * and each is handed to the SDK only after the previous turn's `result`, so the CLI never merges them.
 *
 * The host may also retire a subprocess on purpose (see `recycle`, `killProcess` and `suspend`): the
 * process is detached from the session at once, and a turn that starts while it is still ending waits
 * for it, so two subprocesses of one session never write its transcript together.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  Options,
  SDKMessage,
  SDKResultMessage,
  SDKUserMessage,
  SessionStore,
} from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError, isBerthError } from '../errors.js';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import type { ProcessTreeId } from '../sandbox/process-tree.js';
import type { SessionRecord, SessionRegistry, SessionStatus } from '../stores/types.js';
import { AgentProcess } from './agent-process.js';
import type { AgentRuntime } from './agent-runtime.js';
import { addUsage, type ContentBlock, type NewEvent, type StoredEvent, type StopReason } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import { mapSdkMessage, resultStopReason, resultUsage } from './map-sdk-message.js';
import { adoptResumedTranscript, readCostBaseline } from './resume.js';
import { buildQueryOptions } from './sdk-options.js';
import { PUBLIC_STATUS, assertTransition, initialState, type SessionState } from './session-state.js';
import type { ClaimableSpare } from './spare-claim.js';
import { ToolConfirmations } from './tool-confirmations.js';

export type { SessionState } from './session-state.js';

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
  /** The Agent SDK. @default sdkRuntime */
  runtime?: AgentRuntime | undefined;
  /** Makes the spawner of each subprocess; the plain one by default. */
  createSpawner?: (() => SpawnedTree) | undefined;
  /** Where failures that no client can see are reported. */
  onError?: ((err: unknown) => void) | undefined;
  /**
   * Called when a turn has ended and the subprocess is alive and idle: the turn boundary at which the host
   * may {@link Session.recycle} it. Runs before the next queued turn starts.
   */
  onTurnEnd?: ((session: Session) => void) | undefined;
  /**
   * Asked, synchronously, before user messages are accepted: `needsSlot` is true when the session holds
   * no subprocess and will need one. Throws to refuse the messages (nothing is stored then); may return
   * a promise that the turn awaits before it spawns (a subprocess being suspended to make room).
   */
  admit?: ((session: Session, needsSlot: boolean) => Promise<void> | undefined) | undefined;
  /** Runs before a subprocess is started: the host restores the workspace here when it must. */
  prepareStart?: ((session: Session) => Promise<void>) | undefined;
  /** A warm spare for the session's first subprocess, if the host has a fitting one. */
  claimSpare?: ((session: Session) => ClaimableSpare | undefined) | undefined;
  /**
   * More SDK options for each subprocess (a group's MCP bus, its shared directory), made anew per spawn.
   * They cannot replace the isolation levers or the session's own cwd, env, store and spawner.
   */
  processOptions?: (() => Partial<Options>) | undefined;
  /** Called after every change of state (for metrics and tests). */
  onTransition?: ((from: SessionState, to: SessionState) => void) | undefined;
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

interface Turn {
  startedAt: number;
  done: Promise<void>;
  finish: () => void;
  interrupted: boolean;
}

export class Session {
  readonly id: string;
  private state: SessionState;
  /** Where a `starting` session returns when its start fails. */
  private startingFrom: 'cold' | 'suspended' = 'cold';
  private record: SessionRecord;
  private proc: AgentProcess | undefined;
  private turn: Turn | undefined;
  private readonly queue: SDKUserMessage[] = [];
  private pumping = false;
  private readonly confirmations: ToolConfirmations;
  private persisting: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  /** Subprocesses detached by `recycle`, `killProcess` or `suspend` (and the suspension) still ending. */
  private retiring: Promise<void> | undefined;
  private suspension: Promise<boolean> | undefined;
  /** What the next start waits for (room being made on the host). */
  private admission: Promise<void> | undefined;
  private lastActive = Date.now();
  /** Callers of {@link Session.whenNotBusy} waiting for the turns to end. */
  private notBusyWaiters: (() => void)[] = [];

  constructor(private readonly options: SessionOptions) {
    this.id = options.record.id;
    this.record = options.record;
    this.state = initialState(options.record.status);
    this.confirmations = new ToolConfirmations({
      sessionId: this.id,
      events: options.events,
      timeoutMs: options.timeouts.confirmationMs,
      isClosed: () => this.state === 'closed',
      onWaiting: (eventIds) => {
        if (this.state === 'running') this.transition('requires_action');
        this.events.emit({
          type: 'session.status_idle',
          stop_reason: { type: 'requires_action', event_ids: eventIds },
        });
      },
      onAllAnswered: () => {
        if (this.state !== 'requires_action') return;
        this.transition('running');
        this.events.emit({ type: 'session.status_running' });
      },
    });
  }

  /** Whether the session counts against the host's capacity: it has a subprocess or is about to start one. */
  get holdsSlot(): boolean {
    return (
      this.proc !== undefined ||
      this.state === 'starting' ||
      (this.state === 'suspending' && this.queue.length > 0)
    );
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
    return (this.state === 'idle' || this.state === 'cold') && !this.isBusy;
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
    return this.proc?.tree?.leaderPid;
  }

  /** The live subprocess, for the host's recycling policies. */
  get processInfo(): ProcessInfo | undefined {
    const proc = this.proc;
    if (!proc) return undefined;
    return { tree: proc.tree, spawnedAt: proc.spawnedAt, turnsSinceSpawn: proc.turns };
  }

  /** Tool uses waiting for a confirmation. */
  get pendingToolUses(): string[] {
    return this.confirmations.waiting;
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
    this.confirmations.check(events);
    if (messages > 0) {
      // Last of the checks: admission may start suspending another session to make room.
      const needsSlot = !this.holdsSlot;
      const admission = this.options.admit?.(this, needsSlot);
      if (needsSlot) {
        // Awaited by the turn when it starts; until then a refusal must not be an unhandled rejection.
        admission?.catch(() => undefined);
        this.admission = admission;
        if (this.state === 'cold' || this.state === 'suspended') this.enterStarting();
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
          this.confirmations.answer(event.tool_use_id, event.result, event.message);
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
   * Suspends a quiet session (idle or cold, nothing queued): `suspending` while it ends its subprocess
   * gracefully and runs `work` (the host makes the transcript durable and snapshots the workspace), then
   * `suspended`, emitting `session.status_suspended`. A turn that arrives meanwhile waits for it, then
   * hydrates. Resolves false when the session was not quiet or `work` failed (it then goes `cold`,
   * resumable on this host, and its clients get a `session.error` of type `suspend_failed`).
   */
  suspend(reason: string, work: () => Promise<void>): Promise<boolean> {
    if (this.suspension) return this.suspension;
    if (!this.isQuiet) return Promise.resolve(false);
    const proc = this.proc;
    this.proc = undefined;
    this.transition('suspending');
    const previous = this.retiring;
    const suspension = (async () => {
      await previous;
      if (proc) await this.endProcess(proc, { graceful: true });
      await this.persisting;
      await work();
      if (this.state === 'suspending') {
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
        if (this.state === 'suspending') this.transition('cold');
        return false;
      })
      .finally(() => (this.suspension = undefined));
    this.suspension = suspension;
    this.retiring = suspension.then(() => undefined);
    return suspension;
  }

  /** Terminates the session for good (idempotent): kills its process tree and emits `status_terminated`. */
  close(reason = 'deleted'): Promise<void> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<void> {
    const from = this.state;
    this.state = 'closed';
    if (from !== 'closed') this.options.onTransition?.(from, 'closed');
    this.queue.length = 0;
    this.confirmations.denyAll('The session was closed.', true);
    const proc = this.proc;
    if (proc) await this.endProcess(proc, { graceful: false }).catch((err: unknown) => this.report(err));
    await this.retiring;
    this.turn?.finish();
    if (from !== 'closed') this.events.emit({ type: 'session.status_terminated', reason });
    this.persist({ status: 'terminated' });
    await this.persisting;
    await this.events.flush().catch((err: unknown) => this.report(err));
  }

  /** Moves to `to` (throwing on an illegal move) and writes the new public status, with `patch`, in one update. */
  private transition(to: SessionState, patch: Partial<SessionRecord> = {}): void {
    if (this.state !== to) assertTransition(this.id, this.state, to);
    const from = this.state;
    const before = PUBLIC_STATUS[from];
    this.state = to;
    if (from !== to) this.options.onTransition?.(from, to);
    const update = PUBLIC_STATUS[to] === before ? patch : { ...patch, status: PUBLIC_STATUS[to] };
    if (Object.keys(update).length > 0) this.persist(update);
  }

  /** A method, not a field read: TypeScript would keep a narrowing of `state` across an await. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private enterStarting(): void {
    this.startingFrom = this.state === 'suspended' ? 'suspended' : 'cold';
    this.transition('starting');
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
        // A start that no turn took up (the turns failed before a spawn) gives its slot back.
        if (this.state === 'starting' && !this.turn) this.transition(this.startingFrom);
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
    try {
      if (this.proc && this.state === 'idle') {
        this.transition('running');
        this.events.emit({ type: 'session.status_running' });
        this.proc.push(message);
      } else {
        this.events.emit({ type: 'session.status_running' });
        if (!(await this.prepareStart(turn))) return;
        this.startProcess(message, await this.costBaseline());
        this.transition('running');
      }
      await done;
    } catch (err) {
      this.endTurnWithError(turn, 'subprocess_failed', `Could not run the turn: ${describeError(err)}`);
    } finally {
      if (this.turn === turn) this.turn = undefined;
    }
  }

  /**
   * Everything a turn without a subprocess waits for before it starts one: the previous subprocess gone
   * (two of one session must never write its transcript together), a suspension over, room made on the
   * host, the workspace restored. False when the turn ended instead.
   */
  private async prepareStart(turn: Turn): Promise<boolean> {
    await this.retiring;
    if (this.isClosed()) return false;
    if (this.state !== 'starting') this.enterStarting();
    const admission = this.admission;
    this.admission = undefined;
    await admission;
    if (this.isClosed()) return false;
    try {
      await this.options.prepareStart?.(this);
    } catch (err) {
      const code = isBerthError(err) ? err.code : 'hydrate_failed';
      this.endTurnWithError(turn, code, `Could not start the turn: ${describeError(err)}`);
      return false;
    }
    return this.currentState === 'starting';
  }

  /** What the cumulative cost of a resumed CLI starts from (see `readCostBaseline`). */
  private async costBaseline(): Promise<number> {
    if (!this.record.started) return 0;
    const { configDir, cwd } = this.options.paths;
    return readCostBaseline(configDir, cwd, this.record.sdkSessionId);
  }

  /** Starts the subprocess that runs `first`: a claimed warm spare for a new session, else a spawn. */
  private startProcess(first: SDKUserMessage, costBaseline: number): void {
    const { paths, env, transcriptStore, timeouts } = this.options;
    const spare = this.record.started ? undefined : this.options.claimSpare?.(this);
    const canUseTool = this.confirmations.canUseTool;
    const proc = AgentProcess.start({
      runtime: this.options.runtime,
      createSpawner: this.options.createSpawner,
      killGraceMs: timeouts.killGraceMs,
      prompt: 'streaming',
      costBaseline,
      onError: (err) => this.report(err),
      spare: spare && {
        spare,
        request: {
          cwd: paths.cwd,
          agent: this.record.agent,
          title: this.record.title ?? undefined,
          canUseTool,
          onRunsAnyway: (reason) => this.report(new Error(`session ${this.id}: ${reason}`)),
        },
      },
      queryOptions: ({ spawn, abortController }) =>
        buildQueryOptions(this.record.agent, {
          cwd: paths.cwd,
          env,
          canUseTool,
          spawn: (request) => spawn(adoptResumedTranscript(request, paths.configDir)),
          abortController,
          transcript: {
            store: transcriptStore,
            sessionId: this.record.sdkSessionId,
            resume: this.record.started,
          },
          extra: this.options.processOptions?.(),
        }),
    });
    this.proc = proc;
    proc.push(first);
    void this.read(proc, spare);
  }

  /** Consumes the subprocess's messages for its whole life: stopping early would kill it. */
  private async read(proc: AgentProcess, spare: ClaimableSpare | undefined): Promise<void> {
    let failure: unknown;
    try {
      for await (const message of proc.messages()) this.onMessage(proc, message, spare);
    } catch (err) {
      failure = err;
    }
    this.onProcessEnd(proc, failure);
  }

  private onMessage(proc: AgentProcess, message: SDKMessage, spare: ClaimableSpare | undefined): void {
    if (this.proc !== proc || this.state === 'closed') return;
    if (message.type === 'system' && message.subtype === 'init') {
      // A claimed spare runs under the session id the CLI chose; the transcript is keyed by it.
      if (proc.warm && message.session_id !== this.record.sdkSessionId) {
        this.persist({ started: true, sdkSessionId: message.session_id });
      } else if (!this.record.started) {
        this.persist({ started: true });
      }
    }
    if (message.type === 'result') {
      // The pool may start the spare's replacement once its first turn is over, not while it competes.
      if (proc.turns === 1 && proc.warm) spare?.firstTurnEnded();
      this.onResult(proc, message);
      return;
    }
    for (const event of mapSdkMessage(message)) {
      if (event.type === 'agent.tool_use') this.confirmations.announce(event);
      else this.events.emit(event);
    }
  }

  private onResult(proc: AgentProcess, result: SDKResultMessage): void {
    const turn = this.turn;
    const usage = resultUsage(result, proc.turnCostUsd(result));
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
    this.confirmations.endTurn();
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
    const next = this.state === 'starting' ? this.startingFrom : this.proc ? 'idle' : 'cold';
    this.finishTurn(
      turn,
      turn.interrupted ? { type: 'interrupted' } : { type: 'error', subtype: type },
      undefined,
      next,
    );
  }

  /** Detaches an ended (or ending) subprocess; a turn in progress ends with `error`, or a generic one. */
  private onProcessEnd(
    proc: AgentProcess,
    failure: unknown,
    error?: { type: string; message: string },
  ): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    // Whatever the CLI left behind (a background job of a tool) goes with it.
    proc.kill().catch((err: unknown) => this.report(err));
    this.confirmations.denyAll('The subprocess ended.', true);
    const turn = this.turn;
    if (turn && error) {
      this.endTurnWithError(turn, error.type, error.message);
    } else if (turn) {
      const tail = proc.stderrTail().trim().split('\n').slice(-3).join(' | ');
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

  /** Ends a subprocess (see `AgentProcess.end`) and detaches it if it is still the session's. */
  private async endProcess(proc: AgentProcess, options: { graceful: boolean }): Promise<void> {
    await proc.end(options);
    if (this.proc === proc) this.onProcessEnd(proc, new Error('stopped'));
  }

  private retire(proc: AgentProcess, options: { graceful: boolean }): Promise<void> {
    const ending = this.endProcess(proc, options);
    const previous = this.retiring;
    this.retiring = Promise.all([previous, ending]).then(
      () => undefined,
      (err: unknown) => this.report(err),
    );
    return this.retiring;
  }

  private async interrupt(): Promise<void> {
    const turn = this.turn;
    const proc = this.proc;
    if (!turn || !proc) return;
    turn.interrupted = true;
    this.confirmations.denyAll('The user interrupted the turn.', true);
    proc.interrupt().catch(() => undefined);
    const bound = this.options.timeouts.interruptMs;
    const settled = await Promise.race([turn.done.then(() => true), sleep(bound).then(() => false)]);
    if (settled || this.proc !== proc) return;
    // The SDK's interrupt did not end the turn in time (a known failure in the field): kill the tree.
    // The session goes cold and the next message resumes the transcript in a new subprocess.
    await this.endProcess(proc, { graceful: false });
  }
}

/** A fresh SDK session id (the SDK requires a UUID). */
export function newSdkSessionId(): string {
  return randomUUID();
}
