/**
 * The contract every {@link EventLog} keeps, as vitest cases. Run it from an adapter's tests with a factory
 * that returns a log over fresh, isolated state (a new database, schema or key prefix per call).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import type { StoredEvent } from '../session/events.js';
import type { EventLog } from '../stores/types.js';

export interface EventLogUnderTest {
  log: EventLog;
  cleanup?: () => Promise<void>;
}

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

export function runEventLogConformance(name: string, factory: () => Promise<EventLogUnderTest>): void {
  describe(`${name}: EventLog conformance`, () => {
    let log: EventLog;
    let cleanup: (() => Promise<void>) | undefined;
    beforeEach(async () => {
      ({ log, cleanup } = await factory());
    });
    afterEach(async () => {
      await cleanup?.();
    });

    it('lists events after a seq, oldest first, at most limit', async () => {
      const events = Array.from({ length: 10 }, (_, i) => event(i + 1, `ü ${i} 🚀`));
      await log.append('s1', events.slice(0, 4));
      await log.append('s1', events.slice(4));
      expect(await log.list('s1', { after: 0, limit: 100 })).toEqual(events);
      expect(await log.list('s1', { after: 3, limit: 4 })).toEqual(events.slice(3, 7));
      expect(await log.list('s1', { after: 10, limit: 5 })).toEqual([]);
      expect(await log.list('s1', { after: 0, limit: 0 })).toEqual([]);
      expect(await log.list('s1', { after: 0, limit: -1 })).toEqual([]);
    });

    it('orders by seq, not by insertion', async () => {
      await log.append('s1', [event(2)]);
      await log.append('s1', [event(1), event(3)]);
      expect((await log.list('s1', { after: 0, limit: 10 })).map((e) => e.seq)).toEqual([1, 2, 3]);
    });

    it('keeps sessions apart', async () => {
      await log.append('s1', [event(1), event(2)]);
      await log.append('s2', [event(1, 'other')]);
      expect(await log.list('s2', { after: 0, limit: 10 })).toEqual([event(1, 'other')]);
      expect(await log.lastSeq('s1')).toBe(2);
      expect(await log.lastSeq('s2')).toBe(1);
      expect(await log.lastSeq('unknown')).toBe(0);
    });

    it('throws for a seq that is already stored and stores none of that batch', async () => {
      await log.append('s1', [event(1), event(2)]);
      let error: unknown;
      try {
        await log.append('s1', [event(3), event(4), event(2, 'again')]);
      } catch (err) {
        error = err;
      }
      expect(isBerthError(error, 'internal')).toBe(true);
      expect(await log.list('s1', { after: 0, limit: 10 })).toEqual([event(1), event(2)]);
      expect(await log.lastSeq('s1')).toBe(2);
    });

    it('throws for a seq repeated within one batch', async () => {
      await expect(log.append('s1', [event(1), event(1)])).rejects.toSatisfy((err: unknown) =>
        isBerthError(err, 'internal'),
      );
      expect(await log.lastSeq('s1')).toBe(0);
    });

    it('append of nothing is a no-op', async () => {
      await log.append('s1', []);
      expect(await log.lastSeq('s1')).toBe(0);
    });

    it("deleteSession removes that session's events only, and its seqs can be reused", async () => {
      await log.append('s1', [event(1), event(2)]);
      await log.append('s2', [event(1)]);
      await log.deleteSession('s1');
      await log.deleteSession('unknown');
      expect(await log.list('s1', { after: 0, limit: 10 })).toEqual([]);
      expect(await log.lastSeq('s1')).toBe(0);
      expect(await log.lastSeq('s2')).toBe(1);
      await log.append('s1', [event(1, 'fresh')]);
      expect(await log.list('s1', { after: 0, limit: 10 })).toEqual([event(1, 'fresh')]);
    });
  });
}
