/**
 * A group's event stream (see group.ts): every event of every agent's session, tagged with the agent's name
 * and renumbered with the group's own `seq`, plus the group's own events (bus messages, rounds). A
 * bounded buffer of the latest events serves replays and publishes each new one to its subscribers
 * synchronously; older events stay readable in each agent's session history.
 *
 * Events are kept as the group stored them (a tagged session event keeps its CLI tool names and tool use
 * ids, which the group's own bookkeeping reads); how clients see one is the `render` the buffer is given,
 * applied once per event (the HTTP layer shows them as the API shows session events).
 */
import type { NewEvent } from '../session/events.js';
import type { UserEvent } from '../session/session.js';

/** @default for `GroupOptions.maxBufferedEvents`. */
export const DEFAULT_MAX_BUFFERED_EVENTS = 10_000;

/**
 * @default for `GroupOptions.maxBufferedChars`: the replay buffer's bound in characters of JSON,
 * so that long tool results and 32 KiB bus messages cannot grow the host's memory past ~64 MB a group.
 */
export const DEFAULT_MAX_BUFFERED_CHARS = 32 * 1024 * 1024;

/** A session event as the group stream carries it: tagged with its agent, renumbered in group order. */
export type TaggedSessionEvent = NewEvent & {
  agent: string;
  session_id: string;
  /** The event's `seq` in its session's own stream. */
  session_seq: number;
};

/** Events of the group itself (payloads; `id`, `seq` and `created_at` are added when stored). */
export type GroupOwnEvent =
  | {
      type: 'group.message';
      message_id: string;
      from: string;
      /** An agent's name, or `*` for every other agent. */
      to: string;
      recipients: string[];
      text: string;
      sent_at: string;
    }
  | { type: 'group.rounds'; rounds: number; content?: string }
  | { type: 'group.round_started'; round: number; rounds: number }
  | {
      type: 'group.rounds_finished';
      rounds: number;
      /** Rounds every agent finished its turn of. */
      completed: number;
      stop_reason: 'done' | 'error' | 'deleted';
    }
  | { type: 'group.error'; agent?: string; error: { type: string; message: string } }
  | { type: 'group.status_terminated'; reason: string };

export type GroupEvent = (GroupOwnEvent | TaggedSessionEvent) & {
  id: string;
  seq: number;
  created_at: string;
};

/** An event a client sends to a group. */
export type GroupInputEvent =
  (UserEvent & { agent: string }) | { type: 'group.rounds'; rounds: number; content?: string | undefined };

/** An event as clients see it, as JSON. */
export type RenderGroupEvent = (event: GroupEvent) => string;

interface Buffered {
  event: GroupEvent;
  /** The event as clients see it, made once for every SSE client. */
  json: string;
}

/**
 * The group's stream: numbers events, keeps the latest in memory (bounded by count and size), and
 * publishes them to subscribers synchronously.
 */
export class GroupEventBuffer {
  private seq = 0;
  private readonly recent: Buffered[] = [];
  private chars = 0;
  private readonly listeners = new Set<(event: GroupEvent, json: string) => void>();

  /** `render` defaults to the event as stored. */
  constructor(
    private readonly maxEvents: number,
    private readonly maxChars: number,
    private readonly render: RenderGroupEvent = (event) => JSON.stringify(event),
  ) {}

  get lastSeq(): number {
    return this.seq;
  }

  /** The oldest `seq` still buffered (`lastSeq + 1` when nothing is). */
  get oldestSeq(): number {
    return this.recent[0]?.event.seq ?? this.seq + 1;
  }

  emit(make: (seq: number) => GroupEvent): GroupEvent {
    const event = make(++this.seq);
    const json = this.render(event);
    this.recent.push({ event, json });
    this.chars += json.length;
    while (this.recent.length > 1 && (this.recent.length > this.maxEvents || this.chars > this.maxChars)) {
      this.chars -= this.recent.shift()!.json.length;
    }
    for (const listener of this.listeners) {
      try {
        listener(event, json);
      } catch {
        // A failing subscriber (a closed socket) must not stop the group or the other subscribers.
      }
    }
    return event;
  }

  /** Buffered events with `seq > after`, oldest first, at most `limit`. */
  list(after: number, limit = Infinity): Buffered[] {
    const first = this.recent[0]?.event.seq ?? this.seq + 1;
    const from = Math.max(0, after + 1 - first);
    return this.recent.slice(from, from + limit);
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: (event: GroupEvent, json: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
