/**
 * The session registry on PostgreSQL (table `sessions`, see `postgres/schema.ts`).
 */
import { checkPageLimit, decodeCursor, encodeCursor } from '../list-cursor.js';
import type { Pool } from 'pg';
import { BerthError } from '../../errors.js';
import type { Usage } from '../../session/events.js';
import { DEFAULT_POSTGRES_SCHEMA, ensurePostgresSchema, pgTask, quoteSchema } from './schema.js';
import type { PostgresStoreOptions } from './schema.js';
import { checkFence, FENCE_TOKEN, fenceCte, fenceHolds } from './fence.js';
import type {
  AgentConfig,
  ListPage,
  ManagedSessionFields,
  Pattern,
  SessionRecord,
  SessionRef,
  SessionRegistry,
  SessionStatus,
  StoreCallOptions,
} from '../types.js';

/** Options of {@link PostgresRegistry}. */
export type PostgresRegistryOptions = PostgresStoreOptions;

interface SessionRow {
  id: string;
  tenant: string;
  title: string | null;
  metadata: string;
  pattern: string;
  agent: string;
  status: string;
  sdk_session_id: string;
  started: boolean;
  created_at: string;
  updated_at: string;
  usage: string;
  turns: number;
  managed: string | null;
}

type Patch = Partial<Omit<SessionRecord, 'id' | 'tenant' | 'createdAt'>>;

/**
 * What `update` may change: field to column and how the value is sent. `id`, `tenant` and `createdAt` are
 * absent on purpose, so a patch can never change a record's identity, and `updatedAt` is always now.
 */
const UPDATABLE: {
  [F in keyof Patch]?: { column: string; toParam: (value: NonNullable<Patch[F]>) => unknown };
} = {
  title: { column: 'title', toParam: (value) => value },
  metadata: { column: 'metadata', toParam: (value) => JSON.stringify(value) },
  pattern: { column: 'pattern', toParam: (value) => value },
  agent: { column: 'agent', toParam: (value) => JSON.stringify(value) },
  status: { column: 'status', toParam: (value) => value },
  sdkSessionId: { column: 'sdk_session_id', toParam: (value) => value },
  started: { column: 'started', toParam: (value) => value },
  usage: { column: 'usage', toParam: (value) => JSON.stringify(value) },
  turns: { column: 'turns', toParam: (value) => value },
  managed: { column: 'managed', toParam: (value) => JSON.stringify(value) },
};

/**
 * Session records in PostgreSQL. `list` pages newest first with a keyset cursor on (createdAt, id), so pages
 * neither skip nor repeat records when sessions are created or deleted between requests. `update` is one
 * statement that sets only the patched columns, so concurrent updates of different fields both land; a
 * fenced update is still one statement, with the lease check in it (`postgres/fence.ts`).
 */
export class PostgresRegistry implements SessionRegistry {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly quotedSchema: string;
  private readonly table: string;
  private readonly sql: ReturnType<typeof sqlTexts>;

  constructor(options: PostgresRegistryOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    this.quotedSchema = quoteSchema(this.schema);
    this.table = `${this.quotedSchema}.sessions`;
    this.sql = sqlTexts(this.table);
  }

  /** Stores a new record; throws `session_exists` when the tenant already has the id. */
  async create(record: SessionRecord, options?: StoreCallOptions): Promise<void> {
    await this.ready(options?.signal);
    const result = await pgTask(
      'create session',
      () =>
        this.pool.query(this.sql.insert, [
          record.id,
          record.tenant,
          record.title,
          JSON.stringify(record.metadata),
          record.pattern,
          JSON.stringify(record.agent),
          record.status,
          record.sdkSessionId,
          record.started,
          record.createdAt,
          record.updatedAt,
          JSON.stringify(record.usage),
          record.turns,
          record.managed === undefined ? null : JSON.stringify(record.managed),
        ]),
      options?.signal,
    );
    if (result.rowCount === 0) throw new BerthError('session_exists', `session ${record.id} already exists`);
  }

  async get(ref: SessionRef, options?: StoreCallOptions): Promise<SessionRecord | undefined> {
    await this.ready(options?.signal);
    const result = await pgTask(
      'get session',
      () => this.pool.query<SessionRow>(this.sql.select, [ref.tenant, ref.id]),
      options?.signal,
    );
    const row = result.rows[0];
    return row && fromRow(row);
  }

  /**
   * The tenant's records, newest first (ties broken by id, descending, bytewise). Throws `invalid_request`
   * for a cursor this registry did not produce or a limit that is not a positive integer.
   */
  async list(
    tenant: string,
    options: { limit: number; cursor?: string | undefined } & StoreCallOptions,
  ): Promise<ListPage<SessionRecord>> {
    const { limit, cursor, signal } = options;
    checkPageLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    await this.ready(signal);
    // One extra row tells whether another page exists without a count query.
    const result = await pgTask(
      'list sessions',
      () =>
        after
          ? this.pool.query<SessionRow>(this.sql.listAfter, [tenant, limit + 1, after.createdAt, after.id])
          : this.pool.query<SessionRow>(this.sql.listFirst, [tenant, limit + 1]),
      signal,
    );
    const data = result.rows.slice(0, limit).map(fromRow);
    const last = data.at(-1);
    const next =
      result.rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
    return { data, next };
  }

  /** Merges the patch (fields set to `undefined` are ignored) and sets `updatedAt` to now. */
  async update(ref: SessionRef, patch: Patch, options?: StoreCallOptions): Promise<void> {
    const assignments = ['updated_at = $3'];
    const values: unknown[] = [ref.tenant, ref.id, Date.now()];
    for (const [field, value] of Object.entries(patch)) {
      const target = Object.hasOwn(UPDATABLE, field) ? UPDATABLE[field as keyof Patch] : undefined;
      if (!target || value === undefined) continue;
      values.push((target.toParam as (value: unknown) => unknown)(value));
      assignments.push(`${target.column} = $${values.length}`);
    }
    const update = `UPDATE ${this.table} SET ${assignments.join(', ')} WHERE tenant = $1 AND id = $2`;
    const fence = options?.fence;
    await this.ready(options?.signal);
    if (!fence) {
      await pgTask('update session', () => this.pool.query(update, values), options?.signal);
      return;
    }
    // The same update behind the lease check, in one statement (see `postgres/fence.ts`).
    values.push(fence.lease, fence.token);
    const fenced = `WITH ${fenceCte(this.quotedSchema, values.length - 1)},
      updated AS (${update} AND ${fenceHolds(values.length)})
      SELECT ${FENCE_TOKEN}`;
    const result = await pgTask(
      'update session',
      () => this.pool.query<{ fence_token: string | null }>(fenced, values),
      options?.signal,
    );
    checkFence(fence, result.rows[0]?.fence_token);
  }

  async delete(ref: SessionRef, options?: StoreCallOptions): Promise<void> {
    await this.ready(options?.signal);
    await pgTask(
      'delete session',
      () => this.pool.query(this.sql.delete, [ref.tenant, ref.id]),
      options?.signal,
    );
  }

  private ready(signal: AbortSignal | undefined): Promise<void> {
    return pgTask('migrate', () => ensurePostgresSchema(this.pool, this.schema), signal);
  }
}

const COLUMNS =
  'id, tenant, title, metadata, pattern, agent, status, sdk_session_id, started, created_at, updated_at, usage, turns, managed';

const SELECTED = `id, tenant, title, metadata::text AS metadata, pattern, agent::text AS agent, status,
  sdk_session_id, started, created_at, updated_at, usage::text AS usage, turns, managed::text AS managed`;

function sqlTexts(table: string) {
  return {
    insert: `INSERT INTO ${table} (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
      ON CONFLICT (tenant, id) DO NOTHING`,
    select: `SELECT ${SELECTED} FROM ${table} WHERE tenant = $1 AND id = $2`,
    listFirst: `SELECT ${SELECTED} FROM ${table} WHERE tenant = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
    listAfter: `SELECT ${SELECTED} FROM ${table} WHERE tenant = $1 AND (created_at, id) < ($3, $4)
      ORDER BY created_at DESC, id DESC LIMIT $2`,
    delete: `DELETE FROM ${table} WHERE tenant = $1 AND id = $2`,
  };
}

function fromRow(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    tenant: row.tenant,
    title: row.title,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    pattern: row.pattern as Pattern,
    agent: JSON.parse(row.agent) as AgentConfig,
    status: row.status as SessionStatus,
    sdkSessionId: row.sdk_session_id,
    started: row.started,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    usage: JSON.parse(row.usage) as Usage,
    turns: row.turns,
    // Absent rather than null: a record created without the fields reads back as it was written.
    ...(row.managed === null ? {} : { managed: JSON.parse(row.managed) as ManagedSessionFields }),
  };
}
