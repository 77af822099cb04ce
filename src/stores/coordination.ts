/**
 * What makes many hosts one service, kept in the store they share: the host registry (who is alive, where,
 * with how much room) and one lease per live session (which host runs it), each lease with a fencing
 * token. Only stores with an atomic compare-and-set have it: PostgreSQL and Redis.
 *
 * Time is the store's clock, never a host's: a lease or a heartbeat is live while the store's `now` is
 * before its `expiresAt`, so hosts whose clocks disagree still agree on who is alive.
 *
 * Fencing. A lease's token starts at 1 and grows by one each time a host takes the lease over from
 * another holder or after it expired and was released; a holder that renews or re-acquires its own lease
 * keeps its token. Every write a host makes for a session carries `{lease, token}` (see
 * `StoreCallOptions.fence`), and the store applies it only while that is the lease's current token,
 * atomically with the check: a host that was paused past its lease and wakes up cannot write, because
 * the host that took over holds a greater token. A lease row is never deleted while its session exists
 * (release only ends it), so tokens never go back.
 */
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import type { StoreCallOptions } from './call-options.js';

export type HostState = 'ready' | 'draining';

/** One host as it last announced itself. */
export interface HostEntry {
  /** `--host-id`: what `x-berth-host` carries. */
  id: string;
  /** `--advertise-url`: where other hosts and routers reach its API (no trailing slash). */
  url: string;
  state: HostState;
  /** Subprocess slots in all (the sizing formula's figure). */
  capacity: number;
  /** Slots free at the last heartbeat. */
  slotsFree: number;
  /** Epoch ms of the last heartbeat, by the store's clock. */
  lastHeartbeatAt: number;
  /** Epoch ms, by the store's clock, after which the host is believed dead. */
  expiresAt: number;
}

/** A session's lease as stored. */
export interface Lease {
  /** The lease key (a session's `sessionKey`). */
  key: string;
  /** The host that holds (or last held) it. */
  hostId: string;
  token: number;
  /** Epoch ms by the store's clock; a released lease has an `expiresAt` in the past. */
  expiresAt: number;
  /** Whether it was live by the store's clock when read. */
  live: boolean;
}

export type AcquireResult =
  /** The caller holds the lease now, with this token (the same token if it held it before). */
  | { acquired: true; lease: Lease }
  /** Another host holds a live lease; nothing changed. */
  | { acquired: false; lease: Lease };

export interface Coordination {
  // --- hosts ---

  /** Adds or refreshes the host's entry: live until the store's now + `ttlMs`. */
  heartbeat(
    host: Omit<HostEntry, 'lastHeartbeatAt' | 'expiresAt'>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<void>;
  /** Live hosts (by the store's clock), ordered by id. */
  hosts(options?: StoreCallOptions): Promise<HostEntry[]>;
  /** Removes the host's entry (a clean shutdown); a no-op for an unknown id. */
  removeHost(id: string, options?: StoreCallOptions): Promise<void>;

  // --- leases ---

  /**
   * Takes the lease for `hostId` until the store's now + `ttlMs`, atomically: when there is none (token 1),
   * when `hostId` holds it already (same token, new expiry, live or not), or when it has expired (token + 1).
   * Otherwise another host holds it live, and the answer says which.
   */
  acquire(key: string, hostId: string, ttlMs: number, options?: StoreCallOptions): Promise<AcquireResult>;
  /**
   * Extends, in one call, each of `leases` that `hostId` still holds with that token (live or expired but
   * not taken over) to now + `ttlMs`. Resolves to the keys it could not extend: leases lost to another
   * host, or gone.
   */
  renew(
    hostId: string,
    leases: ReadonlyArray<{ key: string; token: number }>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<string[]>;
  /**
   * Ends the lease now if `hostId` holds it with `token` (its row stays, so the next token is greater);
   * otherwise a no-op. Resolves to whether it ended it.
   */
  release(key: string, hostId: string, token: number, options?: StoreCallOptions): Promise<boolean>;
  /** The lease as stored (live or not), or undefined when there never was one. */
  lease(key: string, options?: StoreCallOptions): Promise<Lease | undefined>;
  /** Many leases in one call; keys without a lease are absent from the map. */
  leases(keys: readonly string[], options?: StoreCallOptions): Promise<Map<string, Lease>>;
  /**
   * Removes a lease for good; a no-op for an unknown key. Hosts do not call it when a session is deleted:
   * they release the lease, so that a session made again with the same id gets a greater token than any
   * row of the old one a stale host may still ship. It is for operators clearing out a namespace.
   */
  deleteLease(key: string, options?: StoreCallOptions): Promise<void>;

  // --- writes a fenced-off host could not make ---

  /**
   * Keeps what a host that lost a session's lease had written but not shipped (see durable-mirror.ts):
   * the store holds it beside the session, never in its transcript or event log, where the new holder's
   * view wins. Idempotent on (`hostId`, `id`): shipping it again stores it once.
   */
  keepSuperseded(write: SupersededWrite, options?: StoreCallOptions): Promise<void>;
  /** The superseded writes of a session (its lease key), oldest first. */
  superseded(key: string, options?: StoreCallOptions): Promise<SupersededWrite[]>;
  /** Removes a session's superseded writes (with the session). */
  deleteSuperseded(key: string, options?: StoreCallOptions): Promise<void>;
}

/** One write refused for a lost lease, kept as it was spooled. */
export interface SupersededWrite {
  /** The session's lease key. */
  key: string;
  /** The host that wrote it, and the token it wrote under. */
  hostId: string;
  token: number;
  /** Unique per host (the spool row's seq): shipping the same write twice stores it once. */
  id: number;
  kind: 'transcript' | 'events' | 'registry';
  /** For transcripts: the subpath (`''` for the main transcript). */
  subpath: string;
  /** The entries, events or patch, as JSON-compatible data. */
  payload: unknown;
  /** Epoch ms when it was kept. */
  keptAt: number;
}

/** A transcript store whose `append` honours a fence (Berth's PostgreSQL and Redis adapters). */
export interface FencedSessionStore extends SessionStore {
  append(key: SessionKey, entries: SessionStoreEntry[], options?: StoreCallOptions): Promise<void>;
}
