/**
 * The event log on Redis: one sorted set per session, scored by `seq` (see `redis/keys.ts`).
 */
import { BerthError } from '../../errors.js';
import type { StoredEvent } from '../../session/events.js';
import { checkRedisClient, RedisScript, redisCall, replyString } from './client.js';
import type { RedisClient } from './client.js';
import { checkFenceReply, fenceCheck, fenceParams } from './fence.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX, eventLogKey } from './keys.js';
import type { EventLog, StoreCallOptions } from '../types.js';

/** Options of {@link RedisEventLog}. */
export interface RedisEventLogOptions {
  /** A ready-made ioredis client (standalone or Cluster); the log never connects or closes it. */
  redis: RedisClient;
  /**
   * Namespace of every key the log writes (see {@link checkRedisPrefix}).
   * @default 'berth'
   */
  prefix?: string;
}

/**
 * Stores a batch whole, or none of it when a seq is already stored or repeats within the batch.
 * KEYS: 1 the session's log, 2 the lease when fenced (see `redis/fence.ts`). ARGV: 1 the fence token ('' for
 * none), 2 n, then n seqs, then n events as JSON.
 * Returns nil when stored, the offending seq, or LEASE_LOST.
 */
const APPEND = new RedisScript(`${fenceCheck(2, 1)}
local n = tonumber(ARGV[2])
local seen = {}
for i = 1, n do
  local seq = ARGV[2 + i]
  if seen[seq] or redis.call('ZCOUNT', KEYS[1], seq, seq) > 0 then return seq end
  seen[seq] = true
end
local batch = {}
for i = 1, n do
  batch[#batch + 1] = ARGV[2 + i]
  batch[#batch + 1] = ARGV[2 + n + i]
  -- unpack() is bounded by the Lua C stack (8000 slots), so add in chunks.
  if #batch >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('ZADD', KEYS[1], unpack(batch)) end
return nil
`);

/**
 * Every event of every session in Redis, keyed by (session id, seq). A batch is stored whole or not at
 * all; a `seq` that is already stored (or repeated in the batch) fails the batch with
 * `event_seq_conflict`: a batch stored before (a retry) or two writers numbering one session's events.
 * Each member is the event's JSON, which includes its `seq`, so two events never share a member. A fenced
 * append (`options.fence`) whose lease has another token fails with `lease_lost` and stores nothing (see
 * `redis/fence.ts`). Other failures come back as rejected promises with code `store_unavailable`.
 */
export class RedisEventLog implements EventLog {
  private readonly redis: RedisClient;
  private readonly prefix: string;

  constructor(options: RedisEventLogOptions) {
    checkRedisClient(options.redis);
    this.redis = options.redis;
    this.prefix = checkRedisPrefix(options.prefix ?? DEFAULT_REDIS_PREFIX);
  }

  async append(sessionId: string, events: StoredEvent[], options?: StoreCallOptions): Promise<void> {
    if (events.length === 0) return;
    const seqs: string[] = [];
    for (const event of events) {
      if (!Number.isSafeInteger(event.seq)) {
        throw new BerthError('internal', `event seq ${event.seq} of session ${sessionId} is not an integer`);
      }
      seqs.push(String(event.seq));
    }
    // The log's tag is the session key, the lease's tag its lease key: the same slot when they are equal.
    const sameSlot = options?.fence?.lease === sessionId;
    const fence = fenceParams(this.redis, this.prefix, options?.fence, sameSlot);
    const args = [fence.token, String(events.length), ...seqs, ...events.map((e) => JSON.stringify(e))];
    const conflict = await redisCall(
      'append events',
      () => APPEND.run(this.redis, [eventLogKey(this.prefix, sessionId), ...fence.keys], args),
      options?.signal,
    );
    checkFenceReply(conflict, options?.fence, `appending events to session ${sessionId}`);
    if (conflict != null) {
      throw new BerthError(
        'event_seq_conflict',
        `event seq ${replyString(conflict, 'conflicting seq')} of session ${sessionId} is already stored`,
      );
    }
  }

  async list(
    sessionId: string,
    options: { after: number; limit: number } & StoreCallOptions,
  ): Promise<StoredEvent[]> {
    // A caller asking for nothing gets nothing (ZRANGE reads a negative count as "all").
    if (!(options.limit > 0)) return [];
    const key = eventLogKey(this.prefix, sessionId);
    const count = Number.isFinite(options.limit) ? Math.floor(options.limit) : -1;
    const rows = await redisCall(
      'list events',
      () => this.redis.zrange(key, `(${options.after}`, '+inf', 'BYSCORE', 'LIMIT', 0, count),
      options.signal,
    );
    return rows.map((json) => JSON.parse(json) as StoredEvent);
  }

  async lastSeq(sessionId: string, options?: StoreCallOptions): Promise<number> {
    const key = eventLogKey(this.prefix, sessionId);
    const [last] = await redisCall(
      'read last event seq',
      () => this.redis.zrange(key, '-1', '-1'),
      options?.signal,
    );
    return last === undefined ? 0 : (JSON.parse(last) as StoredEvent).seq;
  }

  async deleteSession(sessionId: string, options?: StoreCallOptions): Promise<void> {
    await redisCall(
      'delete events',
      () => this.redis.unlink(eventLogKey(this.prefix, sessionId)),
      options?.signal,
    );
  }
}
