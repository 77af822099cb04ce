/**
 * A session's events in Managed Agents' pages: `page`/`next_page` cursors, `order` (`asc`, the default,
 * or `desc`), and filters on `types[]` and `created_at`. Seqs have no gaps (events.ts), so a page in
 * either order is a range of seqs read with the event log's one query (`after`, `limit`).
 *
 * A filtered page may hold fewer events than `limit` and still have a next page: each request reads at
 * most {@link MAX_SCANNED} events, so a filter that matches nothing costs a bounded amount per request.
 */
import { BerthError } from '../errors.js';
import type { StoredEvent } from '../session/events.js';
import type { SessionEventStream } from '../session/event-stream.js';
import { apiEventType } from './event-view.js';

const MAX_SCANNED = 5000;
const READ_CHUNK = 500;

export interface EventPageQuery {
  limit: number;
  order: 'asc' | 'desc';
  page?: string | undefined;
  types?: ReadonlySet<string> | undefined;
  /** Bounds on `created_at`, epoch ms; either end open. */
  createdAfter?: number | undefined;
  createdBefore?: number | undefined;
  createdAtOrAfter?: number | undefined;
  createdAtOrBefore?: number | undefined;
}

interface Cursor {
  order: 'asc' | 'desc';
  /** asc: the next page starts after this seq; desc: before it. */
  seq: number;
}

function encode(cursor: Cursor): string {
  return Buffer.from(`${cursor.order}:${cursor.seq}`, 'utf8').toString('base64url');
}

function decode(page: string, order: 'asc' | 'desc'): Cursor {
  const text = Buffer.from(page, 'base64url').toString('utf8');
  const match = /^(asc|desc):(\d{1,15})$/.exec(text);
  if (!match) throw new BerthError('invalid_request', 'page: not a cursor this server gave out');
  if (match[1] !== order)
    throw new BerthError('invalid_request', `page: a cursor of order=${match[1]}, not ${order}`);
  return { order, seq: Number(match[2]) };
}

function matches(event: StoredEvent, q: EventPageQuery): boolean {
  if (q.types && !q.types.has(apiEventType(event))) return false;
  const at = Date.parse(event.created_at);
  if (q.createdAfter !== undefined && !(at > q.createdAfter)) return false;
  if (q.createdAtOrAfter !== undefined && !(at >= q.createdAtOrAfter)) return false;
  if (q.createdBefore !== undefined && !(at < q.createdBefore)) return false;
  if (q.createdAtOrBefore !== undefined && !(at <= q.createdAtOrBefore)) return false;
  return true;
}

/** One page of the session's events, and the cursor of the next (null at the end). */
export async function eventPage(
  events: SessionEventStream,
  q: EventPageQuery,
): Promise<{ data: StoredEvent[]; next: string | null }> {
  const cursor = q.page === undefined ? undefined : decode(q.page, q.order);
  const last = events.lastSeq;
  const data: StoredEvent[] = [];
  let scanned = 0;
  if (q.order === 'asc') {
    let after = cursor?.seq ?? 0;
    while (after < last && data.length < q.limit && scanned < MAX_SCANNED) {
      const chunk = await events.list(after, Math.min(READ_CHUNK, last - after));
      // Nothing where events should be (the log lost them): the end, not a cursor that points here again.
      if (chunk.length === 0) after = last;
      for (const event of chunk) {
        after = event.seq;
        scanned += 1;
        if (matches(event, q)) data.push(event);
        if (data.length === q.limit) break;
      }
    }
    return { data, next: after < last ? encode({ order: 'asc', seq: after }) : null };
  }
  let before = Math.min(cursor?.seq ?? last + 1, last + 1);
  while (before > 1 && data.length < q.limit && scanned < MAX_SCANNED) {
    const from = Math.max(0, before - 1 - READ_CHUNK);
    const chunk = await events.list(from, before - 1 - from);
    if (chunk.length === 0) before = 1;
    for (const event of chunk.reverse()) {
      before = event.seq;
      scanned += 1;
      if (matches(event, q)) data.push(event);
      if (data.length === q.limit) break;
    }
  }
  return { data, next: before > 1 ? encode({ order: 'desc', seq: before }) : null };
}
