/**
 * One Berth session: the conversation's state machine (see `session-state.ts`) around one agent
 * subprocess at a time (see `agent-process.ts`) in streaming-input mode. The subprocess is started on
 * the first turn and held open across turns; if it goes away (killed after a stuck interrupt, crashed,
 * over its memory, host restarted) the session goes `cold` and the next turn starts a new one that
 * resumes the transcript from the SessionStore. Turns run one at a time: user messages queue here, and
 * each is handed to the SDK only after the previous turn's `result`, so the CLI never merges them.
 *
 * The host may also retire a subprocess on purpose (`recycle`, `killProcess`, `suspend`): it is detached
 * at once, and a turn that starts while it ends waits for it: two never write one transcript together.
 */
import type { SDKMessage, SDKResultMessage, SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError, isBerthError } from '../errors.js';
import type { SessionRecord, SessionStatus } from '../stores/types.js';
import type { AgentProcess } from './agent-process.js';
import { addUsage, type NewEvent, type StoredEvent, type StopReason } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import { mapSdkMessage, modelFailure, resultStopReason, resultUsage } from './map-sdk-message.js';
import { RecordWriter } from './record-writer.js';
import { initPatch, startSessionProcess } from './session-process.js';
import { PUBLIC_STATUS, assertTransition, initialState, type SessionState } from './session-state.js';
import type { ClaimableSpare } from './spare-claim.js';
import { ProcessSlot } from './process-slot.js';
import { ToolConfirmations } from './tool-confirmations.js';
import { toolEvents } from './tool-policy.js';
import { TurnQueue, type Turn } from './turn-queue.js';
import type { ProcessInfo, SessionHooks, SessionSetup, UserEvent } from './session-types.js';

export type { SessionState } from './session-state.js';
export type { ProcessInfo, SessionPaths, SessionTimeouts, UserEvent } from './session-types.js';
export { MAX_QUEUED_MESSAGES } from './turn-queue.js';

/** A session's options: what it is made of, and the host's hooks into its life (see `session-types.ts`). */
export type SessionOptions = SessionSetup & SessionHooks<Session>;

export class Session {
  readonly id: string;
  private state: SessionState;
  private startingFrom: 'cold' | 'suspended' = 'cold'; // where a `starting` session returns when it fails
  private readonly writer: RecordWriter;
  private readonly slot: ProcessSlot;
  private readonly turns: TurnQueue;
  private readonly confirmations: ToolConfirmations;
  private closing: Promise<void> | undefined;
  private suspension: Promise<boolean> | undefined;
  /** What the next start waits for (room being made on the host). */
  private admission: Promise<void> | undefined;
  private lastActive = Date.now();

  constructor(private readonly options: SessionOptions) {
    this.id = options.record.id;
    this.writer = new RecordWriter(options.registry, options.record, (err) => this.report(err));
    this.state = initialState(options.record.status);
    this.slot = new ProcessSlot({
      onEnded: (proc, failure) => this.onProcessEnd(proc, failure),
      report: (err) => this.report(err),
    });
    this.turns = new TurnQueue({
      run: (message, turn) => this.runTurn(message, turn),
      around: options.observer?.turn,
      isClosed: () => this.isClosed(),
      onDrained: () => {
        // A start that no turn took up (the turns failed before a spawn) gives its slot back.
        if (this.state === 'starting') this.transition(this.startingFrom);
        this.lastActive = Date.now();
      },
    });
    this.confirmations = new ToolConfirmations({
      sessionId: this.id,
      events: options.events,
      ...toolEvents(options.record.agent),
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
    // A message waiting while its subprocess ends (crash, recycle, suspension) starts the next one.
    const waiting = this.isBusy && (this.state === 'cold' || this.state === 'suspending');
    return this.state === 'starting' || waiting || this.proc !== undefined;
  }

  /** When a client last sent it something or its last turn ended (epoch ms), for LRU and idle timeouts. */
  get lastActiveAt(): number {
    return this.lastActive;
  }

  /** True while a turn runs or messages wait for one. */
  get isBusy(): boolean {
    return this.turns.busy;
  }

  /** Resolves once no turn runs and no message waits for one (at once when that is so already). */
  whenNotBusy = (): Promise<void> => this.turns.whenNotBusy();

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

  /** Changes what a client may change of the record; resolves once the registry has it, or throws. */
  async update(patch: Pick<Partial<SessionRecord>, 'title' | 'metadata' | 'managed'>): Promise<void> {
    await this.writer.writeNow(patch);
  }

  /** The process-group leader's pid while a subprocess is alive (for tests and metrics). */
  get pid(): number | undefined {
    return this.proc?.tree?.leaderPid;
  }

  /** The live subprocess, for the host's recycling policies. */
  get processInfo(): ProcessInfo | undefined {
    const proc = this.proc;
    return proc && { tree: proc.tree, spawnedAt: proc.spawnedAt, turnsSinceSpawn: proc.turns };
  }

  /** Tool uses waiting for a confirmation. */
  get pendingToolUses(): string[] {
    return this.confirmations.waiting;
  }

  /** Checks every event (one bad one refuses the batch, nothing changed), stores them, acts on them. */
  send(events: readonly UserEvent[]): StoredEvent[] {
    if (this.state === 'closed') {
      throw new BerthError('session_terminated', `Session ${this.id} is terminated`);
    }
    const messages = events.filter((e) => e.type === 'user.message').length;
    this.turns.checkRoom(messages, this.id);
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
      if (event.type === 'user.message') this.turns.push(event.content);
      else if (event.type === 'user.interrupt') this.interrupt().catch((err: unknown) => this.report(err));
      else this.confirmations.answer(event.tool_use_id, event.result, event.deny_message);
    }
    this.turns.pump();
    return stored;
  }

  /** Ends the subprocess, the session kept resumable (shutdown); a running turn ends with `session.error`. */
  async stopProcess(reason: string): Promise<void> {
    const proc = this.proc;
    if (!proc) {
      await this.slot.settled();
      return;
    }
    if (this.turns.current) {
      this.events.emit({ type: 'session.error', error: { type: 'subprocess_stopped', message: reason } });
    }
    await this.slot.end(proc, { graceful: this.turns.current === undefined });
  }

  /**
   * Replaces the subprocess at a turn boundary (a soft limit was crossed): emits
   * `session.status_rescheduled`, ends the process gracefully (stdin EOF, grace, tree kill) and goes
   * `cold`; the next turn resumes the transcript in a fresh subprocess. Does nothing unless the session is
   * idle with a live subprocess. Resolves when the old tree is gone.
   */
  async recycle(reason: string): Promise<void> {
    const proc = this.proc;
    if (!proc || this.state !== 'idle') return;
    this.events.emit({ type: 'session.status_rescheduled', reason });
    this.slot.detach();
    this.transition('cold');
    await this.slot.retire(proc, { graceful: true });
  }

  /** Kills the subprocess tree at once (hard RSS limit); a running turn ends with `session.error` of `type`. */
  async killProcess(type: string, message: string): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.onProcessEnd(proc, undefined, { type, message });
    await this.slot.retire(proc, { graceful: false });
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
    const proc = this.slot.detach();
    this.transition('suspending');
    const previous = this.slot.settled();
    const suspension = (async () => {
      await previous;
      if (proc) await this.slot.end(proc, { graceful: true });
      await this.writer.written();
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
    void this.slot.chain(suspension);
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
    this.turns.clear();
    this.confirmations.denyAll('The session was closed.', true);
    const proc = this.proc;
    if (proc) await this.slot.end(proc, { graceful: false }).catch((err: unknown) => this.report(err));
    await this.slot.settled();
    this.turns.current?.finish();
    if (from !== 'closed') this.events.emit({ type: 'session.status_terminated', reason });
    this.writer.write({ status: 'terminated' });
    await this.writer.written();
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
    if (Object.keys(update).length > 0) this.writer.write(update);
  }

  /** A method, not a field read: TypeScript would keep a narrowing of `state` across an await. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private enterStarting(): void {
    this.startingFrom = this.state === 'suspended' ? 'suspended' : 'cold';
    this.transition('starting');
  }

  private get proc(): AgentProcess | undefined {
    return this.slot.current;
  }

  private get record(): SessionRecord {
    return this.writer.current;
  }

  private report(err: unknown): void {
    this.options.onError?.(err);
  }

  /** Runs a host hook; what it throws is reported, never thrown into the session's own work. */
  private guarded(hook: () => void): void {
    try {
      hook();
    } catch (err) {
      this.report(err);
    }
  }

  private async runTurn(message: SDKUserMessage, turn: Turn): Promise<void> {
    try {
      if (this.proc && this.state === 'idle') {
        this.transition('running');
        this.events.emit({ type: 'session.status_running' });
        this.proc.push(message);
      } else {
        this.events.emit({ type: 'session.status_running' });
        if (!(await this.prepareStart(turn))) return;
        this.startProcess(message);
        this.transition('running');
      }
      await turn.done;
    } catch (err) {
      this.endTurnWithError(turn, 'subprocess_failed', `Could not run the turn: ${describeError(err)}`);
    }
  }

  /**
   * Everything a turn without a subprocess waits for before it starts one: the previous subprocess gone
   * (two of one session must never write its transcript together), a suspension over, room made on the
   * host, the workspace restored. False when the turn ended instead.
   */
  private async prepareStart(turn: Turn): Promise<boolean> {
    await this.slot.settled();
    if (this.isClosed()) return false;
    if (this.state !== 'starting') this.enterStarting();
    const admission = this.admission;
    this.admission = undefined;
    const failed = (err: unknown, otherwise: string, what: string): false => {
      this.endTurnWithError(turn, isBerthError(err) ? err.code : otherwise, `${what}: ${describeError(err)}`);
      return false;
    };
    try {
      await admission;
    } catch (err) {
      return failed(err, 'subprocess_failed', 'Could not make room for the turn');
    }
    if (this.isClosed()) return false;
    try {
      await this.options.prepareStart?.(this);
    } catch (err) {
      return failed(err, 'hydrate_failed', 'Could not start the turn');
    }
    return this.currentState === 'starting';
  }

  /** Starts the subprocess that runs `first`: a claimed warm spare for a new session, else a spawn. */
  private startProcess(first: SDKUserMessage): void {
    const { options } = this;
    const spare = this.record.started ? undefined : options.claimSpare?.(this);
    const proc = startSessionProcess({
      setup: options,
      record: this.record,
      canUseTool: this.confirmations.canUseTool,
      spare,
      start: { at: this.turns.current?.startedAt, hydrated: this.startingFrom === 'suspended' },
      report: (err) => this.report(err),
    });
    this.slot.set(proc);
    proc.push(first);
    void this.read(proc, spare);
  }

  /** Consumes the subprocess's messages for its whole life: stopping early would kill it. */
  private async read(proc: AgentProcess, spare: ClaimableSpare | undefined): Promise<void> {
    let failure: unknown;
    try {
      for await (const message of proc.messages())
        this.turns.inTurn(() => this.onMessage(proc, message, spare));
    } catch (err) {
      failure = err;
    }
    this.onProcessEnd(proc, failure);
  }

  private onMessage(proc: AgentProcess, message: SDKMessage, spare: ClaimableSpare | undefined): void {
    if (this.proc !== proc || this.state === 'closed') return;
    const patch = initPatch(message, this.record, proc.warm);
    if (patch) this.writer.write(patch);
    if (message.type === 'result') {
      // The pool may start the spare's replacement once its first turn is over, not while it competes.
      if (proc.turns === 1 && proc.warm) spare?.firstTurnEnded();
      this.onResult(proc, message);
      return;
    }
    const events = mapSdkMessage(message);
    const turn = this.turns.current;
    if (turn) turn.failedWith ??= modelFailure(events); // fails the turn, even if the CLI says success
    this.confirmations.emitEvents(events);
  }

  private onResult(proc: AgentProcess, result: SDKResultMessage): void {
    const turn = this.turns.current;
    const usage = resultUsage(result, proc.turnCostUsd(result));
    const totals = { usage: addUsage(this.record.usage, usage), turns: this.record.turns + 1 };
    // Over its memory mid-turn (the kernel killed a tool): the tree goes, and its end ends the turn.
    const limit = turn && proc.limitHit();
    if (limit) void this.slot.end(proc, { graceful: false });
    else if (turn) this.finishTurn(turn, resultStopReason(result, turn), usage, 'idle', totals);
    if (!turn || limit) this.writer.write(totals); // no turn of ours (an interrupt ended it) still counts
  }

  private finishTurn(
    turn: Turn,
    stopReason: StopReason,
    usage: ReturnType<typeof resultUsage> | undefined,
    next: 'idle' | 'cold' | 'suspended',
    totals: Partial<SessionRecord> = {},
  ): void {
    if (this.turns.current !== turn || this.state === 'closed') {
      if (Object.keys(totals).length > 0) this.writer.write(totals);
      return;
    }
    this.turns.endCurrent(turn);
    this.confirmations.endTurn();
    this.transition(next, totals);
    this.events.emit({
      type: 'session.status_idle',
      stop_reason: stopReason,
      ...(usage && { usage }),
      duration_ms: Date.now() - turn.startedAt,
    });
    if (next === 'idle' && this.proc) this.guarded(() => this.options.onTurnEnd?.(this));
    turn.finish();
  }

  private endTurnWithError(turn: Turn, type: string, message: string): void {
    if (this.turns.current !== turn || this.state === 'closed') return;
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
    error ??= proc.limitHit();
    if (error) this.options.observer?.ended(error.type);
    this.slot.detach();
    // Whatever the CLI left behind (a background job of a tool) goes with it, before the next one starts.
    void this.slot.chain(proc.kill());
    this.confirmations.denyAll('The subprocess ended.', true);
    const turn = this.turns.current;
    if (turn && error) {
      this.endTurnWithError(turn, error.type, error.message);
    } else if (turn) {
      this.endTurnWithError(
        turn,
        'subprocess_exited',
        `The agent's subprocess ended mid-turn: ${proc.whyEnded(failure)}`,
      );
    } else if (this.state === 'idle') {
      this.transition('cold');
    }
  }

  private async interrupt(): Promise<void> {
    const turn = this.turns.current;
    const proc = this.proc;
    if (!turn || !proc) return;
    turn.interrupted = true;
    this.confirmations.denyAll('The user interrupted the turn.', true);
    const settled = await proc.interruptWithin(this.options.timeouts.interruptMs, turn.done);
    if (settled || this.proc !== proc) return;
    // The interrupt did not end the turn in time (seen in the field): kill the tree; the next message resumes.
    await this.slot.end(proc, { graceful: false });
  }
}
