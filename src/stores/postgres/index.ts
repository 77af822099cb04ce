/**
 * PostgreSQL stores: transcripts, registry, event log, catalog and the coordination of many hosts (host
 * registry, session leases, fencing) in one schema that every Berth host shares. The layout is described in
 * `postgres/schema.ts`. The classes take a ready `pg.Pool` and never load `pg` themselves;
 * {@link openPostgresStores} builds the pool from a `--store` URL, loading `pg` on demand so that
 * deployments on another backend never need it installed.
 */
import type { Pool } from 'pg';
import { BerthError } from '../../errors.js';
import { PostgresCatalog } from './catalog.js';
import { PostgresCoordination } from './coordination.js';
import { PostgresEventLog } from './event-log.js';
import { PostgresRegistry } from './registry.js';
import {
  DEFAULT_POSTGRES_SCHEMA,
  describePgError,
  ensurePostgresSchema,
  pgTask,
  quoteSchema,
  validateSchemaName,
} from './schema.js';
import { PostgresSessionStore } from './session-store.js';
import type { Stores } from '../types.js';

export { DEFAULT_POSTGRES_SCHEMA, migratePostgresSchema, POSTGRES_SCHEMA_VERSION } from './schema.js';
export { PostgresCatalog } from './catalog.js';
export type { PostgresCatalogOptions } from './catalog.js';
export { PostgresCoordination } from './coordination.js';
export type { PostgresCoordinationOptions } from './coordination.js';
export { PostgresEventLog } from './event-log.js';
export type { PostgresEventLogOptions } from './event-log.js';
export { PostgresRegistry } from './registry.js';
export type { PostgresRegistryOptions } from './registry.js';
export { PostgresSessionStore } from './session-store.js';
export type { PostgresSessionStoreOptions } from './session-store.js';
export type { PostgresStoreOptions } from './schema.js';

/** Options of {@link openPostgresStores}. */
export interface OpenPostgresStoresOptions {
  /**
   * Connections the pool opens at most.
   * @default 10
   */
  maxConnections?: number;
  /**
   * How long opening one connection may take before it fails (at start: `invalid_config`; later:
   * `store_unavailable`), so that an unreachable server is reported instead of hanging.
   * @default 10000
   */
  connectTimeoutMs?: number;
}

/** The stores on one pool and schema, as returned by {@link openPostgresStores}. */
export interface PostgresStores extends Stores {
  transcriptStore: PostgresSessionStore;
  registry: PostgresRegistry;
  eventLog: PostgresEventLog;
  catalog: PostgresCatalog;
  coordination: PostgresCoordination;
  /** The pool the stores share, owned by this object: `close()` ends it. */
  pool: Pool;
  /** The schema holding the tables. */
  schema: string;
}

/** The URL forms {@link openPostgresStores} accepts, for help and error texts. */
export const POSTGRES_URL_FORM = 'postgres://USER:PASSWORD@HOST:PORT/DATABASE[?schema=NAME]';

/**
 * Opens the stores a `--store postgres://USER:PASSWORD@HOST:PORT/DATABASE[?schema=NAME]` URL names
 * (`postgresql://` too; other libpq parameters such as `sslmode` pass through to `pg`). The schema defaults
 * to `berth`. Connects and creates or migrates the schema before returning, so that a malformed URL, an
 * unreachable server, refused credentials or a bad schema name fail here, as `invalid_config` naming
 * HOST:PORT and the cause (never the password), rather than on a session's first write.
 */
export async function openPostgresStores(
  url: string,
  options: OpenPostgresStoresOptions = {},
): Promise<PostgresStores> {
  const target = parseStoreUrl(url);
  // Loaded on demand: only deployments on PostgreSQL need `pg` installed.
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: target.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: 'berth',
  });
  // `pg` emits this when an idle pooled connection drops (a server restart, a failover); without a listener
  // Node would end the process. The pool has already discarded that connection, and the next query either
  // reconnects or fails with store_unavailable, which is where the failure is reported.
  pool.on('error', () => {});
  try {
    // Through the per-pool cache, so the stores below do not check the schema again.
    await ensurePostgresSchema(pool, target.schema);
  } catch (err) {
    await pool.end().catch(() => {});
    const cause = err instanceof BerthError && err.cause !== undefined ? err.cause : err;
    throw new BerthError(
      'invalid_config',
      scrub(
        `cannot use PostgreSQL at ${target.hostPort} (${target.display}): ${describePgError(cause)}`,
        target.password,
      ),
      { cause },
    );
  }
  const stores = {
    transcriptStore: new PostgresSessionStore({ pool, schema: target.schema }),
    registry: new PostgresRegistry({ pool, schema: target.schema }),
    eventLog: new PostgresEventLog({ pool, schema: target.schema }),
    catalog: new PostgresCatalog({ pool, schema: target.schema }),
    coordination: new PostgresCoordination({ pool, schema: target.schema }),
  };
  let closing: Promise<void> | undefined;
  return {
    ...stores,
    shared: true,
    pool,
    schema: target.schema,
    close() {
      closing ??= pool.end();
      return closing;
    },
    destroy: () =>
      pgTask(`drop schema ${target.schema}`, async () => {
        await pool.query(`DROP SCHEMA IF EXISTS ${quoteSchema(target.schema)} CASCADE`);
      }),
  };
}

interface StoreUrl {
  /** What `pg` gets: the URL without Berth's own `schema` parameter. */
  connectionString: string;
  schema: string;
  /** The URL without its password and query, for messages. */
  display: string;
  hostPort: string;
  password: string;
}

function parseStoreUrl(url: string): StoreUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BerthError(
      'invalid_config',
      `${redactUrlText(url)} is not a valid URL; expected ${POSTGRES_URL_FORM}`,
    );
  }
  const password = decodeURIComponentSafe(parsed.password) || (parsed.searchParams.get('password') ?? '');
  // Neither the password nor the query, where libpq also takes `password` and `sslpassword`.
  const shown = new URL(parsed.href);
  shown.password = '';
  shown.search = '';
  const display = shown.href;
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new BerthError(
      'invalid_config',
      `${display} is not a PostgreSQL URL; expected ${POSTGRES_URL_FORM}`,
    );
  }
  // A unix socket directory may come as ?host=/path, as libpq allows.
  const host = parsed.hostname || parsed.searchParams.get('host') || 'localhost';
  const hostPort = `${host}:${parsed.port || parsed.searchParams.get('port') || '5432'}`;
  const schema = parsed.searchParams.get('schema') ?? DEFAULT_POSTGRES_SCHEMA;
  try {
    validateSchemaName(schema);
  } catch (err) {
    throw new BerthError('invalid_config', `${display}: ${(err as Error).message}`);
  }
  let connectionString = url;
  if (parsed.searchParams.has('schema')) {
    parsed.searchParams.delete('schema');
    connectionString = parsed.href;
  }
  return { connectionString, schema, display, hostPort, password };
}

/**
 * `scheme://user:secret@...` with the secret replaced, for a URL too broken to parse. Everything up to the
 * last `@` goes, since a broken URL may hold a password with `/` or `@` in it; hiding too much is harmless.
 */
function redactUrlText(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*):.*@/is, '$1:***@');
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * No password in any message, even if a driver quoted it. Very short passwords are left alone: blanking every
 * occurrence of one or two characters would garble the message, and no driver message quotes them anyway.
 */
function scrub(message: string, password: string): string {
  return password.length >= 3 ? message.split(password).join('***') : message;
}
