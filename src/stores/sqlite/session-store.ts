/**
 * The SDK `SessionStore` on the embedded SQLite database; tables and key scheme are described in
 * `sqlite/database.ts`.
 */
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry, SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import { migrateSqliteDatabase, sqliteTask } from './database.js';
import type { SqliteDatabase } from './database.js';
import type { CompleteSessionStore } from '../types.js';

/** Options of {@link SqliteSessionStore}. */
export interface SqliteSessionStoreOptions {
  /** An open connection, e.g. from `openSqliteDatabase`; the store never closes it. */
  db: SqliteDatabase;
}

interface KeyRow {
  id: number;
  mtime: number;
  summary: string | null;
}

/** The main transcript's subpath column value (see the schema comment). */
const MAIN = '';

/**
 * Transcripts in SQLite, for the SDK's `options.sessionStore`.
 *
 * Beyond the SDK's contract: an entry whose `uuid` is already stored under the same key is skipped (so
 * retries and replays never duplicate lines), and the session summary is folded in the same transaction
 * as the entries. Several instances, on one connection or on several connections in several processes,
 * can append to the same key without losing entries. The work is synchronous; failures come back as
 * rejected promises with code `store_unavailable`.
 */
export class SqliteSessionStore implements CompleteSessionStore {
  private readonly db: SqliteDatabase;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly appendTx: (key: SessionKey, entries: SessionStoreEntry[]) => void;
  private readonly deleteTx: (key: SessionKey) => void;

  constructor(options: SqliteSessionStoreOptions) {
    const db = options.db;
    this.db = db;
    migrateSqliteDatabase(db);
    this.sql = prepareStatements(db);
    const append = db.transaction((key: SessionKey, entries: SessionStoreEntry[]) =>
      this.appendLocked(key, entries),
    );
    this.appendTx = (key, entries) => append.immediate(key, entries);
    const remove = db.transaction((key: SessionKey) => this.deleteLocked(key));
    this.deleteTx = (key) => remove.immediate(key);
  }

  /** Stores the entries after those already stored, skipping any whose `uuid` the key already holds. */
  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    return sqliteTask(this.db, 'append', () => {
      if (entries.length > 0) this.appendTx(key, entries);
    });
  }

  /** All entries of the key in append order (one query), or null when it holds none. */
  load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    return sqliteTask(this.db, 'load', () => {
      const rows = this.sql.selectEntries.all(key.projectKey, key.sessionId, key.subpath || MAIN);
      return rows.length === 0 ? null : rows.map((row) => JSON.parse(row) as SessionStoreEntry);
    });
  }

  /** The project's main transcripts with the epoch-ms time of their last stored append. */
  listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    return sqliteTask(this.db, 'listSessions', () =>
      this.sql.selectSessions.all(projectKey).map((row) => ({ sessionId: row.session_id, mtime: row.mtime })),
    );
  }

  /** The folded summaries of the project's main transcripts; each `mtime` equals `listSessions`'s. */
  listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    return sqliteTask(this.db, 'listSessionSummaries', () =>
      this.sql.selectSummaries.all(projectKey).map((row) => ({
        sessionId: row.session_id,
        mtime: row.mtime,
        data: JSON.parse(row.summary) as Record<string, unknown>,
      })),
    );
  }

  /**
   * Removes the key's entries. For a main transcript also its subpaths and its summary; for a subpath only
   * that subpath. The removed uuids are forgotten: appending them again stores them again.
   */
  delete(key: SessionKey): Promise<void> {
    return sqliteTask(this.db, 'delete', () => this.deleteTx(key));
  }

  /** The subpaths (e.g. `subagents/agent-ID`) stored under the session, sorted. */
  listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    return sqliteTask(this.db, 'listSubkeys', () =>
      this.sql.selectSubkeys.all(key.projectKey, key.sessionId),
    );
  }

  private appendLocked(key: SessionKey, entries: SessionStoreEntry[]): void {
    const subpath = key.subpath || MAIN;
    const row = this.sql.selectKey.get(key.projectKey, key.sessionId, subpath);
    const now = Date.now();
    const keyId =
      row?.id ?? Number(this.sql.insertKey.run(key.projectKey, key.sessionId, subpath, now).lastInsertRowid);
    const stored: SessionStoreEntry[] = [];
    for (const entry of entries) {
      const uuid = typeof entry.uuid === 'string' ? entry.uuid : null;
      // The unique index decides, not a read before the write: a concurrent writer's row is seen here.
      if (this.sql.insertEntry.run(keyId, uuid, JSON.stringify(entry)).changes > 0) stored.push(entry);
    }
    // A replay that stored nothing leaves the key as it was (mtime included), so it does not look newer.
    if (stored.length === 0) return;
    // Strictly increasing per key even if the clock steps back or two appends share a millisecond, so a
    // reader comparing mtimes always sees the later write as newer.
    const mtime = Math.max(now, row ? row.mtime + 1 : now);
    let summary: string | null = null;
    if (subpath === MAIN) {
      const previous: SessionSummaryEntry | undefined =
        row?.summary != null
          ? {
              sessionId: key.sessionId,
              mtime: row.mtime,
              data: JSON.parse(row.summary) as Record<string, unknown>,
            }
          : undefined;
      // Only the entries actually stored are folded, so the summary always equals a fold of `load()`.
      summary = JSON.stringify(foldSessionSummary(previous, key, stored, { mtime }).data);
    }
    this.sql.updateKey.run(mtime, summary, keyId);
  }

  private deleteLocked(key: SessionKey): void {
    if (key.subpath) {
      this.sql.deleteKeyEntries.run(key.projectKey, key.sessionId, key.subpath);
      this.sql.deleteKey.run(key.projectKey, key.sessionId, key.subpath);
    } else {
      this.sql.deleteSessionEntries.run(key.projectKey, key.sessionId);
      this.sql.deleteSessionKeys.run(key.projectKey, key.sessionId);
    }
  }
}

function prepareStatements(db: SqliteDatabase) {
  const where = 'project_key = ? AND session_id = ? AND subpath = ?';
  return {
    selectKey: db.prepare<[string, string, string], KeyRow>(
      `SELECT id, mtime, summary FROM transcript_keys WHERE ${where}`,
    ),
    insertKey: db.prepare<[string, string, string, number]>(
      'INSERT INTO transcript_keys (project_key, session_id, subpath, mtime) VALUES (?, ?, ?, ?)',
    ),
    updateKey: db.prepare<[number, string | null, number]>(
      'UPDATE transcript_keys SET mtime = ?, summary = ? WHERE id = ?',
    ),
    insertEntry: db.prepare<[number, string | null, string]>(
      'INSERT OR IGNORE INTO transcript_entries (key_id, uuid, entry) VALUES (?, ?, ?)',
    ),
    selectEntries: db
      .prepare<[string, string, string], string>(
        `SELECT e.entry FROM transcript_entries e JOIN transcript_keys k ON k.id = e.key_id
         WHERE k.project_key = ? AND k.session_id = ? AND k.subpath = ? ORDER BY e.seq`,
      )
      .pluck(),
    selectSessions: db.prepare<[string], { session_id: string; mtime: number }>(
      `SELECT session_id, mtime FROM transcript_keys WHERE project_key = ? AND subpath = '${MAIN}'`,
    ),
    selectSummaries: db.prepare<[string], { session_id: string; mtime: number; summary: string }>(
      `SELECT session_id, mtime, summary FROM transcript_keys
       WHERE project_key = ? AND subpath = '${MAIN}' AND summary IS NOT NULL`,
    ),
    selectSubkeys: db
      .prepare<[string, string], string>(
        `SELECT subpath FROM transcript_keys WHERE project_key = ? AND session_id = ? AND subpath <> '${MAIN}'
         ORDER BY subpath`,
      )
      .pluck(),
    deleteSessionEntries: db.prepare<[string, string]>(
      `DELETE FROM transcript_entries WHERE key_id IN
       (SELECT id FROM transcript_keys WHERE project_key = ? AND session_id = ?)`,
    ),
    deleteSessionKeys: db.prepare<[string, string]>(
      'DELETE FROM transcript_keys WHERE project_key = ? AND session_id = ?',
    ),
    deleteKeyEntries: db.prepare<[string, string, string]>(
      `DELETE FROM transcript_entries WHERE key_id IN (SELECT id FROM transcript_keys WHERE ${where})`,
    ),
    deleteKey: db.prepare<[string, string, string]>(`DELETE FROM transcript_keys WHERE ${where}`),
  };
}
