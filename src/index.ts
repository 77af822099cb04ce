/**
 * `berth`: Berth as a library. What a program needs to run Berth in its own process and to plug in its
 * own parts:
 *
 * - the server: {@link startBerth} (HTTP API, listening) or {@link openBerthCore} (no HTTP), from a config
 *   that {@link parseServeConfig} compiles from `berth serve`'s flags and `BERTH_*` variables;
 * - the stores: the interfaces (the SDK's `SessionStore` for transcripts, {@link SessionRegistry},
 *   {@link EventLog}, {@link Catalog}), {@link openStores} for a `--store` URL, the adapter classes for each backend (each
 *   takes a ready client: `new PostgresRegistry({ pool })`), and the {@link DurableMirror} that spools
 *   writes on local disk while a networked store is down;
 * - the blob store (workspace snapshots, task results): {@link BlobStore}, {@link openBlobStore} and its
 *   two implementations;
 * - the runtime seam between Berth and the Agent SDK: {@link AgentRuntime}, {@link sdkRuntime};
 * - errors: {@link BerthError} and its codes.
 *
 * Test helpers (the scripted Messages API, the conformance suites) are `berth/testing` and
 * `berth/testing/vitest`; nothing here loads them. Drivers (`pg`, `ioredis`) are loaded by the functions
 * that open a URL; the adapter classes only take clients made by the caller.
 */

// The server, in-process
export { openBerthCore, startBerth } from './server.js';
export type { BerthCore, BerthServer, StartOptions } from './server.js';
export { SERVE_OPTIONS, parseDuration, parseServeConfig, parseSize } from './config.js';
export type { ServeConfig } from './config.js';
export { makeTelemetry } from './observe/telemetry.js';
export type { Telemetry } from './observe/telemetry.js';
export { createLogger, silentLogger } from './observe/logger.js';
export type { CreateLoggerOptions, Logger, LogFormat, LogLevel } from './observe/logger.js';
export { Metrics } from './observe/metrics.js';
export type { DrainResult, HostInfo, SessionHost } from './host/session-host.js';
export type { StoredEvent, Usage } from './session/events.js';

// Errors
export {
  BerthError,
  ERROR_CODES,
  EVENT_ERROR_TYPES,
  describeError,
  formatErrorForLog,
  isBerthError,
} from './errors.js';
export type { ErrorCode, EventErrorSource, EventErrorTypeName } from './errors.js';
export { redactUrl } from './redact.js';

// The runtime seam
export { sdkRuntime } from './session/agent-runtime.js';
export type { AgentRuntime } from './session/agent-runtime.js';

// Stores: interfaces, opening a URL, the durable mirror
export { PATTERNS, sessionKey } from './stores/types.js';
export type {
  AgentConfig,
  CompleteSessionStore,
  EventLog,
  ListPage,
  ManagedSessionFields,
  Pattern,
  SessionRecord,
  SessionRef,
  SessionRegistry,
  SessionStatus,
  Stores,
} from './stores/types.js';
export type {
  Catalog,
  CatalogEntry,
  CatalogKind,
  CatalogListOptions,
  CatalogRef,
  NewCatalogEntry,
} from './stores/catalog.js';
export { STORE_URL_FORMS, openStores } from './stores/open-stores.js';
export { DurableMirror } from './stores/durable-mirror.js';
export type { DurableMirrorOptions } from './stores/durable-mirror.js';

// Store adapters, one backend each
export {
  SQLITE_SCHEMA_VERSION,
  SqliteCatalog,
  SqliteEventLog,
  SqliteRegistry,
  SqliteSessionStore,
  migrateSqliteDatabase,
  openSqliteDatabase,
  openSqliteStores,
} from './stores/sqlite/index.js';
export type {
  SqliteCatalogOptions,
  SqliteDatabase,
  SqliteDatabaseOptions,
  SqliteEventLogOptions,
  SqliteRegistryOptions,
  SqliteSessionStoreOptions,
  SqliteStores,
} from './stores/sqlite/index.js';
export {
  DEFAULT_POSTGRES_SCHEMA,
  POSTGRES_SCHEMA_VERSION,
  PostgresCatalog,
  PostgresEventLog,
  PostgresRegistry,
  PostgresSessionStore,
  migratePostgresSchema,
  openPostgresStores,
} from './stores/postgres/index.js';
export type {
  OpenPostgresStoresOptions,
  PostgresCatalogOptions,
  PostgresEventLogOptions,
  PostgresRegistryOptions,
  PostgresSessionStoreOptions,
  PostgresStoreOptions,
  PostgresStores,
} from './stores/postgres/index.js';
export {
  DEFAULT_REDIS_PREFIX,
  RedisCatalog,
  RedisEventLog,
  RedisRegistry,
  RedisSessionStore,
  openRedisStores,
} from './stores/redis/index.js';
export type {
  OpenRedisStoresOptions,
  RedisCatalogOptions,
  RedisClient,
  RedisEventLogOptions,
  RedisRegistryOptions,
  RedisSessionStoreOptions,
} from './stores/redis/index.js';
export { openS3Stores, parseS3StoreUrl } from './stores/s3/index.js';
export type {
  S3CatalogOptions,
  S3EventLogOptions,
  S3RegistryOptions,
  S3SessionStoreOptions,
  S3StoreConfig,
} from './stores/s3/index.js';
export { S3Catalog } from './stores/s3/catalog.js';
export { S3EventLog } from './stores/s3/event-log.js';
export { S3Registry } from './stores/s3/registry.js';
export { S3SessionStore } from './stores/s3/session-store.js';

// Blob stores
export type { BlobStore } from './workspace/blob-store.js';
export { BLOB_STORE_URL_FORMS, openBlobStore } from './workspace/open-blob-store.js';
export { DirBlobStore } from './workspace/dir-blob-store.js';
export type { DirBlobStoreOptions } from './workspace/dir-blob-store.js';
export { S3BlobStore } from './workspace/s3-blob-store.js';
export type { S3BlobStoreOptions } from './workspace/s3-blob-store.js';
