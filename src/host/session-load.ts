/**
 * Loading a session this host does not hold in memory: after a restart, after a suspension, or because
 * another host ran it until now. Its record and last event seq come from the stores (in multi-host mode
 * read again once this host holds the lease, so that they are what the last holder left); its
 * directories are made here, the same on every host; a suspended session's workspace download starts at
 * once; a turn its last host was running when it died is ended (restart-recovery.ts).
 */
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { Session, SessionPaths } from '../session/session.js';
import { scopeTranscriptStore } from '../stores/scoped-store.js';
import {
  sessionKey,
  type EventLog,
  type SessionRecord,
  type SessionRef,
  type SessionRegistry,
} from '../stores/types.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import { recoverInterruptedTurn, wasMidTurn } from './restart-recovery.js';
import type { SessionLeases } from './session-leases.js';

export interface LoadDeps {
  registry: SessionRegistry;
  eventLog: EventLog;
  transcriptStore: SessionStore;
  leases: SessionLeases | undefined;
  workspaces: WorkspaceSync | undefined;
  onError: ((err: unknown) => void) | undefined;
  /** Makes the session object and registers it with the host. */
  instantiate: (record: SessionRecord, lastSeq: number) => { session: Session; paths: SessionPaths };
  makeDirs: (tenant: string, paths: SessionPaths) => Promise<void>;
}

/** The session, loaded; undefined when the tenant has none with this id. */
export async function loadSession(ref: SessionRef, deps: LoadDeps): Promise<Session | undefined> {
  let record = await deps.registry.get(ref);
  if (!record) return undefined;
  if (deps.leases) {
    // Throws session_elsewhere when a live host holds it (the request is forwarded there).
    await deps.leases.claim(ref);
    record = await deps.registry.get(ref);
    if (!record) return undefined;
    deps.leases.bindTranscript(ref, record.sdkSessionId);
  }
  const lastSeq = await deps.eventLog.lastSeq(sessionKey(ref));
  const { session, paths } = deps.instantiate(record, lastSeq);
  await deps.makeDirs(record.tenant, paths);
  if (record.status === 'suspended') {
    // A client that loads a suspended session is about to use it: start the download now.
    deps.workspaces?.fetch(record, paths.cwd).catch((err: unknown) => deps.onError?.(err));
  }
  if (wasMidTurn(record)) {
    await recoverInterruptedTurn(session, record, {
      paths,
      store: scopeTranscriptStore(deps.transcriptStore, record.tenant),
      registry: deps.registry,
      onError: deps.onError,
    });
  }
  return session;
}
