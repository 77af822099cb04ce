/**
 * The SSE stream of one multi-agent group (see `streamEvents`). Its events live in the group's in-memory
 * buffer, so the replay is read in the same synchronous step as the subscription. A client asking for
 * events older than the buffer holds gets a `group.replay_gap` event (without an id) first, then what
 * remains. The stream ends after `group.status_terminated`.
 */
import type { Context } from 'hono';
import type { GroupEvent } from '../groups/group-events.js';
import type { Group } from '../groups/group.js';
import { streamEvents, type StreamOptions } from './sse.js';

/** An event with its JSON as clients see it (`groupEventView`), made once by the buffer for every client. */
interface Frame {
  seq: number;
  type: GroupEvent['type'];
  json: string;
}

function frame(event: GroupEvent, json: string): Frame {
  return { seq: event.seq, type: event.type, json };
}

export function streamGroupEvents(c: Context, group: Group, options: StreamOptions): Response {
  const { events } = group;
  return streamEvents<Frame>(
    c,
    {
      subscribe: (listener) => events.subscribe((event, json) => listener(frame(event, json))),
      list: (after) => events.list(after).map((b) => frame(b.event, b.json)),
      get lastSeq() {
        return events.lastSeq;
      },
      get ended() {
        return group.currentState === 'closed';
      },
      isFinal: (f) => f.type === 'group.status_terminated',
      data: (f) => f.json,
      gap: (after) =>
        after + 1 < events.oldestSeq
          ? { event: 'group.replay_gap', data: JSON.stringify({ after, first_seq: events.oldestSeq }) }
          : undefined,
    },
    options,
  );
}
