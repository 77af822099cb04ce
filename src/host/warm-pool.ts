/**
 * Spare subprocesses, started with the SDK's `prewarm()` before any session needs them, so that a new
 * session's first turn skips the CLI's start-up (FACTS.md: a claim answers in ~0.2 s against ~0.8 s cold).
 *
 * What a spare runs with is fixed at prewarm: the environment (so the tenant's config dir and home), the
 * transcript store's tenant scope, `settingSources`, the tools and the system prompt. A spare therefore
 * belongs to one tenant and serves only sessions whose agent config a claim can carry (model and
 * permission mode); everything else starts with `query()`. A claimed spare is replaced with one for the
 * same tenant, so the tenants that create sessions are the ones that find spares.
 *
 * Spares count against the host's capacity: the pool only prewarms while the host has room, and gives a
 * parked spare up when a session needs the room.
 */
import { prewarm, type CanUseTool, type Options, type SpareProcess } from '@anthropic-ai/claude-agent-sdk';
import { rm } from 'node:fs/promises';
import { describeError } from '../errors.js';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import type { ClaimableSpare } from '../session/spare-claim.js';

export interface WarmPoolOptions {
  /** Spares to keep parked. */
  size: number;
  /** Tenants to prewarm for before any session asked; later spares follow the tenants that claim. */
  initialTenants: readonly string[];
  /**
   * Everything but `canUseTool` and the spawner that a spare of `tenant` runs with, and the directories
   * made for it alone (handed to the claimer).
   */
  spareOptions: (tenant: string) => Promise<{ options: Options; dirs?: SpareDirs }>;
  createSpawner: () => SpawnedTree;
  /** Whether the host has room for one more subprocess tree. */
  hasRoom: () => boolean;
  killGraceMs: number;
  onError?: (err: unknown) => void;
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

/** Directories prewarmed for one spare alone; whoever claims it takes them over. */
export interface SpareDirs {
  root: string;
  configDir: string;
  home: string;
}

interface Spare {
  tenant: string;
  dirs: SpareDirs | undefined;
  process: SpareProcess;
  spawner: SpawnedTree;
  route: { target?: CanUseTool };
}

/** The longest a claimed spare's replacement waits for the claimed turn to end. */
const REFILL_DELAY_MS = 5000;

/** The longest wait between two failed prewarms. */
const MAX_BACKOFF_MS = 30_000;

export class WarmPool {
  private readonly parked: Spare[] = [];
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

  /** Subprocess trees the pool holds: parked spares and spares being started. */
  get trees(): number {
    return this.parked.length + this.starting;
  }

  get stats(): WarmPoolStats {
    return { parked: this.parked.length, starting: this.starting, ...this.counts };
  }

  /** Whether a session of `tenant` would find a spare now. */
  has(tenant: string): boolean {
    return this.parked.some((s) => s.tenant === tenant);
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
    const spare = index >= 0 ? this.parked.splice(index, 1)[0] : undefined;
    // Whether or not one was found, this tenant is the one that wants the next spare.
    this.wanted.unshift(tenant);
    this.wanted.length = Math.min(this.wanted.length, this.options.size);
    if (!spare) {
      // A parked spare of a key nobody asked for since is given up for this one, so that the pool
      // follows the work (sessions of one tenant, or tasks) rather than its first guess.
      const idle = this.parked.findIndex((s) => !this.wanted.includes(s.tenant));
      if (idle >= 0 && this.parked.length + this.starting >= this.options.size) {
        const [given] = this.parked.splice(idle, 1);
        this.counts.lost += 1;
        void this.discard(given!).finally(() => this.fill());
      } else {
        setImmediate(() => this.fill());
      }
      return undefined;
    }
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
      bind: (canUseTool) => (spare.route.target = canUseTool),
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
      const spares = this.parked.splice(0);
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
    const spawner = this.options.createSpawner();
    const route: Spare['route'] = {};
    // canUseTool is fixed at prewarm: it forwards to whichever session claims the spare.
    const canUseTool: CanUseTool = (toolName, input, context) =>
      route.target
        ? route.target(toolName, input, context)
        : Promise.resolve({ behavior: 'deny', message: 'This process is not serving a session.' });
    return (async () => {
      let spare: SpareProcess | undefined;
      let dirs: SpareDirs | undefined;
      try {
        const made = await this.options.spareOptions(tenant);
        const options = made.options;
        dirs = made.dirs;
        spare = await prewarm({
          options: { ...options, canUseTool, spawnClaudeCodeProcess: (o) => spawner.spawn(o) },
        });
      } catch (err) {
        this.starting -= 1;
        await spawner.kill(this.options.killGraceMs).catch(() => undefined);
        if (dirs) await rm(dirs.root, { recursive: true, force: true }).catch(() => undefined);
        this.options.onError?.(new Error(`prewarming a spare failed: ${describeError(err)}`));
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
        if (index < 0) return; // claimed or discarded: not ours any more
        this.parked.splice(index, 1);
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
