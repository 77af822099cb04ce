/**
 * Berth's embedded default store: transcripts, registry, event log and catalog in one SQLite file. The
 * schema and key scheme are described in `sqlite/database.ts`.
 */
import { SqliteCatalog } from './catalog.js';
import { openSqliteDatabase } from './database.js';
import type { SqliteDatabase, SqliteDatabaseOptions } from './database.js';
import { SqliteEventLog } from './event-log.js';
import { SqliteRegistry } from './registry.js';
import { SqliteSessionStore } from './session-store.js';

export { SqliteCatalog } from './catalog.js';
export type { SqliteCatalogOptions } from './catalog.js';
export { migrateSqliteDatabase, openSqliteDatabase, SQLITE_SCHEMA_VERSION } from './database.js';
export type { SqliteDatabase, SqliteDatabaseOptions } from './database.js';
export { SqliteEventLog } from './event-log.js';
export type { SqliteEventLogOptions } from './event-log.js';
export { SqliteRegistry } from './registry.js';
export type { SqliteRegistryOptions } from './registry.js';
export { SqliteSessionStore } from './session-store.js';
export type { SqliteSessionStoreOptions } from './session-store.js';

/** The stores on one open database, as returned by {@link openSqliteStores}. */
export interface SqliteStores {
  db: SqliteDatabase;
  sessionStore: SqliteSessionStore;
  registry: SqliteRegistry;
  eventLog: SqliteEventLog;
  catalog: SqliteCatalog;
  /** Closes the database; idempotent (later calls return the first call's promise). */
  close(): Promise<void>;
}

/** Opens the database at `file` (see {@link openSqliteDatabase}) and the stores on it. */
export function openSqliteStores(file: string, options: SqliteDatabaseOptions = {}): SqliteStores {
  const db = openSqliteDatabase(file, options);
  let stores: Pick<SqliteStores, 'sessionStore' | 'registry' | 'eventLog' | 'catalog'>;
  try {
    stores = {
      sessionStore: new SqliteSessionStore({ db }),
      registry: new SqliteRegistry({ db }),
      eventLog: new SqliteEventLog({ db }),
      catalog: new SqliteCatalog({ db }),
    };
  } catch (err) {
    db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    db,
    ...stores,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        try {
          // SQLite's advice for long-lived connections: let it refresh query-planner statistics on close.
          db.pragma('optimize');
        } catch {
          // Only an optimization; closing matters more.
        }
        try {
          db.close();
          resolve();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      return closing;
    },
  };
}
