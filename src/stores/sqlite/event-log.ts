/**
 * The event log on the embedded SQLite database (table `events`, see `sqlite/database.ts`).
 */
import { BerthError } from '../../errors.js';
import type { StoredEvent } from '../../session/events.js';
import { migrateSqliteDatabase, sqliteTask } from './database.js';
import type { SqliteDatabase } from './database.js';
import type { EventLog, StoreCallOptions } from '../types.js';

/** Options of {@link SqliteEventLog}. */
export interface SqliteEventLogOptions {
  /** An open connection, e.g. from `openSqliteDatabase`; the log never closes it. */
  db: SqliteDatabase;
}

/**
 * Every event of every session in SQLite, keyed by (session id, seq). A batch is stored whole or not at
 * all; a `seq` that is already stored (or repeated in the batch) fails the batch with
 * `event_seq_conflict`: a batch stored before (a retry) or two writers numbering one session's events.
 */
export class SqliteEventLog implements EventLog {
  private readonly db: SqliteDatabase;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly appendTx: (sessionId: string, events: StoredEvent[]) => void;

  constructor(options: SqliteEventLogOptions) {
    this.db = options.db;
    migrateSqliteDatabase(this.db);
    this.sql = prepareStatements(this.db);
    const append = this.db.transaction((sessionId: string, events: StoredEvent[]) => {
      for (const event of events) {
        if (this.sql.insert.run(sessionId, event.seq, JSON.stringify(event)).changes === 0) {
          throw new BerthError(
            'event_seq_conflict',
            `event seq ${event.seq} of session ${sessionId} is already stored`,
          );
        }
      }
    });
    this.appendTx = (sessionId, events) => append.immediate(sessionId, events);
  }

  append(sessionId: string, events: StoredEvent[], options?: StoreCallOptions): Promise<void> {
    return sqliteTask(
      this.db,
      'append events',
      () => {
        if (events.length > 0) this.appendTx(sessionId, events);
      },
      options?.signal,
    );
  }

  list(
    sessionId: string,
    options: { after: number; limit: number } & StoreCallOptions,
  ): Promise<StoredEvent[]> {
    return sqliteTask(
      this.db,
      'list events',
      () => {
        // SQLite reads a negative LIMIT as "no limit"; a caller asking for nothing gets nothing.
        if (!(options.limit > 0)) return [];
        const rows = this.sql.list.all(sessionId, options.after, Math.floor(options.limit));
        return rows.map((row) => JSON.parse(row) as StoredEvent);
      },
      options.signal,
    );
  }

  lastSeq(sessionId: string, options?: StoreCallOptions): Promise<number> {
    return sqliteTask(
      this.db,
      'read last event seq',
      () => this.sql.lastSeq.get(sessionId) ?? 0,
      options?.signal,
    );
  }

  deleteSession(sessionId: string, options?: StoreCallOptions): Promise<void> {
    return sqliteTask(
      this.db,
      'delete events',
      () => {
        this.sql.deleteSession.run(sessionId);
      },
      options?.signal,
    );
  }
}

function prepareStatements(db: SqliteDatabase) {
  return {
    insert: db.prepare<[string, number, string]>(
      'INSERT INTO events (session_id, seq, event) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    list: db
      .prepare<[string, number, number], string>(
        'SELECT event FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      )
      .pluck(),
    lastSeq: db.prepare<[string], number | null>('SELECT max(seq) FROM events WHERE session_id = ?').pluck(),
    deleteSession: db.prepare<[string]>('DELETE FROM events WHERE session_id = ?'),
  };
}
