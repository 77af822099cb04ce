/**
 * PostgreSQL: transcripts, the session registry, the event log and the catalog in one schema of one
 * database, shared by every Berth process that points at it. All names below live in that schema (`berth`
 * by default), so one database can hold several deployments side by side and dropping the schema removes
 * everything.
 *
 * Layout (migration N turns version N into N+1; `schema_migrations` has one row per applied version):
 *
 * - `schema_migrations(version PK, applied_at)`. Migrations run in one transaction under a transaction-level
 *   advisory lock derived from the schema name, so processes that start together queue up instead of racing
 *   on `CREATE SCHEMA`/`CREATE TABLE` (which fail with unique violations in the catalog when they race).
 * - `transcript_keys(id, project_key, session_id, subpath, mtime, summary)`: one row per SessionKey, UNIQUE on
 *   the three parts. The parts are separate `COLLATE "C"` columns, never one joined string, so no character
 *   needs escaping and (`a/b`, `c`) never meets (`a`, `b/c`); "C" makes order bytewise, as in SQLite.
 *   `subpath` is `''` for the main transcript (the SDK forbids an empty subpath, so `''` names nothing else).
 *   `mtime` is epoch-ms from the appending host's clock (as in the SQLite store), made strictly increasing
 *   per key by the writer. `summary` is the SDK's opaque `SessionSummaryEntry.data` (main
 *   transcripts only), folded in the same transaction as the entries it summarizes. The row doubles as the
 *   key's lock: every append locks it before inserting, which serializes appends to one key across pools
 *   and processes, so `seq` order is fold order. (A btree entry holds at most ~2.7 kB, which bounds the
 *   three parts together; the SDK caps projectKeys at ~200 characters.)
 * - `transcript_entries(key_id, seq, uuid, entry)`, PK (`key_id`, `seq`): one row per transcript line.
 *   `seq` is an identity column, so append order survives deletes and concurrent writers, and the PK is the
 *   index a load reads in order. `key_id` references `transcript_keys` ON DELETE CASCADE. A partial UNIQUE
 *   index on (`key_id`, `uuid`) WHERE uuid IS NOT NULL makes a replayed entry an `ON CONFLICT DO NOTHING`.
 *   `entry` is `text`, not `jsonb`: the line comes back exactly as the SDK gave it, nothing parses it on the
 *   way in or out of the server, and jsonb cannot hold `\u0000`, which tool output may contain.
 * - `append_if_unchanged(...)`: a function that stores a batch and its folded summary in one statement if
 *   the key row is unchanged since the caller last wrote it (the append's fast path, see
 *   `PostgresSessionStore`).
 * - `sessions(tenant, id, ...)`, PK (`tenant`, `id`): the registry; `metadata`, `agent` and `usage` are
 *   `json` (kept verbatim, `\u0000` included, and still queryable with `->>`). Listed newest first through
 *   an index on (`tenant`, `created_at` DESC, `id` DESC).
 * - `events(session_id, seq, event)`, PK (`session_id`, `seq`): the event log; `session_id` is `tenant/id`.
 *
 * Many hosts (version 2, see `postgres/coordination.ts`); every time in these tables is the database's clock:
 * - `hosts(id PK, url, state, capacity, slots_free, last_heartbeat_at, expires_at)`: one row per host that
 *   heartbeats; live while `expires_at` is in the future.
 * - `leases(key PK, host_id, token, expires_at)`: one row per session (`key` is `tenant/id`), kept when
 *   released so that tokens only grow. Every fenced write reads its row `FOR SHARE` in the write's own
 *   transaction, which an acquire or a renew (a row update) waits for, and the other way round.
 * - `superseded(key, host_id, id, token, kind, subpath, payload, kept_at)`, PK (`key`, `host_id`, `id`): the
 *   writes a host made under a lease it had lost. The PK is also the index a session's reads and deletes
 *   use. `payload` is `json`, not `jsonb`: kept verbatim, `\u0000` included. `kept_at` is the caller's.
 *
 * The catalog (version 3, see `postgres/catalog.ts`):
 * - `catalog(tenant, kind, id, revision, created_at, updated_at, doc)`, PK (`tenant`, `kind`, `id`): agents,
 *   agent versions and environments (`stores/catalog.ts`). `doc` is `json`, kept verbatim like the
 *   registry's JSON columns. Listed newest first through an index on (`tenant`, `kind`, `created_at` DESC,
 *   `id` DESC); a replace is one `UPDATE ... WHERE revision = $n`, the row lock making it compare-and-set.
 *
 * Managed sessions (version 4): `sessions.managed`, `json`, the record's Managed Agents fields
 * (`ManagedSessionFields`), NULL for a record without them (a group's agents, records written before).
 *
 * Integers that can exceed 2^31 (mtimes, times, seqs) are `bigint`, which `pg` returns as strings; the stores
 * convert them, and cast `json` columns to text and parse them themselves, so that type parsers a user set
 * globally on `pg` do not change what the stores read.
 */
import type { Pool, PoolClient } from 'pg';
import { untilAborted } from '../abort.js';
import { BerthError } from '../../errors.js';

/** The schema used when none is given. */
export const DEFAULT_POSTGRES_SCHEMA = 'berth';

/** What each PostgreSQL store takes. */
export interface PostgresStoreOptions {
  /**
   * A ready pool; the store never ends it. Its owner should listen for the pool's `error` event: `pg` emits
   * it when an idle connection drops, and an unheard `error` event ends a Node process.
   */
  pool: Pool;
  /**
   * The schema holding Berth's tables, created (or migrated) on first use.
   * @default 'berth'
   */
  schema?: string;
}

/**
 * An unquoted-identifier-shaped name (always quoted in SQL anyway): no quoting rules to get wrong, and the
 * name reads the same in `psql`. 63 bytes is PostgreSQL's identifier limit.
 */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** `pg_advisory_xact_lock`'s first key: "BERT", so that other software's locks on the same hash do not meet. */
const ADVISORY_LOCK_CLASS = 0x42455254;

/** `{schema}` stands for the quoted schema name. */
const MIGRATIONS: readonly string[] = [
  // 0 -> 1
  `
  CREATE TABLE {schema}.transcript_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_key text COLLATE "C" NOT NULL,
    session_id  text COLLATE "C" NOT NULL,
    subpath     text COLLATE "C" NOT NULL,
    mtime       bigint NOT NULL,
    summary     json,
    UNIQUE (project_key, session_id, subpath)
  );
  CREATE TABLE {schema}.transcript_entries (
    key_id bigint NOT NULL REFERENCES {schema}.transcript_keys (id) ON DELETE CASCADE,
    seq    bigint GENERATED ALWAYS AS IDENTITY,
    uuid   text COLLATE "C",
    entry  text NOT NULL,
    PRIMARY KEY (key_id, seq)
  );
  CREATE UNIQUE INDEX transcript_entries_uuid ON {schema}.transcript_entries (key_id, uuid)
    WHERE uuid IS NOT NULL;

  CREATE FUNCTION {schema}.append_if_unchanged(
    p_key_id bigint, p_mtime bigint, p_new_mtime bigint, p_uuids text[], p_entries text[], p_summary json
  ) RETURNS boolean LANGUAGE plpgsql AS $fn$
  DECLARE
    inserted bigint[];
  BEGIN
    -- The lock every appender of the key takes. Every append that stores something raises mtime, so an
    -- unchanged mtime means nothing was stored since the caller read the summary it folded from; the id
    -- rules out a key deleted and written again since.
    PERFORM 1 FROM {schema}.transcript_keys WHERE id = p_key_id AND mtime = p_mtime FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      RETURN false;
    END IF;
    WITH stored AS (
      INSERT INTO {schema}.transcript_entries (key_id, uuid, entry)
      SELECT p_key_id, e.uuid, e.entry FROM unnest(p_uuids, p_entries) AS e (uuid, entry)
      ON CONFLICT (key_id, uuid) WHERE uuid IS NOT NULL DO NOTHING
      RETURNING seq
    )
    SELECT array_agg(seq) INTO inserted FROM stored;
    IF coalesce(cardinality(inserted), 0) <> cardinality(p_entries) THEN
      -- A replay: the caller folded every entry, but some were stored already. Take back the rest so that
      -- the statement stores nothing, and let the caller fold what is actually new under the lock.
      DELETE FROM {schema}.transcript_entries WHERE key_id = p_key_id AND seq = ANY (inserted);
      RETURN false;
    END IF;
    UPDATE {schema}.transcript_keys SET mtime = p_new_mtime, summary = p_summary WHERE id = p_key_id;
    RETURN true;
  END
  $fn$;

  CREATE TABLE {schema}.sessions (
    tenant         text COLLATE "C" NOT NULL,
    id             text COLLATE "C" NOT NULL,
    title          text,
    metadata       json    NOT NULL,
    pattern        text    NOT NULL,
    agent          json    NOT NULL,
    status         text    NOT NULL,
    sdk_session_id text    NOT NULL,
    started        boolean NOT NULL,
    created_at     bigint  NOT NULL,
    updated_at     bigint  NOT NULL,
    usage          json    NOT NULL,
    turns          integer NOT NULL,
    PRIMARY KEY (tenant, id)
  );
  CREATE INDEX sessions_by_tenant ON {schema}.sessions (tenant, created_at DESC, id DESC);

  CREATE TABLE {schema}.events (
    session_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,
    event      json   NOT NULL,
    PRIMARY KEY (session_id, seq)
  );
  `,
  // 1 -> 2: many hosts
  `
  CREATE TABLE {schema}.hosts (
    id                text COLLATE "C" PRIMARY KEY,
    url               text        NOT NULL,
    state             text        NOT NULL,
    capacity          integer     NOT NULL,
    slots_free        integer     NOT NULL,
    last_heartbeat_at timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL
  );

  CREATE TABLE {schema}.leases (
    key        text COLLATE "C" PRIMARY KEY,
    host_id    text COLLATE "C" NOT NULL,
    token      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
  );

  CREATE TABLE {schema}.superseded (
    key     text COLLATE "C" NOT NULL,
    host_id text COLLATE "C" NOT NULL,
    id      bigint NOT NULL,
    token   bigint NOT NULL,
    kind    text   NOT NULL,
    subpath text   NOT NULL,
    payload json   NOT NULL,
    kept_at bigint NOT NULL,
    PRIMARY KEY (key, host_id, id)
  );
  `,
  // 2 -> 3: the catalog
  `
  CREATE TABLE {schema}.catalog (
    tenant     text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    revision   bigint  NOT NULL,
    created_at bigint  NOT NULL,
    updated_at bigint  NOT NULL,
    doc        json    NOT NULL,
    PRIMARY KEY (tenant, kind, id)
  );
  CREATE INDEX catalog_by_created ON {schema}.catalog (tenant, kind, created_at DESC, id DESC);
  `,
  // 3 -> 4: a session's Managed Agents fields
  `
  ALTER TABLE {schema}.sessions ADD COLUMN managed json;
  `,
];

/** The schema version this build of Berth writes and reads. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/** Throws `invalid_config` unless `schema` is a plain identifier (letters, digits, `_`; 63 at most). */
export function validateSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new BerthError(
      'invalid_config',
      `invalid PostgreSQL schema name ${JSON.stringify(schema)}: use letters, digits and _ (63 at most, not starting with a digit)`,
    );
  }
  return schema;
}

/** The schema name as a quoted SQL identifier (validated, so it holds no quote to double). */
export function quoteSchema(schema: string): string {
  return `"${validateSchemaName(schema)}"`;
}

/**
 * Brings `schema` up to {@link POSTGRES_SCHEMA_VERSION}, creating the schema and its tables if needed. Cheap
 * (two reads) when it already is; safe to call from several pools and processes at once. Throws
 * `store_unavailable` when the database cannot be reached or holds a newer schema than this Berth knows.
 */
export async function migratePostgresSchema(
  pool: Pool,
  schema: string = DEFAULT_POSTGRES_SCHEMA,
): Promise<void> {
  const quoted = quoteSchema(schema);
  const migrations = `${quoted}.schema_migrations`;
  try {
    // Without the lock first: a role that may use but not create the schema can still start once it exists.
    const found = await pool.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
      migrations,
    ]);
    if (
      found.rows[0]?.exists &&
      checkVersion(await readVersion(pool, migrations), schema) === POSTGRES_SCHEMA_VERSION
    )
      return;
    const { client, release } = await checkOut(pool);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ADVISORY_LOCK_CLASS, schema]);
      // Checked first because CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database.
      const schemaExists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (schemaExists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoted}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${migrations} (
           version    integer PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      // Read again under the lock: another process may have migrated since the first read.
      const current = checkVersion(await readVersion(client, migrations), schema);
      for (let version = current; version < POSTGRES_SCHEMA_VERSION; version++) {
        await client.query((MIGRATIONS[version] ?? '').replaceAll('{schema}', quoted));
        await client.query(`INSERT INTO ${migrations} (version) VALUES ($1)`, [version + 1]);
      }
      await client.query('COMMIT');
    } catch (err) {
      broken = await rollback(client, err);
      throw err;
    } finally {
      release(broken);
    }
  } catch (err) {
    throw toStoreError(err, `migrate schema ${schema}`);
  }
}

async function readVersion(db: Pool | PoolClient, migrations: string): Promise<number> {
  const result = await db.query<{ version: number | null }>(
    `SELECT max(version) AS version FROM ${migrations}`,
  );
  return result.rows[0]?.version ?? 0;
}

function checkVersion(found: number, schema: string): number {
  if (found > POSTGRES_SCHEMA_VERSION) {
    throw new BerthError(
      'store_unavailable',
      `PostgreSQL schema ${schema} has version ${found}, newer than this Berth's ${POSTGRES_SCHEMA_VERSION}`,
    );
  }
  return found;
}

const migrated = new WeakMap<Pool, Map<string, Promise<void>>>();

/**
 * {@link migratePostgresSchema}, once per pool and schema: the three stores on one pool share the work. A
 * failure is not remembered, so the next call tries again (the server may be back).
 */
export function ensurePostgresSchema(pool: Pool, schema: string): Promise<void> {
  let bySchema = migrated.get(pool);
  if (!bySchema) migrated.set(pool, (bySchema = new Map<string, Promise<void>>()));
  let promise = bySchema.get(schema);
  if (!promise) {
    const pending = migratePostgresSchema(pool, schema);
    bySchema.set(schema, pending);
    pending.catch(() => {
      if (bySchema.get(schema) === pending) bySchema.delete(schema);
    });
    promise = pending;
  }
  return promise;
}

/**
 * Rolls back after `err` and says whether the connection must be destroyed rather than returned to the pool
 * (returns the error to pass to `release`): a connection whose ROLLBACK failed is in an unknown state.
 */
export async function rollback(client: PoolClient, err: unknown): Promise<Error | undefined> {
  try {
    await client.query('ROLLBACK');
    return undefined;
  } catch {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** The SQLSTATE of a server error, if `err` is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * A readable cause for any failure `pg` reports. Connection failures can be an AggregateError with an empty
 * message (one error per address tried), which would otherwise print as nothing.
 */
export function describePgError(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return [...new Set(err.errors.map((inner) => describePgError(inner)))].join('; ');
  }
  if (err instanceof Error) {
    if (err.message) return err.message;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return String(err);
}

/**
 * A failure of the database or of the connection to it, as a `BerthError`: `store_unavailable`, so that
 * callers branch on the same codes whatever the backend; `invalid_request` for text holding U+0000, which
 * PostgreSQL cannot store (retrying would never help). Berth's own errors pass as they are.
 */
export function toStoreError(err: unknown, action: string): BerthError {
  if (err instanceof BerthError) return err;
  const message = `postgres ${action} failed: ${describePgError(err)}`;
  if (sqlState(err) === '22021') {
    return new BerthError('invalid_request', `${message} (PostgreSQL text cannot hold U+0000)`, {
      cause: err,
    });
  }
  return new BerthError('store_unavailable', message, { cause: err });
}

/** A client checked out of the pool, and how to give it back. */
export interface CheckedOut {
  client: PoolClient;
  /** Back to the pool; destroyed instead when `broken` is given or its connection failed meanwhile. */
  release: (broken?: Error) => void;
}

/**
 * Checks a client out for a transaction. pg-pool listens for a client's errors only while it is idle, and
 * pg emits `error` on a checked-out client whose connection ends (a network cut), even with a query in
 * flight: with no listener that error would end the process. The query in flight rejects with the error
 * all the same, so the listener here only keeps it, for `release` to destroy the client.
 */
export async function checkOut(pool: Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let failed: Error | undefined;
  const onError = (err: Error): void => {
    failed ??= err;
  };
  client.on('error', onError);
  return {
    client,
    release: (broken) => {
      client.off('error', onError);
      client.release(broken ?? failed);
    },
  };
}

/**
 * Runs `work` (queries only), turning whatever it throws into {@link toStoreError}'s errors. `pg` takes no
 * AbortSignal, so `signal` stops the waiting (rejecting with `aborted`), not a query already sent.
 */
export async function pgTask<T>(action: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await untilAborted(signal, `postgres ${action}`, work);
  } catch (err) {
    throw toStoreError(err, action);
  }
}
