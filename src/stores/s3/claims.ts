/**
 * Claims: how an S3 store lets at most one writer go on with a write that must not happen twice (create an
 * id, replace a revision), without conditional writes, which s3rver and several S3-compatible servers lack.
 *
 * A writer PUTs a claim object of its own (a unique name) into the directory that names the write, lists
 * that directory, and goes on only if its claim is the only one younger than {@link CLAIM_TTL_MS} (by the
 * server's LastModified, one clock). Of two writers racing, each lists after its own PUT, and S3 lists are
 * strongly consistent with PUTs, so at least one sees the other's claim: both may be refused, never both
 * let through. A writer that was let through must still check, after the listing, that the write is still
 * due (the id still free, the revision still the expected one): a writer that finished earlier has removed
 * its claim.
 *
 * A writer that dies, or whose write fails or stops half way, leaves its claim: it blocks the directory for
 * at most CLAIM_TTL_MS, during which the failed write may still land (a request the client gave up on can
 * still reach the server), and no other writer may go ahead on the state it found.
 */
import { BerthError } from '../../errors.js';
import type { S3Bucket } from './client.js';

/** How long a claim blocks other writers of the same directory (a writer that died mid-write). */
export const CLAIM_TTL_MS = 60_000;

/**
 * Puts the claim `dir` + `name` and runs `work` when no other live claim is under `dir`; otherwise throws
 * `refuse()` without running it. `work` calls `writing()` just before its first write: from then on, a
 * failure leaves the claim in place (see the header). On success every claim the listing found goes,
 * stale ones of writers that died included; on a refusal or a failure before `writing()`, only this one.
 */
export async function withClaim<T>(
  bucket: S3Bucket,
  dir: string,
  name: string,
  refuse: () => BerthError,
  work: (writing: () => void) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const claim = `${dir}${name}`;
  await bucket.put(claim, '{}', signal);
  let wrote = false;
  let done = false;
  try {
    const listed = await bucket.list(dir, { signal });
    const mine = listed.find((object) => object.key === claim);
    if (!mine) throw new BerthError('store_unavailable', `s3 claim ${claim} vanished after it was written`);
    const rivals = listed.filter(
      (object) => object.key !== claim && object.lastModified > mine.lastModified - CLAIM_TTL_MS,
    );
    if (rivals.length > 0) throw refuse();
    const result = await work(() => {
      wrote = true;
    });
    done = true;
    // The write is done: a claim left behind blocks no one but a later writer of this very directory, for
    // at most CLAIM_TTL_MS, so failing to remove it does not fail the call.
    await bucket
      .deleteMany(
        listed.map((object) => object.key),
        signal,
      )
      .catch(() => undefined);
    return result;
  } finally {
    // Without the signal: an aborted call that wrote nothing still removes its claim, which would block
    // the directory.
    if (!done && !wrote) await bucket.deleteMany([claim]).catch(() => undefined);
  }
}
