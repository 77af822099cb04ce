/**
 * Host registry, session leases and superseded writes on Redis (the contract is `stores/coordination.ts`;
 * keys are in `redis/keys.ts`, scripts in `redis/coordination-scripts.ts`). Each operation is one script,
 * so every compare-and-set is atomic, and every liveness decision uses the server's clock. The writes a
 * lease fences are in the registry, event log and transcript adapters (see `redis/fence.ts`).
 */
import { BerthError } from '../../errors.js';
import type {
  AcquireResult,
  Coordination,
  HostEntry,
  HostState,
  Lease,
  SupersededWrite,
} from '../coordination.js';
import type { StoreCallOptions } from '../types.js';
import { checkRedisClient, redisCall, replyArray, replyNumber, replyString } from './client.js';
import type { RedisClient } from './client.js';
import {
  ACQUIRE,
  HEARTBEAT,
  HOSTS,
  KEEP_SUPERSEDED,
  LEASES,
  RELEASE,
  REMOVE_HOST,
  RENEW,
  SUPERSEDED,
} from './coordination-scripts.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX, hostsBase, leaseKey, supersededKeys } from './keys.js';

/** Options of {@link RedisCoordination}. */
export interface RedisCoordinationOptions {
  /** A ready-made standalone ioredis client; coordination never connects or closes it. */
  redis: RedisClient;
  /**
   * Namespace of every key it writes (see {@link checkRedisPrefix}); the same as the other Redis stores'.
   * @default 'berth'
   */
  prefix?: string;
}

/**
 * How long after its expiry a host's entry is kept before `hosts()` removes it: long enough for an
 * operator to see, in Redis, a host that died recently; a dead entry is never listed either way.
 */
const HOST_PRUNE_AGE_MS = 24 * 3600 * 1000;

/**
 * `Coordination` on a standalone Redis (6.2 or newer). Refuses a Cluster client: leases of many sessions
 * are in many slots, so `renew` and `leases` would not be one script, and fenced registry and transcript
 * writes would cross slots (see `redis/fence.ts`). Failures come back as rejected promises with code
 * `store_unavailable`.
 */
export class RedisCoordination implements Coordination {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  /** `H:live`, the hosts by expiry, and `H:host:`, which a host id completes into its hash's key. */
  private readonly live: string;
  private readonly hostPrefix: string;

  constructor(options: RedisCoordinationOptions) {
    checkRedisClient(options.redis);
    if (options.redis.isCluster) {
      throw new BerthError(
        'invalid_config',
        'Redis coordination (many hosts) needs a standalone Redis, not a Cluster client',
      );
    }
    this.redis = options.redis;
    this.prefix = checkRedisPrefix(options.prefix ?? DEFAULT_REDIS_PREFIX);
    const base = hostsBase(this.prefix);
    this.live = `${base}:live`;
    this.hostPrefix = `${base}:host:`;
  }

  async heartbeat(
    host: Omit<HostEntry, 'lastHeartbeatAt' | 'expiresAt'>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkTtl(ttlMs);
    const args = [
      host.id,
      host.url,
      host.state,
      String(host.capacity),
      String(host.slotsFree),
      String(ttlMs),
    ];
    await redisCall(
      'heartbeat',
      () => HEARTBEAT.run(this.redis, [this.live, this.hostKey(host.id)], args),
      options?.signal,
    );
  }

  async hosts(options?: StoreCallOptions): Promise<HostEntry[]> {
    const reply = await redisCall(
      'list hosts',
      async () =>
        replyArray(
          await HOSTS.run(this.redis, [this.live], [this.hostPrefix, String(HOST_PRUNE_AGE_MS)]),
          'hosts',
        ),
      options?.signal,
    );
    const hosts: HostEntry[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const [url, state, capacity, slotsFree, beat, expires] = replyArray(reply[i + 1], 'host');
      // A live member always has its hash (both change in one script); a key removed by hand does not.
      if (url == null) continue;
      hosts.push({
        id: replyString(reply[i], 'host id'),
        url: replyString(url, 'host url'),
        state: replyString(state, 'host state') as HostState,
        capacity: replyNumber(capacity, 'host capacity'),
        slotsFree: replyNumber(slotsFree, 'host slotsFree'),
        lastHeartbeatAt: replyNumber(beat, 'host heartbeat'),
        expiresAt: replyNumber(expires, 'host expiry'),
      });
    }
    return hosts.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async removeHost(id: string, options?: StoreCallOptions): Promise<void> {
    await redisCall(
      'remove host',
      () => REMOVE_HOST.run(this.redis, [this.live, this.hostKey(id)], [id]),
      options?.signal,
    );
  }

  async acquire(
    key: string,
    hostId: string,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<AcquireResult> {
    checkTtl(ttlMs);
    const reply = await redisCall(
      'acquire lease',
      async () =>
        replyArray(
          await ACQUIRE.run(this.redis, [leaseKey(this.prefix, key)], [hostId, String(ttlMs)]),
          'acquire',
        ),
      options?.signal,
    );
    const [acquired, host, token, expires, now] = reply;
    const lease = toLease(key, [host, token, expires], replyNumber(now, 'server time'));
    return acquired === 1 ? { acquired: true, lease } : { acquired: false, lease };
  }

  async renew(
    hostId: string,
    leases: ReadonlyArray<{ key: string; token: number }>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<string[]> {
    checkTtl(ttlMs);
    if (leases.length === 0) return [];
    const keys = leases.map((lease) => leaseKey(this.prefix, lease.key));
    const args = [hostId, String(ttlMs), ...leases.map((lease) => String(lease.token))];
    const lost = await redisCall(
      'renew leases',
      async () => replyArray(await RENEW.run(this.redis, keys, args), 'renew'),
      options?.signal,
    );
    return lost.map((index) => {
      const lease = leases[replyNumber(index, 'renew index') - 1];
      if (!lease) throw new BerthError('store_unavailable', 'redis: unexpected reply for renew');
      return lease.key;
    });
  }

  async release(key: string, hostId: string, token: number, options?: StoreCallOptions): Promise<boolean> {
    const ended = await redisCall(
      'release lease',
      () => RELEASE.run(this.redis, [leaseKey(this.prefix, key)], [hostId, String(token)]),
      options?.signal,
    );
    return ended === 1;
  }

  async lease(key: string, options?: StoreCallOptions): Promise<Lease | undefined> {
    return (await this.leases([key], options)).get(key);
  }

  async leases(keys: readonly string[], options?: StoreCallOptions): Promise<Map<string, Lease>> {
    const found = new Map<string, Lease>();
    if (keys.length === 0) return found;
    const redisKeys = keys.map((key) => leaseKey(this.prefix, key));
    const reply = await redisCall(
      'read leases',
      async () => replyArray(await LEASES.run(this.redis, redisKeys, []), 'leases'),
      options?.signal,
    );
    const now = replyNumber(reply[0], 'server time');
    keys.forEach((key, i) => {
      const fields = replyArray(reply[i + 1], 'lease');
      if (fields[1] != null) found.set(key, toLease(key, fields, now));
    });
    return found;
  }

  async deleteLease(key: string, options?: StoreCallOptions): Promise<void> {
    await redisCall('delete lease', () => this.redis.del(leaseKey(this.prefix, key)), options?.signal);
  }

  async keepSuperseded(write: SupersededWrite, options?: StoreCallOptions): Promise<void> {
    const { writes, order } = supersededKeys(this.prefix, write.key);
    // JSON of the pair: host ids may hold any character, so a plain separator could be ambiguous.
    const field = JSON.stringify([write.hostId, write.id]);
    await redisCall(
      'keep superseded write',
      () => KEEP_SUPERSEDED.run(this.redis, [writes, order], [field, JSON.stringify(write)]),
      options?.signal,
    );
  }

  async superseded(key: string, options?: StoreCallOptions): Promise<SupersededWrite[]> {
    const { writes, order } = supersededKeys(this.prefix, key);
    const reply = await redisCall(
      'read superseded writes',
      async () => replyArray(await SUPERSEDED.run(this.redis, [writes, order], []), 'superseded'),
      options?.signal,
    );
    return reply.map((json) => JSON.parse(replyString(json, 'superseded write')) as SupersededWrite);
  }

  async deleteSuperseded(key: string, options?: StoreCallOptions): Promise<void> {
    const { writes, order } = supersededKeys(this.prefix, key);
    await redisCall('delete superseded writes', () => this.redis.del(writes, order), options?.signal);
  }

  /** Host ids go after the tag raw, as registry ids do (see `redis/keys.ts`). */
  private hostKey(id: string): string {
    return `${this.hostPrefix}${id}`;
  }
}

/** A TTL must be a positive whole number of ms: the scripts format it with `%d`. */
function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new BerthError(
      'internal',
      `a lease or heartbeat ttl must be a positive integer of ms, got ${ttlMs}`,
    );
  }
}

/** A lease from its `{ host, token, expires }` fields, judged live against the server's `now`. */
function toLease(key: string, [host, token, expires]: unknown[], now: number): Lease {
  const expiresAt = replyNumber(expires, 'lease expiry');
  return {
    key,
    hostId: replyString(host, 'lease host'),
    token: replyNumber(token, 'lease token'),
    expiresAt,
    live: now < expiresAt,
  };
}
