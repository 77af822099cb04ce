/**
 * Store URLs with isolated state on the real backends: a fresh PostgreSQL schema, a fresh Redis key
 * prefix, a fresh bucket on a local S3 server. Each comes with a cleanup that removes what it made. A
 * backend that is not reachable fails the test with a message that says how to start it.
 *
 * An S3 store opened from its URL takes credentials from the AWS SDK's provider chain, i.e. from
 * `process.env` in this process: an open S3 backend puts s3rver's there, and its `close()` puts back
 * what was there before. A child process gets them explicitly instead ({@link S3RVER_ENV}).
 */
import { randomBytes } from 'node:crypto';
import { S3RVER_CREDENTIALS, startS3Server, type S3TestServer } from './s3-server.js';

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

/** What a process needs in its environment to reach s3rver through the AWS SDK's provider chain. */
export const S3RVER_ENV: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  // The provider chain must never reach for an instance metadata service from a test.
  AWS_EC2_METADATA_DISABLED: 'true',
};

/** Open S3 backends in this process, and the variables they replaced (undefined: it was unset). */
let envHolders = 0;
let replacedEnv: Record<string, string | undefined> = {};

function holdS3rverEnv(): void {
  if (envHolders++ > 0) return;
  replacedEnv = Object.fromEntries(Object.keys(S3RVER_ENV).map((name) => [name, process.env[name]]));
  Object.assign(process.env, S3RVER_ENV);
}

function releaseS3rverEnv(): void {
  if (--envHolders > 0) return;
  for (const [name, value] of Object.entries(replacedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

export function s3Backend(): Backend {
  let server: Promise<S3TestServer> | undefined;
  let holdsEnv = false;
  return {
    name: 's3',
    async create() {
      if (!holdsEnv) {
        holdsEnv = true;
        holdS3rverEnv();
      }
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
      if (holdsEnv) {
        holdsEnv = false;
        releaseS3rverEnv();
      }
      if (server) await (await server).close();
    },
  };
}

export function allBackends(): Backend[] {
  return [postgresBackend(), redisBackend(), s3Backend()];
}
