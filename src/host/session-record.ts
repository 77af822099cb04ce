/** A new session's registry record, and the rules for session ids (the API's and the generated ones). */
import { BerthError } from '../errors.js';
import { ID_PATTERN, newSessionId } from '../ids.js';
import { ZERO_USAGE } from '../session/events.js';
import { newSdkSessionId } from '../session/session-process.js';
import type { AgentConfig, ManagedSessionFields, Pattern, SessionRecord } from '../stores/types.js';

export interface CreateSessionInput {
  id?: string | undefined;
  title?: string | undefined;
  metadata?: Record<string, string> | undefined;
  pattern?: Pattern | undefined;
  agent?: AgentConfig | undefined;
  /** Its Managed Agents fields (agent version, environment, budget); none for a group's agents. */
  managed?: ManagedSessionFields | undefined;
}

/** @throws BerthError `invalid_id` unless `id` matches {@link ID_PATTERN}. */
export function checkSessionId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new BerthError(
      'invalid_id',
      `${JSON.stringify(id.slice(0, 80))} is not a session id: ids match ${ID_PATTERN.source}`,
    );
  }
}

/** The record of a session not started yet: `idle`, no turns, a fresh SDK session id. */
export function newSessionRecord(tenant: string, input: CreateSessionInput, pattern: Pattern): SessionRecord {
  const id = input.id ?? newSessionId();
  checkSessionId(id);
  const now = Date.now();
  return {
    id,
    tenant,
    title: input.title ?? null,
    metadata: input.metadata ?? {},
    pattern,
    agent: input.agent ?? {},
    status: 'idle',
    sdkSessionId: newSdkSessionId(),
    started: false,
    createdAt: now,
    updatedAt: now,
    usage: { ...ZERO_USAGE },
    turns: 0,
    ...(input.managed && { managed: input.managed }),
  };
}
