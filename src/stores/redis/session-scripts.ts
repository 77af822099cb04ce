/**
 * The Lua scripts of `RedisSessionStore` (`redis/session-store.ts`, which describes the append and summary
 * design). Each script's keys and arguments are documented above it; the key scheme is in `redis/keys.ts`.
 */
import { RedisScript } from './client.js';
import { fenceCheck } from './fence.js';

/**
 * Appends entries to one transcript (main or subpath) of a session.
 *
 * KEYS: 1 the transcript's entries, 2 its uuid set, 3 the session's meta, 4 its subkeys set, 5 the main
 * entries, 6 the main uuid set (5 and 6 repeat 1 and 2 for the main transcript; declared for the TTL),
 * 7 the lease when fenced (see `redis/fence.ts`).
 * ARGV: 1 ttl seconds (0: none), 2 the session key base, 3 the subpath ('' for main), 4 a fresh `gen` token,
 * 5 the `gen` the speculative summary was folded on ('' for a new transcript), 6 its `sumlen`, 7 the
 * speculative summary JSON ('' for none), 8 the fence token ('' for none), 9 n, then n uuids ('' for none,
 * else '+' .. uuid, so that an empty uuid is still a uuid), then n entries as JSON. The caller has removed
 * repeats within the batch.
 *
 * Returns { inserted mask ('1'/'0' per entry), list length, mtime, gen, sumlen, summary, smtime, applied },
 * or LEASE_LOST.
 */
export const APPEND = new RedisScript(`${fenceCheck(7, 8)}
local n = tonumber(ARGV[9])
local main = ARGV[3] == ''
-- Reads first: a script's writes are not rolled back when a later command fails (e.g. WRONGTYPE on a
-- foreign key), so every command that can fail runs before the first write.
local uuids = {}
for i = 1, n do
  if ARGV[9 + i] ~= '' then uuids[#uuids + 1] = string.sub(ARGV[9 + i], 2) end
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
  if ARGV[9 + i] ~= '' then
    u = u + 1
    keep = not stored[u]
    if keep then fresh[#fresh + 1] = uuids[u] end
  end
  if keep then
    mask[i] = '1'
    batch[#batch + 1] = ARGV[9 + n + i]
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
export const STORE_SUMMARY = new RedisScript(`
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
export const TOUCH_INDEX = new RedisScript(`
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
export const DELETE_SESSION = new RedisScript(`
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
export const DELETE_SUBPATH = new RedisScript(`
redis.call('UNLINK', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`);
