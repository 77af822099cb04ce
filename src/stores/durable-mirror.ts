/**
 * A transcript store that loses nothing when its backend is down.
 *
 * The SDK's own mirror retries a failed `append` three times and then drops the batch. Berth puts this in
 * front of a networked store instead: `append` writes the batch to a spool on the host's disk and returns,
 * and a shipper drains the spool to the backend in order, retrying with backoff for as long as it takes.
 * Shipping is idempotent for entries with a `uuid` (the backends skip uuids they hold), so a batch that
 * reached the backend just before a crash is harmless to ship again. `load` adds what is still spooled for
 * the key, so this host reads its own writes during an outage, and a host restarted on the same data dir
 * drains what its spool still holds.
 *
 * Spool layout (SQLite, WAL): `spool(seq, project_key, session_id, subpath, entries)`, one row per
 * `append` call, `seq` AUTOINCREMENT (the shipping order), `subpath` `''` for the main transcript,
 * `entries` the batch as JSON text. A row is deleted only after the backend accepted it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  SessionKey,
  SessionStore,
  SessionStoreEntry,
  SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';
import Database from 'better-sqlite3';
import { describeError } from '../errors.js';

export interface DurableMirrorOptions {
  /** Where the entries end up. */
  backend: SessionStore;
  /** The spool's SQLite file (created with its directory). */
  spoolPath: string;
  /** First retry delay after a failed shipment; doubles up to `maxBackoffMs`. @default 100 */
  minBackoffMs?: number;
  /** @default 5000 */
  maxBackoffMs?: number;
  /**
   * Called once per outage for each session whose entries wait in the spool (the main transcript's key),
   * so the session's clients can be told that mirroring is delayed.
   */
  onDelayed?: (key: { projectKey: string; sessionId: string }, error: unknown) => void;
  /** Called when the backend accepts entries again after an outage. */
  onRecovered?: (backlog: number) => void;
}

interface SpoolRow {
  seq: number;
  project_key: string;
  session_id: string;
  subpath: string;
  entries: string;
}

/** How many spooled rows one shipping round reads. */
const SHIP_ROWS = 200;

const MAIN = '';

function keyOf(row: Pick<SpoolRow, 'project_key' | 'session_id' | 'subpath'>): SessionKey {
  return row.subpath === MAIN
    ? { projectKey: row.project_key, sessionId: row.session_id }
    : { projectKey: row.project_key, sessionId: row.session_id, subpath: row.subpath };
}

function sameKey(a: SpoolRow, b: SpoolRow): boolean {
  return a.project_key === b.project_key && a.session_id === b.session_id && a.subpath === b.subpath;
}

export class DurableMirror implements SessionStore {
  private readonly db: Database.Database;
  private readonly sql: ReturnType<typeof prepare>;
  private readonly backend: SessionStore;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private wake: (() => void) | undefined;
  private readonly stop = new AbortController();
  private readonly shipper: Promise<void>;
  /** Set while the backend is failing: the sessions already told about this outage. */
  private outage: { notified: Set<string>; error: unknown } | undefined;
  private idleWaiters: Array<() => void> = [];
  private closing: Promise<void> | undefined;
  private lock: Promise<void> = Promise.resolve();

  constructor(private readonly options: DurableMirrorOptions) {
    this.backend = options.backend;
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    mkdirSync(path.dirname(options.spoolPath), { recursive: true });
    this.db = new Database(options.spoolPath);
    this.db.pragma('journal_mode = WAL');
    // NORMAL with WAL is durable against a process crash (SIGKILL), which is the failure this guards.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS spool (
      seq         INTEGER PRIMARY KEY AUTOINCREMENT,
      project_key TEXT NOT NULL,
      session_id  TEXT NOT NULL,
      subpath     TEXT NOT NULL,
      entries     TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS spool_by_key ON spool (project_key, session_id, subpath, seq);`);
    this.sql = prepare(this.db);
    this.shipper = this.ship();
  }

  /** Rows waiting to be shipped. */
  get backlog(): number {
    return this.sql.count.get()!.n;
  }

  /** True while the backend is refusing entries. */
  get delayed(): boolean {
    return this.outage !== undefined;
  }

  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    try {
      this.sql.insert.run(key.projectKey, key.sessionId, key.subpath ?? MAIN, JSON.stringify(entries));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.outage) this.notifyDelayed(key.projectKey, key.sessionId);
    this.wake?.();
    return Promise.resolve();
  }

  /** The backend's entries followed by those still spooled for the key (skipping uuids already loaded). */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    // Holding the lock keeps the shipper from moving rows between the two reads, which would show
    // entries without a uuid twice (in both) or not at all (in neither).
    const { spooled, stored } = await this.exclusive(async () => ({
      spooled: this.sql.byKey.all(key.projectKey, key.sessionId, key.subpath ?? MAIN),
      stored: await this.backend.load(key),
    }));
    if (spooled.length === 0) return stored;
    const entries = stored ?? [];
    const seen = new Set(entries.map((e) => e.uuid).filter((u): u is string => typeof u === 'string'));
    // A batch that reached the backend just before a crash can still be spooled: uuid dedup covers it.
    for (const row of spooled) {
      for (const entry of JSON.parse(row.entries) as SessionStoreEntry[]) {
        if (typeof entry.uuid === 'string') {
          if (seen.has(entry.uuid)) continue;
          seen.add(entry.uuid);
        }
        entries.push(entry);
      }
    }
    return entries;
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    if (!this.backend.listSessions) throw new Error('the backend store cannot list sessions');
    await this.shipped(projectKey);
    return this.backend.listSessions(projectKey);
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    if (!this.backend.listSessionSummaries) throw new Error('the backend store keeps no session summaries');
    await this.shipped(projectKey);
    return this.backend.listSessionSummaries(projectKey);
  }

  /** Under the lock, so that no batch of the key that is being shipped lands after the delete. */
  delete(key: SessionKey): Promise<void> {
    return this.exclusive(async () => {
      if (key.subpath === undefined) this.sql.deleteSession.run(key.projectKey, key.sessionId);
      else this.sql.deleteKey.run(key.projectKey, key.sessionId, key.subpath);
      await this.backend.delete?.(key);
    });
  }

  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    const stored = (await this.backend.listSubkeys?.(key)) ?? [];
    const spooled = this.sql.subpaths.all(key.projectKey, key.sessionId).map((r) => r.subpath);
    return [...new Set([...stored, ...spooled])];
  }

  /** Resolves when the spool is empty, or rejects when `signal` aborts first. */
  async drain(signal?: AbortSignal): Promise<void> {
    while (this.backlog > 0) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.idleWaiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
        this.wake?.();
      });
    }
  }

  /**
   * Stops shipping and closes the spool (idempotent). What is still spooled stays on disk and is shipped
   * by the next mirror opened on the same file.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort();
      this.wake?.();
      await this.shipper;
      for (const waiter of this.idleWaiters.splice(0)) waiter();
      this.db.close();
    })();
    return this.closing;
  }

  /**
   * Waits until nothing of the project is spooled, so that listings (read from the backend, where mtimes
   * and summaries are kept) include this host's writes. During an outage it does not wait: the backend
   * call that follows fails or answers with what it has.
   */
  private async shipped(projectKey: string): Promise<void> {
    while (!this.outage && this.sql.countProject.get(projectKey)!.n > 0 && !this.stop.signal.aborted) {
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        this.wake?.();
      });
    }
  }

  /** Runs `task` while no other `exclusive` task runs (shipping a group, or a load's two reads). */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.lock.then(task);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private notifyDelayed(projectKey: string, sessionId: string): void {
    const outage = this.outage;
    if (!outage) return;
    const id = JSON.stringify([projectKey, sessionId]);
    if (outage.notified.has(id)) return;
    outage.notified.add(id);
    try {
      this.options.onDelayed?.({ projectKey, sessionId }, outage.error);
    } catch {
      // a listener's failure must not stop shipping
    }
  }

  /** The shipper: oldest rows first, consecutive rows of one key in one backend call. */
  private async ship(): Promise<void> {
    let backoff = this.minBackoffMs;
    while (!this.stop.signal.aborted) {
      const rows = this.sql.oldest.all(SHIP_ROWS);
      if (rows.length === 0) {
        for (const waiter of this.idleWaiters.splice(0)) waiter();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        for (let i = 0; i < rows.length && !this.stop.signal.aborted;) {
          let j = i + 1;
          while (j < rows.length && sameKey(rows[i]!, rows[j]!)) j++;
          const group = rows.slice(i, j);
          const entries = group.flatMap((r) => JSON.parse(r.entries) as SessionStoreEntry[]);
          const first = group[0]!;
          await this.exclusive(async () => {
            // A delete may have run since the rows were read: its rows are gone and must not be shipped.
            if (!this.sql.exists.get(first.seq)) return;
            await this.backend.append(keyOf(first), entries);
            this.sql.deleteUpTo.run(first.project_key, first.session_id, first.subpath, group.at(-1)!.seq);
          });
          i = j;
        }
        if (this.outage) {
          this.outage = undefined;
          this.options.onRecovered?.(this.backlog);
        }
        backoff = this.minBackoffMs;
      } catch (err) {
        if (!this.outage) {
          this.outage = { notified: new Set(), error: err };
          for (const row of this.sql.pendingSessions.all())
            this.notifyDelayed(row.project_key, row.session_id);
        } else {
          this.outage.error = err;
        }
        // Each waiting drain() gets to re-check its signal; the shipper backs off and tries again.
        for (const waiter of this.idleWaiters.splice(0)) waiter();
        await sleep(backoff, undefined, { signal: this.stop.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, this.maxBackoffMs);
      }
    }
  }
}

function prepare(db: Database.Database) {
  return {
    insert: db.prepare<[string, string, string, string]>(
      'INSERT INTO spool (project_key, session_id, subpath, entries) VALUES (?, ?, ?, ?)',
    ),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM spool'),
    exists: db.prepare<[number], { seq: number }>('SELECT seq FROM spool WHERE seq = ?'),
    countProject: db.prepare<[string], { n: number }>(
      'SELECT count(*) AS n FROM spool WHERE project_key = ?',
    ),
    oldest: db.prepare<[number], SpoolRow>('SELECT * FROM spool ORDER BY seq LIMIT ?'),
    byKey: db.prepare<[string, string, string], SpoolRow>(
      'SELECT * FROM spool WHERE project_key = ? AND session_id = ? AND subpath = ? ORDER BY seq',
    ),
    subpaths: db.prepare<[string, string], { subpath: string }>(
      `SELECT DISTINCT subpath FROM spool WHERE project_key = ? AND session_id = ? AND subpath != '${MAIN}'`,
    ),
    pendingSessions: db.prepare<[], { project_key: string; session_id: string }>(
      'SELECT DISTINCT project_key, session_id FROM spool',
    ),
    deleteUpTo: db.prepare<[string, string, string, number]>(
      'DELETE FROM spool WHERE project_key = ? AND session_id = ? AND subpath = ? AND seq <= ?',
    ),
    deleteKey: db.prepare<[string, string, string]>(
      'DELETE FROM spool WHERE project_key = ? AND session_id = ? AND subpath = ?',
    ),
    deleteSession: db.prepare<[string, string]>('DELETE FROM spool WHERE project_key = ? AND session_id = ?'),
  };
}

/** For logs: a one-line account of a shipping failure. */
export function describeMirrorError(err: unknown): string {
  return `the transcript store is not accepting entries (${describeError(err)}); they wait in the local spool`;
}
