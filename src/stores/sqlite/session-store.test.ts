import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../errors.js';
import { runSessionStoreConformance } from '../../testing/session-store-conformance.js';
import { openSqliteDatabase, openSqliteStores, SQLITE_SCHEMA_VERSION, SqliteSessionStore } from './index.js';
import type { SqliteDatabase } from './index.js';

/** A fresh directory per call; the database goes one level down so that parent creation is exercised. */
async function tempDbFile(): Promise<{ file: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-sqlite-'));
  return {
    file: path.join(dir, 'data', 'berth.db'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

runSessionStoreConformance(
  'SqliteSessionStore',
  async () => {
    const { file, remove } = await tempDbFile();
    const db = openSqliteDatabase(file);
    return {
      store: new SqliteSessionStore({ db }),
      cleanup: async () => {
        db.close();
        await remove();
      },
    };
  },
  {
    // Berth's own adapter has every optional method: one it lost fails its cases instead of skipping them.
    requireAll: true,
    // Separate connections on one file: what several Berth processes sharing a data dir do.
    sharedFactory: async () => {
      const { file, remove } = await tempDbFile();
      const dbs = [openSqliteDatabase(file), openSqliteDatabase(file), openSqliteDatabase(file)];
      return {
        stores: dbs.map((db) => new SqliteSessionStore({ db })),
        cleanup: async () => {
          for (const db of dbs) db.close();
          await remove();
        },
      };
    },
  },
);

describe('SqliteSessionStore on its database', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function tempFile(): Promise<string> {
    const { file, remove } = await tempDbFile();
    cleanups.push(remove);
    return file;
  }
  function open(file: string): SqliteDatabase {
    const db = openSqliteDatabase(file);
    cleanups.push(() => {
      db.close();
    });
    return db;
  }
  const key: SessionKey = { projectKey: 'tenant-a', sessionId: 'session-1' };
  const entry = (n: number): SessionStoreEntry => ({ type: 'user', uuid: `uuid-${n}`, n });

  it('opens in WAL mode with the current schema version', async () => {
    const db = open(await tempFile());
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
  });

  it('refuses a database written by a newer schema', async () => {
    const file = await tempFile();
    open(file).pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    let error: unknown;
    try {
      openSqliteDatabase(file).close();
    } catch (err) {
      error = err;
    }
    expect(isBerthError(error, 'store_unavailable')).toBe(true);
    expect(String(error)).toMatch(/newer/);
  });

  it('keeps transcripts and summaries across a reopen', async () => {
    const file = await tempFile();
    const first = openSqliteStores(file);
    await first.sessionStore.append(key, [entry(1), entry(2)]);
    const summaries = await first.sessionStore.listSessionSummaries(key.projectKey);
    await first.close();
    await first.close(); // idempotent

    const second = openSqliteStores(file);
    cleanups.push(() => second.close());
    expect(await second.sessionStore.load(key)).toEqual([entry(1), entry(2)]);
    expect(await second.sessionStore.listSessionSummaries(key.projectKey)).toEqual(summaries);
    await second.sessionStore.append(key, [entry(2), entry(3)]);
    expect(await second.sessionStore.load(key)).toEqual([entry(1), entry(2), entry(3)]);
  });

  it('turns a failure into a rejected promise with code store_unavailable, never a synchronous throw', async () => {
    const db = openSqliteDatabase(await tempFile());
    const store = new SqliteSessionStore({ db });
    db.close();
    const calls = [
      () => store.append(key, [entry(1)]),
      () => store.load(key),
      () => store.listSessions(key.projectKey),
      () => store.listSessionSummaries(key.projectKey),
      () => store.delete(key),
      () => store.listSubkeys(key),
    ];
    for (const call of calls) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      await expect(promise).rejects.toSatisfy((err: unknown) => isBerthError(err, 'store_unavailable'));
    }
  });

  it('rolls back a whole batch that fails part-way', async () => {
    const db = open(await tempFile());
    const store = new SqliteSessionStore({ db });
    await store.append(key, [entry(1)]);
    const cyclic: Record<string, unknown> = { type: 'user', uuid: 'cyclic' };
    cyclic.self = cyclic;
    await expect(store.append(key, [entry(2), cyclic as SessionStoreEntry])).rejects.toThrow();
    expect(await store.load(key)).toEqual([entry(1)]);
    await store.append(key, [entry(2)]);
    expect(await store.load(key)).toEqual([entry(1), entry(2)]);
  });

  it('stamps strictly increasing mtimes per session, even within one millisecond', async () => {
    const db = open(await tempFile());
    const store = new SqliteSessionStore({ db });
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      await store.append(key, [entry(i)]);
      const [listed] = await store.listSessions(key.projectKey);
      const [summary] = await store.listSessionSummaries(key.projectKey);
      expect(summary!.mtime).toBe(listed!.mtime);
      seen.push(listed!.mtime);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    // A replay that stores nothing must not make the session look newer.
    await store.append(key, [entry(3)]);
    expect((await store.listSessions(key.projectKey))[0]!.mtime).toBe(seen.at(-1));
  });

  it('enforces uuid uniqueness in the schema, not only in the store', async () => {
    const db = open(await tempFile());
    const store = new SqliteSessionStore({ db });
    await store.append(key, [entry(1)]);
    const keyId = db.prepare('SELECT id FROM transcript_keys').pluck().get();
    const insert = db.prepare('INSERT INTO transcript_entries (key_id, uuid, entry) VALUES (?, ?, ?)');
    expect(() => insert.run(keyId, 'uuid-1', '{}')).toThrow(/UNIQUE/);
    insert.run(keyId, null, '{"type":"a"}');
    insert.run(keyId, null, '{"type":"a"}');
    expect(await store.load(key)).toEqual([entry(1), { type: 'a' }, { type: 'a' }]);
  });

  it('works on a connection it did not open, creating the schema', () => {
    const db = new Database(':memory:');
    cleanups.push(() => {
      db.close();
    });
    new SqliteSessionStore({ db });
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
  });

  it('loses nothing when several processes append to one session at the same time', async () => {
    const file = await tempFile();
    open(file); // creates the schema before the writers race to
    const writers = 3;
    const perWriter = 1500;
    const moduleUrl = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'index.ts')).href;
    const children = Array.from({ length: writers }, (_, w) =>
      runWriter(moduleUrl, file, JSON.stringify(key), `w${w}`, perWriter),
    );
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.go();
    await Promise.all(children.map((child) => child.done));

    const store = new SqliteSessionStore({ db: open(file) });
    const loaded = (await store.load(key))!;
    const shared = loaded.filter((e) => e.writer === 'shared');
    expect(shared.map((e) => e.uuid)).toEqual(Array.from({ length: 10 }, (_, i) => `shared-${i}`));
    expect(loaded).toHaveLength(writers * perWriter + shared.length);
    let switches = 0;
    for (let w = 0; w < writers; w++) {
      const mine = loaded.filter((e) => e.writer === `w${w}`).map((e) => e.n);
      expect(mine).toEqual(Array.from({ length: perWriter }, (_, i) => i));
    }
    for (let i = 1; i < loaded.length; i++) if (loaded[i]!.writer !== loaded[i - 1]!.writer) switches++;
    // Guards the test itself: the writers did run at the same time.
    expect(switches).toBeGreaterThan(writers);
    const [summary] = await store.listSessionSummaries(key.projectKey);
    expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
  }, 60_000);
});

/**
 * A child Node process that opens the database itself and, once told to go, appends `count` entries in
 * batches of 3, replaying a batch that every writer shares halfway through.
 */
function runWriter(moduleUrl: string, file: string, keyJson: string, writer: string, count: number) {
  const code = `
    const { openSqliteDatabase, SqliteSessionStore } = await import(process.argv[1]);
    const [, file, keyJson, writer, countText] = process.argv.slice(1);
    const key = JSON.parse(keyJson);
    const count = Number(countText);
    const store = new SqliteSessionStore({ db: openSqliteDatabase(file) });
    const shared = Array.from({ length: 10 }, (_, i) => ({ type: 'user', uuid: 'shared-' + i, writer: 'shared' }));
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    for (let at = 0; at < count; at += 3) {
      const batch = [];
      for (let n = at; n < Math.min(at + 3, count); n++) {
        batch.push({ type: n % 2 ? 'assistant' : 'user', uuid: writer + '-' + n, writer, n,
          timestamp: new Date(Date.UTC(2025, 0, 1) + n).toISOString(), cwd: '/w/' + writer });
      }
      await store.append(key, batch);
      if (at === Math.floor(count / 2 / 3) * 3) await store.append(key, shared);
    }
    process.exit(0);
  `;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', code, moduleUrl, file, keyJson, writer, String(count)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`writer ${writer} exited early (${code}): ${stderr}`)));
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`writer ${writer} failed (${code}): ${stderr}`)),
    );
  });
  return { ready, done, go: () => child.stdin.end('go\n') };
}
