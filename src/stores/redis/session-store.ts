/**
 * The SDK `SessionStore` on Redis. Keys and hash tags are described in `redis/keys.ts`.
 *
 * Appends and summaries. The entries, uuid dedup, mtime and TTL of an append are one Lua script (below),
 * so concurrent appenders on any number of clients lose nothing and never store a uuid twice. The summary
 * is folded in JS (`foldSessionSummary` is the SDK's), so it cannot be in that script; instead `T:meta`
 * records how many entries the stored summary covers (`sumlen`), and a summary only ever advances from
 * covering `list[0, sumlen)` to covering `list[0, len)` by a compare-and-set script that checks `gen` and
 * `sumlen` did not move. Whoever loses the race re-reads and folds on from the new `sumlen` (or stops: the
 * winner covered its entries). The summary is thus always a fold of a prefix of the stored entries in
 * their stored order, which a WATCH/MULTI over "the entries this call inserted" could not promise when two
 * appenders' folds land in the opposite order of their entries; and an append interrupted before its fold
 * is repaired by the next one, because the script reports the unfolded range.
 *
 * The fast path: each store remembers the summary it last wrote per session, folds a batch onto it before
 * sending, and the append script stores that summary in the same step if nothing moved (same `gen` and
 * `sumlen`, no entry skipped as a duplicate, nobody else's entries unfolded). One round trip per append
 * while one host writes a session; otherwise the compare-and-set path above, which is always correct.
 */
import { randomUUID } from 'node:crypto';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type {
  SessionKey,
  SessionStore,
  SessionStoreEntry,
  SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../../errors.js';
import { checkRedisClient, RedisScript, redisCall, replyArray, replyNumber, replyString } from './client.js';
import type { RedisClient } from './client.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX, projectIndexKey, transcriptKeys } from './keys.js';
import type { TranscriptKeys } from './keys.js';

/** Options of {@link RedisSessionStore}. */
export interface RedisSessionStoreOptions {
  /** A ready-made ioredis client (standalone or Cluster); the store never connects or closes it. */
  redis: RedisClient;
  /**
   * Namespace of every key the store writes (see {@link checkRedisPrefix}).
   * @default 'berth'
   */
  prefix?: string;
  /**
   * Retention: all keys of a session expire this many seconds after its last append (main or subpath).
   * Unset, transcripts stay until deleted.
   * @default undefined
   */
  ttlSeconds?: number;
}

/**
 * Appends entries to one transcript (main or subpath) of a session.
 *
 * KEYS: 1 the transcript's entries, 2 its uuid set, 3 the session's meta, 4 its subkeys set, 5 the main
 * entries, 6 the main uuid set (5 and 6 repeat 1 and 2 for the main transcript; declared for the TTL).
 * ARGV: 1 ttl seconds (0: none), 2 the session key base, 3 the subpath ('' for main), 4 a fresh `gen` token,
 * 5 the `gen` the speculative summary was folded on ('' for a new transcript), 6 its `sumlen`, 7 the
 * speculative summary JSON ('' for none), 8 n, then n uuids ('' for none, else '+' .. uuid, so that an
 * empty uuid is still a uuid), then n entries as JSON. The caller has removed repeats within the batch.
 *
 * Returns { inserted mask ('1'/'0' per entry), list length, mtime, gen, sumlen, summary, smtime, applied }.
 */
const APPEND = new RedisScript(`
local n = tonumber(ARGV[8])
local main = ARGV[3] == ''
-- Reads first: a script's writes are not rolled back when a later command fails (e.g. WRONGTYPE on a
-- foreign key), so every command that can fail runs before the first write.
local uuids = {}
for i = 1, n do
  if ARGV[8 + i] ~= '' then uuids[#uuids + 1] = string.sub(ARGV[8 + i], 2) end
end
local stored = {}
-- unpack() is bounded by the Lua C stack (8000 slots), hence the chunks of 1000 here and below.
for at = 1, #uuids, 1000 do
  local found = redis.call('SMISMEMBER', KEYS[2], unpack(uuids, at, math.min(at + 999, #uuids)))
  for j = 1, #found do stored[at + j - 1] = found[j] == 1 end
end
local mtime, gen, sumlen, summary, smtime, applied = 0, '', 0, '', 0, 0
if main then
  local meta = redis.call('HMGET', KEYS[3], 'mtime', 'gen', 'sumlen', 'summary', 'smtime')
  mtime = tonumber(meta[1]) or 0
  gen = meta[2] or ''
  sumlen = tonumber(meta[3]) or 0
  summary = meta[4] or ''
  smtime = tonumber(meta[5]) or 0
end
redis.call('SISMEMBER', KEYS[4], ARGV[3])

local mask, batch, fresh = {}, {}, {}
local u = 0
for i = 1, n do
  local keep = true
  if ARGV[8 + i] ~= '' then
    u = u + 1
    keep = not stored[u]
    if keep then fresh[#fresh + 1] = uuids[u] end
  end
  if keep then
    mask[i] = '1'
    batch[#batch + 1] = ARGV[8 + n + i]
  else
    mask[i] = '0'
  end
end
local pushed = #batch
local len = nil
for at = 1, pushed, 1000 do
  len = redis.call('RPUSH', KEYS[1], unpack(batch, at, math.min(at + 999, pushed)))
end
for at = 1, #fresh, 1000 do
  redis.call('SADD', KEYS[2], unpack(fresh, at, math.min(at + 999, #fresh)))
end
if len == nil then len = redis.call('LLEN', KEYS[1]) end

if main and pushed > 0 then
  -- The server clock, so that every host stamps mtimes from one clock; strictly increasing per session.
  local now = redis.call('TIME')
  now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now > mtime then mtime = now else mtime = mtime + 1 end
  local folded_on = gen
  if gen == '' then gen = ARGV[4] end
  if ARGV[7] ~= '' and ARGV[5] == folded_on and tonumber(ARGV[6]) == sumlen
      and pushed == n and sumlen == len - pushed then
    sumlen = len
    summary = ARGV[7]
    smtime = mtime
    applied = 1
    redis.call('HSET', KEYS[3], 'mtime', string.format('%d', mtime), 'gen', gen,
      'sumlen', string.format('%d', sumlen), 'summary', summary, 'smtime', string.format('%d', smtime))
  else
    redis.call('HSET', KEYS[3], 'mtime', string.format('%d', mtime), 'gen', gen)
  end
elseif pushed > 0 then
  redis.call('SADD', KEYS[4], ARGV[3])
end

local ttl = tonumber(ARGV[1])
if ttl > 0 then
  -- The whole session expires together: a main transcript without its subagents (or the reverse) would
  -- resume wrong.
  for i = 3, 6 do redis.call('EXPIRE', KEYS[i], ttl) end
  for _, subpath in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    redis.call('EXPIRE', ARGV[2] .. ':entries:' .. subpath, ttl)
    redis.call('EXPIRE', ARGV[2] .. ':uuids:' .. subpath, ttl)
  end
end
return { table.concat(mask), len, mtime, gen, sumlen, summary, smtime, applied }
`);

/**
 * Advances the stored summary from covering `sumlen` entries to covering more, if nobody else did first.
 *
 * KEYS: 1 the session's meta. ARGV: 1 gen, 2 expected sumlen, 3 new sumlen, 4 summary JSON, 5 smtime.
 * Returns { 1 } when stored, else { 0, gen, sumlen, summary, smtime } as they are now.
 */
const STORE_SUMMARY = new RedisScript(`
local meta = redis.call('HMGET', KEYS[1], 'gen', 'sumlen', 'summary', 'smtime')
local sumlen = tonumber(meta[2]) or 0
if meta[1] == ARGV[1] and sumlen == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'sumlen', ARGV[3], 'summary', ARGV[4], 'smtime', ARGV[5])
  return { 1 }
end
return { 0, meta[1] or '', sumlen, meta[3] or '', tonumber(meta[4]) or 0 }
`);

/**
 * Records that the session was appended to, in the project index (its own slot: see `redis/keys.ts`).
 * `GT` keeps the newest time when appends from several hosts arrive out of order.
 *
 * KEYS: 1 the project index. ARGV: 1 sessionId, 2 now (epoch-ms), 3 ttl seconds (0: none).
 */
const TOUCH_INDEX = new RedisScript(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  -- Sessions idle for longer than the TTL have expired. The slack covers clock skew between hosts, since
  -- the scores are client clocks; a member kept too long is only filtered out by readers.
  local slack = 600
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', tonumber(ARGV[2]) - (ttl + slack) * 1000))
  redis.call('EXPIRE', KEYS[1], ttl + slack)
end
return 1
`);

/**
 * Deletes a session: main transcript, subpaths, meta.
 * KEYS: 1 main entries, 2 main uuids, 3 meta, 4 subkeys. ARGV: 1 the session key base.
 */
const DELETE_SESSION = new RedisScript(`
for _, subpath in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('UNLINK', ARGV[1] .. ':entries:' .. subpath, ARGV[1] .. ':uuids:' .. subpath)
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
`);

/**
 * Deletes one subpath transcript.
 * KEYS: 1 its entries, 2 its uuids, 3 the session's subkeys. ARGV: 1 the subpath.
 */
const DELETE_SUBPATH = new RedisScript(`
redis.call('UNLINK', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`);

/** How many sessions' last summaries a store keeps for the one-round-trip append path. */
const SUMMARY_CACHE_SIZE = 1000;

/** A summary as stored: it covers the first `sumlen` entries of the transcript generation `gen`. */
interface StoredSummary {
  gen: string;
  sumlen: number;
  data: Record<string, unknown>;
}

/** The session meta as the append script saw it, after its own write. */
interface MetaState {
  gen: string;
  sumlen: number;
  summary: string;
  smtime: number;
}

/**
 * Transcripts in Redis, for the SDK's `options.sessionStore`.
 *
 * Beyond the SDK's contract: an entry whose `uuid` is already stored under the same key is skipped (so
 * retries and replays never duplicate lines), the summary equals a fold of the stored entries even with
 * several hosts appending to one session, `mtime`s come from the Redis server clock, and with `ttlSeconds`
 * a session's keys expire together after that long without an append. Works on Redis 6.2+ and on Redis
 * Cluster. Failures come back as rejected promises with code `store_unavailable`.
 */
export class RedisSessionStore implements SessionStore {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly ttl: string;
  /** Per session meta key, the summary this store last stored (insertion order = age, for eviction). */
  private readonly summaries = new Map<string, StoredSummary>();

  constructor(options: RedisSessionStoreOptions) {
    checkRedisClient(options.redis);
    this.redis = options.redis;
    this.prefix = checkRedisPrefix(options.prefix ?? DEFAULT_REDIS_PREFIX);
    const ttl = options.ttlSeconds;
    if (ttl !== undefined && !(Number.isSafeInteger(ttl) && ttl > 0)) {
      throw new BerthError('invalid_config', `ttlSeconds must be a positive integer, got ${ttl}`);
    }
    this.ttl = String(ttl ?? 0);
  }

  /** Stores the entries after those already stored, skipping any whose `uuid` the key already holds. */
  async append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    const batch: SessionStoreEntry[] = [];
    const uuids: string[] = [];
    const seen = new Set<string>();
    for (const entry of entries) {
      const uuid = typeof entry.uuid === 'string' ? entry.uuid : undefined;
      if (uuid !== undefined) {
        if (seen.has(uuid)) continue;
        seen.add(uuid);
      }
      batch.push(entry);
      uuids.push(uuid === undefined ? '' : `+${uuid}`);
    }
    if (batch.length === 0) return;
    // Serialized before anything is sent, so an entry that cannot be stored fails the batch whole.
    const json = batch.map((entry) => JSON.stringify(entry));
    const keys = transcriptKeys(this.prefix, key);
    const main = !key.subpath;

    let speculative: StoredSummary | undefined;
    if (main) {
      const known = this.summaries.get(keys.meta);
      const prev = known && { sessionId: key.sessionId, mtime: 0, data: known.data };
      // `data` does not depend on `mtime` (a sibling field), so the fold can run before the server stamps it.
      speculative = {
        gen: known?.gen ?? '',
        sumlen: known?.sumlen ?? 0,
        data: foldSessionSummary(prev, key, batch).data,
      };
    }
    const args = [
      this.ttl,
      keys.base,
      key.subpath ?? '',
      randomUUID(),
      speculative?.gen ?? '',
      String(speculative?.sumlen ?? 0),
      speculative ? JSON.stringify(speculative.data) : '',
      String(batch.length),
      ...uuids,
      ...json,
    ];
    const reply = await redisCall('append', async () => {
      const [, result] = await Promise.all([
        TOUCH_INDEX.run(this.redis, [keys.index], [key.sessionId, String(Date.now()), this.ttl]),
        APPEND.run(
          this.redis,
          [keys.entries, keys.uuids, keys.meta, keys.subkeys, keys.mainEntries, keys.mainUuids],
          args,
        ),
      ]);
      return replyArray(result, 'append');
    });
    if (!main) return;

    const mask = replyString(reply[0], 'append mask');
    const len = replyNumber(reply[1], 'append length');
    const mtime = replyNumber(reply[2], 'append mtime');
    const gen = replyString(reply[3], 'append gen');
    if (reply[7] === 1 && speculative) {
      this.remember(keys.meta, { gen, sumlen: len, data: speculative.data });
      return;
    }
    const inserted = batch.filter((_, i) => mask[i] === '1');
    const state: MetaState = {
      gen,
      sumlen: replyNumber(reply[4], 'append sumlen'),
      summary: replyString(reply[5], 'append summary'),
      smtime: replyNumber(reply[6], 'append smtime'),
    };
    await this.foldUpTo(key, keys, len, mtime, inserted, state);
  }

  /** All entries of the key in append order (one LRANGE), or null when it holds none. */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    const { entries } = transcriptKeys(this.prefix, key);
    const raw = await redisCall('load', () => this.redis.lrange(entries, 0, -1));
    // Measured: parsing each entry beats joining them into one array to parse (and a Lua concat, by far).
    return raw.length === 0 ? null : raw.map((json) => JSON.parse(json) as SessionStoreEntry);
  }

  /** The project's main transcripts with the epoch-ms (Redis server clock) time of their last stored append. */
  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    const rows = await this.readMetas(projectKey, ['mtime'], 'listSessions');
    return rows.flatMap(({ sessionId, values: [mtime] }) =>
      mtime == null ? [] : [{ sessionId, mtime: Number(mtime) }],
    );
  }

  /**
   * The folded summaries of the project's main transcripts. A summary's `mtime` is that of the last append
   * it covers: equal to `listSessions`' once appends have returned, older (so the SDK reloads the
   * transcript) while one is still being folded.
   */
  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    const rows = await this.readMetas(projectKey, ['summary', 'smtime'], 'listSessionSummaries');
    return rows.flatMap(({ sessionId, values: [summary, smtime] }) =>
      summary
        ? [{ sessionId, mtime: Number(smtime), data: JSON.parse(summary) as Record<string, unknown> }]
        : [],
    );
  }

  /**
   * Removes the key's entries. For a main transcript also its subpaths, its summary and its index entry;
   * for a subpath only that subpath. The removed uuids are forgotten: appending them again stores them again.
   */
  async delete(key: SessionKey): Promise<void> {
    const keys = transcriptKeys(this.prefix, key);
    if (key.subpath) {
      await redisCall('delete', () =>
        DELETE_SUBPATH.run(this.redis, [keys.entries, keys.uuids, keys.subkeys], [key.subpath!]),
      );
      return;
    }
    this.summaries.delete(keys.meta);
    await redisCall('delete', async () => {
      // The session's keys go first, so that a failure in between leaves a stale index member (which
      // readers filter out), never an unlisted session.
      await Promise.all([
        DELETE_SESSION.run(
          this.redis,
          [keys.mainEntries, keys.mainUuids, keys.meta, keys.subkeys],
          [keys.base],
        ),
        this.redis.zrem(keys.index, key.sessionId),
      ]);
    });
  }

  /** The subpaths (e.g. `subagents/agent-ID`) stored under the session, sorted. */
  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    const { subkeys } = transcriptKeys(this.prefix, key);
    const members = await redisCall('listSubkeys', () => this.redis.smembers(subkeys));
    return members.sort();
  }

  /**
   * Folds the entries between the stored summary's end and `len` and stores the result, unless another
   * appender gets there first (then it continues from where that one stopped, or stops when it is past
   * `len`). `inserted` are this append's entries, the last ones before `len`; older unfolded entries are
   * read back.
   */
  private async foldUpTo(
    key: SessionKey,
    keys: TranscriptKeys,
    len: number,
    mtime: number,
    inserted: SessionStoreEntry[],
    initial: MetaState,
  ): Promise<void> {
    const ownFrom = len - inserted.length;
    let state = initial;
    while (state.sumlen < len) {
      let pending = inserted.slice(Math.max(0, state.sumlen - ownFrom));
      if (state.sumlen < ownFrom) {
        const from = state.sumlen;
        const older = await redisCall('append', () => this.redis.lrange(keys.entries, from, ownFrom - 1));
        pending = [...older.map((json) => JSON.parse(json) as SessionStoreEntry), ...pending];
      }
      const prev: SessionSummaryEntry | undefined = state.summary
        ? {
            sessionId: key.sessionId,
            mtime: state.smtime,
            data: JSON.parse(state.summary) as Record<string, unknown>,
          }
        : undefined;
      const data = foldSessionSummary(prev, key, pending, { mtime }).data;
      const args = [state.gen, String(state.sumlen), String(len), JSON.stringify(data), String(mtime)];
      const reply = await redisCall('append', async () =>
        replyArray(await STORE_SUMMARY.run(this.redis, [keys.meta], args), 'summary'),
      );
      if (reply[0] === 1) {
        this.remember(keys.meta, { gen: state.gen, sumlen: len, data });
        return;
      }
      const gen = replyString(reply[1], 'summary gen');
      // Deleted (and maybe written again) meanwhile: the entries this append would fold are gone.
      if (gen !== state.gen) return;
      state = {
        gen,
        sumlen: replyNumber(reply[2], 'summary sumlen'),
        summary: replyString(reply[3], 'summary'),
        smtime: replyNumber(reply[4], 'summary smtime'),
      };
    }
  }

  private remember(metaKey: string, summary: StoredSummary): void {
    const known = this.summaries.get(metaKey);
    // Replies of concurrent appends can arrive in any order; keep the summary that covers the most.
    if (known && known.gen === summary.gen && known.sumlen >= summary.sumlen) return;
    this.summaries.delete(metaKey);
    this.summaries.set(metaKey, summary);
    if (this.summaries.size > SUMMARY_CACHE_SIZE) {
      const oldest = this.summaries.keys().next();
      if (!oldest.done) this.summaries.delete(oldest.value);
    }
  }

  /**
   * The project index's members with the given fields of their meta. Members whose meta is gone (deleted
   * or expired sessions, subpath-only sessions) come back with null values.
   */
  private async readMetas(
    projectKey: string,
    fields: string[],
    action: string,
  ): Promise<Array<{ sessionId: string; values: Array<string | null> }>> {
    return redisCall(action, async () => {
      const sessionIds = await this.redis.zrange(projectIndexKey(this.prefix, projectKey), '0', '-1');
      // Sent back to back on the connection (each meta may be on another Cluster node, so no MULTI).
      const values = await Promise.all(
        sessionIds.map((sessionId) =>
          this.redis.hmget(transcriptKeys(this.prefix, { projectKey, sessionId }).meta, ...fields),
        ),
      );
      return sessionIds.map((sessionId, i) => ({ sessionId, values: values[i] ?? [] }));
    });
  }
}
