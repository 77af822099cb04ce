/**
 * The durable mirror's spool: one SQLite file (WAL) on the host's disk holding every write on its way to
 * the store. Layout and invariants are in the header of `durable-mirror.ts`:
 *
 *   ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind, scope, name, subpath, payload, fence_lease, fence_token)
 *
 * A row written under a session lease (multi-host mode) carries its fence, and is shipped with it.
 * `seq` is the shipping order; a row is deleted only after the store holds what it carries.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { SessionKey } from '@anthropic-ai/claude-agent-sdk';
import Database from 'better-sqlite3';
import type { Fence } from './types.js';

export type Kind = 'transcript' | 'events' | 'registry';

export interface OpRow {
  seq: number;
  kind: Kind;
  scope: string;
  name: string;
  subpath: string;
  payload: string;
  /** The lease and token the write was made under (see `StoreCallOptions.fence`), or null. */
  fence_lease: string | null;
  fence_token: number | null;
}

/** The `subpath` (and, for events and registry rows, the `name`) of a row that has none. */
export const MAIN = '';

/** Whether two rows can ship in one store call: the same target, under the same fence. */
export function sameTarget(a: OpRow, b: OpRow): boolean {
  return (
    a.kind === b.kind &&
    a.scope === b.scope &&
    a.name === b.name &&
    a.subpath === b.subpath &&
    a.fence_lease === b.fence_lease &&
    a.fence_token === b.fence_token
  );
}

/** The fence a row was written under, if any. */
export function rowFence(row: OpRow): Fence | undefined {
  return row.fence_lease === null || row.fence_token === null
    ? undefined
    : { lease: row.fence_lease, token: row.fence_token };
}

export function transcriptKey(row: OpRow): SessionKey {
  return row.subpath === MAIN
    ? { projectKey: row.scope, sessionId: row.name }
    : { projectKey: row.scope, sessionId: row.name, subpath: row.subpath };
}

/** Opens (creating it and its directory) the spool at `file`. */
export function openSpool(file: string): { db: Database.Database; sql: SpoolStatements } {
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // NORMAL with WAL is durable against a process crash (SIGKILL), which is the failure this guards.
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE IF NOT EXISTS ops (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    scope   TEXT NOT NULL,
    name    TEXT NOT NULL,
    subpath TEXT NOT NULL,
    payload TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS ops_by_target ON ops (kind, scope, name, subpath, seq);`);
  // A spool from an earlier version gets the columns it lacks, each on its own and all in one
  // transaction, so that a crash mid-way leaves either every column or none. Null in an old row:
  // unfenced, as it was written (fence_*); one entry spooled at an unknown time (entries, spooled_at:
  // the backlog's metrics).
  const added: readonly [string, string][] = [
    ['fence_lease', 'TEXT'],
    ['fence_token', 'INTEGER'],
    ['entries', 'INTEGER'],
    ['spooled_at', 'INTEGER'],
  ];
  db.transaction(() => {
    const columns = new Set(
      db
        .prepare<[], { name: string }>('PRAGMA table_info(ops)')
        .all()
        .map((c) => c.name),
    );
    for (const [name, type] of added) {
      if (!columns.has(name)) db.exec(`ALTER TABLE ops ADD COLUMN ${name} ${type}`);
    }
  })();
  return { db, sql: prepare(db) };
}

type Statement<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface SpoolStatements {
  insert: Statement<[Kind, string, string, string, string, string | null, number | null, number, number]>;
  count: Statement<[], { n: number }>;
  figures: Statement<[], { entries: number; oldest: number | null }>;
  exists: Statement<[number], { seq: number }>;
  countScope: Statement<[Kind, string], { n: number }>;
  oldest: Statement<[number], OpRow>;
  byTarget: Statement<[Kind, string, string, string], OpRow>;
  subpaths: Statement<[string, string], { subpath: string }>;
  pendingSessions: Statement<[], { scope: string; name: string }>;
  deleteRow: Statement<[number]>;
  deleteUpTo: Statement<[Kind, string, string, string, number]>;
  dropTarget: Statement<[Kind, string, string, string]>;
  dropSession: Statement<[Kind, string, string]>;
}

function prepare(db: Database.Database): SpoolStatements {
  return {
    insert: db.prepare<[Kind, string, string, string, string, string | null, number | null, number, number]>(
      'INSERT INTO ops (kind, scope, name, subpath, payload, fence_lease, fence_token, entries, spooled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM ops'),
    figures: db.prepare<[], { entries: number; oldest: number | null }>(
      // The oldest row is the first by seq (rows are appended in time order): found by the primary key.
      `SELECT coalesce(sum(coalesce(entries, 1)), 0) AS entries,
              (SELECT spooled_at FROM ops ORDER BY seq LIMIT 1) AS oldest FROM ops`,
    ),
    exists: db.prepare<[number], { seq: number }>('SELECT seq FROM ops WHERE seq = ?'),
    countScope: db.prepare<[Kind, string], { n: number }>(
      'SELECT count(*) AS n FROM ops WHERE kind = ? AND scope = ?',
    ),
    oldest: db.prepare<[number], OpRow>('SELECT * FROM ops ORDER BY seq LIMIT ?'),
    byTarget: db.prepare<[Kind, string, string, string], OpRow>(
      'SELECT * FROM ops WHERE kind = ? AND scope = ? AND name = ? AND subpath = ? ORDER BY seq',
    ),
    subpaths: db.prepare<[string, string], { subpath: string }>(
      `SELECT DISTINCT subpath FROM ops WHERE kind = 'transcript' AND scope = ? AND name = ? AND subpath != '${MAIN}'`,
    ),
    pendingSessions: db.prepare<[], { scope: string; name: string }>(
      `SELECT DISTINCT scope, name FROM ops WHERE kind = 'transcript'`,
    ),
    deleteRow: db.prepare<[number]>('DELETE FROM ops WHERE seq = ?'),
    deleteUpTo: db.prepare<[Kind, string, string, string, number]>(
      'DELETE FROM ops WHERE kind = ? AND scope = ? AND name = ? AND subpath = ? AND seq <= ?',
    ),
    dropTarget: db.prepare<[Kind, string, string, string]>(
      'DELETE FROM ops WHERE kind = ? AND scope = ? AND name = ? AND subpath = ?',
    ),
    dropSession: db.prepare<[Kind, string, string]>(
      'DELETE FROM ops WHERE kind = ? AND scope = ? AND name = ?',
    ),
  };
}

/** Spools one write, with its fence (multi-host mode) and, for the metrics, its entry count and time. */
export function spoolWrite(
  sql: SpoolStatements,
  target: { kind: Kind; scope: string; name: string; subpath: string },
  payload: unknown,
  fence: Fence | undefined,
): void {
  const { kind, scope, name, subpath } = target;
  const entries = Array.isArray(payload) ? payload.length : 1;
  const row = [kind, scope, name, subpath, JSON.stringify(payload)] as const;
  sql.insert.run(...row, fence?.lease ?? null, fence?.token ?? null, entries, Date.now());
}

/** The spool's backlog: entries waiting (transcript entries, events, registry writes), the oldest's age. */
export function spoolFigures(sql: SpoolStatements): { entries: number; oldestSeconds: number } {
  const { entries, oldest } = sql.figures.get()!;
  return { entries, oldestSeconds: oldest === null ? 0 : Math.max(0, (Date.now() - oldest) / 1000) };
}
