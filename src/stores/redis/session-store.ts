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
import type { SessionKey, SessionStoreEntry, SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../../errors.js';
import type { FencedSessionStore } from '../coordination.js';
import type { CompleteSessionStore, StoreCallOptions } from '../types.js';
import { checkRedisClient, redisCall, replyArray, replyNumber, replyString } from './client.js';
import type { RedisClient } from './client.js';
import { checkFenceReply, fenceParams } from './fence.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX, projectIndexKey, transcriptKeys } from './keys.js';
import type { TranscriptKeys } from './keys.js';
import { APPEND, DELETE_SESSION, DELETE_SUBPATH, STORE_SUMMARY, TOUCH_INDEX } from './session-scripts.js';

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
 *
 * Fenced appends (`append`'s `options.fence`, see `redis/fence.ts`): the lease is checked inside the append
 * script, so a refused append (`lease_lost`) stores no entry, uuid, mtime or summary. Two things stay
 * unfenced, on purpose. The project index touch runs beside the script, in its own slot: it is a hint
 * that readers check against `T:meta` (see `redis/keys.ts`), so a refused append's touch shows nothing
 * that is not stored. The summary compare-and-set after a slow-path append is a fold of entries already
 * stored under a valid fence, checked against `gen` and `sumlen`; whoever stores it stores the same
 * thing. Fencing needs a standalone Redis: on Cluster the lease and the transcript are in different slots
 * (`redis/fence.ts` says what Cluster would need), and a fenced append is refused with `invalid_config`.
 */
export class RedisSessionStore implements FencedSessionStore, CompleteSessionStore {
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

  /**
   * Stores the entries after those already stored, skipping any whose `uuid` the key already holds. With
   * `options.fence`, only while the lease holds that token: otherwise `lease_lost`, and nothing stored.
   */
  async append(key: SessionKey, entries: SessionStoreEntry[], options?: StoreCallOptions): Promise<void> {
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
    const fence = fenceParams(this.redis, this.prefix, options?.fence, false);

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
      fence.token,
      String(batch.length),
      ...uuids,
      ...json,
    ];
    const reply = await redisCall(
      'append',
      async () => {
        const [, result] = await Promise.all([
          TOUCH_INDEX.run(this.redis, [keys.index], [key.sessionId, String(Date.now()), this.ttl]),
          APPEND.run(
            this.redis,
            [
              keys.entries,
              keys.uuids,
              keys.meta,
              keys.subkeys,
              keys.mainEntries,
              keys.mainUuids,
              ...fence.keys,
            ],
            args,
          ),
        ]);
        checkFenceReply(result, options?.fence, `appending to transcript ${key.projectKey}/${key.sessionId}`);
        return replyArray(result, 'append');
      },
      options?.signal,
    );
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
