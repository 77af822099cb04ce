import { describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { GroupEventBuffer, type GroupEvent } from '../groups/group-events.js';
import { groupEventPage, groupEventView } from './group-routes.js';

const AT = '2026-01-02T03:04:05.000Z';

/** A buffer of `count` rounds events; it keeps the latest `keep`. */
function buffer(count: number, keep = 1000): GroupEventBuffer {
  const events = new GroupEventBuffer(keep, 1_000_000, (e) => JSON.stringify(groupEventView(e)));
  for (let i = 0; i < count; i++) {
    events.emit((seq) => ({ type: 'group.rounds', rounds: 1, id: `sevt_${seq}`, seq, created_at: AT }));
  }
  return events;
}

function refused(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (err) {
    return isBerthError(err, 'invalid_request');
  }
}

describe('groupEventView', () => {
  it("shows an agent's event as the API shows session events, tagged and numbered in the group", () => {
    const event: GroupEvent = {
      type: 'agent.tool_use',
      tool_use_id: 'toolu_cli',
      name: 'Bash',
      input: { command: 'ls' },
      requires_confirmation: true,
      id: 'sevt_use',
      seq: 7,
      created_at: AT,
      agent: 'A',
      session_id: 'sess_a',
      session_seq: 3,
    };
    expect(groupEventView(event)).toEqual({
      id: 'sevt_use',
      type: 'agent.tool_use',
      processed_at: AT,
      seq: 7,
      name: 'bash',
      input: { command: 'ls' },
      evaluated_permission: 'ask',
      agent: 'A',
      session_id: 'sess_a',
      session_seq: 3,
    });
    const result: GroupEvent = {
      type: 'agent.tool_result',
      tool_use_id: 'toolu_cli',
      tool_use_event_id: 'sevt_use',
      content: 'out',
      is_error: false,
      id: 'sevt_result',
      seq: 8,
      created_at: AT,
      agent: 'A',
      session_id: 'sess_a',
      session_seq: 4,
    };
    expect(groupEventView(result)).toMatchObject({
      seq: 8,
      tool_use_id: 'sevt_use',
      content: [{ type: 'text', text: 'out' }],
      session_seq: 4,
    });
  });

  it("shows the group's own events with processed_at in place of created_at", () => {
    const event: GroupEvent = {
      type: 'group.rounds_finished',
      rounds: 2,
      completed: 2,
      stop_reason: 'done',
      id: 'sevt_own',
      seq: 9,
      created_at: AT,
    };
    expect(groupEventView(event)).toEqual({
      id: 'sevt_own',
      type: 'group.rounds_finished',
      processed_at: AT,
      seq: 9,
      rounds: 2,
      completed: 2,
      stop_reason: 'done',
    });
  });
});

describe('groupEventPage', () => {
  it('pages through every event with opaque cursors, and ends with a null cursor', () => {
    const events = buffer(7);
    const seqs: number[][] = [];
    let page: string | undefined;
    for (;;) {
      const got = groupEventPage(events, { limit: 3, page });
      seqs.push(got.data.map((e) => e.seq));
      if (got.next === null) break;
      expect(got.next).not.toMatch(/^\d+$/);
      page = got.next;
    }
    expect(seqs).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    // A page that ends on the latest event is the last, even when it is full.
    expect(
      groupEventPage(buffer(6), { limit: 3, page: groupEventPage(buffer(6), { limit: 3 }).next! }),
    ).toMatchObject({
      next: null,
    });
    expect(groupEventPage(buffer(0), { limit: 3 })).toEqual({ data: [], next: null });
  });

  it('goes on from the oldest event the buffer holds when a cursor is older than it', () => {
    const events = buffer(3, 4);
    const first = groupEventPage(events, { limit: 2 });
    expect(first.data.map((e) => e.seq)).toEqual([1, 2]);
    for (let i = 0; i < 5; i++) {
      events.emit((seq) => ({ type: 'group.rounds', rounds: 1, id: `sevt_${seq}`, seq, created_at: AT }));
    }
    expect(events.oldestSeq).toBe(5);
    const next = groupEventPage(events, { limit: 2, page: first.next! });
    expect(next.data.map((e) => e.seq)).toEqual([5, 6]);
    expect(groupEventPage(events, { limit: 10, page: next.next! }).data.map((e) => e.seq)).toEqual([7, 8]);
  });

  it('refuses a cursor it did not give out, a session cursor among them', () => {
    const events = buffer(3);
    for (const page of ['nope', '', Buffer.from('asc:1').toString('base64url'), 'Z3JvdXA6eA']) {
      expect(
        refused(() => groupEventPage(events, { limit: 2, page })),
        page,
      ).toBe(true);
    }
  });
});
