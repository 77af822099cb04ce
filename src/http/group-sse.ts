/**
 * The SSE stream of one multi-agent group. Its events live in the group's in-memory buffer, so replay
 * and subscription happen in one synchronous step: no gap, no duplicate. A client asking for events
 * older than the buffer holds gets a `group.replay_gap` event (without an id) first, then what remains.
 */
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { Group, GroupEvent } from '../groups/group.js';

/** A client further behind than this is disconnected; it reconnects with Last-Event-ID and replays. */
const MAX_BUFFERED_EVENTS = 10_000;

export interface GroupStreamOptions {
  /** Replay events after this seq; undefined means live events only. */
  after: number | undefined;
  heartbeatMs: number;
}

interface Frame {
  event: GroupEvent;
  json: string;
}

export function streamGroupEvents(c: Context, group: Group, options: GroupStreamOptions): Response {
  return streamSSE(c, async (stream) => {
    const pending: Frame[] = [];
    let wake: (() => void) | undefined;
    let overflow = false;
    let closed = false;
    const gap =
      options.after !== undefined && options.after + 1 < group.events.oldestSeq
        ? { after: options.after, first_seq: group.events.oldestSeq }
        : undefined;
    // Replay and subscription in one synchronous step: nothing can be emitted in between.
    if (options.after !== undefined) pending.push(...group.events.list(options.after));
    const unsubscribe = group.events.subscribe((event, json) => {
      if (pending.length >= MAX_BUFFERED_EVENTS) overflow = true;
      else pending.push({ event, json });
      wake?.();
    });
    const ended = group.currentState === 'closed';
    const heartbeat = setInterval(() => {
      void stream.write(': heartbeat\n\n').catch(() => undefined);
    }, options.heartbeatMs);
    stream.onAbort(() => {
      closed = true;
      wake?.();
    });
    try {
      if (gap) await stream.writeSSE({ event: 'group.replay_gap', data: JSON.stringify(gap) });
      while (!closed && !overflow) {
        const frame = pending.shift();
        if (!frame) {
          if (ended) break;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        await send(stream, frame);
        if (frame.event.type === 'group.status_terminated') break;
      }
    } finally {
      clearInterval(heartbeat);
      unsubscribe();
    }
  });
}

function send(stream: SSEStreamingApi, frame: Frame): Promise<void> {
  return stream.writeSSE({ id: String(frame.event.seq), event: frame.event.type, data: frame.json });
}
