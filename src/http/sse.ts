/**
 * The SSE stream of one session. A client that reconnects with `Last-Event-ID` (or `?after=SEQ`) gets
 * exactly what it missed, then live events, with no gap and no duplicate: the subscription starts before
 * history is read, and live events at or below the last replayed `seq` are dropped.
 */
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { StoredEvent } from '../session/events.js';
import type { Session } from '../session/session.js';

/** A client further behind than this is disconnected; it reconnects with Last-Event-ID and replays. */
const MAX_BUFFERED_EVENTS = 10_000;
const REPLAY_PAGE = 500;

export interface StreamOptions {
  /** Replay events after this seq; undefined means live events only. */
  after: number | undefined;
  heartbeatMs: number;
}

export function streamSessionEvents(c: Context, session: Session, options: StreamOptions): Response {
  return streamSSE(c, async (stream) => {
    const buffered: StoredEvent[] = [];
    let wake: (() => void) | undefined;
    let overflow = false;
    const unsubscribe = session.events.subscribe((event) => {
      if (buffered.length >= MAX_BUFFERED_EVENTS) overflow = true;
      else buffered.push(event);
      wake?.();
    });
    const heartbeat = setInterval(() => {
      void stream.write(': heartbeat\n\n').catch(() => undefined);
    }, options.heartbeatMs);
    let closed = false;
    const stop = (): void => {
      closed = true;
      wake?.();
    };
    stream.onAbort(stop);
    try {
      let sent = options.after ?? session.events.lastSeq;
      if (options.after !== undefined) {
        for (;;) {
          const page = await session.events.list(sent, REPLAY_PAGE);
          for (const event of page) {
            await send(stream, event);
            sent = event.seq;
          }
          if (page.length < REPLAY_PAGE || closed) break;
        }
      }
      while (!closed && !overflow) {
        const event = buffered.shift();
        if (!event) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (event.seq <= sent) continue;
        await send(stream, event);
        sent = event.seq;
        if (event.type === 'session.status_terminated') break;
      }
    } finally {
      clearInterval(heartbeat);
      unsubscribe();
    }
  });
}

function send(stream: SSEStreamingApi, event: StoredEvent): Promise<void> {
  return stream.writeSSE({ id: String(event.seq), event: event.type, data: JSON.stringify(event) });
}
