/**
 * What deleting a session removes once it is terminated, in this order: its transcript, its events, its
 * registry record, its workspace snapshot, its lease, its working directory (and a multi-agent session's
 * own config dir and home). The record goes before the host forgets the session object, so that a request
 * meanwhile finds the closed session rather than its record loaded back from the registry.
 *
 * The transcript store must have `delete`: the SDK lets a store leave it out (deleting is then a no-op),
 * but a removal that skipped it would keep the transcript of a session that is gone. The type requires it
 * (`CompleteSessionStore`: every store Berth opens), and a store that lies about it is refused before
 * anything is removed.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { BerthError } from '../errors.js';
import {
  sessionKey,
  type CompleteSessionStore,
  type EventLog,
  type SessionRecord,
  type SessionRegistry,
} from '../stores/types.js';
import type { SessionPaths } from '../session/session-types.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import type { SessionLeases } from './session-leases.js';

export interface SessionRemoval {
  /** The transcript store, scoped to the session's tenant. */
  transcriptStore: CompleteSessionStore;
  eventLog: EventLog;
  registry: SessionRegistry;
  workspaces: WorkspaceSync | undefined;
  leases: SessionLeases | undefined;
  paths: SessionPaths;
  /** The host forgets the session object (after the registry record is gone). */
  forget: () => void;
}

export async function removeSessionData(record: SessionRecord, removal: SessionRemoval): Promise<void> {
  const ref = { tenant: record.tenant, id: record.id };
  const { transcriptStore } = removal;
  if (!transcriptStore.delete) {
    throw new BerthError(
      'invalid_config',
      `cannot delete session ${record.id}: its transcript store has no delete(), so the transcript would stay`,
    );
  }
  await transcriptStore.delete({ projectKey: record.tenant, sessionId: record.sdkSessionId });
  await removal.eventLog.deleteSession(sessionKey(ref));
  await removal.registry.delete(ref);
  removal.forget();
  await removal.workspaces?.remove(ref);
  await removal.leases?.forget(ref);
  await rm(removal.paths.cwd, { recursive: true, force: true });
  if (record.pattern === 'multi-agent') {
    // A multi-agent session's config dir and home are its own (see layout.ts), so they go with it.
    await rm(path.dirname(removal.paths.configDir), { recursive: true, force: true });
  }
}
