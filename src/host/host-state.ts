/**
 * The life of a SessionHost, one state at a time:
 * - `ready`: sessions, turns and tasks are admitted.
 * - `draining`: `drain()` was called (SIGTERM). Nothing new is admitted (`503 host_draining`); running turns
 *   get the grace period, then their subprocesses are stopped and every session is suspended. The host
 *   stays `draining` once that is done, until it is closed.
 * - `closing`: `close()` was called; every subprocess is being stopped and nothing is admitted
 *   (`503 not_ready`).
 * - `closed`: every subprocess the host started is gone. Nothing leaves this state.
 *
 * `ready -> draining -> closing -> closed`, and `ready -> closing` for a close without a drain. Any other
 * move is a bug in the caller and throws; a second `drain()` or `close()` is the host's to absorb (both are
 * idempotent), never a transition.
 */
import { BerthError } from '../errors.js';

export type HostState = 'ready' | 'draining' | 'closing' | 'closed';

const TRANSITIONS: Record<HostState, readonly HostState[]> = {
  ready: ['draining', 'closing'],
  draining: ['closing'],
  closing: ['closed'],
  closed: [],
};

export class HostLifecycle {
  private current: HostState = 'ready';

  get state(): HostState {
    return this.current;
  }

  /** Moves to `next`; an illegal move throws and leaves the state as it was. */
  to(next: HostState): void {
    if (!TRANSITIONS[this.current].includes(next)) {
      throw new Error(`SessionHost: illegal transition ${this.current} -> ${next}`);
    }
    this.current = next;
  }

  /**
   * Throws unless a subprocess may start now: never while the host drains (the message runs on the next
   * host) or closes (a turn queued before the close must not start a subprocess that close() cannot see).
   */
  assertStarting(): void {
    if (this.current === 'draining') {
      throw new BerthError('host_draining', 'This host is draining; the message runs on the next host');
    }
    this.assertAdmitting();
  }

  /** Throws what a client is told when the host admits nothing new; returns when it is `ready`. */
  assertAdmitting(): void {
    switch (this.current) {
      case 'ready':
        return;
      case 'draining':
        throw new BerthError('host_draining', 'This host is draining; send the request to another host', {
          retryAfterSeconds: 1,
        });
      case 'closing':
      case 'closed':
        throw new BerthError('not_ready', 'This host is shutting down');
    }
  }
}
