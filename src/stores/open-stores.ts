/**
 * `--store URL` to the stores Berth runs on. One URL names where transcripts, the session registry, the
 * event log and the catalog live, and, on PostgreSQL and Redis, the coordination of many hosts (`Stores.coordination`).
 * Every call of the stores returned has a deadline (`--store-timeout`, see `with-deadlines.ts`), so that a
 * backend that hangs fails like one that refuses.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { BerthError, describeError } from '../errors.js';
import { DEFAULT_POSTGRES_SCHEMA } from './postgres/schema.js';
import { DEFAULT_REDIS_PREFIX } from './redis/keys.js';
import { DEFAULT_STORE_TIMEOUT_MS, type StoreObserver } from './deadline.js';
import type { Stores } from './types.js';
import { storesWithDeadlines } from './with-deadlines.js';

export type { Stores } from './types.js';

/** Options of {@link openStores}. */
export interface OpenStoresOptions {
  /**
   * Each store call's deadline, in ms (`--store-timeout`): a call not answered by then fails with
   * `store_unavailable`.
   * @default 10000
   */
  timeoutMs?: number;
  /** Telemetry's wrapper around every store call (see `StoreObserver`). @default none */
  observe?: StoreObserver | undefined;
}

export const STORE_URL_FORMS = [
  'sqlite:PATH',
  'memory:',
  'postgres://USER@HOST:PORT/DB[?schema=NAME]',
  'redis://[USER:PASSWORD@]HOST:PORT[/DB][?prefix=NAME&ttl=DURATION]',
  's3://BUCKET/PREFIX?endpoint=URL&region=R&forcePathStyle=true',
] as const;

/**
 * Whether a `--store` URL names a store that can run many hosts (a host registry and leases with
 * fencing, `Stores.coordination`): PostgreSQL and Redis, which have an atomic compare-and-set.
 */
export function storeHasLeases(url: string): boolean {
  return /^(postgres|postgresql|redis|rediss):/i.test(url);
}

export async function openStores(url: string, options: OpenStoresOptions = {}): Promise<Stores> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  return storesWithDeadlines(await openBackend(url), timeoutMs, options.observe);
}

/** The backend a `--store` URL names, as metrics label it: `sqlite`, `memory`, `postgres`, `redis`, `s3`. */
export function storeBackend(url: string): string {
  const scheme = url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase();
  if (scheme === 'postgresql') return 'postgres';
  if (scheme === 'rediss') return 'redis';
  return ['sqlite', 'memory', 'postgres', 'redis', 's3'].includes(scheme) ? scheme : 'other';
}

async function openBackend(url: string): Promise<Stores> {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  switch (scheme) {
    case 'sqlite': {
      const file = path.resolve(sqliteFile(url, colon));
      // Loaded on demand so that deployments on another backend never load the native module.
      const { openSqliteStores } = await import('./sqlite/index.js');
      try {
        const stores = openSqliteStores(file);
        return {
          transcriptStore: stores.sessionStore,
          registry: stores.registry,
          eventLog: stores.eventLog,
          catalog: stores.catalog,
          shared: false,
          close: async () => stores.close(),
          async destroy() {
            await stores.close();
            // The database and the files SQLite keeps beside it (WAL mode, or a rollback journal).
            for (const suffix of ['', '-wal', '-shm', '-journal'])
              await rm(`${file}${suffix}`, { force: true });
          },
        };
      } catch (err) {
        throw new BerthError(
          'invalid_config',
          `--store ${url}: cannot open the SQLite database: ${describeError(err)}`,
        );
      }
    }
    case 'memory': {
      if (url.slice(colon + 1) !== '') {
        throw new BerthError('invalid_config', `--store ${url}: memory: takes nothing after the colon`);
      }
      // An in-memory SQLite database: the same code as the default store, gone when the process ends.
      const { openSqliteStores } = await import('./sqlite/index.js');
      const stores = openSqliteStores(':memory:');
      return {
        transcriptStore: stores.sessionStore,
        registry: stores.registry,
        eventLog: stores.eventLog,
        catalog: stores.catalog,
        shared: false,
        close: async () => stores.close(),
        destroy: async () => stores.close(),
      };
    }
    case 'postgres':
    case 'postgresql': {
      // With `coordination`: PostgreSQL can run many hosts.
      const { openPostgresStores } = await import('./postgres/index.js');
      return openPostgresStores(url);
    }
    case 'redis':
    case 'rediss': {
      const { openRedisStores } = await import('./redis/index.js');
      return openRedisStores(url);
    }
    case 's3': {
      const { openS3Stores } = await import('./s3/index.js');
      return openS3Stores(url);
    }
    default:
      throw unsupported(url);
  }
}

/**
 * The URL of a namespace on `url`'s backend that neither `url` nor any other tag sees, for a test or a
 * conformance case; `openStores` creates it on first use and `Stores.destroy()` removes it. `tag` is 1-24
 * of a-z and 0-9.
 * - `sqlite:PATH`: the file `PATH.c-TAG` beside PATH (so that the case runs on the same filesystem).
 * - `memory:`: itself, since every open is a fresh database.
 * - `postgres://...?schema=S`: the schema `S_c_TAG` (S defaults to `berth`).
 * - `redis://...?prefix=P`: the key prefix `P:c:TAG` (P defaults to `berth`).
 * - `s3://BUCKET/PREFIX?...`: the prefix `PREFIX/c-TAG`.
 * Checks only what it needs to rewrite; `openStores` reports everything else.
 */
export function isolatedStoreUrl(url: string, tag: string): string {
  if (!/^[a-z0-9]{1,24}$/.test(tag)) {
    throw new BerthError(
      'invalid_config',
      `isolation tag ${JSON.stringify(tag)} must be 1-24 of a-z and 0-9`,
    );
  }
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  switch (scheme) {
    case 'sqlite':
      return `sqlite:${sqliteFile(url, colon)}.c-${tag}`;
    case 'memory':
      return url;
    case 'postgres':
    case 'postgresql':
    case 'redis':
    case 'rediss': {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        // Not echoed: a URL too broken to parse may still hold a password.
        throw new BerthError('invalid_config', `--store ${scheme}://...: not a valid URL`);
      }
      if (scheme.startsWith('postgres')) {
        const schema = parsed.searchParams.get('schema') ?? DEFAULT_POSTGRES_SCHEMA;
        parsed.searchParams.set('schema', `${schema}_c_${tag}`);
      } else {
        const prefix = parsed.searchParams.get('prefix') ?? DEFAULT_REDIS_PREFIX;
        parsed.searchParams.set('prefix', `${prefix}:c:${tag}`);
      }
      return parsed.href;
    }
    case 's3': {
      const match = /^(s3:\/\/[^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(url);
      if (!match) throw new BerthError('invalid_config', '--store s3://...: expected s3://BUCKET/PREFIX?...');
      const prefix = (match[2] ?? '').replace(/\/+$/, '');
      return `${match[1]}${prefix}/c-${tag}${match[3] ?? ''}`;
    }
    default:
      throw unsupported(url);
  }
}

/** The file a `sqlite:PATH` (or `sqlite:///ABSOLUTE`) URL names. */
function sqliteFile(url: string, colon: number): string {
  const file = url.slice(colon + 1).replace(/^\/\/(?=\/)/, '');
  if (file === '' || file.includes('\0')) {
    throw new BerthError(
      'invalid_config',
      `--store ${url}: sqlite: needs a file path, e.g. sqlite:./.berth/berth.db`,
    );
  }
  return file;
}

function unsupported(url: string): BerthError {
  return new BerthError(
    'invalid_config',
    `--store ${JSON.stringify(url)}: unsupported store URL; this build supports ${STORE_URL_FORMS.join(', ')}`,
  );
}
