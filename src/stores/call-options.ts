/** What every store call takes besides its arguments (a file of its own, so that coordination.ts and types.ts need not import each other). */

/**
 * What every registry, event-log and blob-store call takes besides its arguments. `signal` stops the call:
 * an adapter passes it to its driver where the driver takes one, and otherwise stops waiting; either way
 * the call rejects with `BerthError('aborted')`. Whether the work itself was done is then unknown, as
 * with any failed call.
 */
export interface StoreCallOptions {
  signal?: AbortSignal | undefined;
  /**
   * The session lease this write is made under (many hosts, see coordination.ts). A store with
   * {@link Stores.coordination} applies the write only while the lease's current token is `fence.token`,
   * atomically with the check, and otherwise refuses it with `BerthError('lease_lost')` and changes
   * nothing. Reads ignore it; stores without coordination ignore it.
   */
  fence?: Fence | undefined;
}

/** A lease's key and the fencing token a write carries (see {@link StoreCallOptions.fence}). */
export interface Fence {
  /** The lease key: {@link sessionKey} of the session. */
  lease: string;
  token: number;
}
