import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../errors.js';
import { runEventLogConformance } from '../../testing/event-log-conformance.js';
import { openSqliteDatabase, SqliteEventLog } from './index.js';
import type { SqliteDatabase } from './index.js';

runEventLogConformance('SqliteEventLog', () => {
  const db = openSqliteDatabase(':memory:');
  return Promise.resolve({
    log: new SqliteEventLog({ db }),
    cleanup: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

describe('SqliteEventLog', () => {
  let db: SqliteDatabase;
  let log: SqliteEventLog;
  beforeEach(() => {
    db = openSqliteDatabase(':memory:');
    log = new SqliteEventLog({ db });
  });
  afterEach(() => db.close());

  it('reports a closed database as store_unavailable through the promise', async () => {
    db.close();
    const promise = log.lastSeq('s1');
    await expect(promise).rejects.toSatisfy((err: unknown) => isBerthError(err, 'store_unavailable'));
    db = openSqliteDatabase(':memory:'); // for afterEach
  });
});
