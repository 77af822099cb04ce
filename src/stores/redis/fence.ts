/**
 * Fenced writes on Redis (see `StoreCallOptions.fence` and `stores/coordination.ts`). A fenced write is the
 * store's own write script with one more KEY, the lease (`P:l:{enc(leaseKey)}`, see `redis/keys.ts`), and
 * one more ARGV, the token. The script's first command reads the lease's token, and when it is not the
 * write's token (or there is no lease) the script returns {@link LEASE_LOST} before any write. Redis runs a
 * script alone, so no acquire can fall between the check and the write: this is what makes the fence
 * atomic. Without a fence the same script gets no lease KEY and an empty token and skips the check (one
 * `if` on a missing KEY), so unfenced writes cost what they did.
 *
 * Redis Cluster runs a script only on keys of one slot. `RedisCoordination` itself needs a standalone Redis
 * (its batch calls span slots), so fencing on Cluster is a design note for now; per store it stands so:
 * - the event log (`P:e:{enc(sessionKey)}`) shares the lease's tag when the fence names the log's own
 *   session, as Berth's fences do, so fenced appends are allowed on a Cluster client;
 * - the registry record (`P:r:{enc(tenant)}:s:ID`, tagged by tenant so that create and delete keep the
 *   tenant's list in step) and the transcript (`P:t:{enc(tenant):enc(sdkSessionId)}`, tagged by the SDK's
 *   session id, which is not the lease key and which the SDK's `SessionKey` does not map back to it) are in
 *   other slots. No tag serves all three without renaming existing keys, so a fenced registry update or
 *   transcript append on a Cluster client is refused with `invalid_config` (unfenced writes are unchanged).
 *   For Cluster they would need, without renaming keys, a copy of the token in each of those slots (e.g.
 *   `R:f:ID` and `T:fence`) that only grows: the new holder raises each copy to its token after `acquire`
 *   and before it reads that data, and fenced writes check the copy in their own slot. A stale write that
 *   passes before the raise is then ordered before the new holder's reads, as if made before the takeover.
 *   That takes a new call on the registry and the transcript store ("raise the fence of this session to my
 *   token"), since `acquire` knows neither the tenant's registry slot nor the SDK session id.
 */
import { BerthError } from '../../errors.js';
import type { Fence } from '../types.js';
import type { RedisClient } from './client.js';
import { leaseKey } from './keys.js';

/** What a fenced script returns instead of writing; never a reply of the unfenced scripts. */
export const LEASE_LOST = 'berth:lease-lost';

/**
 * Lua that returns {@link LEASE_LOST} unless lease `KEYS[keyIndex]` holds token `ARGV[argIndex]`, to be put
 * before a script's first write. No KEY at `keyIndex` means no fence: nothing is checked.
 */
export function fenceCheck(keyIndex: number, argIndex: number): string {
  return `
if KEYS[${keyIndex}] and redis.call('HGET', KEYS[${keyIndex}], 'token') ~= ARGV[${argIndex}] then
  return '${LEASE_LOST}'
end
`;
}

/** The extra KEY (none without a fence) and ARGV (`''` without a fence) of a fenced script. */
export interface FenceParams {
  keys: string[];
  token: string;
}

/**
 * The fence's script parameters. `sameSlot` says whether the write's keys share the lease's Cluster slot;
 * when they do not, a Cluster client is refused with `invalid_config` (see the header).
 */
export function fenceParams(
  redis: RedisClient,
  prefix: string,
  fence: Fence | undefined,
  sameSlot: boolean,
): FenceParams {
  if (!fence) return { keys: [], token: '' };
  if (!sameSlot && redis.isCluster) {
    throw new BerthError(
      'invalid_config',
      'fenced writes to the Redis session registry and transcripts need a standalone Redis: on Redis Cluster ' +
        'the lease and those keys are in different slots',
    );
  }
  // Tokens are stored as integers (`%d`); a token that is not one never matches, which is lease_lost.
  return { keys: [leaseKey(prefix, fence.lease)], token: String(fence.token) };
}

/** Throws `lease_lost` when a fenced script refused the write. */
export function checkFenceReply(reply: unknown, fence: Fence | undefined, what: string): void {
  if (fence && reply === LEASE_LOST) {
    throw new BerthError(
      'lease_lost',
      `${what} refused: lease ${JSON.stringify(fence.lease)} is no longer held with token ${fence.token}`,
    );
  }
}
