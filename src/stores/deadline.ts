/**
 * Deadlines on store calls. A store that hangs (a Redis stopped with SIGSTOP, a network that drops packets,
 * a stalled disk) must count as a failure exactly like one that refuses the connection: the call rejects
 * with `BerthError('store_unavailable')` once the deadline passes, so that the durable mirror reports the
 * outage (`mirror_delayed`) and callers fail instead of waiting for ever.
 *
 * A {@link Deadline} is an `AbortSignal` that fires at the deadline or when the caller's own signal fires;
 * the work gets that signal, so drivers that take one stop too. A call's deadline is fixed, except for
 * transfers (a blob streamed in or out), whose deadline moves with every chunk (`touch()`): there the
 * deadline bounds a stall, not the size of the blob.
 *
 * The deadline itself comes from the compiled config (`--store-timeout`); this module never reads env.
 */
import { setMaxListeners } from 'node:events';
import { BerthError } from '../errors.js';
import { untilAborted } from './abort.js';

/** The deadline of a store call when none is configured: `--store-timeout`'s default. */
export const DEFAULT_STORE_TIMEOUT_MS = 10_000;

export class Deadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private expiredAt: number | undefined;
  private readonly onCallerAbort: (() => void) | undefined;

  /**
   * @param what names the call in the error, e.g. `redis append events`.
   * @param ms the time allowed; 0 or Infinity for none (the caller's signal still applies).
   */
  constructor(
    private readonly what: string,
    private readonly ms: number,
    private readonly caller?: AbortSignal,
  ) {
    // One call may fan out into many requests that each listen (a listing, then 16 GETs at once); the
    // signal lives as long as the call, so the listener-leak warning would only be noise.
    setMaxListeners(0, this.controller.signal);
    if (caller?.aborted) this.controller.abort(caller.reason);
    else if (caller) {
      this.onCallerAbort = () => this.controller.abort(caller.reason);
      caller.addEventListener('abort', this.onCallerAbort, { once: true });
    }
    this.touch();
  }

  /** Fires at the deadline or with the caller's signal, whichever comes first. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the deadline (not the caller) stopped the call. */
  get expired(): boolean {
    return this.expiredAt !== undefined;
  }

  /** Moves the deadline to `ms` from now: a transfer that makes progress is not hanging. */
  touch(): void {
    if (this.controller.signal.aborted || !(this.ms > 0) || this.ms === Infinity) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.expiredAt = Date.now();
      this.controller.abort(this.timeoutError());
    }, this.ms);
    // A pending store call keeps the process alive by itself; the timer must not add to that.
    this.timer.unref();
  }

  /**
   * Runs `work` with this deadline's signal and releases the deadline when it settles. Rejects with
   * `store_unavailable` when the deadline passes first (whatever `work` does later is dropped), with
   * `aborted` when the caller's signal fires first, else as `work` does.
   */
  async run<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await untilAborted(this.signal, this.what, () => work(this.signal));
    } catch (err) {
      throw this.expired ? this.timeoutError(err) : err;
    } finally {
      this.dispose();
    }
  }

  /** Stops the timer and forgets the caller's signal. */
  dispose(): void {
    clearTimeout(this.timer);
    if (this.onCallerAbort) this.caller?.removeEventListener('abort', this.onCallerAbort);
  }

  private timeoutError(cause?: unknown): BerthError {
    return new BerthError(
      'store_unavailable',
      `${this.what} failed: no answer within ${this.ms} ms (the store may be hanging)`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** `work` under a fresh {@link Deadline}; see {@link Deadline.run}. */
export function withDeadline<T>(
  what: string,
  ms: number,
  signal: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return new Deadline(what, ms, signal).run(work);
}

/** Runs one store call (`what`, e.g. `store append events`) inside telemetry: a span, an error count. */
export type StoreObserver = <T>(what: string, call: () => Promise<T>) => Promise<T>;

/**
 * The writes of one store that passed their deadline and may still land. Every later call waits for them
 * first (within its own deadline), so that a write abandoned at its deadline cannot land after a newer
 * write, and a read after it sees it: a retry of the same write then finds it stored.
 */
export class AbandonedWrites {
  private readonly pending = new Set<Promise<unknown>>();

  /** `observe`: telemetry's wrapper around every call (a span, the store's error count). */
  constructor(private readonly observe?: StoreObserver) {}

  /** Runs a write under a deadline, after the abandoned writes; stopped before it answers, it is abandoned. */
  write<T>(
    what: string,
    ms: number,
    signal: AbortSignal | undefined,
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return this.call(what, ms, signal, work, true);
  }

  /** Runs a read under a deadline, after the abandoned writes. */
  read<T>(
    what: string,
    ms: number,
    signal: AbortSignal | undefined,
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return this.call(what, ms, signal, work, false);
  }

  /** How many abandoned writes have not settled yet. */
  get size(): number {
    return this.pending.size;
  }

  private call<T>(
    what: string,
    ms: number,
    signal: AbortSignal | undefined,
    work: (signal: AbortSignal) => Promise<T>,
    isWrite: boolean,
  ): Promise<T> {
    const run = (): Promise<T> => this.callNow(what, ms, signal, work, isWrite);
    return this.observe ? this.observe(what, run) : run();
  }

  private async callNow<T>(
    what: string,
    ms: number,
    signal: AbortSignal | undefined,
    work: (signal: AbortSignal) => Promise<T>,
    isWrite: boolean,
  ): Promise<T> {
    const deadline = new Deadline(what, ms, signal);
    let started: Promise<T> | undefined;
    try {
      return await deadline.run(async (s) => {
        if (this.pending.size > 0) await Promise.all(this.pending);
        // Stopped while waiting: the call has already rejected, and must not start its work late.
        s.throwIfAborted();
        started = work(s);
        return await started;
      });
    } catch (err) {
      // Stopped before the write answered (its deadline or its caller): it may still land.
      if (isWrite && started && deadline.signal.aborted) this.abandon(started);
      throw err;
    }
  }

  private abandon(write: Promise<unknown>): void {
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
  }
}
