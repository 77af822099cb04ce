/**
 * Spare subprocesses, started with the SDK's `prewarm()` before any session needs them, so that a new
 * session's first turn skips the CLI's start-up (measured: a claim answers in ~0.2 s against ~0.8 s cold).
 *
 * What a spare runs with is fixed at prewarm: the environment (so the tenant's config dir and home), the
 * transcript store's tenant scope, `settingSources`, the tools and the system prompt. A spare therefore
 * belongs to one tenant and serves only sessions whose agent config it can carry (see `spareCanCarry`:
 * the model and permission mode go in the claim; the tool policy of a Managed Agents toolset is asked, at
 * each tool use, by a hook fixed at prewarm that forwards to the claimer, as `canUseTool` does);
 * everything else starts with `query()`. A claimed spare is replaced with one for the same tenant, so the
 * tenants that create sessions are the ones that find spares.
 *
 * Spares count against the host's capacity: the pool only prewarms while the host has room, and gives a
 * parked spare up when a session needs the room. A spare is in one of four places: starting, parked,
 * reserved (admission counted a session's turn against it: see `reserve`), or handed out (a session's or
 * a task's process now, no longer the pool's). `trees` counts the first three; a reservation counts even
 * when its spare died meanwhile, until the session takes it or gives it back, so that the session's slot
 * is counted exactly once throughout.
 */
import type { CanUseTool, SpareProcess } from '@anthropic-ai/claude-agent-sdk';
import { rm } from 'node:fs/promises';
import { describeError } from '../errors.js';
import type { CreateSpawner, SpawnedTree } from '../sandbox/plain-spawn.js';
import { sdkRuntime, type AgentRuntime } from '../session/agent-runtime.js';
import { buildSpareOptions, spareCanCarry, type SpareSetup } from '../session/sdk-options.js';
import type { ClaimableSpare, SpareClaimer } from '../session/spare-claim.js';
import type { SessionRecord } from '../stores/types.js';
import { TASK_SPARES, type SpareDirs } from './layout.js';

/** What a spare of one tenant is started with, besides what the pool adds (see `buildSpareOptions`). */
export type SpareEnvironment = Pick<SpareSetup, 'env' | 'transcriptStore' | 'cwd'> & {
  /** Directories made for this spare alone, handed to its claimer (a task's spare). */
  dirs?: SpareDirs | undefined;
};

export interface WarmPoolOptions {
  /** Spares to keep parked. */
  size: number;
  /** Tenants to prewarm for before any session asked; later spares follow the tenants that claim. */
  initialTenants: readonly string[];
  /**
   * The environment and transcript scope a spare of `tenant` runs with, and the directories made for it
   * alone (handed to the claimer).
   */
  spareSetup: (tenant: string) => Promise<SpareEnvironment>;
  createSpawner: CreateSpawner;
  /** Whether the host has room for one more subprocess tree. */
  hasRoom: () => boolean;
  killGraceMs: number;
  onError?: (err: unknown) => void;
  /** Where spares are prewarmed. @default sdkRuntime */
  runtime?: AgentRuntime;
}

export interface WarmPoolStats {
  /** Spares parked and ready. */
  parked: number;
  /** Spares being started. */
  starting: number;
  prewarmed: number;
  claimed: number;
  /** Claims the process refused; those sessions started with `query()`. */
  refused: number;
  /** Parked spares that died, or that were given up to make room. */
  lost: number;
}

/** Whether a claimed spare can run this session's first turn exactly as `query()` would. */
export function spareCanRun(record: Pick<SessionRecord, 'started' | 'agent'>): boolean {
  return !record.started && spareCanCarry(record.agent);
}

/** A parked spare held for one admitted session until its turn starts (see {@link WarmPool.reserve}). */
export interface SpareReservation {
  /** The spare, handed out; undefined when it died meanwhile (the session then spawns). Ends the reservation. */
  take(): ClaimableSpare | undefined;
  /** Gives the spare back to the pool (the session never started a turn). Ends the reservation. */
  release(): void;
}

interface Spare {
  tenant: string;
  dirs: SpareDirs | undefined;
  process: SpareProcess;
  spawner: SpawnedTree;
  /** Whom the spare's `canUseTool` and tool-policy hook, fixed at prewarm, forward to: its claimer. */
  route: { claimer?: SpareClaimer };
}

/** The longest a claimed spare's replacement waits for the claimed turn to end. */
const REFILL_DELAY_MS = 5000;

/** The longest wait between two failed prewarms. */
const MAX_BACKOFF_MS = 30_000;

export class WarmPool {
  private readonly parked: Spare[] = [];
  /** Spares held by open reservations; a spare that dies while reserved leaves this set, not `reservations`. */
  private readonly reservedSpares = new Set<Spare>();
  /** Reservations not yet taken or released. */
  private reservations = 0;
  private starting = 0;
  private readonly counts = { prewarmed: 0, claimed: 0, refused: 0, lost: 0 };
  /** Tenants in the order their next spares are wanted. */
  private readonly wanted: string[] = [];
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  /** Prewarms in flight, which `close` waits for. */
  private readonly startingNow = new Set<Promise<void>>();

  constructor(private readonly options: WarmPoolOptions) {
    for (let i = 0; i < options.size && options.initialTenants.length > 0; i++) {
      this.wanted.push(options.initialTenants[i % options.initialTenants.length]!);
    }
  }

  /** Subprocess trees the pool holds: parked, reserved and starting spares. */
  get trees(): number {
    return this.parked.length + this.reservations + this.starting;
  }

  get stats(): WarmPoolStats {
    return { parked: this.parked.length, starting: this.starting, ...this.counts };
  }

  /**
   * Holds a parked spare of `tenant` for one admitted session, so that no other admission counts on it;
   * undefined when none is parked.
   */
  reserve(tenant: string): SpareReservation | undefined {
    const index = this.parked.findIndex((s) => s.tenant === tenant);
    if (index < 0) return undefined;
    const spare = this.parked.splice(index, 1)[0]!;
    this.reservedSpares.add(spare);
    this.reservations += 1;
    let open = true;
    /** Ends the reservation; whether its spare is still alive and the pool's to give. */
    const end = (): boolean => {
      if (!open) return false;
      open = false;
      this.reservations -= 1;
      return this.reservedSpares.delete(spare);
    };
    return {
      take: () => {
        if (end()) return this.handOut(spare);
        // Died while reserved: its replacement may start now that the reservation no longer counts.
        this.fill();
        return undefined;
      },
      release: () => {
        if (!end()) this.fill();
        else if (this.closing) void this.discard(spare);
        else this.parked.unshift(spare);
      },
    };
  }

  /** Starts prewarms until the pool is full or the host has no room. */
  fill(): void {
    if (this.closing || this.retryTimer) return;
    while (this.trees < this.options.size && this.options.hasRoom()) {
      const tenant = this.wanted.shift() ?? this.options.initialTenants[0];
      if (tenant === undefined) return;
      this.start(tenant);
    }
  }

  /** A parked spare of `tenant`, removed from the pool; a replacement is started. */
  take(tenant: string): ClaimableSpare | undefined {
    const index = this.parked.findIndex((s) => s.tenant === tenant);
    if (index >= 0) return this.handOut(this.parked.splice(index, 1)[0]!);
    this.wantNext(tenant);
    // A parked spare of a key nobody asked for since is given up for this one, so that the pool
    // follows the work (sessions of one tenant, or tasks) rather than its first guess.
    const idle = this.parked.findIndex((s) => !this.wanted.includes(s.tenant));
    if (idle >= 0 && this.trees >= this.options.size) {
      const [given] = this.parked.splice(idle, 1);
      this.counts.lost += 1;
      void this.discard(given!).finally(() => this.fill());
    } else {
      setImmediate(() => this.fill());
    }
    return undefined;
  }

  /** Hands `spare` (out of the pool's lists already) to its claimer; its replacement follows its first turn. */
  private handOut(spare: Spare): ClaimableSpare {
    this.wantNext(spare.tenant);
    // The replacement starts once the claimed turn is over: a CLI starting up next to it would share the
    // CPUs with it (measured on 2 cores: a claim's turn took twice as long). A long turn waits no more
    // than REFILL_DELAY_MS.
    let refilled = false;
    const refill = (): void => {
      if (refilled) return;
      refilled = true;
      clearTimeout(timer);
      this.fill();
    };
    const timer = setTimeout(refill, REFILL_DELAY_MS);
    timer.unref();
    return {
      spare: spare.process,
      spawner: spare.spawner,
      ...(spare.dirs && { dirs: spare.dirs }),
      bind: (claimer) => (spare.route.claimer = claimer),
      settled: (claimed, reason) => {
        if (claimed) this.counts.claimed += 1;
        else {
          this.counts.refused += 1;
          this.options.onError?.(new Error(`a warm spare refused its claim: ${reason ?? 'unknown reason'}`));
          refill();
        }
      },
      firstTurnEnded: refill,
    };
  }

  /** The tenant whose session (or task) just asked for a spare is the one that wants the next spare. */
  private wantNext(tenant: string): void {
    this.wanted.unshift(tenant);
    this.wanted.length = Math.min(this.wanted.length, this.options.size);
  }

  /**
   * Gives up one parked spare to make room for a session; resolves when its process tree is gone, or
   * undefined when there was none to give up.
   */
  evictOne(): Promise<void> | undefined {
    const spare = this.parked.shift();
    if (!spare) return undefined;
    this.counts.lost += 1;
    return this.discard(spare);
  }

  /** Discards every spare; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.retryTimer);
      // Reserved spares go too: a session whose reservation dies this way spawns, if the host still lets it.
      const spares = [...this.parked.splice(0), ...this.reservedSpares];
      this.reservedSpares.clear();
      await Promise.allSettled(spares.map((s) => this.discard(s)));
      // Spares still starting discard themselves (they see `closing`); their directories go with them.
      await Promise.allSettled([...this.startingNow]);
    })();
    return this.closing;
  }

  private start(tenant: string): void {
    const starting = this.startSpare(tenant);
    this.startingNow.add(starting);
    void starting.finally(() => this.startingNow.delete(starting));
  }

  private startSpare(tenant: string): Promise<void> {
    this.starting += 1;
    const spawner = this.options.createSpawner({ tenant });
    const route: Spare['route'] = {};
    // canUseTool and the tool-policy hook are fixed at prewarm: they forward to whichever session claims
    // the spare. A task's spare keeps the CLI's default tools and no hook (see `SpareSetup.toolPolicy`).
    const canUseTool: CanUseTool = (toolName, input, context) =>
      route.claimer
        ? route.claimer.canUseTool(toolName, input, context)
        : Promise.resolve({ behavior: 'deny', message: 'This process is not serving a session.' });
    const toolPolicy = tenant === TASK_SPARES ? undefined : () => route.claimer?.toolPolicy;
    return (async () => {
      let spare: SpareProcess | undefined;
      let dirs: SpareDirs | undefined;
      try {
        const made = await this.options.spareSetup(tenant);
        dirs = made.dirs;
        const options = buildSpareOptions({
          ...made,
          canUseTool,
          toolPolicy,
          spawn: (o) => spawner.spawn(o),
        });
        spare = await (this.options.runtime ?? sdkRuntime).prewarm({ options });
      } catch (err) {
        this.starting -= 1;
        await spawner.kill(this.options.killGraceMs).catch(() => undefined);
        if (dirs) await rm(dirs.root, { recursive: true, force: true }).catch(() => undefined);
        const tail = spawner.stderrTail().trim().split('\n').slice(-3).join(' | ');
        this.options.onError?.(
          new Error(`prewarming a spare failed: ${describeError(err)}${tail ? ` (${tail})` : ''}`),
        );
        this.retryLater(tenant);
        return;
      }
      this.starting -= 1;
      this.backoffMs = 0;
      // Closing an unclaimed spare rejects `claimed`; the claiming session attaches its own handlers.
      spare.claimed.catch(() => undefined);
      const entry: Spare = { tenant, dirs, process: spare, spawner, route };
      if (this.closing) {
        await this.discard(entry);
        return;
      }
      this.counts.prewarmed += 1;
      this.parked.push(entry);
      void spare.exited.then(() => {
        const index = this.parked.indexOf(entry);
        if (index >= 0) this.parked.splice(index, 1);
        // A reserved spare's reservation still counts until it is taken or released.
        else if (!this.reservedSpares.delete(entry)) return; // handed out or discarded: not ours any more
        this.counts.lost += 1;
        void this.discard(entry);
        this.wanted.push(tenant);
        this.fill();
      });
    })();
  }

  private retryLater(tenant: string): void {
    if (this.closing) return;
    this.wanted.push(tenant);
    this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(1000, this.backoffMs * 2));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fill();
    }, this.backoffMs);
    this.retryTimer.unref();
  }

  private async discard(spare: Spare): Promise<void> {
    try {
      spare.process.close();
    } catch {
      // Already exited: the tree kill below is what matters.
    }
    await spare.spawner.kill(this.options.killGraceMs);
    if (spare.dirs) await rm(spare.dirs.root, { recursive: true, force: true });
  }
}
