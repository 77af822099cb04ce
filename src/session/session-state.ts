/**
 * The states of a {@link Session}, the transitions between them, and the status clients see.
 *
 * - `cold`: no subprocess; the next turn starts one (resuming the transcript if there is one).
 * - `starting`: a turn is getting its subprocess: waiting for room on the host, restoring the workspace
 *   of a suspended session, spawning or claiming a warm spare. It holds a slot. Ends in `running`, or
 *   back where it came from (`cold` or `suspended`) when the start failed.
 * - `idle`: a subprocess is alive and waiting for input. Recycling it is `idle -> cold`.
 * - `running`: a turn is in progress. A subprocess that ends mid-turn (it crashed, an interrupt did not
 *   settle, the hard RSS limit) ends the turn with an error: `running -> cold`.
 * - `requires_action`: a turn is paused until a client answers a tool confirmation.
 * - `suspending`: the subprocess is ending and the host is making the transcript durable and the
 *   workspace a snapshot. A message that arrives meanwhile waits for it. Ends `suspended`, or `cold`
 *   when it failed (the session stays resumable on this host).
 * - `suspended`: no subprocess, the transcript is in the store and the workspace in the blob store; the
 *   next turn hydrates it, on this host or another.
 * - `closed`: terminated; nothing runs and nothing is accepted.
 */
import type { SessionStatus } from '../stores/types.js';

export type SessionState =
  'cold' | 'starting' | 'idle' | 'running' | 'requires_action' | 'suspending' | 'suspended' | 'closed';

export const SESSION_TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  cold: ['starting', 'suspending', 'closed'],
  starting: ['running', 'cold', 'suspended', 'closed'],
  idle: ['running', 'cold', 'suspending', 'closed'],
  running: ['idle', 'requires_action', 'cold', 'closed'],
  requires_action: ['running', 'cold', 'closed'],
  suspending: ['suspended', 'cold', 'closed'],
  suspended: ['starting', 'closed'],
  closed: [],
};

/** The status clients see for each state. */
export const PUBLIC_STATUS: Readonly<Record<SessionState, SessionStatus>> = {
  cold: 'idle',
  starting: 'running',
  idle: 'idle',
  running: 'running',
  requires_action: 'requires_action',
  suspending: 'idle',
  suspended: 'suspended',
  closed: 'terminated',
};

/** Throws unless `from -> to` is a transition of the table (staying in a state is not one). */
export function assertTransition(sessionId: string, from: SessionState, to: SessionState): void {
  if (!SESSION_TRANSITIONS[from].includes(to)) {
    throw new Error(`Session ${sessionId}: illegal transition ${from} -> ${to}`);
  }
}

/** The state a session loaded from its record starts in. */
export function initialState(status: SessionStatus): SessionState {
  if (status === 'terminated') return 'closed';
  if (status === 'suspended') return 'suspended';
  return 'cold';
}
