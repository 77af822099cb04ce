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
  // A spool from before fencing gets the columns (null: unfenced, as it was written).
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(ops)').all();
  if (!columns.some((c) => c.name === 'fence_lease')) {
    db.exec('ALTER TABLE ops ADD COLUMN fence_lease TEXT; ALTER TABLE ops ADD COLUMN fence_token INTEGER;');
  }
  return { db, sql: prepare(db) };
}

type Statement<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface SpoolStatements {
  insert: Statement<[Kind, string, string, string, string, string | null, number | null]>;
  count: Statement<[], { n: number }>;
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
    insert: db.prepare<[Kind, string, string, string, string, string | null, number | null]>(
      'INSERT INTO ops (kind, scope, name, subpath, payload, fence_lease, fence_token) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM ops'),
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
