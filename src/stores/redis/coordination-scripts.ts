/**
 * The Lua scripts of `RedisCoordination` (`redis/coordination.ts`). Keys are in `redis/keys.ts`. Every
 * expiry and liveness decision reads the server clock (`TIME`) inside the script that acts on it, so all
 * hosts judge by one clock and nothing can change between the reading and the decision. Times are epoch
 * ms; a host or lease is live while now < its `expires`. Numbers are written with `%d`: Lua would write a
 * number passed as is with 14 significant digits.
 */
import { RedisScript } from './client.js';

/** Lua: `now`, the server's epoch ms. */
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * Adds or refreshes a host. KEYS: 1 `H:live`, 2 `H:host:ID`. ARGV: 1 id, 2 url, 3 state, 4 capacity,
 * 5 slotsFree, 6 ttl ms.
 */
export const HEARTBEAT = new RedisScript(`${NOW}
local expires = string.format('%d', now + tonumber(ARGV[6]))
redis.call('HSET', KEYS[2], 'url', ARGV[2], 'state', ARGV[3], 'capacity', ARGV[4], 'slotsFree', ARGV[5],
  'beat', string.format('%d', now), 'expires', expires)
redis.call('ZADD', KEYS[1], expires, ARGV[1])
return 1
`);

/**
 * The live hosts, after removing up to 100 entries dead for longer than the prune age (so a call stays
 * short however many hosts died). KEYS: 1 `H:live`. ARGV: 1 `H:host:`, 2 prune age ms.
 * Returns { id, { url, state, capacity, slotsFree, beat, expires }, ... }.
 */
export const HOSTS = new RedisScript(`${NOW}
local cutoff = '(' .. string.format('%d', now - tonumber(ARGV[2]))
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, 100)) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[1], id)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. string.format('%d', now), '+inf', 'BYSCORE')) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HMGET', ARGV[1] .. id, 'url', 'state', 'capacity', 'slotsFree', 'beat', 'expires')
end
return out
`);

/** Removes a host. KEYS: 1 `H:live`, 2 `H:host:ID`. ARGV: 1 id. */
export const REMOVE_HOST = new RedisScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
`);

/**
 * Takes a lease (see `Coordination.acquire`). KEYS: 1 the lease. ARGV: 1 host id, 2 ttl ms.
 * Returns { acquired (1/0), host, token, expires, now }: the lease as it is after the call.
 */
export const ACQUIRE = new RedisScript(`${NOW}
local lease = redis.call('HMGET', KEYS[1], 'host', 'token', 'expires')
local host, token, expires = lease[1], tonumber(lease[2]), tonumber(lease[3])
if not token then
  token = 1
elseif host ~= ARGV[1] then
  if now < expires then return { 0, host, lease[2], lease[3], now } end
  token = token + 1
end
local until_ms = string.format('%d', now + tonumber(ARGV[2]))
local token_text = string.format('%d', token)
redis.call('HSET', KEYS[1], 'host', ARGV[1], 'token', token_text, 'expires', until_ms)
return { 1, ARGV[1], token_text, until_ms, now }
`);

/**
 * Extends the leases the host holds with the given tokens. KEYS: the leases. ARGV: 1 host id, 2 ttl ms,
 * then one token per KEY. Returns the (1-based) indexes of the KEYS it did not extend.
 */
export const RENEW = new RedisScript(`${NOW}
local until_ms = string.format('%d', now + tonumber(ARGV[2]))
local lost = {}
for i = 1, #KEYS do
  local lease = redis.call('HMGET', KEYS[i], 'host', 'token')
  if lease[1] == ARGV[1] and lease[2] == ARGV[2 + i] then
    redis.call('HSET', KEYS[i], 'expires', until_ms)
  else
    lost[#lost + 1] = i
  end
end
return lost
`);

/**
 * Ends a lease the host holds with the token, keeping its row (and so its token). KEYS: 1 the lease.
 * ARGV: 1 host id, 2 token. Returns 1 when it ended it, else 0.
 */
export const RELEASE = new RedisScript(`${NOW}
local lease = redis.call('HMGET', KEYS[1], 'host', 'token')
if lease[1] ~= ARGV[1] or lease[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'expires', string.format('%d', now - 1))
return 1
`);

/**
 * Reads leases with the clock they are judged by. KEYS: the leases.
 * Returns { now, { host, token, expires } per KEY (all false for a missing lease) }.
 */
export const LEASES = new RedisScript(`${NOW}
local out = { now }
for i = 1, #KEYS do
  out[i + 1] = redis.call('HMGET', KEYS[i], 'host', 'token', 'expires')
end
return out
`);

/**
 * Keeps a superseded write once. KEYS: 1 the writes hash, 2 their order list. ARGV: 1 the write's field
 * (its idempotency key), 2 the write as JSON. Returns 1 when kept now, 0 when it was kept before.
 */
export const KEEP_SUPERSEDED = new RedisScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
`);

/** A session's superseded writes, in the order kept. KEYS: 1 the writes hash, 2 their order list. */
export const SUPERSEDED = new RedisScript(`
local fields = redis.call('LRANGE', KEYS[2], 0, -1)
local out = {}
-- unpack() is bounded by the Lua C stack (8000 slots), so read in chunks.
for at = 1, #fields, 1000 do
  local values = redis.call('HMGET', KEYS[1], unpack(fields, at, math.min(at + 999, #fields)))
  for j = 1, #values do
    if values[j] then out[#out + 1] = values[j] end
  end
end
return out
`);
