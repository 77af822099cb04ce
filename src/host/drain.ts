/**
 * Draining a host (SIGTERM), once the host has stopped admitting (state `draining`, see host-state.ts):
 * 1. the warm pool is closed: spares are nobody's work and would only be killed later;
 * 2. running turns and tasks get `graceMs` to end. Each is waited on (`Session.whenNotBusy`, the
 *    admission's task slots), so the drain goes on the moment the last one ends;
 * 3. the subprocesses of turns still running are stopped: those turns end with `session.error`
 *    `subprocess_stopped`, and the messages queued behind them are refused (`host_draining`);
 * 4. sessions this host ran before a restart and never snapshotted are loaded, so they are suspended too;
 * 5. every idle or cold session is suspended (transcript durable, workspace snapshotted, subprocess
 *    closed), `DRAIN_CONCURRENCY` at a time. A later host hydrates them all.
 * Tasks still running after the grace period are left to `TaskRunner.close`.
 */
import type { Session } from '../session/session.js';
import type { SessionRef } from '../stores/types.js';
import type { WarmPool } from './warm-pool.js';

/** Sessions suspended at once while draining. */
const DRAIN_CONCURRENCY = 4;

/**
 * How long stopped turns get to wind down (their subprocesses are already gone by then; this bounds a
 * turn stuck on something else, such as a registry write).
 */
const STOPPED_TURNS_SETTLE_MS = 2000;

export interface DrainResult {
  suspended: number;
  failed: number;
  /** Turns still running at the end of the grace period, whose subprocesses were stopped. */
  stoppedTurns: number;
}

export interface DrainOptions {
  /** The host's live sessions, read anew at each step (step 4 adds some). */
  sessions: () => readonly Session[];
  pool: WarmPool | undefined;
  /** Resolves once no task holds a slot. */
  whenTasksDone: () => Promise<void>;
  suspend: (session: Session, reason: string) => Promise<boolean>;
  /** Sessions whose workspace copy on this host is newer than their snapshot (none without snapshots). */
  unsaved: () => Promise<SessionRef[]>;
  /** Loads a session into the host. */
  load: (ref: SessionRef) => Promise<unknown>;
  onError: ((err: unknown) => void) | undefined;
}

export async function drainSessions(options: DrainOptions, graceMs: number): Promise<DrainResult> {
  await options.pool?.close();
  await settlesWithin(
    Promise.all([options.whenTasksDone(), ...options.sessions().map((s) => s.whenNotBusy())]),
    graceMs,
  );
  const running = options.sessions().filter((s) => s.isBusy);
  await Promise.allSettled(
    running.map((s) => s.stopProcess('The host is draining and the turn ran past the grace period.')),
  );
  await settlesWithin(Promise.all(running.map((s) => s.whenNotBusy())), STOPPED_TURNS_SETTLE_MS);
  for (const ref of await options.unsaved()) {
    await options.load(ref).catch((err: unknown) => options.onError?.(err));
  }
  const result: DrainResult = { suspended: 0, failed: 0, stoppedTurns: running.length };
  const quiet = options.sessions().filter((s) => s.currentState === 'idle' || s.currentState === 'cold');
  for (let i = 0; i < quiet.length; i += DRAIN_CONCURRENCY) {
    const batch = quiet.slice(i, i + DRAIN_CONCURRENCY);
    const outcomes = await Promise.all(batch.map((s) => options.suspend(s, 'host_draining')));
    for (const ok of outcomes) {
      if (ok) result.suspended += 1;
      else result.failed += 1;
    }
  }
  await Promise.allSettled(options.sessions().map((s) => s.events.flush()));
  return result;
}

/** Waits for `promise` at most `ms`; whether it settled in time. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
