/**
 * The session registry on the embedded SQLite database (table `sessions`, see `sqlite/database.ts`).
 */
import { checkPageLimit, decodeCursor, encodeCursor } from '../list-cursor.js';
import { BerthError } from '../../errors.js';
import { migrateSqliteDatabase, sqliteTask } from './database.js';
import type { SqliteDatabase } from './database.js';
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
import type { Usage } from '../../session/events.js';

/** Options of {@link SqliteRegistry}. */
export interface SqliteRegistryOptions {
  /** An open connection, e.g. from `openSqliteDatabase`; the registry never closes it. */
  db: SqliteDatabase;
}

interface SessionRow {
  id: string;
  tenant: string;
  title: string | null;
  metadata: string;
  pattern: string;
  agent: string;
  status: string;
  sdk_session_id: string;
  started: number;
  created_at: number;
  updated_at: number;
  usage: string;
  turns: number;
  /** JSON; NULL for a record without Managed Agents fields. */
  managed: string | null;
}

/**
 * Session records in SQLite. `list` pages newest first with a keyset cursor on (createdAt, id), so pages
 * neither skip nor repeat records when sessions are created or deleted between requests.
 */
export class SqliteRegistry implements SessionRegistry {
  private readonly db: SqliteDatabase;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly updateTx: (ref: SessionRef, patch: Partial<SessionRecord>) => void;

  constructor(options: SqliteRegistryOptions) {
    this.db = options.db;
    migrateSqliteDatabase(this.db);
    this.sql = prepareStatements(this.db);
    const update = this.db.transaction((ref: SessionRef, patch: Partial<SessionRecord>) =>
      this.updateLocked(ref, patch),
    );
    this.updateTx = (ref, patch) => update.immediate(ref, patch);
  }

  /** Stores a new record; throws `session_exists` when the tenant already has the id. */
  create(record: SessionRecord, options?: StoreCallOptions): Promise<void> {
    return sqliteTask(
      this.db,
      'create session',
      () => {
        if (this.sql.insert.run(toRow(record)).changes === 0) {
          throw new BerthError('session_exists', `session ${record.id} already exists`);
        }
      },
      options?.signal,
    );
  }

  get(ref: SessionRef, options?: StoreCallOptions): Promise<SessionRecord | undefined> {
    return sqliteTask(
      this.db,
      'get session',
      () => {
        const row = this.sql.select.get(ref.tenant, ref.id);
        return row && fromRow(row);
      },
      options?.signal,
    );
  }

  /**
   * The tenant's records, newest first (ties broken by id, descending). Throws `invalid_request` for a
   * cursor this registry did not produce or a limit that is not a positive integer.
   */
  list(
    tenant: string,
    options: { limit: number; cursor?: string | undefined } & StoreCallOptions,
  ): Promise<ListPage<SessionRecord>> {
    return sqliteTask(
      this.db,
      'list sessions',
      () => {
        const { limit, cursor } = options;
        checkPageLimit(limit);
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        // One extra row tells whether another page exists without a count query.
        const rows = after
          ? this.sql.listAfter.all({ tenant, limit: limit + 1, createdAt: after.createdAt, id: after.id })
          : this.sql.listFirst.all({ tenant, limit: limit + 1 });
        const data = rows.slice(0, limit).map(fromRow);
        const last = data.at(-1);
        const next =
          rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
        return { data, next };
      },
      options.signal,
    );
  }

  /** Merges the patch (fields set to `undefined` are ignored) and sets `updatedAt` to now. */
  update(
    ref: SessionRef,
    patch: Partial<Omit<SessionRecord, 'id' | 'tenant' | 'createdAt'>>,
    options?: StoreCallOptions,
  ): Promise<void> {
    return sqliteTask(this.db, 'update session', () => this.updateTx(ref, patch), options?.signal);
  }

  delete(ref: SessionRef, options?: StoreCallOptions): Promise<void> {
    return sqliteTask(
      this.db,
      'delete session',
      () => {
        this.sql.delete.run(ref.tenant, ref.id);
      },
      options?.signal,
    );
  }

  private updateLocked(ref: SessionRef, patch: Partial<SessionRecord>): void {
    const row = this.sql.select.get(ref.tenant, ref.id);
    if (!row) return;
    const current = fromRow(row);
    const merged: SessionRecord = { ...current };
    for (const [field, value] of Object.entries(patch)) {
      if (value !== undefined) (merged as unknown as Record<string, unknown>)[field] = value;
    }
    // The identity of a record never changes, whatever a caller slips into the patch at runtime.
    merged.id = current.id;
    merged.tenant = current.tenant;
    merged.createdAt = current.createdAt;
    merged.updatedAt = Date.now();
    this.sql.update.run(toRow(merged));
  }
}

const COLUMNS =
  'id, tenant, title, metadata, pattern, agent, status, sdk_session_id, started, created_at, updated_at, usage, turns, managed';

function prepareStatements(db: SqliteDatabase) {
  return {
    insert: db.prepare<SessionRow>(
      `INSERT INTO sessions (${COLUMNS}) VALUES (@id, @tenant, @title, @metadata, @pattern, @agent, @status,
       @sdk_session_id, @started, @created_at, @updated_at, @usage, @turns, @managed) ON CONFLICT (tenant, id) DO NOTHING`,
    ),
    select: db.prepare<[string, string], SessionRow>(
      `SELECT ${COLUMNS} FROM sessions WHERE tenant = ? AND id = ?`,
    ),
    listFirst: db.prepare<{ tenant: string; limit: number }, SessionRow>(
      `SELECT ${COLUMNS} FROM sessions WHERE tenant = @tenant ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    listAfter: db.prepare<{ tenant: string; limit: number; createdAt: number; id: string }, SessionRow>(
      `SELECT ${COLUMNS} FROM sessions WHERE tenant = @tenant AND (created_at, id) < (@createdAt, @id)
       ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    update: db.prepare<SessionRow>(
      `UPDATE sessions SET title = @title, metadata = @metadata, pattern = @pattern, agent = @agent,
       status = @status, sdk_session_id = @sdk_session_id, started = @started, updated_at = @updated_at,
       usage = @usage, turns = @turns, managed = @managed WHERE tenant = @tenant AND id = @id`,
    ),
    delete: db.prepare<[string, string]>('DELETE FROM sessions WHERE tenant = ? AND id = ?'),
  };
}

function toRow(record: SessionRecord): SessionRow {
  return {
    id: record.id,
    tenant: record.tenant,
    title: record.title,
    metadata: JSON.stringify(record.metadata),
    pattern: record.pattern,
    agent: JSON.stringify(record.agent),
    status: record.status,
    sdk_session_id: record.sdkSessionId,
    started: record.started ? 1 : 0,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    usage: JSON.stringify(record.usage),
    turns: record.turns,
    managed: record.managed === undefined ? null : JSON.stringify(record.managed),
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
    started: row.started !== 0,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    usage: JSON.parse(row.usage) as Usage,
    turns: row.turns,
    // Absent rather than null: a record created without the fields reads back as it was written.
    ...(row.managed === null ? {} : { managed: JSON.parse(row.managed) as ManagedSessionFields }),
  };
}
