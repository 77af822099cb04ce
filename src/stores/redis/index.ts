/**
 * Berth on Redis: transcripts, registry, event log and catalog on one Redis (6.2 or newer, standalone or
 * Cluster), so that several Berth hosts share sessions, plus on a standalone Redis the coordination of many
 * hosts (host registry, session leases, fenced writes). The key scheme, and what is atomic and why, is
 * described in `redis/keys.ts`; the append and summary design in `redis/session-store.ts`; fencing in
 * `redis/fence.ts`.
 *
 * `--store redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=NAME&ttl=DURATION]` (`rediss://` for TLS)
 * opens all of them on one connection, see {@link openRedisStores}.
 */
import { BerthError, describeError } from '../../errors.js';
import { RedisCatalog } from './catalog.js';
import { redisCall } from './client.js';
import { RedisCoordination } from './coordination.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX } from './keys.js';
import { RedisEventLog } from './event-log.js';
import { RedisRegistry } from './registry.js';
import { RedisSessionStore } from './session-store.js';
import type { Stores } from '../types.js';

export { RedisCatalog } from './catalog.js';
export type { RedisCatalogOptions } from './catalog.js';
export type { RedisClient } from './client.js';
export { checkRedisPrefix, DEFAULT_REDIS_PREFIX, encodeKeyPart } from './keys.js';
export { RedisCoordination } from './coordination.js';
export type { RedisCoordinationOptions } from './coordination.js';
export { RedisEventLog } from './event-log.js';
export type { RedisEventLogOptions } from './event-log.js';
export { RedisRegistry } from './registry.js';
export type { RedisRegistryOptions } from './registry.js';
export { RedisSessionStore } from './session-store.js';
export type { RedisSessionStoreOptions } from './session-store.js';

/** A `redis://` store URL, parsed and checked by {@link parseRedisStoreUrl}. */
export interface RedisStoreUrl {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
  prefix: string;
  /** Transcript retention in seconds, or undefined to keep transcripts until deleted. */
  ttlSeconds: number | undefined;
  /** The URL without credentials, for messages and logs. */
  display: string;
}

/** Options of {@link openRedisStores}. */
export interface OpenRedisStoresOptions {
  /**
   * How long connecting (TCP, TLS, AUTH, SELECT) may take before the URL is reported as unusable.
   * @default 5000
   */
  connectTimeoutMs?: number;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const QUERY_PARAMS = new Set(['prefix', 'ttl']);

/**
 * Parses `redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=NAME&ttl=DURATION]` (or `rediss://`): port 6379,
 * db 0 and prefix `berth` by default; `ttl` (e.g. `3600s`, `90m`, `12h`, `30d`) expires a session's
 * transcript that long after its last append (the registry and event log are Berth's records of the
 * session and go only when the session is deleted). Throws `invalid_config` naming what is wrong; messages never
 * include the password.
 */
export function parseRedisStoreUrl(url: string): RedisStoreUrl {
  const bad = (what: string, shown = redact(url)) =>
    new BerthError('invalid_config', `--store ${shown}: ${what}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad('not a URL; expected redis://[user:password@]host[:port][/db][?prefix=NAME&ttl=DURATION]');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw bad('not a redis:// or rediss:// URL');
  }
  // WHATWG URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw bad('needs a host, e.g. redis://127.0.0.1:6379');
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const dbText = parsed.pathname.replace(/^\//, '');
  if (!/^\d{0,5}$/.test(dbText)) throw bad(`the path must be a database number, got /${dbText}`);
  const db = dbText === '' ? 0 : Number(dbText);
  const display = `${parsed.protocol}//${parsed.host}/${db}`;
  if (parsed.hash !== '') throw bad('a #fragment means nothing here', display);
  for (const name of new Set(parsed.searchParams.keys())) {
    if (!QUERY_PARAMS.has(name)) throw bad(`unknown parameter ${name} (known: prefix, ttl)`, display);
    if (parsed.searchParams.getAll(name).length > 1) throw bad(`${name} is given twice`, display);
  }
  let prefix = DEFAULT_REDIS_PREFIX;
  const prefixParam = parsed.searchParams.get('prefix');
  if (prefixParam !== null) {
    try {
      prefix = checkRedisPrefix(prefixParam);
    } catch (err) {
      throw bad(describeError(err), display);
    }
  }
  let ttlSeconds: number | undefined;
  const ttl = parsed.searchParams.get('ttl');
  if (ttl !== null) {
    const match = /^(\d{1,9})(s|m|h|d)$/.exec(ttl);
    ttlSeconds = match?.[1] && match[2] ? Number(match[1]) * (DURATION_UNITS[match[2]] ?? 1) : 0;
    if (!(ttlSeconds > 0))
      throw bad(`ttl ${JSON.stringify(ttl)} is not a duration (e.g. 3600s, 90m, 12h, 30d)`, display);
  }
  const decode = (part: string, what: string): string | undefined => {
    try {
      return part === '' ? undefined : decodeURIComponent(part);
    } catch {
      throw bad(`the ${what} has a malformed %-escape`, display);
    }
  };
  return {
    host,
    port,
    db,
    username: decode(parsed.username, 'user name'),
    password: decode(parsed.password, 'password'),
    tls: parsed.protocol === 'rediss:',
    prefix,
    ttlSeconds,
    display,
  };
}

/**
 * Opens the stores a `redis://` URL names (see {@link parseRedisStoreUrl}) on one new ioredis client,
 * loaded only now so that other deployments never load it. Connects before returning: a bad URL, an
 * unreachable or silent server, bad credentials, a bad database number or a Redis older than 6.2 are an
 * `invalid_config` error naming host:port, after at most `connectTimeoutMs`. Once connected the client
 * reconnects on its own; a command issued while the server is away fails after a few retries, as
 * `store_unavailable`. `close()` quits the client and is idempotent.
 */
export async function openRedisStores(url: string, options: OpenRedisStoresOptions = {}): Promise<Stores> {
  const config = parseRedisStoreUrl(url);
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  const { Redis } = await import('ioredis');
  let connected = false;
  let lastError: unknown;
  const redis = new Redis({
    host: config.host,
    port: config.port,
    db: config.db,
    username: config.username,
    password: config.password,
    ...(config.tls ? { tls: {} } : {}),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    // No retry while connecting, so that a wrong URL fails now; after that, back off up to 2 s.
    retryStrategy: (attempt) => (connected ? Math.min(attempt * 100, 2000) : null),
    // Commands wait through about 3 reconnects (~0.6 s) before failing, rather than ioredis' 20.
    maxRetriesPerRequest: 3,
  });
  // Without a listener ioredis prints every connection error; Berth reports them through the stores.
  redis.on('error', (err: unknown) => {
    lastError = err;
  });
  const where = `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  const connecting = (async () => {
    await redis.connect();
    // ioredis selects the db on connect but stays "ready" on db 0 when that fails; ask again, and fail.
    await redis.select(config.db);
    const info = await redis.info('server');
    const version = /^redis_version:(\d+)\.(\d+)/m.exec(info);
    if (version && Number(version[1]) * 100 + Number(version[2]) < 602) {
      throw new Error(`Redis ${version[1]}.${version[2]} is too old; Berth needs 6.2 or newer`);
    }
  })();
  // Settles after the timeout when the server is silent; its error is reported through the race.
  connecting.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    redis.disconnect();
    // "Connection is closed." says less than the socket error that caused it.
    const cause =
      err instanceof Error && err.message === 'Connection is closed.' && lastError ? lastError : err;
    throw new BerthError(
      'invalid_config',
      `--store ${config.display}: cannot connect to Redis at ${where}: ${describeError(cause)}`,
      { cause },
    );
  } finally {
    clearTimeout(timer);
  }
  connected = true;

  const shared = { redis, prefix: config.prefix };
  let closing: Promise<void> | undefined;
  return {
    transcriptStore: new RedisSessionStore({ ...shared, ttlSeconds: config.ttlSeconds }),
    registry: new RedisRegistry(shared),
    eventLog: new RedisEventLog(shared),
    catalog: new RedisCatalog(shared),
    // The client made here is always standalone, which RedisCoordination needs.
    coordination: new RedisCoordination(shared),
    shared: true,
    close() {
      closing ??= (async () => {
        // QUIT lets the replies in flight arrive; without a live connection there is nothing to wait for
        // (and QUIT would only wait through the reconnect attempts).
        if (redis.status !== 'ready') {
          redis.disconnect();
          return;
        }
        try {
          await redis.quit();
        } catch {
          redis.disconnect();
        }
      })();
      return closing;
    },
    destroy: () =>
      redisCall('destroy', async () => {
        // Every key of the stores starts with `PREFIX:` (redis-keys.ts); a prefix has no glob characters.
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.unlink(...keys);
        } while (cursor !== '0');
      }),
  };
}

/** `url` without its user info (name and password). */
function redact(url: string): string {
  // Up to the last '@', since an unencoded password may hold one; a mangled URL may lack the '//'.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, '$1***@');
}
