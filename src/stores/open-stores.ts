/**
 * `--store URL` to the stores Berth runs on. One URL names where transcripts, the session registry and
 * the event log live.
 */
import path from 'node:path';
import { BerthError, describeError } from '../errors.js';
import type { Stores } from './types.js';

export type { Stores } from './types.js';

export const STORE_URL_FORMS = [
  'sqlite:PATH',
  'memory:',
  'postgres://USER@HOST:PORT/DB[?schema=NAME]',
  'redis://[USER:PASSWORD@]HOST:PORT[/DB][?prefix=NAME&ttl=DURATION]',
  's3://BUCKET/PREFIX?endpoint=URL&region=R&forcePathStyle=true',
] as const;

export async function openStores(url: string): Promise<Stores> {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  switch (scheme) {
    case 'sqlite': {
      const file = url.slice(colon + 1).replace(/^\/\/(?=\/)/, '');
      if (file === '' || file.includes('\0')) {
        throw new BerthError(
          'invalid_config',
          `--store ${url}: sqlite: needs a file path, e.g. sqlite:./.berth/berth.db`,
        );
      }
      // Loaded on demand so that deployments on another backend never load the native module.
      const { openSqliteStores } = await import('./sqlite.js');
      try {
        const stores = openSqliteStores(path.resolve(file));
        return {
          transcriptStore: stores.sessionStore,
          registry: stores.registry,
          eventLog: stores.eventLog,
          shared: false,
          close: async () => stores.close(),
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
      const { openSqliteStores } = await import('./sqlite.js');
      const stores = openSqliteStores(':memory:');
      return {
        transcriptStore: stores.sessionStore,
        registry: stores.registry,
        eventLog: stores.eventLog,
        shared: false,
        close: async () => stores.close(),
      };
    }
    case 'postgres':
    case 'postgresql': {
      const { openPostgresStores } = await import('./postgres.js');
      return openPostgresStores(url);
    }
    case 'redis':
    case 'rediss': {
      const { openRedisStores } = await import('./redis.js');
      return openRedisStores(url);
    }
    case 's3': {
      const { openS3Stores } = await import('./s3.js');
      return openS3Stores(url);
    }
    default:
      throw new BerthError(
        'invalid_config',
        `--store ${JSON.stringify(url)}: unsupported store URL; this build supports ${STORE_URL_FORMS.join(', ')}`,
      );
  }
}
