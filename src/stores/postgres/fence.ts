/**
 * Fenced writes on PostgreSQL (see `StoreCallOptions.fence` and `stores/coordination.ts`). A fenced write
 * reads its lease's row with `FOR SHARE` in its own transaction, and writes only if the token read is the
 * fence's. The share lock makes the check and the write one atomic step against a takeover: an acquire or
 * a renew updates the lease row, so it waits for every fenced write holding the lock to commit, and a
 * fenced write that starts while an acquire holds the row waits for it and then reads the token it set
 * (READ COMMITTED re-reads the newest version of a row it locks). So every write under a token lands
 * before the next token exists, or not at all. Share locks do not conflict with each other: one session's
 * writes still run side by side.
 *
 * Where the write is one statement, the check rides in it as a CTE ({@link fenceCte}), so a fenced write
 * costs the same round trips as an unfenced one.
 */
import type { PoolClient } from 'pg';
import { BerthError } from '../../errors.js';
import type { Fence } from '../types.js';

/**
 * A `fence` CTE over the leases of `quotedSchema` (see `quoteSchema`) for the lease key in parameter
 * `$keyParam`: one row, the lease's token, locked `FOR SHARE` until the statement's transaction ends; none
 * when there is no lease. MATERIALIZED so that it runs once, however often the statement reads it.
 */
export function fenceCte(quotedSchema: string, keyParam: number): string {
  return `fence AS MATERIALIZED (SELECT token FROM ${quotedSchema}.leases WHERE key = $${keyParam} FOR SHARE)`;
}

/** A condition that holds when the fence's token, in parameter `$tokenParam`, is the lease's current one. */
export function fenceHolds(tokenParam: number): string {
  return `(SELECT token FROM fence) = $${tokenParam}::bigint`;
}

/** What a fenced statement returns, beside its own columns: the lease's token (null without a lease). */
export const FENCE_TOKEN = '(SELECT token FROM fence) AS fence_token';

/** Throws `lease_lost` unless `token` (as `pg` returns a bigint: a string, or null) is `fence.token`. */
export function checkFence(fence: Fence, token: string | null | undefined): void {
  if (token !== null && token !== undefined && Number(token) === fence.token) return;
  const now = token === null || token === undefined ? 'there is no such lease' : `its token is now ${token}`;
  throw new BerthError(
    'lease_lost',
    `the write under lease ${fence.lease} with token ${fence.token} was refused: ${now}`,
  );
}

/**
 * The fence check as a statement of its own, for writes that are a transaction of several statements:
 * `client` must be inside that transaction, which then holds the lease row's share lock until it ends.
 */
export async function checkFenceIn(client: PoolClient, quotedSchema: string, fence: Fence): Promise<void> {
  const result = await client.query<{ token: string }>(
    `SELECT token FROM ${quotedSchema}.leases WHERE key = $1 FOR SHARE`,
    [fence.lease],
  );
  checkFence(fence, result.rows[0]?.token);
}
