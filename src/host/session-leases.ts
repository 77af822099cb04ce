/**
 * Multi-host mode, as one host sees it: its entry in the host registry, kept alive by a heartbeat, and
 * the leases of the sessions it runs (see stores/coordination.ts for what a lease and its fencing token
 * are).
 *
 * - A session is loaded or created here only after its lease is taken (`claim`); a lease another live
 *   host holds is `session_elsewhere`, naming that host, and the HTTP layer forwards the request there.
 * - Every heartbeat (a third of `--lease-ttl`) renews all held leases in one store call. A lease that
 *   could not be renewed was taken over while this host was paused or cut off: the session is fenced off
 *   (`onLost`: its subprocess stopped, its object dropped); the store already refuses its writes.
 * - The fence of every write (`fenceFor`) is the last token this host held for the session: a write made
 *   after a release is still accepted while nobody took the lease over, and refused once someone did.
 * - A session suspended here gives its lease back (`release`), so that the next request can run it on
 *   whichever host it hashes to.
 */
import { BerthError } from '../errors.js';
import type { Coordination, HostEntry } from '../stores/coordination.js';
import { sessionKey, type Fence, type SessionRef } from '../stores/types.js';

export interface SessionLeasesOptions {
  coordination: Coordination;
  hostId: string;
  advertiseUrl: string;
  ttlMs: number;
  /** What the heartbeat announces of this host. */
  announce: () => Pick<HostEntry, 'state' | 'capacity' | 'slotsFree'>;
  /** A held lease was taken over by another host: stop running the session (its key). */
  onLost: (key: string) => void;
  onError?: (err: unknown) => void;
}

export class SessionLeases {
  /** Leases held now, by key: their token. */
  private readonly held = new Map<string, number>();
  /** The last token held for each key this process ever held (fences writes after a release). */
  private readonly lastToken = new Map<string, number>();
  /** Transcript key (`tenant/sdkSessionId`) -> lease key. */
  private readonly byTranscript = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private liveHosts: readonly HostEntry[] = [];
  private readingHosts: Promise<void> | undefined;
  /** The token each session object was made under (see {@link stillOwns}). */
  private readonly objectTokens = new WeakMap<object, number>();
  private stopped = false;
  private readonly heartbeatListeners = new Set<(hosts: readonly HostEntry[]) => void>();

  constructor(private readonly options: SessionLeasesOptions) {}

  get hostId(): string {
    return this.options.hostId;
  }

  get coordination(): Coordination {
    return this.options.coordination;
  }

  /** Calls `listener` after each heartbeat with the live hosts; returns the unsubscribe function. */
  onHeartbeat(listener: (hosts: readonly HostEntry[]) => void): () => void {
    this.heartbeatListeners.add(listener);
    return () => this.heartbeatListeners.delete(listener);
  }

  /** The live hosts as of the last heartbeat, this one included once it has beaten. */
  get hosts(): readonly HostEntry[] {
    return this.liveHosts;
  }

  /** Registers the host (first heartbeat) and starts beating every third of the TTL. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.heartbeat(), Math.max(100, this.options.ttlMs / 3));
    this.timer.unref();
  }

  /** One heartbeat now (also what the timer runs); concurrent calls share one. */
  heartbeat(): Promise<void> {
    this.beating ??= this.beat()
      .catch((err: unknown) => this.options.onError?.(err))
      .finally(() => (this.beating = undefined));
    return this.beating;
  }

  /** Whether this host holds the session's lease (as of its last renewal). */
  holds(ref: SessionRef): boolean {
    return this.held.has(sessionKey(ref));
  }

  /** Keys of the leases held now. */
  get heldKeys(): string[] {
    return [...this.held.keys()];
  }

  /**
   * Takes the session's lease for this host, or throws `session_elsewhere` naming the live host that
   * holds it. Resolves to the token, and to whether this call took it (false: this host held it already).
   */
  async claim(ref: SessionRef): Promise<{ token: number; taken: boolean }> {
    if (this.stopped) throw new BerthError('not_ready', 'This host is shutting down');
    const key = sessionKey(ref);
    const taken = !this.held.has(key);
    const result = await this.options.coordination.acquire(key, this.options.hostId, this.options.ttlMs);
    if (result.acquired) {
      this.held.set(key, result.lease.token);
      this.lastToken.set(key, result.lease.token);
      return { token: result.lease.token, taken };
    }
    this.held.delete(key);
    throw new SessionElsewhere(ref, result.lease.hostId, this.urlOf(result.lease.hostId));
  }

  /** Remembers the token `owner` (a session object, made right after a claim) was made under. */
  bindObject(owner: object, ref: SessionRef): void {
    const token = this.held.get(sessionKey(ref));
    if (token !== undefined) this.objectTokens.set(owner, token);
  }

  /**
   * Whether `owner` (a session object of this host's) may still run: this host holds the lease, or takes
   * it again, with the token the object was made under, so no other host ran the session since. False
   * means the object is stale (drop it and load the session again); throws `session_elsewhere` when a
   * live host holds the lease.
   */
  async stillOwns(owner: object, ref: SessionRef): Promise<boolean> {
    const made = this.objectTokens.get(owner);
    if (made !== undefined && this.held.get(sessionKey(ref)) === made) return true;
    const { token } = await this.claim(ref);
    return token === made;
  }

  /** The token this host holds the session's lease with, if it holds it. */
  tokenOf(ref: SessionRef): number | undefined {
    return this.held.get(sessionKey(ref));
  }

  /** Ties the session's transcript (the SDK's session id) to its lease, for {@link fenceFor}. */
  bindTranscript(ref: SessionRef, sdkSessionId: string): void {
    this.byTranscript.set(`${ref.tenant}/${sdkSessionId}`, sessionKey(ref));
  }

  /** Gives the lease back (the session was suspended here); a no-op unless held. */
  async release(ref: SessionRef): Promise<void> {
    const key = sessionKey(ref);
    const token = this.held.get(key);
    if (token === undefined) return;
    this.held.delete(key);
    await this.options.coordination.release(key, this.options.hostId, token);
  }

  /** The session was deleted: its lease goes for good. */
  async forget(ref: SessionRef): Promise<void> {
    const key = sessionKey(ref);
    const token = this.held.get(key);
    this.held.delete(key);
    // Released, not deleted: a session made again with this id starts at a greater token, so a stale
    // host's rows of the old session are refused rather than written into the new one.
    if (token !== undefined) await this.options.coordination.release(key, this.options.hostId, token);
    await this.options.coordination.deleteSuperseded(key);
  }

  /**
   * The fence of a spooled write (see durable-mirror.ts): events are keyed by session key, registry
   * patches by (tenant, id), transcripts by (tenant, SDK session id). Undefined for what this host never
   * held a lease for (a task's transcript, say): such writes go unfenced.
   */
  fenceFor(kind: 'transcript' | 'events' | 'registry', scope: string, name: string): Fence | undefined {
    const lease =
      kind === 'events'
        ? scope
        : kind === 'registry'
          ? `${scope}/${name}`
          : this.byTranscript.get(`${scope}/${name}`);
    if (lease === undefined) return undefined;
    const token = this.lastToken.get(lease);
    return token === undefined ? undefined : { lease, token };
  }

  /**
   * A write under (`lease`, `token`) was refused: the lease is lost, whatever the last renewal said. A
   * refusal of an older token (a spool row from before this host took the session again) changes nothing.
   */
  lost(lease: string, token: number): void {
    if (this.held.get(lease) !== token) return;
    this.held.delete(lease);
    this.options.onLost(lease);
  }

  /**
   * Reads the list of live hosts now, between heartbeats (a host just failed to answer a forward: a dead
   * host stays in the list for up to a third of the TTL otherwise). Concurrent calls share one read.
   */
  refreshHosts(): Promise<void> {
    this.readingHosts ??= this.options.coordination
      .hosts()
      .then((hosts) => {
        this.liveHosts = hosts;
      })
      .finally(() => (this.readingHosts = undefined));
    return this.readingHosts;
  }

  /** The URL of a live host, from the last heartbeat's list. */
  urlOf(hostId: string): string | undefined {
    return this.liveHosts.find((h) => h.id === hostId)?.url;
  }

  /**
   * Stops the heartbeat, gives back every lease still held and leaves the registry. Called once every
   * subprocess has stopped: the sessions can run elsewhere at once instead of a TTL later.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.beating;
    const held = [...this.held];
    this.held.clear();
    await Promise.allSettled(
      held.map(([key, token]) => this.options.coordination.release(key, this.options.hostId, token)),
    );
    await this.options.coordination.removeHost(this.options.hostId);
  }

  private async beat(): Promise<void> {
    const { coordination, hostId, ttlMs } = this.options;
    await coordination.heartbeat(
      { id: hostId, url: this.options.advertiseUrl, ...this.options.announce() },
      ttlMs,
    );
    const held = [...this.held].map(([key, token]) => ({ key, token }));
    const lost = held.length > 0 ? await coordination.renew(hostId, held, ttlMs) : [];
    const renewed = new Map(held.map(({ key, token }) => [key, token]));
    for (const key of lost) {
      this.lost(key, renewed.get(key)!);
      renewed.delete(key);
    }
    // A lease given back while the renewal was on its way was extended again by it: give it back again.
    const revived = [...renewed].filter(([key]) => !this.held.has(key));
    await Promise.all(revived.map(([key, token]) => coordination.release(key, hostId, token)));
    this.liveHosts = await coordination.hosts();
    if (this.stopped) return;
    for (const listener of [...this.heartbeatListeners]) listener(this.liveHosts);
  }
}

/** `session_elsewhere`, with the host that runs the session (where the HTTP layer forwards to). */
export class SessionElsewhere extends BerthError {
  constructor(
    readonly ref: SessionRef,
    readonly hostId: string,
    /** Undefined when the holder is not in this host's list of live hosts yet. */
    readonly url: string | undefined,
  ) {
    super('session_elsewhere', `Session ${JSON.stringify(ref.id)} runs on host ${JSON.stringify(hostId)}`);
  }
}
