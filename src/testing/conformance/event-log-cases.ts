/**
 * The contract every {@link EventLog} keeps, as conformance cases: run them with `runConformance`,
 * `runEventLogConformance` under vitest, or `berth conformance STORE_URL`.
 */
import assert from 'node:assert/strict';
import type { StoredEvent } from '../../session/events.js';
import type { EventLog } from '../../stores/types.js';
import { assertRejectsWithCode, assertSame, firedSignal } from './assertions.js';
import type { ConformanceCase, ConformanceContext } from './runner.js';

/** A stored event with the given seq. */
export function event(seq: number, text = `message ${seq}`): StoredEvent {
  return {
    type: 'agent.message',
    content: [{ type: 'text', text }],
    id: `evt_${seq}`,
    seq,
    created_at: new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString(),
  };
}

function logCase(
  name: string,
  run: (ctx: ConformanceContext<EventLog>) => Promise<void>,
): ConformanceCase<EventLog> {
  return { suite: 'EventLog', name, run };
}

/** The `EventLog` suite, in order. */
export const eventLogConformanceCases: readonly ConformanceCase<EventLog>[] = [
  logCase('lists events after a seq, oldest first, at most limit', async ({ instance: log }) => {
    const events = Array.from({ length: 10 }, (_, i) => event(i + 1, `ü ${i} 🚀`));
    await log.append('s1', events.slice(0, 4));
    await log.append('s1', events.slice(4));
    assertSame(await log.list('s1', { after: 0, limit: 100 }), events, 'list after 0, limit 100');
    assertSame(await log.list('s1', { after: 3, limit: 4 }), events.slice(3, 7), 'list after 3, limit 4');
    assertSame(await log.list('s1', { after: 10, limit: 5 }), [], 'list after the last seq');
    assertSame(await log.list('s1', { after: 0, limit: 0 }), [], 'list with limit 0');
    assertSame(await log.list('s1', { after: 0, limit: -1 }), [], 'list with limit -1');
  }),

  logCase('orders by seq, not by insertion', async ({ instance: log }) => {
    await log.append('s1', [event(2)]);
    await log.append('s1', [event(1), event(3)]);
    assertSame(
      (await log.list('s1', { after: 0, limit: 10 })).map((e) => e.seq),
      [1, 2, 3],
      'the seqs listed after appending 2, then 1 and 3',
    );
  }),

  logCase('keeps sessions apart', async ({ instance: log }) => {
    await log.append('s1', [event(1), event(2)]);
    await log.append('s2', [event(1, 'other')]);
    assertSame(
      await log.list('s2', { after: 0, limit: 10 }),
      [event(1, 'other')],
      "the second session's events",
    );
    assert.equal(await log.lastSeq('s1'), 2, 'lastSeq of the first session');
    assert.equal(await log.lastSeq('s2'), 1, 'lastSeq of the second session');
    assert.equal(await log.lastSeq('unknown'), 0, 'lastSeq of a session never written');
  }),

  logCase(
    'throws event_seq_conflict for a seq that is already stored and stores none of that batch',
    async ({ instance: log }) => {
      await log.append('s1', [event(1), event(2)]);
      await assertRejectsWithCode(
        log.append('s1', [event(3), event(4), event(2, 'again')]),
        'event_seq_conflict',
        'append of a batch holding a stored seq',
      );
      assertSame(
        await log.list('s1', { after: 0, limit: 10 }),
        [event(1), event(2)],
        'the events after the refused batch',
      );
      assert.equal(await log.lastSeq('s1'), 2, 'lastSeq after the refused batch');
    },
  ),

  logCase('throws event_seq_conflict for a seq repeated within one batch', async ({ instance: log }) => {
    await assertRejectsWithCode(
      log.append('s1', [event(1), event(1)]),
      'event_seq_conflict',
      'append of a batch repeating a seq',
    );
    assert.equal(await log.lastSeq('s1'), 0, 'lastSeq after the refused batch');
  }),

  logCase('append of nothing is a no-op', async ({ instance: log }) => {
    await log.append('s1', []);
    assert.equal(await log.lastSeq('s1'), 0, 'lastSeq after append([])');
  }),

  logCase(
    "deleteSession removes that session's events only, and its seqs can be reused",
    async ({ instance: log }) => {
      await log.append('s1', [event(1), event(2)]);
      await log.append('s2', [event(1)]);
      await log.deleteSession('s1');
      await log.deleteSession('unknown');
      assertSame(await log.list('s1', { after: 0, limit: 10 }), [], 'the deleted session');
      assert.equal(await log.lastSeq('s1'), 0, 'lastSeq of the deleted session');
      assert.equal(await log.lastSeq('s2'), 1, 'lastSeq of the other session');
      await log.append('s1', [event(1, 'fresh')]);
      assertSame(
        await log.list('s1', { after: 0, limit: 10 }),
        [event(1, 'fresh')],
        'the deleted session written again from seq 1',
      );
    },
  ),

  logCase(
    'a call whose signal has fired rejects with aborted and changes nothing',
    async ({ instance: log }) => {
      await log.append('s1', [event(1)]);
      const signal = firedSignal();
      await assertRejectsWithCode(log.append('s1', [event(2)], { signal }), 'aborted', 'append');
      await assertRejectsWithCode(log.deleteSession('s1', { signal }), 'aborted', 'deleteSession');
      await assertRejectsWithCode(log.list('s1', { after: 0, limit: 10, signal }), 'aborted', 'list');
      await assertRejectsWithCode(log.lastSeq('s1', { signal }), 'aborted', 'lastSeq');
      assertSame(
        await log.list('s1', { after: 0, limit: 10 }),
        [event(1)],
        'the events after the aborted calls',
      );
    },
  ),
];
