import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool, spoolFigures, spoolWrite } from './spool.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function spoolFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-spool-'));
  dirs.push(dir);
  return path.join(dir, 'spool.db');
}

const target = { kind: 'transcript' as const, scope: 'default', name: 'sess_1', subpath: '' };

describe('openSpool', () => {
  it('adds the columns an older spool lacks, keeps its rows, and counts them in the backlog', async () => {
    const file = await spoolFile();
    // The spool of a version before fencing and metrics, with one row in it.
    const old = new Database(file);
    old.exec(`CREATE TABLE ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, scope TEXT NOT NULL,
      name TEXT NOT NULL, subpath TEXT NOT NULL, payload TEXT NOT NULL)`);
    old
      .prepare('INSERT INTO ops (kind, scope, name, subpath, payload) VALUES (?, ?, ?, ?, ?)')
      .run('transcript', 'default', 'sess_1', '', '[{"type":"user"}]');
    old.close();

    const { db, sql } = openSpool(file);
    try {
      const columns = db
        .prepare<[], { name: string }>('PRAGMA table_info(ops)')
        .all()
        .map((c) => c.name);
      expect(columns).toEqual(
        expect.arrayContaining(['fence_lease', 'fence_token', 'entries', 'spooled_at']),
      );
      // The old row counts as one entry of unknown age; a new one as its entries.
      expect(spoolFigures(sql)).toEqual({ entries: 1, oldestSeconds: 0 });
      spoolWrite(sql, target, [{ a: 1 }, { b: 2 }, { c: 3 }], undefined);
      expect(spoolFigures(sql).entries).toBe(4);
    } finally {
      db.close();
    }
  });

  it('opens a spool that a crash left with only some of the new columns', async () => {
    const file = await spoolFile();
    const old = new Database(file);
    old.exec(`CREATE TABLE ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, scope TEXT NOT NULL,
      name TEXT NOT NULL, subpath TEXT NOT NULL, payload TEXT NOT NULL, fence_lease TEXT, fence_token INTEGER,
      entries INTEGER)`);
    old.close();
    const { db, sql } = openSpool(file);
    try {
      spoolWrite(sql, target, [{ a: 1 }], undefined);
      const { entries, oldestSeconds } = spoolFigures(sql);
      expect(entries).toBe(1);
      expect(oldestSeconds).toBeGreaterThanOrEqual(0);
    } finally {
      db.close();
    }
  });

  it('reports an empty spool as no backlog', async () => {
    const { db, sql } = openSpool(await spoolFile());
    try {
      expect(spoolFigures(sql)).toEqual({ entries: 0, oldestSeconds: 0 });
    } finally {
      db.close();
    }
  });
});
