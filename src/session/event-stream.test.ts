/**
 * SessionEventStream against a real (SQLite) event log that the test can make fail, like a backend
 * behind a flaky network: what fails to be written stays pending, is written again, and every flush
 * hears of the failure until it is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteDatabase, SqliteEventLog } from '../stores/sqlite/index.js';
import type { SqliteDatabase } from '../stores/sqlite/index.js';
import type { EventLog } from '../stores/types.js';
import { SessionEventStream } from './event-stream.js';

const KEY = 'acme/s1';
let db: SqliteDatabase | undefined;

afterEach(() => {
  db?.close();
  db = undefined;
});

/** A SQLite log whose appends fail while `down`, or fail after writing while `loseAnswers`. */
function flakyLog() {
  db = openSqliteDatabase(':memory:');
  const log = new SqliteEventLog({ db });
  const state = { down: false, loseAnswers: false, appends: 0 };
  const flaky: EventLog = {
    append: async (key, events) => {
      state.appends++;
      if (state.down) throw new Error('connection refused');
      await log.append(key, events);
      if (state.loseAnswers) throw new Error('connection reset after the write');
    },
    list: (key, options) => log.list(key, options),
    lastSeq: (key) => log.lastSeq(key),
    deleteSession: (key) => log.deleteSession(key),
  };
  const seqs = async () => (await log.list(KEY, { after: 0, limit: 100 })).map((e) => e.seq);
  return { state, flaky, seqs };
}

const message = (text: string) => ({
  type: 'agent.message' as const,
  content: [{ type: 'text' as const, text }],
});

describe('SessionEventStream', () => {
  it('keeps the events of a failed write pending and writes them on the next flush', async () => {
    const { state, flaky, seqs } = flakyLog();
    const stream = new SessionEventStream(KEY, flaky, 0);
    state.down = true;
    stream.emit(message('one'), message('two'));
    await expect(stream.flush()).rejects.toThrow('connection refused');
    expect(stream.unwritten).toBe(2);
    state.down = false;
    stream.emit(message('three'));
    await stream.flush();
    expect(await seqs()).toEqual([1, 2, 3]);
    expect(stream.unwritten).toBe(0);
  });

  it('tells every caller that awaits a flush, and every later one, until the events are written', async () => {
    const { state, flaky, seqs } = flakyLog();
    const stream = new SessionEventStream(KEY, flaky, 0);
    state.down = true;
    stream.emit(message('one'));
    const together = await Promise.allSettled([stream.flush(), stream.flush(), stream.flush()]);
    expect(together.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    // Each later flush tries again, and fails again while the log is down.
    await expect(stream.flush()).rejects.toThrow('connection refused');
    await expect(stream.flush()).rejects.toThrow('connection refused');
    state.down = false;
    await stream.flush();
    await stream.flush();
    expect(await seqs()).toEqual([1]);
  });

  it('writes each event once when a failed write had reached the log', async () => {
    const { state, flaky, seqs } = flakyLog();
    const stream = new SessionEventStream(KEY, flaky, 0);
    state.loseAnswers = true;
    stream.emit(message('one'), message('two'));
    await expect(stream.flush()).rejects.toThrow('connection reset');
    state.loseAnswers = false;
    stream.emit(message('three'));
    await stream.flush();
    expect(await seqs()).toEqual([1, 2, 3]);
  });

  it('lists history that is only in the log after a failed write is retried', async () => {
    const { state, flaky } = flakyLog();
    const stream = new SessionEventStream(KEY, flaky, 0);
    state.down = true;
    stream.emit(message('one'));
    await expect(stream.list(-1, 10)).rejects.toThrow('connection refused');
    state.down = false;
    expect((await stream.list(-1, 10)).map((e) => e.seq)).toEqual([1]);
  });
});
