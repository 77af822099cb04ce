/**
 * The event log on PostgreSQL (table `events`, see `postgres/schema.ts`).
 */
import type { Pool } from 'pg';
import { BerthError } from '../../errors.js';
import { untilAborted } from '../abort.js';
import type { StoredEvent } from '../../session/events.js';
import {
  DEFAULT_POSTGRES_SCHEMA,
  ensurePostgresSchema,
  pgTask,
  quoteSchema,
  sqlState,
  toStoreError,
} from './schema.js';
import type { PostgresStoreOptions } from './schema.js';
import { checkFence, FENCE_TOKEN, fenceCte, fenceHolds } from './fence.js';
import type { EventLog, StoreCallOptions } from '../types.js';

/** Options of {@link PostgresEventLog}. */
export type PostgresEventLogOptions = PostgresStoreOptions;

/**
 * Every event of every session in PostgreSQL, keyed by (session id, seq). A batch is one statement, so it is
 * stored whole or not at all; a `seq` that is already stored (or repeated in the batch) fails the batch
 * with `event_seq_conflict`: a batch stored before (a retry) or two writers numbering one session's events.
 * A fenced batch is the same one statement with the lease check in it (`postgres/fence.ts`).
 */
export class PostgresEventLog implements EventLog {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly sql: ReturnType<typeof sqlTexts>;

  constructor(options: PostgresEventLogOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    this.sql = sqlTexts(quoteSchema(this.schema));
  }

  async append(sessionId: string, events: StoredEvent[], options?: StoreCallOptions): Promise<void> {
    if (events.length === 0) return;
    const seqs = events.map((event) => event.seq);
    const bodies = events.map((event) => JSON.stringify(event));
    const fence = options?.fence;
    await this.ready(options?.signal);
    try {
      await untilAborted(options?.signal, 'postgres append events', async () => {
        if (!fence) return this.pool.query(this.sql.insert, [sessionId, seqs, bodies]);
        const result = await this.pool.query<{ fence_token: string | null }>(this.sql.fencedInsert, [
          sessionId,
          seqs,
          bodies,
          fence.lease,
          fence.token,
        ]);
        checkFence(fence, result.rows[0]?.fence_token);
        return result;
      });
    } catch (err) {
      if (sqlState(err) === '23505') {
        throw new BerthError(
          'event_seq_conflict',
          `an event seq of session ${sessionId} is already stored (seqs ${seqs[0]}..${seqs.at(-1)})`,
          { cause: err },
        );
      }
      throw toStoreError(err, 'append events');
    }
  }

  async list(
    sessionId: string,
    options: { after: number; limit: number } & StoreCallOptions,
  ): Promise<StoredEvent[]> {
    // A caller asking for nothing gets nothing (and a negative LIMIT is an error in PostgreSQL).
    if (!(options.limit > 0)) return [];
    if (!Number.isFinite(options.after)) {
      throw new BerthError('invalid_request', `after must be a finite number, got ${options.after}`);
    }
    await this.ready(options.signal);
    // seqs are integers, so `seq > after` and `seq > floor(after)` select the same rows; bigint needs the latter.
    const result = await pgTask(
      'list events',
      () =>
        this.pool.query<{ event: string }>(this.sql.list, [
          sessionId,
          Math.floor(options.after),
          Math.floor(options.limit),
        ]),
      options.signal,
    );
    return result.rows.map((row) => JSON.parse(row.event) as StoredEvent);
  }

  async lastSeq(sessionId: string, options?: StoreCallOptions): Promise<number> {
    await this.ready(options?.signal);
    const result = await pgTask(
      'read last event seq',
      () => this.pool.query<{ seq: string | null }>(this.sql.lastSeq, [sessionId]),
      options?.signal,
    );
    return Number(result.rows[0]?.seq ?? 0);
  }

  async deleteSession(sessionId: string, options?: StoreCallOptions): Promise<void> {
    await this.ready(options?.signal);
    await pgTask(
      'delete events',
      () => this.pool.query(this.sql.deleteSession, [sessionId]),
      options?.signal,
    );
  }

  private ready(signal: AbortSignal | undefined): Promise<void> {
    return pgTask('migrate', () => ensurePostgresSchema(this.pool, this.schema), signal);
  }
}

function sqlTexts(schema: string) {
  const table = `${schema}.events`;
  const insert = `INSERT INTO ${table} (session_id, seq, event)
      SELECT $1, e.seq, e.event::json FROM unnest($2::bigint[], $3::text[]) AS e (seq, event)`;
  return {
    // One statement for the whole batch, so a repeated seq (23505) stores none of it.
    insert,
    // The same statement behind the lease check (see `postgres/fence.ts`): a stale token inserts nothing,
    // so it cannot fail on a seq either.
    fencedInsert: `WITH ${fenceCte(schema, 4)}, stored AS (${insert} WHERE ${fenceHolds(5)})
      SELECT ${FENCE_TOKEN}`,
    list: `SELECT event::text AS event FROM ${table} WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    lastSeq: `SELECT max(seq) AS seq FROM ${table} WHERE session_id = $1`,
    deleteSession: `DELETE FROM ${table} WHERE session_id = $1`,
  };
}
