/**
 * One multi-agent group (the multi-agent pattern, README): several sessions on one host, one per
 * agent, that share a message bus and, optionally, a directory. The group itself lives in this host's
 * memory only; its agents are ordinary sessions (pattern `multi-agent`) that outlive it as sessions if
 * the host restarts.
 *
 * The group has one event stream with its own `seq` (group-events.ts). Agents take turns in rounds: a
 * `group.rounds` request gives every agent one turn per round, in order, each waiting for the last.
 * What agents are told is group-prompts.ts; the isolation check before a group exists, group-isolation.ts.
 */
import { BerthError, describeError, isBerthError } from '../errors.js';
import { newEventId } from '../ids.js';
import type { StoredEvent } from '../session/events.js';
import type { Session, SessionPaths } from '../session/session.js';
import {
  DEFAULT_MAX_BUFFERED_CHARS,
  DEFAULT_MAX_BUFFERED_EVENTS,
  GroupEventBuffer,
  type GroupEvent,
  type GroupInputEvent,
  type GroupOwnEvent,
  type RenderGroupEvent,
} from './group-events.js';
import { DEFAULT_ROUND_MESSAGE, renderRoundMessage } from './group-prompts.js';
import type { BusMessage, MessageBus } from './message-bus.js';

/** Most rounds one `group.rounds` event may ask for. */
export const MAX_ROUNDS = 20;

/** `group.rounds` requests that may wait while another runs; more is a client out of control. */
export const MAX_QUEUED_ROUND_RUNS = 10;

/**
 * - `active`: takes events and runs rounds.
 * - `closing`: being deleted (its agents' sessions are ending); takes nothing.
 * - `closed`: deleted; its stream has ended with `group.status_terminated`.
 */
export type GroupState = 'active' | 'closing' | 'closed';

const TRANSITIONS: Record<GroupState, readonly GroupState[]> = {
  active: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** The status clients see: `running` while rounds run or wait, or any agent's turn runs. */
export type GroupStatus = 'idle' | 'running' | 'terminated';

/** One agent of a group and what the group tracks of its session. */
export interface GroupMember {
  readonly name: string;
  readonly session: Session;
  /** The agent's directories, for the checks at start and the cleanup at delete. */
  readonly paths: SessionPaths;
}

interface MemberState {
  member: GroupMember;
  /** `user.message` events its session stored: each is one turn, run in order (see `Session`). */
  messages: number;
  /** Turns its session finished (a `session.status_idle` that is not a `requires_action` pause). */
  turnsEnded: number;
  terminated: boolean;
  waiters: Set<() => void>;
  unsubscribe: () => void;
}

interface RoundsRequest {
  rounds: number;
  content: string | undefined;
}

export interface GroupOptions {
  id: string;
  tenant: string;
  title: string | null;
  members: readonly GroupMember[];
  bus: MessageBus;
  /** The shared directory's real path, or null when the group has none. */
  sharedDir: string | null;
  /** @default 10000 */
  maxBufferedEvents?: number;
  /** @default 33554432 */
  maxBufferedChars?: number;
  /** How clients see an event (see group-events.ts). @default the event as stored, as JSON */
  renderEvent?: RenderGroupEvent;
  /** Failures no client sees. */
  onError?: (err: unknown) => void;
}

export class Group {
  readonly id: string;
  readonly tenant: string;
  readonly title: string | null;
  readonly sharedDir: string | null;
  readonly createdAt = Date.now();
  readonly events: GroupEventBuffer;
  private state: GroupState = 'active';
  private readonly members: MemberState[];
  private readonly bus: MessageBus;
  private readonly unsubscribeBus: () => void;
  private readonly roundsQueue: RoundsRequest[] = [];
  private roundsRunner: Promise<void> | undefined;
  private currentRound: { round: number; rounds: number } | undefined;
  private readonly stopRounds = new AbortController();

  constructor(private readonly options: GroupOptions) {
    this.id = options.id;
    this.tenant = options.tenant;
    this.title = options.title;
    this.sharedDir = options.sharedDir;
    this.bus = options.bus;
    this.events = new GroupEventBuffer(
      options.maxBufferedEvents ?? DEFAULT_MAX_BUFFERED_EVENTS,
      options.maxBufferedChars ?? DEFAULT_MAX_BUFFERED_CHARS,
      options.renderEvent,
    );
    this.members = options.members.map((member) => {
      const state: MemberState = {
        member,
        messages: 0,
        turnsEnded: 0,
        terminated: member.session.status === 'terminated',
        waiters: new Set(),
        unsubscribe: () => undefined,
      };
      state.unsubscribe = member.session.events.subscribe((event) => this.onSessionEvent(state, event));
      return state;
    });
    this.unsubscribeBus = this.bus.onMessage((m) => this.onBusMessage(m));
  }

  get currentState(): GroupState {
    return this.state;
  }

  get status(): GroupStatus {
    if (this.state !== 'active') return 'terminated';
    const busy = this.roundsRunner !== undefined || this.members.some((m) => m.member.session.isBusy);
    return busy ? 'running' : 'idle';
  }

  get agents(): readonly GroupMember[] {
    return this.members.map((m) => m.member);
  }

  /** The round being run, and how many `group.rounds` requests wait after it. */
  get rounds(): { active: { round: number; rounds: number } | null; queued: number } {
    return { active: this.currentRound ?? null, queued: this.roundsQueue.length };
  }

  /**
   * Validates every event first (an invalid one rejects the batch and changes nothing), then hands
   * agents' events to their sessions in order and queues rounds. Returns the events as the group
   * stream stored them. A refusal by a session's host (`host_full`) stops the batch there.
   */
  send(events: readonly GroupInputEvent[]): GroupEvent[] {
    this.assertActive();
    let rounds = 0;
    for (const [index, event] of events.entries()) {
      if (event.type === 'group.rounds') {
        rounds += 1;
        continue;
      }
      const member = this.member(event.agent, `events.${index}.agent`);
      if (member.terminated || member.member.session.status === 'terminated') {
        throw new BerthError(
          'session_terminated',
          `events.${index}: the session of agent ${event.agent} is terminated`,
        );
      }
      if (
        event.type === 'user.tool_confirmation' &&
        !member.member.session.pendingToolUses.includes(event.tool_use_id)
      ) {
        throw new BerthError(
          'tool_use_not_pending',
          `events.${index}: tool use ${event.tool_use_id} is not waiting for a confirmation from agent ${event.agent}`,
        );
      }
    }
    const waiting = this.roundsQueue.length + (this.roundsRunner ? 1 : 0);
    if (rounds > 0 && waiting + rounds > MAX_QUEUED_ROUND_RUNS + 1) {
      throw new BerthError(
        'queue_full',
        `Group ${this.id} already has ${waiting} rounds request(s) running or waiting; at most ${MAX_QUEUED_ROUND_RUNS} may wait`,
      );
    }
    const stored: GroupEvent[] = [];
    for (const event of events) {
      if (event.type === 'group.rounds') {
        const request = { rounds: event.rounds, content: event.content };
        stored.push(
          this.emit({
            type: 'group.rounds',
            rounds: request.rounds,
            ...(request.content !== undefined && { content: request.content }),
          }),
        );
        this.roundsQueue.push(request);
        continue;
      }
      const { agent, ...userEvent } = event;
      const member = this.member(agent, 'agent');
      const before = this.events.lastSeq;
      const sent = member.member.session.send([userEvent]);
      // The session published its events synchronously, so their group copies came after `before` (with
      // whatever else the send set off at once, such as a turn starting).
      const ids = new Set(sent.map((e) => e.id));
      for (const { event: tagged } of this.events.list(before)) {
        if (ids.has(tagged.id)) stored.push(tagged);
      }
    }
    if (rounds > 0) this.roundsRunner ??= this.runRounds();
    return stored;
  }

  /**
   * Stops taking events and stops the rounds (the running turn is left to `endSessions`, which ends
   * the agents' sessions). Resolves when the rounds runner has finished.
   */
  async stop(endSessions: () => Promise<void>): Promise<void> {
    this.transition('closing');
    this.roundsQueue.length = 0;
    this.stopRounds.abort();
    for (const m of this.members) this.wake(m);
    try {
      await endSessions();
    } finally {
      await this.roundsRunner;
    }
  }

  /** Detaches from the sessions and the bus and ends the stream (after {@link stop}; idempotent). */
  finish(reason: string): void {
    if (this.state === 'closed') return;
    if (this.state === 'active') this.transition('closing');
    for (const m of this.members) m.unsubscribe();
    this.unsubscribeBus();
    this.bus.close();
    this.emit({ type: 'group.status_terminated', reason });
    this.transition('closed');
  }

  private emit(event: GroupOwnEvent): GroupEvent {
    return this.events.emit((seq) => ({
      ...event,
      id: newEventId(),
      seq,
      created_at: new Date().toISOString(),
    }));
  }

  private onSessionEvent(state: MemberState, event: StoredEvent): void {
    if (event.type === 'user.message') state.messages += 1;
    else if (event.type === 'session.status_idle' && event.stop_reason.type !== 'requires_action') {
      state.turnsEnded += 1;
    } else if (event.type === 'session.status_terminated') {
      state.terminated = true;
    }
    this.events.emit((seq) => ({
      ...event,
      agent: state.member.name,
      session_id: state.member.session.id,
      session_seq: event.seq,
      seq,
    }));
    this.wake(state);
  }

  private onBusMessage(message: BusMessage): void {
    this.emit({
      type: 'group.message',
      message_id: message.id,
      from: message.from,
      to: message.to,
      recipients: message.recipients,
      text: message.text,
      sent_at: message.sent_at,
    });
  }

  private wake(state: MemberState): void {
    const waiters = [...state.waiters];
    state.waiters.clear();
    for (const w of waiters) w();
  }

  private member(name: string, field: string): MemberState {
    const found = this.members.find((m) => m.member.name === name);
    if (!found) {
      throw new BerthError(
        'invalid_request',
        `${field}: ${JSON.stringify(name)} is not an agent of this group (agents: ${this.members.map((m) => m.member.name).join(', ')})`,
      );
    }
    return found;
  }

  /** Runs queued rounds requests one after another; each round gives every agent one turn, in order. */
  private async runRounds(): Promise<void> {
    try {
      for (let request = this.roundsQueue.shift(); request; request = this.roundsQueue.shift()) {
        await this.runRequest(request);
      }
    } catch (err) {
      this.options.onError?.(err);
    } finally {
      this.currentRound = undefined;
      this.roundsRunner = undefined;
    }
  }

  private async runRequest(request: RoundsRequest): Promise<void> {
    const signal = this.stopRounds.signal;
    let completed = 0;
    let stopReason: 'done' | 'error' | 'deleted' = 'done';
    rounds: for (let round = 1; round <= request.rounds; round++) {
      if (signal.aborted) break;
      this.currentRound = { round, rounds: request.rounds };
      this.emit({ type: 'group.round_started', round, rounds: request.rounds });
      for (const state of this.members) {
        if (signal.aborted) break rounds;
        const name = state.member.name;
        const content = renderRoundMessage(request.content ?? DEFAULT_ROUND_MESSAGE, {
          agent: name,
          round,
          rounds: request.rounds,
        });
        try {
          state.member.session.send([{ type: 'user.message', content }]);
        } catch (err) {
          this.emit({
            type: 'group.error',
            agent: name,
            error: {
              type: isBerthError(err) ? err.code : 'internal',
              message: `The round could not give agent ${name} its turn: ${describeError(err)}`,
            },
          });
          stopReason = 'error';
          break rounds;
        }
        // Turns run one at a time in the order their messages were stored, so this message's turn is
        // the session's `messages`-th; other clients' messages to the agent may run before it.
        const ended = await this.awaitTurn(state, state.messages, signal);
        if (ended === 'terminated' && !signal.aborted) {
          this.emit({
            type: 'group.error',
            agent: name,
            error: {
              type: 'session_terminated',
              message: `The session of agent ${name} ended during the rounds`,
            },
          });
          stopReason = 'error';
          break rounds;
        }
      }
      if (!signal.aborted) completed = round;
    }
    if (signal.aborted) stopReason = 'deleted';
    this.currentRound = undefined;
    this.emit({ type: 'group.rounds_finished', rounds: request.rounds, completed, stop_reason: stopReason });
  }

  private async awaitTurn(
    state: MemberState,
    target: number,
    signal: AbortSignal,
  ): Promise<'ended' | 'terminated' | 'aborted'> {
    for (;;) {
      if (state.turnsEnded >= target) return 'ended';
      if (state.terminated) return 'terminated';
      if (signal.aborted) return 'aborted';
      await new Promise<void>((resolve) => state.waiters.add(resolve));
    }
  }

  private assertActive(): void {
    if (this.state !== 'active') {
      throw new BerthError('group_not_found', `Group ${this.id} is being deleted`);
    }
  }

  private transition(to: GroupState): void {
    if (!TRANSITIONS[this.state].includes(to)) {
      throw new Error(`Group ${this.id}: illegal transition ${this.state} -> ${to}`);
    }
    this.state = to;
  }
}
