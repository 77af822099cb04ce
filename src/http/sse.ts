/**
 * Event streams over SSE: a session's, a task's, a group's. A client that reconnects with
 * `Last-Event-ID` (or `?after=SEQ`) gets exactly what it missed, then live events, with no gap and no
 * duplicate: the subscription starts before history is read, and live events at or below the last
 * replayed `seq` are dropped. A stream ends after its source's final event, or when its source has
 * ended and everything is sent; a client that goes away ends its subscription, not the source. When
 * the server shuts down (`closing`), a stream first sends every event published so far (a drain's
 * `session.status_suspended`), then ends: the client reconnects to where the session runs next.
 */
import type { Context } from 'hono';
import { streamSSE, type SSEMessage, type SSEStreamingApi } from 'hono/streaming';
import type { StoredEvent } from '../session/events.js';
import type { Session } from '../session/session.js';
import { newEventId } from '../ids.js';
import { apiEventType, eventView } from './event-view.js';

/** A client further behind than this is disconnected; it reconnects with Last-Event-ID and replays. */
const MAX_BUFFERED_EVENTS = 10_000;
const REPLAY_PAGE = 500;

/** What a stream needs of an event: its `seq` is its SSE id, its `type` the SSE event name. */
export interface StreamEvent {
  readonly seq: number;
  readonly type: string;
}

/** What has events to stream (see {@link streamEvents}). */
export interface EventSource<E extends StreamEvent> {
  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: (event: E) => void): () => void;
  /** Stored events with `seq > after`, oldest first. Read after {@link subscribe}. */
  list(after: number): Iterable<E> | AsyncIterable<E>;
  /** The latest `seq`: where a stream with nothing to replay starts. */
  readonly lastSeq: number;
  /** True when no event will come after those already emitted (the stream then ends once it has sent them). */
  readonly ended: boolean;
  /** Calls `listener` when the source stops here before its final event; returns the unsubscribe function. */
  onEnd?(listener: () => void): () => void;
  /** Whether `event` is the last one its stream sends. */
  isFinal(event: E): boolean;
  /** The event's SSE data. */
  data(event: E): string;
  /** The event's SSE event name. @default its `type` */
  name?(event: E): string;
  /**
   * Sent first, without an id, when events after `after` are no longer all kept (a group's
   * `group.replay_gap`); undefined when none are missing. Read with {@link list}.
   */
  gap?(after: number): SSEMessage | undefined;
  /** Sent without an id after the final event, when there is something to add (a deleted session's `session.deleted`). */
  epilogue?(final: E): SSEMessage | undefined;
}

export interface StreamOptions {
  /** Replay events after this seq; undefined means live events only. */
  after: number | undefined;
  heartbeatMs: number;
  /** Called once the stream has ended (it no longer counts against its tenant's `streams` limit). */
  onClose?: (() => void) | undefined;
  /**
   * Aborted when the server shuts down: the stream sends the events it has received, then ends.
   * @default never
   */
  closing?: AbortSignal | undefined;
}

/** Streams `source`'s events: the replay after `options.after`, then live ones, with heartbeat comments. */
export function streamEvents<E extends StreamEvent>(
  c: Context,
  source: EventSource<E>,
  options: StreamOptions,
): Response {
  return streamSSE(c, async (stream) => {
    const buffered: E[] = [];
    let wake: (() => void) | undefined;
    let overflow = false;
    let closed = false;
    let closing = false;
    const unsubscribe = source.subscribe((event) => {
      if (buffered.length >= MAX_BUFFERED_EVENTS) overflow = true;
      else buffered.push(event);
      wake?.();
    });
    // Read with the subscription: whatever comes after this is buffered.
    const ended = source.ended;
    const { after } = options;
    let sent = after ?? source.lastSeq;
    const gap = after === undefined ? undefined : source.gap?.(after);
    const replay = after === undefined ? [] : source.list(after);
    const heartbeat = setInterval(() => {
      void stream.write(': heartbeat\n\n').catch(() => undefined);
    }, options.heartbeatMs);
    const stop = (): void => {
      closed = true;
      wake?.();
    };
    stream.onAbort(stop);
    const stopListening = source.onEnd?.(stop);
    const finish = (): void => {
      closing = true;
      wake?.();
    };
    if (options.closing?.aborted) finish();
    options.closing?.addEventListener('abort', finish, { once: true });
    try {
      if (gap) await stream.writeSSE(gap);
      for await (const event of replay) {
        if (closed) return;
        await send(stream, source, event);
        sent = event.seq;
        if (source.isFinal(event)) return;
      }
      while (!closed && !overflow) {
        const event = buffered.shift();
        if (!event) {
          if (ended || closing) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (event.seq <= sent) continue;
        await send(stream, source, event);
        sent = event.seq;
        if (source.isFinal(event)) return;
      }
    } finally {
      clearInterval(heartbeat);
      unsubscribe();
      stopListening?.();
      options.closing?.removeEventListener('abort', finish);
      options.onClose?.();
    }
  });
}

async function send<E extends StreamEvent>(
  stream: SSEStreamingApi,
  source: EventSource<E>,
  event: E,
): Promise<void> {
  const name = source.name?.(event) ?? event.type;
  await stream.writeSSE({ id: String(event.seq), event: name, data: source.data(event) });
  const epilogue = source.isFinal(event) ? source.epilogue?.(event) : undefined;
  if (epilogue) await stream.writeSSE(epilogue);
}

/** A session's stream; it ends after `session.status_terminated` (and `session.deleted` when it was deleted). */
export function streamSessionEvents(c: Context, session: Session, options: StreamOptions): Response {
  const { events } = session;
  return streamEvents<StoredEvent>(
    c,
    {
      subscribe: (listener) => events.subscribe(listener),
      onEnd: (listener) => events.onEnd(listener),
      // In pages: a long history is read from the event log, not held in memory at once.
      async *list(after) {
        for (let from = after; ;) {
          const page = await events.list(from, REPLAY_PAGE);
          yield* page;
          const last = page.at(-1);
          if (page.length < REPLAY_PAGE || !last) return;
          from = last.seq;
        }
      },
      get lastSeq() {
        return events.lastSeq;
      },
      ended: false,
      isFinal: (event) => event.type === 'session.status_terminated',
      data: (event) => JSON.stringify(eventView(event)),
      name: apiEventType,
      // Its events go with it: `session.deleted` is said on the stream only, as its last word.
      epilogue: (final) =>
        final.type === 'session.status_terminated' && final.reason === 'deleted'
          ? {
              event: 'session.deleted',
              data: JSON.stringify({
                id: newEventId(),
                type: 'session.deleted',
                processed_at: final.created_at,
              }),
            }
          : undefined,
    },
    options,
  );
}
