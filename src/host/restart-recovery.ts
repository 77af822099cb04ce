/**
 * A session whose host went away mid-turn (SIGKILL, a crash) is loaded by the next host with the status
 * `running` or `requires_action` in its record. The turn is over, the session is not: what its subprocess
 * wrote to the local transcript but the SDK never mirrored goes to the store first (when this host has
 * that transcript, i.e. it runs on the same data dir), then the session's clients are told
 * (`session.error` `host_restarted`, then `session.status_idle`) and the record goes back to `idle`.
 */
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { Session, SessionPaths } from '../session/session.js';
import { findLocalTranscript, reconcileTranscript } from '../stores/reconcile.js';
import type { SessionRecord, SessionRegistry } from '../stores/types.js';

/** Whether a loaded record says its turn was cut short by its host's end. */
export function wasMidTurn(record: SessionRecord): boolean {
  return record.status === 'running' || record.status === 'requires_action';
}

export async function recoverInterruptedTurn(
  session: Session,
  record: SessionRecord,
  deps: {
    paths: SessionPaths;
    /** The transcript store, scoped to the session's tenant. */
    store: SessionStore;
    registry: SessionRegistry;
    onError: ((err: unknown) => void) | undefined;
  },
): Promise<void> {
  const file = await findLocalTranscript(deps.paths.configDir, record.sdkSessionId);
  if (file) {
    await reconcileTranscript(file, deps.store, {
      projectKey: record.tenant,
      sessionId: record.sdkSessionId,
    }).catch((err: unknown) => deps.onError?.(err));
  }
  session.events.emit(
    {
      type: 'session.error',
      error: { type: 'host_restarted', message: 'The host restarted during this turn.' },
    },
    { type: 'session.status_idle', stop_reason: { type: 'error', subtype: 'host_restarted' } },
  );
  await deps.registry.update({ tenant: record.tenant, id: record.id }, { status: 'idle' });
}
