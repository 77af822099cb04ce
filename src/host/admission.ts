/**
 * Admission: at most `capacity` subprocess trees live on a host at once (the sizing formula's answer).
 * A slot is one tree: a session's subprocess (or the one it is about to start), a warm spare's, or an
 * ephemeral task's. Sessions and tasks are admitted by the same rules:
 * - with a free slot, at once;
 * - a session whose first turn will claim a parked spare of its tenant, at once: the spare is reserved
 *   for it, so that the spare's slot becomes the session's and no second session counts on the same spare;
 * - when full, room is made: a parked spare is given up, else the least recently used quiet session is
 *   suspended (when this host can suspend) and the new turn waits for its subprocess to end;
 * - otherwise `503 host_full`, and nothing is stored.
 * A tenant whose model spend has reached its `usd` budget gets `429 budget_exceeded` for a new turn or
 * task, and a tenant at its `sessions` limit `429 quota_exceeded` for a new session (see `storeSession`).
 *
 * Invariant: `usedSlots()` counts each live or promised tree once. A session holding a reservation is not
 * counted itself: its reserved spare is (in the pool's `trees`), and becomes its subprocess when its turn
 * starts. A reservation the session never takes (its turn failed before a spawn, it was closed) goes back
 * to the pool when the session is no longer busy.
 */
import { BerthError } from '../errors.js';
import type { Session } from '../session/session.js';
import type { ClaimableSpare } from '../session/spare-claim.js';
import type { SessionRecord, SessionRegistry } from '../stores/types.js';
import { TASK_SPARES } from './layout.js';
import { countStoredSessions } from './stored-usage.js';
import { quotaExceeded, type TenantLimitsTable } from './tenant-limits.js';
import type { SpareReservation, WarmPool } from './warm-pool.js';

/** What a refused client is told to wait before trying again. */
const HOST_FULL_RETRY_AFTER_S = 5;

export interface AdmissionOptions {
  /** How many subprocess trees may live at once. */
  capacity: number;
  pool: WarmPool | undefined;
  /** Whether tasks may take spares (see `SessionHostOptions.taskSpares`). @default true */
  taskSpares?: boolean | undefined;
  /** The host's live sessions. */
  sessions: () => Iterable<Session>;
  /** Throws the error to refuse with when the host admits nothing new (draining, closing). */
  assertOpen: () => void;
  /** Whether the session's first turn may claim a spare (see `spareCanRun`). */
  claimable: (session: Session) => boolean;
  /** Suspends a quiet session to make room; absent when this host cannot suspend. */
  suspend?: ((victim: Session) => Promise<boolean>) | undefined;
  /** The store keeps transcripts (only said in the `host_full` message). */
  storeKeepsTranscripts: boolean;
  /**
   * Per-tenant limits (`--tenant-limits`): `live` caps the trees one tenant holds, `sessions` its stored
   * sessions, `usd` its model spend (when the table has it: `TenantLimitsTable.withSpend`). @default none
   */
  tenantLimits?: TenantLimitsTable | undefined;
}

export interface SlotCounts {
  used: number;
  /** Sessions holding a slot of their own (a session waiting on a reserved spare is counted as that spare). */
  sessions: number;
  /** Warm spares: parked, reserved or starting. */
  spares: number;
  tasks: number;
}

export class Admission {
  private taskSlots = 0;
  /** Task slots by tenant, for the tenants' `live` limits. */
  private readonly tenantTasks = new Map<string, number>();
  private readonly reserved = new Map<Session, SpareReservation>();
  private tasksDone: Array<() => void> = [];
  /** The last session create of each tenant with a `sessions` limit: creates of one tenant run in turn. */
  private readonly creating = new Map<string, Promise<void>>();

  constructor(private readonly options: AdmissionOptions) {}

  get capacity(): number {
    return this.options.capacity;
  }

  /** Subprocess trees held or promised, `except` one session's. */
  usedSlots(except?: Session): number {
    return this.counts(except).used;
  }

  counts(except?: Session): SlotCounts {
    this.returnUntaken();
    let sessions = 0;
    for (const s of this.options.sessions()) {
      if (s !== except && s.holdsSlot && !this.reserved.has(s)) sessions += 1;
    }
    const spares = this.options.pool?.trees ?? 0;
    return { used: sessions + spares + this.taskSlots, sessions, spares, tasks: this.taskSlots };
  }

  /**
   * Admission for a session's messages (see `SessionOptions.admit`): undefined when admitted at once, a
   * promise the turn awaits before it spawns when room is being made; throws to refuse.
   */
  admit(session: Session, needsSlot: boolean): Promise<void> | undefined {
    this.options.assertOpen();
    this.options.tenantLimits?.assertBudget(session.snapshot.tenant);
    if (!needsSlot) return undefined;
    const ownRoom = this.tenantRoom(session.snapshot.tenant, session);
    if (ownRoom) return ownRoom.then(() => this.admit(session, needsSlot));
    if (this.usedSlots(session) < this.options.capacity) return undefined;
    const pool = this.options.pool;
    if (pool && !this.reserved.has(session) && this.options.claimable(session)) {
      const reservation = pool.reserve(session.snapshot.tenant);
      if (reservation) {
        this.reserved.set(session, reservation);
        // After `send` has queued the message (it is busy from then on) until its turns are over.
        queueMicrotask(() => void session.whenNotBusy().then(() => this.returnUntaken()));
        return undefined;
      }
    }
    return this.makeRoom(session);
  }

  /** The spare for a session's first subprocess: the one reserved for it, else a parked one that fits. */
  claimSpare(session: Session): ClaimableSpare | undefined {
    const reservation = this.reserved.get(session);
    if (reservation) {
      this.reserved.delete(session);
      return reservation.take();
    }
    return this.options.pool && this.options.claimable(session)
      ? this.options.pool.take(session.snapshot.tenant)
      : undefined;
  }

  /**
   * A slot for an ephemeral task, admitted like a session's first turn. Resolves to the release function
   * (idempotent) once the room is made.
   */
  async acquireSlot(tenant: string): Promise<() => void> {
    this.options.assertOpen();
    this.options.tenantLimits?.assertBudget(tenant);
    const ownRoom = this.tenantRoom(tenant);
    const wait = ownRoom ?? (this.usedSlots() >= this.options.capacity ? this.makeRoom() : undefined);
    this.taskSlots += 1;
    this.tenantTasks.set(tenant, (this.tenantTasks.get(tenant) ?? 0) + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.taskSlots -= 1;
      const left = (this.tenantTasks.get(tenant) ?? 1) - 1;
      if (left > 0) this.tenantTasks.set(tenant, left);
      else this.tenantTasks.delete(tenant);
      if (this.taskSlots === 0) for (const resolve of this.tasksDone.splice(0)) resolve();
      this.options.pool?.fill();
    };
    try {
      await wait;
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * Stores a new session's record, within its tenant's `sessions` limit: the tenant's sessions are counted
   * in the registry (every host's), and one tenant's creates run one at a time on this host, so that two
   * cannot both take its last place (two hosts at once still can). At the limit: `quota_exceeded`, and
   * nothing is stored.
   */
  async storeSession(record: SessionRecord, registry: SessionRegistry): Promise<void> {
    const { tenant } = record;
    const limit = this.options.tenantLimits?.limitsFor(tenant).sessions ?? Infinity;
    if (!Number.isFinite(limit)) return registry.create(record);
    const previous = this.creating.get(tenant) ?? Promise.resolve();
    const mine = previous.then(async () => {
      if ((await countStoredSessions(registry, tenant, limit)) >= limit) {
        throw quotaExceeded(tenant, 'sessions', limit, 'session(s)');
      }
      await registry.create(record);
    });
    const settled = mine.catch(() => undefined);
    this.creating.set(tenant, settled);
    try {
      await mine;
    } finally {
      if (this.creating.get(tenant) === settled) this.creating.delete(tenant);
    }
  }

  /** A warm spare for an ephemeral task (see `SessionHost.takeTaskSpare`). */
  takeTaskSpare(): ClaimableSpare | undefined {
    return this.options.taskSpares === false ? undefined : this.options.pool?.take(TASK_SPARES);
  }

  /** Resolves once no task holds a slot (at once when none does). */
  whenTasksDone(): Promise<void> {
    if (this.taskSlots === 0) return Promise.resolve();
    return new Promise((resolve) => this.tasksDone.push(resolve));
  }

  /**
   * Under the tenant's `live` limit: undefined. At it: the tenant's own least recently used quiet session
   * is suspended to make room (the promise), else `quota_exceeded`. Other tenants are never touched.
   */
  private tenantRoom(tenant: string, except?: Session): Promise<void> | undefined {
    const limit = this.options.tenantLimits?.limitsFor(tenant).live ?? Infinity;
    if (!Number.isFinite(limit)) return undefined;
    let live = this.tenantTasks.get(tenant) ?? 0;
    for (const s of this.options.sessions()) {
      if (s !== except && s.holdsSlot && s.snapshot.tenant === tenant) live += 1;
    }
    if (live < limit) return undefined;
    const victim = this.options.suspend ? this.lruQuiet(except, tenant) : undefined;
    if (victim && this.options.suspend) return this.options.suspend(victim).then(() => undefined);
    throw quotaExceeded(tenant, 'live', limit, 'live agent subprocess(es)');
  }

  /** Frees a slot for `except`'s turn, or throws `host_full`. */
  private makeRoom(except?: Session): Promise<void> {
    const evicted = this.options.pool?.evictOne();
    if (evicted) return evicted;
    const victim = this.options.suspend ? this.lruQuiet(except) : undefined;
    if (victim && this.options.suspend) return this.options.suspend(victim).then(() => undefined);
    throw new BerthError(
      'host_full',
      `This host runs ${this.options.capacity} agent subprocess(es), its capacity, and none of them is idle${
        this.options.storeKeepsTranscripts ? '' : ' and suspendable (the store does not keep transcripts)'
      }; try again shortly or on another host`,
      { retryAfterSeconds: HOST_FULL_RETRY_AFTER_S },
    );
  }

  private lruQuiet(except?: Session, tenant?: string): Session | undefined {
    let best: Session | undefined;
    for (const s of this.options.sessions()) {
      if (s === except || !s.holdsSlot || !s.isQuiet) continue;
      if (tenant !== undefined && s.snapshot.tenant !== tenant) continue;
      if (!best || s.lastActiveAt < best.lastActiveAt) best = s;
    }
    return best;
  }

  /** Gives back the spares of sessions that hold no slot any more: they will never claim them. */
  private returnUntaken(): void {
    for (const [session, reservation] of this.reserved) {
      if (session.holdsSlot) continue;
      this.reserved.delete(session);
      reservation.release();
    }
  }
}
