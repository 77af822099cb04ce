/**
 * What the Redis stores share: the client they accept, the Lua script runner, and the mapping of backend
 * failures to Berth's error codes. The key scheme is described in `redis/keys.ts`.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { BerthError, describeError } from '../../errors.js';
import { untilAborted } from '../abort.js';

/**
 * A ready-made ioredis client, standalone or Cluster, with the default (`legacy`) reply mapping. The stores
 * never connect, configure or close it: whoever made it owns it.
 */
export type RedisClient = Redis | Cluster;

/**
 * Refuses clients the stores cannot work with: an ioredis `keyPrefix` is applied to declared keys but not
 * to the keys the Lua scripts build (use the store's `prefix` instead), and the `resp3` reply mapping
 * changes reply shapes.
 */
export function checkRedisClient(redis: RedisClient): void {
  const options = redis.options as {
    keyPrefix?: string;
    replyMapping?: string;
    redisOptions?: { replyMapping?: string };
  };
  if (options.keyPrefix) {
    throw new BerthError(
      'invalid_config',
      'the ioredis client has a keyPrefix; give the Berth store a prefix instead (its Lua scripts build key names)',
    );
  }
  if (options.replyMapping === 'resp3' || options.redisOptions?.replyMapping === 'resp3') {
    throw new BerthError('invalid_config', 'the ioredis client must use the default (legacy) replyMapping');
  }
}

/**
 * A Lua script run with EVALSHA, falling back to EVAL (which also caches it on the server) when the
 * server does not know it: after a restart, a failover or `SCRIPT FLUSH`. Unlike ioredis'
 * `defineCommand`, it adds nothing to a client the store does not own.
 */
export class RedisScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    // One array argument: ioredis flattens it, and a spread of 20,000 arguments would not fit the stack.
    const params = [...keys, ...args];
    try {
      return await redis.evalsha(this.sha, keys.length, params);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await redis.eval(this.lua, keys.length, params);
    }
  }
}

/**
 * Runs one Redis round trip. Whatever it throws (a reply error, a closed or lost connection, a retry limit)
 * becomes `store_unavailable`, so that callers branch on the same codes whatever the backend. Only Redis
 * calls go through here: Berth's own errors and bugs in the surrounding code keep their identity.
 * ioredis takes no AbortSignal, so `signal` stops the waiting (rejecting with `aborted`), not a command
 * already sent.
 */
export async function redisCall<T>(action: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await untilAborted(signal, `redis ${action}`, work);
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw new BerthError('store_unavailable', `redis ${action} failed: ${describeError(err)}`, {
      cause: err,
    });
  }
}

/** A reply element that must be a string (bulk or status). */
export function replyString(value: unknown, what: string): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw new BerthError('store_unavailable', `redis: unexpected reply for ${what}: ${typeof value}`);
}

/** A reply element that must be an integer. */
export function replyNumber(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw new BerthError('store_unavailable', `redis: unexpected reply for ${what}`);
  return n;
}

/** A reply that must be an array. */
export function replyArray(value: unknown, what: string): unknown[] {
  if (Array.isArray(value)) return value as unknown[];
  throw new BerthError('store_unavailable', `redis: unexpected reply for ${what}`);
}
