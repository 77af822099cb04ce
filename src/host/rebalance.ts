/**
 * Multi-host mode: when the set of live hosts changes, a session whose rendezvous choice is now another
 * host moves there, at its next idle moment and never mid-turn: this host suspends it (transcript
 * durable, workspace snapshotted) and gives its lease back (session-leases.ts); the next request for it
 * goes to the new choice, which hydrates it. Only the sessions whose choice changed move: adding a host
 * to N moves about 1/(N+1) of them (weighted by capacity, see placement.ts).
 */
import { rankHosts, routingKey } from '../placement.js';
import type { Session } from '../session/session.js';
import type { HostEntry } from '../stores/coordination.js';

/** Moves at once per heartbeat, so that a new host fills gradually and this one keeps serving. */
const MOVES_PER_ROUND = 4;

export interface RebalanceHost {
  readonly liveSessions: readonly Session[];
  suspend(session: Session, reason: string): Promise<boolean>;
}

export class Rebalancer {
  private moving = 0;

  constructor(
    private readonly host: RebalanceHost,
    private readonly hostId: string,
    /** Whether this host holds the session's lease. */
    private readonly holds: (session: Session) => boolean,
    /** Gives the lease of a session already suspended back (one loaded here by a read, say). */
    private readonly release: (session: Session) => Promise<void>,
    private readonly onError: ((err: unknown) => void) | undefined,
  ) {}

  /** One round, with the live hosts of the latest heartbeat. */
  round(hosts: readonly HostEntry[]): void {
    // Only while this host is itself live and ready: a draining host suspends everything anyway.
    if (!hosts.some((h) => h.id === this.hostId && h.state === 'ready')) return;
    for (const session of this.host.liveSessions) {
      if (this.moving >= MOVES_PER_ROUND) return;
      const suspended = session.currentState === 'suspended';
      if (!this.holds(session) || (!suspended && !session.isQuiet)) continue;
      const { tenant, id } = session.snapshot;
      const choice = rankHosts(routingKey(tenant, id), hosts)[0];
      if (!choice || choice.id === this.hostId) continue;
      this.moving += 1;
      // A suspended session holds nothing here but its lease.
      const move = suspended
        ? this.release(session).then(() => true)
        : this.host.suspend(session, 'rebalance');
      move.catch((err: unknown) => this.onError?.(err)).finally(() => (this.moving -= 1));
    }
  }
}
