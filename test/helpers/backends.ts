/**
 * Store URLs with isolated state on the real backends: a fresh PostgreSQL schema, a fresh Redis key
 * prefix, a fresh bucket on a local S3 server. Each comes with a cleanup that removes what it made. A
 * backend that is not reachable fails the test with a message that says how to start it.
 */
import { randomBytes } from 'node:crypto';
import { startS3Server, type S3TestServer } from './s3-server.js';

export interface TestStore {
  /** A `--store` URL. */
  url: string;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: 'postgres' | 'redis' | 's3';
  create(): Promise<TestStore>;
  /** Stops what the backend started for the test file (the local S3 server). */
  close(): Promise<void>;
}

const unique = (): string => `t${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;

export const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = 'redis://127.0.0.1:6379/0';

export function postgresBackend(): Backend {
  return {
    name: 'postgres',
    async create() {
      const schema = `berth_${unique()}`;
      const { default: pg } = await import('pg');
      return {
        url: `${POSTGRES_URL}?schema=${schema}`,
        async cleanup() {
          const client = new pg.Client({ connectionString: POSTGRES_URL });
          await client.connect();
          try {
            await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          } finally {
            await client.end();
          }
        },
      };
    },
    close: () => Promise.resolve(),
  };
}

export function redisBackend(): Backend {
  return {
    name: 'redis',
    create() {
      const prefix = `berth-${unique()}`;
      return Promise.resolve({
        url: `${REDIS_URL}?prefix=${prefix}`,
        async cleanup() {
          const { Redis } = await import('ioredis');
          const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
          await redis.connect();
          try {
            // Keys are `<prefix>:...`, possibly inside a hash tag.
            for (const pattern of [`${prefix}:*`, `*${prefix}*`]) {
              let cursor = '0';
              do {
                const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
                cursor = next;
                if (keys.length > 0) await redis.unlink(...keys);
              } while (cursor !== '0');
            }
          } finally {
            redis.disconnect();
          }
        },
      });
    },
    close: () => Promise.resolve(),
  };
}

export function s3Backend(): Backend {
  let server: Promise<S3TestServer> | undefined;
  return {
    name: 's3',
    async create() {
      // openS3Stores takes credentials from the AWS SDK's provider chain; s3rver accepts these.
      process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
      process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
      server ??= startS3Server();
      const s3 = await server;
      const bucket = `berth-${unique()}`.toLowerCase();
      await s3.createBucket(bucket);
      return {
        url: `s3://${bucket}/sessions?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&forcePathStyle=true`,
        // The server's directory goes with the server.
        cleanup: () => Promise.resolve(),
      };
    },
    async close() {
      if (server) await (await server).close();
    },
  };
}

export function allBackends(): Backend[] {
  return [postgresBackend(), redisBackend(), s3Backend()];
}
