/**
 * The SDK `SessionStore` on PostgreSQL; tables and key scheme are described in `postgres/schema.ts`.
 */
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry, SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import type { Pool, PoolClient } from 'pg';
import { checkAborted } from '../abort.js';
import type { FencedSessionStore } from '../coordination.js';
import type { CompleteSessionStore, Fence, StoreCallOptions } from '../types.js';
import { checkFence, checkFenceIn, FENCE_TOKEN, fenceCte, fenceHolds } from './fence.js';
import {
  checkOut,
  DEFAULT_POSTGRES_SCHEMA,
  ensurePostgresSchema,
  pgTask,
  quoteSchema,
  rollback,
  toStoreError,
} from './schema.js';
import type { PostgresStoreOptions } from './schema.js';

/** Options of {@link PostgresSessionStore}. */
export type PostgresSessionStoreOptions = PostgresStoreOptions;

/** The main transcript's subpath column value (see the schema comment). */
const MAIN = '';

interface LockedKeyRow {
  id: string;
  mtime: string;
  summary: string | null;
  uuids: Array<string | null>;
}

/** What this store last knew of a main transcript's key row: enough to fold the next batch without a read. */
interface KnownSummary {
  id: string;
  mtime: number;
  data: Record<string, unknown>;
}

/** One append's batch, as every path of `append` takes it. */
interface Batch {
  batch: SessionStoreEntry[];
  uuids: Array<string | null>;
  lines: string[];
  /** The appending host's clock when the append started. */
  now: number;
  fence: Fence | undefined;
}

/** Main transcripts whose summary a store remembers; each costs a few hundred bytes. */
const KNOWN_SUMMARIES_MAX = 1000;

/**
 * Transcripts in PostgreSQL, for the SDK's `options.sessionStore`.
 *
 * Beyond the SDK's contract: an entry whose `uuid` is already stored under the same key is skipped (the
 * database's unique index decides, so retries and replays never duplicate lines, even from several
 * processes), and the session summary is folded in the same transaction as the entries. Any number of
 * pools and processes can append to one key at once without losing entries. Failures come back as rejected
 * promises with code `store_unavailable`.
 *
 * An append is one statement (one round trip, one commit) in the common case: a subpath has no summary, and
 * for a main transcript this store remembers the summary it last wrote, folds the batch onto it, and has
 * the database store entries and summary together only if the key is unchanged since (see
 * `append_if_unchanged` in `postgres/schema.ts`). Otherwise (first append of a key in this process, another
 * writer in between, a replayed entry) it takes the general path: a transaction that locks the key row,
 * inserts, and folds what was actually inserted onto the summary it read under the lock.
 */
export class PostgresSessionStore implements FencedSessionStore, CompleteSessionStore {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly quotedSchema: string;
  private readonly sql: ReturnType<typeof sqlTexts>;
  /** Keyed by {@link summaryKey}, least recently used first. */
  private readonly known = new Map<string, KnownSummary>();

  constructor(options: PostgresSessionStoreOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    this.quotedSchema = quoteSchema(this.schema);
    this.sql = sqlTexts(this.quotedSchema);
  }

  /**
   * Stores the entries after those already stored, skipping any whose `uuid` the key already holds. With
   * `options.fence`, only while that is the lease's token (else `lease_lost`, nothing stored): the check
   * rides in the one-statement paths and adds one statement to the transaction of the general path.
   * `options.signal` is checked before the append starts; once started, it runs to its end.
   */
  async append(key: SessionKey, entries: SessionStoreEntry[], options?: StoreCallOptions): Promise<void> {
    checkAborted(options?.signal, 'postgres append');
    if (entries.length === 0) return;
    // Serialized before any I/O, so an entry that cannot be (a cycle) fails the batch without touching it.
    const batch = uniqueByUuid(entries);
    const uuids = batch.map((entry) => (typeof entry.uuid === 'string' ? entry.uuid : null));
    const lines = batch.map((entry) => JSON.stringify(entry));
    const fence = options?.fence;
    await this.ready();
    // The appending host's clock, as in the SQLite store; the fast path must know the mtime before it writes
    // (the fold takes it), and one clock for all paths keeps a key's mtimes comparable.
    const now = Date.now();
    if (key.subpath) {
      const values = [key.projectKey, key.sessionId, key.subpath, uuids, lines, now];
      if (!fence) {
        await pgTask('append', () => this.pool.query(this.sql.appendSubpath, values));
        return;
      }
      const result = await pgTask('append', () =>
        this.pool.query<{ fence_token: string | null }>(this.sql.fencedAppendSubpath, [
          ...values,
          fence.lease,
          fence.token,
        ]),
      );
      checkFence(fence, result.rows[0]?.fence_token);
      return;
    }
    const batchOf = { batch, uuids, lines, now, fence };
    const cacheKey = summaryKey(key);
    const known = this.known.get(cacheKey);
    this.known.delete(cacheKey);
    if (known && (await this.appendIfUnchanged(key, known, batchOf))) return;
    const { client, release } = await pgTask('append', () => checkOut(this.pool));
    let broken: Error | undefined;
    try {
      this.remember(cacheKey, await this.appendLocked(client, key, batchOf));
    } catch (err) {
      broken = await rollback(client, err);
      throw toStoreError(err, 'append');
    } finally {
      release(broken);
    }
  }

  /** All entries of the key in append order (one query), or null when it holds none. */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    await this.ready();
    const result = await pgTask('load', () =>
      this.pool.query<{ entry: string }>(this.sql.load, [key.projectKey, key.sessionId, key.subpath || MAIN]),
    );
    if (result.rows.length === 0) return null;
    return result.rows.map((row) => JSON.parse(row.entry) as SessionStoreEntry);
  }

  /** The project's main transcripts with the epoch-ms time of their last stored append. */
  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    await this.ready();
    const result = await pgTask('listSessions', () =>
      this.pool.query<{ session_id: string; mtime: string }>(this.sql.listSessions, [projectKey]),
    );
    return result.rows.map((row) => ({ sessionId: row.session_id, mtime: Number(row.mtime) }));
  }

  /** The folded summaries of the project's main transcripts; each `mtime` equals `listSessions`'s. */
  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    await this.ready();
    const result = await pgTask('listSessionSummaries', () =>
      this.pool.query<{ session_id: string; mtime: string; summary: string }>(this.sql.listSummaries, [
        projectKey,
      ]),
    );
    return result.rows.map((row) => ({
      sessionId: row.session_id,
      mtime: Number(row.mtime),
      data: JSON.parse(row.summary) as Record<string, unknown>,
    }));
  }

  /**
   * Removes the key's entries. For a main transcript also its subpaths and its summary; for a subpath only
   * that subpath. The removed uuids are forgotten: appending them again stores them again.
   */
  async delete(key: SessionKey): Promise<void> {
    if (!key.subpath) this.known.delete(summaryKey(key));
    await this.ready();
    await pgTask('delete', () =>
      key.subpath
        ? this.pool.query(this.sql.deleteKey, [key.projectKey, key.sessionId, key.subpath])
        : this.pool.query(this.sql.deleteSession, [key.projectKey, key.sessionId]),
    );
  }

  /** The subpaths (e.g. `subagents/agent-ID`) stored under the session, sorted bytewise. */
  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    await this.ready();
    const result = await pgTask('listSubkeys', () =>
      this.pool.query<{ subpath: string }>(this.sql.listSubkeys, [key.projectKey, key.sessionId]),
    );
    return result.rows.map((row) => row.subpath);
  }

  private ready(): Promise<void> {
    return ensurePostgresSchema(this.pool, this.schema);
  }

  /**
   * The fast path: stores the batch and the summary folded from `known` in one statement, if the key row is
   * still what `known` says. False when it is not, or when the batch repeats a stored uuid; nothing is
   * stored then.
   */
  private async appendIfUnchanged(key: SessionKey, known: KnownSummary, append: Batch): Promise<boolean> {
    const { batch, uuids, lines, now, fence } = append;
    const mtime = Math.max(now, known.mtime + 1);
    const previous: SessionSummaryEntry = { sessionId: key.sessionId, mtime: known.mtime, data: known.data };
    const summary = foldSessionSummary(previous, key, batch, { mtime });
    const values = [known.id, known.mtime, mtime, uuids, lines, JSON.stringify(summary.data)];
    const result = await pgTask('append', () =>
      this.pool.query<{ stored: boolean | null; fence_token?: string | null }>(
        fence ? this.sql.fencedAppendIfUnchanged : this.sql.appendIfUnchanged,
        fence ? [...values, fence.lease, fence.token] : values,
      ),
    );
    const row = result.rows[0];
    if (fence) checkFence(fence, row?.fence_token);
    if (row?.stored !== true) return false;
    this.remember(summaryKey(key), { id: known.id, mtime, data: summary.data });
    return true;
  }

  /** The general path, in a transaction on `client`; returns the key row as committed. */
  private async appendLocked(
    client: PoolClient,
    key: SessionKey,
    append: Batch,
  ): Promise<KnownSummary | undefined> {
    const { batch, uuids, lines, now, fence } = append;
    await client.query('BEGIN');
    // First, so that the lease row is locked before the key row, as on the other paths.
    if (fence) await checkFenceIn(client, this.quotedSchema, fence);
    const locked = await client.query<LockedKeyRow>(this.sql.appendLocked, [
      key.projectKey,
      key.sessionId,
      uuids,
      lines,
    ]);
    const row = locked.rows[0];
    if (!row) throw new Error('append: the key row was neither inserted nor found');
    const previousMtime = Number(row.mtime);
    const previous: SessionSummaryEntry | undefined =
      row.summary === null
        ? undefined
        : {
            sessionId: key.sessionId,
            mtime: previousMtime,
            data: JSON.parse(row.summary) as Record<string, unknown>,
          };
    // The statement returns the uuids it inserted; entries without one are always inserted.
    const inserted = new Set(row.uuids);
    const stored = batch.filter((entry, i) => uuids[i] === null || inserted.has(uuids[i] ?? null));
    // A replay that stored nothing leaves the key as it was (mtime included), so it does not look newer.
    if (stored.length === 0) {
      await client.query('COMMIT');
      return previous && { id: row.id, mtime: previousMtime, data: previous.data };
    }
    // Strictly increasing per key even if clocks step back, differ between hosts, or two appends share a
    // millisecond, so a reader comparing mtimes always sees the later write as newer.
    const mtime = Math.max(now, previousMtime + 1);
    // Only the entries actually stored are folded, so the summary always equals a fold of `load()`.
    const summary = foldSessionSummary(previous, key, stored, { mtime });
    await client.query(this.sql.updateKey, [row.id, mtime, JSON.stringify(summary.data)]);
    await client.query('COMMIT');
    return { id: row.id, mtime, data: summary.data };
  }

  private remember(cacheKey: string, known: KnownSummary | undefined): void {
    if (!known) return;
    this.known.delete(cacheKey);
    this.known.set(cacheKey, known);
    if (this.known.size > KNOWN_SUMMARIES_MAX) {
      const oldest = this.known.keys().next();
      if (!oldest.done) this.known.delete(oldest.value);
    }
  }
}

/** A main transcript's identity as one string, for the summary cache only (never stored). */
function summaryKey(key: SessionKey): string {
  return JSON.stringify([key.projectKey, key.sessionId]);
}

/** The batch without repeats of a `uuid` (first occurrence kept), as the unique index would store it. */
function uniqueByUuid(entries: SessionStoreEntry[]): SessionStoreEntry[] {
  const seen = new Set<string>();
  let repeats = false;
  for (const entry of entries) {
    if (typeof entry.uuid !== 'string') continue;
    if (seen.has(entry.uuid)) repeats = true;
    seen.add(entry.uuid);
  }
  if (!repeats) return entries;
  seen.clear();
  return entries.filter((entry) => {
    if (typeof entry.uuid !== 'string') return true;
    if (seen.has(entry.uuid)) return false;
    seen.add(entry.uuid);
    return true;
  });
}

function sqlTexts(schema: string) {
  const keys = `${schema}.transcript_keys`;
  const entries = `${schema}.transcript_entries`;
  // One statement and one round trip per batch, whatever its size: the arrays are unnested server-side.
  // A function scan yields rows in array order and the key's id comes from an InitPlan, so nothing
  // reorders the rows between unnest and the identity column: `seq` follows the batch's order.
  const insertEntries = (uuids: string, lines: string, where = '') => `
    INSERT INTO ${entries} (key_id, uuid, entry)
    SELECT (SELECT id FROM k), e.uuid, e.entry FROM unnest(${uuids}::text[], ${lines}::text[]) AS e (uuid, entry)
    ${where}
    ON CONFLICT (key_id, uuid) WHERE uuid IS NOT NULL DO NOTHING`;
  const appendIfUnchanged = `${schema}.append_if_unchanged($1, $2, $3, $4, $5, $6)`;
  return {
    appendIfUnchanged: `SELECT ${appendIfUnchanged} AS stored`,
    // The fenced statements (see `postgres/fence.ts`) store nothing, and return no `stored`, when the
    // fence's token is not the lease's; CASE calls the function only when it is.
    fencedAppendIfUnchanged: `
      WITH ${fenceCte(schema, 7)}
      SELECT CASE WHEN ${fenceHolds(8)} THEN ${appendIfUnchanged} END AS stored, ${FENCE_TOKEN}`,
    // The upsert takes the key row's lock (ON CONFLICT DO UPDATE locks the row it finds, waiting for a
    // concurrent appender to commit first) and returns its committed state in the same round trip; the
    // entries are inserted under that lock and report which uuids were new. A new key row gets mtime 0 and
    // no summary until the UPDATE that follows in the same transaction.
    appendLocked: `
      WITH k AS (
        INSERT INTO ${keys} AS k0 (project_key, session_id, subpath, mtime) VALUES ($1, $2, '${MAIN}', 0)
        ON CONFLICT (project_key, session_id, subpath) DO UPDATE SET mtime = k0.mtime
        RETURNING id, mtime, summary::text AS summary
      ), stored AS (
        ${insertEntries('$3', '$4')}
        RETURNING uuid
      )
      SELECT k.id, k.mtime, k.summary, ARRAY(SELECT uuid FROM stored) AS uuids FROM k`,
    // Subpaths carry no summary, so one autocommit statement does; it bumps mtime even for a pure replay,
    // which nothing reads for a subpath (listSessions lists main transcripts only).
    appendSubpath: `
      WITH k AS (
        INSERT INTO ${keys} AS k0 (project_key, session_id, subpath, mtime) VALUES ($1, $2, $3, $6)
        ON CONFLICT (project_key, session_id, subpath) DO UPDATE SET mtime = greatest(excluded.mtime, k0.mtime + 1)
        RETURNING id
      )
      ${insertEntries('$4', '$5')}`,
    fencedAppendSubpath: `
      WITH ${fenceCte(schema, 7)}, k AS (
        INSERT INTO ${keys} AS k0 (project_key, session_id, subpath, mtime)
        SELECT $1, $2, $3, $6 WHERE ${fenceHolds(8)}
        ON CONFLICT (project_key, session_id, subpath) DO UPDATE SET mtime = greatest(excluded.mtime, k0.mtime + 1)
        RETURNING id
      ), stored AS (
        ${insertEntries('$4', '$5', `WHERE ${fenceHolds(8)}`)}
      )
      SELECT ${FENCE_TOKEN}`,
    updateKey: `UPDATE ${keys} SET mtime = $2, summary = $3 WHERE id = $1`,
    load: `
      SELECT entry FROM ${entries}
      WHERE key_id = (SELECT id FROM ${keys} WHERE project_key = $1 AND session_id = $2 AND subpath = $3)
      ORDER BY seq`,
    listSessions: `SELECT session_id, mtime FROM ${keys} WHERE project_key = $1 AND subpath = '${MAIN}'`,
    listSummaries: `
      SELECT session_id, mtime, summary::text AS summary FROM ${keys}
      WHERE project_key = $1 AND subpath = '${MAIN}' AND summary IS NOT NULL`,
    listSubkeys: `
      SELECT subpath FROM ${keys} WHERE project_key = $1 AND session_id = $2 AND subpath <> '${MAIN}'
      ORDER BY subpath`,
    // Entries go with their key rows (ON DELETE CASCADE), including rows an appender holding the key's lock
    // commits while the delete waits for it.
    deleteSession: `DELETE FROM ${keys} WHERE project_key = $1 AND session_id = $2`,
    deleteKey: `DELETE FROM ${keys} WHERE project_key = $1 AND session_id = $2 AND subpath = $3`,
  };
}
