/**
 * The embedded SQLite database: one file (by default `DATA_DIR/berth.db`) that holds transcripts, the
 * session registry, the event log and the catalog, so that a single-node Berth needs no other service.
 *
 * Schema (version in `PRAGMA user_version`; migration N turns version N into N+1):
 *
 * - `transcript_keys(id, project_key, session_id, subpath, mtime, summary)`: one row per SessionKey.
 *   The three key parts are separate columns, never joined into one string, so no character needs
 *   escaping and (`a/b`, `c`) can never meet (`a`, `b/c`). `subpath` is `''` for the main transcript: the
 *   SDK forbids an empty subpath, so `''` names nothing else. `mtime` is the epoch-ms of the last append
 *   that stored something, strictly increasing per key. `summary` is the SDK's opaque
 *   `SessionSummaryEntry.data` as JSON (main transcripts only), folded in the same transaction as the
 *   entries it summarizes, so it can never disagree with them.
 * - `transcript_entries(seq, key_id, uuid, entry)`: one row per transcript line, `entry` as JSON text.
 *   `seq` is AUTOINCREMENT, so append order is `seq` order even after deletes. A partial UNIQUE index on
 *   (`key_id`, `uuid`) makes a replayed entry an `INSERT OR IGNORE` no-op; entries without a uuid are
 *   always stored.
 * - `sessions(tenant, id, ..., created_at, ...)`: the registry, one row per Berth session, ids unique per
 *   tenant; `metadata`,
 *   `agent` and `usage` are JSON. Listed newest first through an index on (tenant, created_at, id).
 *   `managed` (version 3) is the record's Managed Agents fields as JSON, NULL when it has none.
 * - `events(session_id, seq, event)`: the event log; `session_id` is `tenant/id`; the event is JSON;
 *   (session_id, seq) is the key.
 * - `catalog(tenant, kind, id, revision, created_at, updated_at, doc)` (version 2): agents, agent versions
 *   and environments (`stores/catalog.ts`), PK (tenant, kind, id); `doc` is JSON. Listed newest first
 *   through an index on (tenant, kind, created_at, id).
 *
 * Concurrency: WAL lets readers run beside one writer, and `busy_timeout` makes a connection that finds the
 * write lock taken (another store instance or process) wait for it instead of failing. Every write is a
 * `BEGIN IMMEDIATE` transaction: it takes the write lock before reading what it will fold, because a deferred
 * transaction that upgrades from read to write fails with SQLITE_BUSY_SNAPSHOT, which no timeout retries.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BerthError } from '../../errors.js';
import { checkAborted } from '../abort.js';

/** A better-sqlite3 connection. */
export type SqliteDatabase = Database.Database;

const MIGRATIONS: readonly string[] = [
  // 0 -> 1
  `
  CREATE TABLE transcript_keys (
    id          INTEGER PRIMARY KEY,
    project_key TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    subpath     TEXT    NOT NULL,
    mtime       INTEGER NOT NULL,
    summary     TEXT,
    UNIQUE (project_key, session_id, subpath)
  );
  CREATE TABLE transcript_entries (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id INTEGER NOT NULL,
    uuid   TEXT,
    entry  TEXT    NOT NULL
  );
  CREATE INDEX transcript_entries_by_key ON transcript_entries (key_id, seq);
  CREATE UNIQUE INDEX transcript_entries_uuid ON transcript_entries (key_id, uuid) WHERE uuid IS NOT NULL;

  CREATE TABLE sessions (
    tenant         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    title          TEXT,
    metadata       TEXT    NOT NULL,
    pattern        TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    sdk_session_id TEXT    NOT NULL,
    started        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    usage          TEXT    NOT NULL,
    turns          INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
  ) WITHOUT ROWID;
  CREATE INDEX sessions_by_tenant ON sessions (tenant, created_at, id);

  CREATE TABLE events (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    PRIMARY KEY (session_id, seq)
  ) WITHOUT ROWID;
  `,
  // 1 -> 2: the catalog
  `
  CREATE TABLE catalog (
    tenant     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc        TEXT    NOT NULL,
    PRIMARY KEY (tenant, kind, id)
  ) WITHOUT ROWID;
  CREATE INDEX catalog_by_created ON catalog (tenant, kind, created_at, id);
  `,
  // 2 -> 3: a session's Managed Agents fields
  `
  ALTER TABLE sessions ADD COLUMN managed TEXT;
  `,
];

/** The schema version this build of Berth writes and reads. */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** Options of {@link openSqliteDatabase}. */
export interface SqliteDatabaseOptions {
  /**
   * How long a write waits for another connection's write lock before failing with `store_unavailable`.
   * @default 5000
   */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating it and its parent directories if needed) the database at `file`, tuned for several
 * connections and processes on one file, and brings its schema up to {@link SQLITE_SCHEMA_VERSION}.
 * `':memory:'` opens a private in-memory database.
 */
export function openSqliteDatabase(file: string, options: SqliteDatabaseOptions = {}): SqliteDatabase {
  const inMemory = file === ':memory:' || file === '';
  if (!inMemory) mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  try {
    // Set before anything that locks: switching to WAL needs a moment of exclusive access, which another
    // process opening the same new file at the same time may hold.
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL cannot corrupt the database; a power loss may only drop the last commits, which
    // the SDK still has on local disk and the durable mirror replays idempotently (by uuid).
    db.pragma('synchronous = NORMAL');
    migrateSqliteDatabase(db);
  } catch (err) {
    db.close();
    throw toStoreError(err, `open ${file}`);
  }
  return db;
}

/**
 * Brings the schema of `db` up to {@link SQLITE_SCHEMA_VERSION}; cheap when it already is. The stores call
 * it themselves, so a connection opened elsewhere works too (without the pragmas of `openSqliteDatabase`).
 * Throws `store_unavailable` for a database written by a newer Berth.
 */
export function migrateSqliteDatabase(db: SqliteDatabase): void {
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  const check = (found: number): void => {
    if (found > SQLITE_SCHEMA_VERSION) {
      throw new BerthError(
        'store_unavailable',
        `sqlite database ${db.name} has schema version ${found}, newer than this Berth's ${SQLITE_SCHEMA_VERSION}`,
      );
    }
  };
  const found = version();
  check(found);
  if (found === SQLITE_SCHEMA_VERSION) return;
  db.transaction(() => {
    // Read again under the write lock: another process may have migrated since the first read.
    const current = version();
    check(current);
    for (let v = current; v < SQLITE_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] ?? '');
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
  }).immediate();
}

/**
 * Runs the synchronous `work` and settles a promise with its outcome, so that nothing throws synchronously
 * out of an async API. A SQLite failure (or use of a closed connection) becomes `store_unavailable`, so
 * that callers branch on the same codes whatever the backend; other errors (Berth's own, bugs) pass as
 * they are. The work is synchronous, so `signal` is honoured once, before it starts: there is no waiting
 * to stop.
 */
export function sqliteTask<T>(
  db: SqliteDatabase,
  action: string,
  work: () => T,
  signal?: AbortSignal,
): Promise<T> {
  try {
    checkAborted(signal, `sqlite ${action}`);
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(
      err instanceof Database.SqliteError || !db.open ? toStoreError(err, action) : toError(err),
    );
  }
}

function toStoreError(err: unknown, action: string): Error {
  if (err instanceof BerthError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError('store_unavailable', `sqlite ${action} failed: ${message}`, { cause: err });
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new BerthError('internal', String(err), { cause: err });
}
