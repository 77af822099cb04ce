import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../session/events.js';
import type { SessionEventStream } from '../session/event-stream.js';
import { eventPage } from './event-pages.js';

/** A stream whose log holds the events `present` of seqs 1..last (the rest lost). */
function stream(last: number, present: (seq: number) => boolean): SessionEventStream {
  const all: StoredEvent[] = [];
  for (let seq = 1; seq <= last; seq++) {
    if (present(seq))
      all.push({ type: 'user.interrupt', id: `sevt_${seq}`, seq, created_at: '2026-12-07T00:00:00Z' });
  }
  return {
    lastSeq: last,
    list: (after: number, limit: number) => Promise.resolve(all.filter((e) => e.seq > after).slice(0, limit)),
  } as unknown as SessionEventStream;
}

async function everything(events: SessionEventStream, order: 'asc' | 'desc'): Promise<number[]> {
  const seqs: number[] = [];
  let page: string | undefined;
  for (let i = 0; i < 100; i++) {
    const got = await eventPage(events, { limit: 2, order, page });
    seqs.push(...got.data.map((e) => e.seq));
    if (!got.next) return seqs;
    expect(got.next).not.toBe(page);
    page = got.next;
  }
  throw new Error('paging did not end');
}

describe('eventPage', () => {
  it('pages to the end in both orders', async () => {
    const events = stream(5, () => true);
    expect(await everything(events, 'asc')).toEqual([1, 2, 3, 4, 5]);
    expect(await everything(events, 'desc')).toEqual([5, 4, 3, 2, 1]);
  });

  it('ends, never hands back its own cursor, when the log lost the events at its end', async () => {
    const events = stream(6, (seq) => seq <= 3);
    expect(await everything(events, 'asc')).toEqual([1, 2, 3]);
  });
});
