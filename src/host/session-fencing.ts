/**
 * Multi-host: what a host does with a session object it may no longer run (see session-leases.ts).
 * `fenceOff` stops it quietly, the store already refusing its writes; `stillOwned` checks an object
 * before it is used or starts a subprocess, and fences it off when another host ran the session since.
 */
import type { Session } from '../session/session.js';
import { sessionKey } from '../stores/types.js';
import type { SessionLeases } from './session-leases.js';

/**
 * Another host took the session over (this one was paused or cut off past its TTL, or the object is
 * older than this host's lease): the object leaves `sessions` if it is there, its streams end (clients
 * reconnect to where the session runs now), and its subprocess stops.
 */
export function fenceOff(
  sessions: Map<string, Session>,
  key: string,
  session: Session | undefined,
  onError: ((err: unknown) => void) | undefined,
): void {
  if (!session) return;
  if (sessions.get(key) === session) sessions.delete(key);
  session.events.end();
  session.stopProcess('Another host runs this session now.').catch((err: unknown) => onError?.(err));
}

/** Whether `session` may run here; a stale one is fenced off, and `session_elsewhere` rethrown. */
export async function stillOwned(
  sessions: Map<string, Session>,
  session: Session,
  leases: SessionLeases,
  onError: ((err: unknown) => void) | undefined,
): Promise<boolean> {
  const key = sessionKey(session.snapshot);
  const owned = await leases.stillOwns(session, session.snapshot).catch((err: unknown) => {
    fenceOff(sessions, key, session, onError);
    throw err;
  });
  if (!owned) fenceOff(sessions, key, session, onError);
  return owned;
}
