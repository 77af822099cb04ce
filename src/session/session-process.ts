/**
 * The subprocess a session's turn starts: a claimed warm spare for a session that has no transcript
 * yet, else a `query()` that starts the transcript or resumes it from the store - in the tenant's config
 * dir (see `resume.ts`), with the options every subprocess gets (see `sdk-options.ts`).
 */
import { randomUUID } from 'node:crypto';
import type { CanUseTool, SDKMessage } from '@anthropic-ai/claude-agent-sdk';
import type { SessionRecord } from '../stores/types.js';
import { AgentProcess } from './agent-process.js';
import { adoptResumedTranscript, readCostBaseline } from './resume.js';
import { buildQueryOptions } from './sdk-options.js';
import type { SessionSetup } from './session-types.js';
import type { ClaimableSpare } from './spare-claim.js';

export interface SessionProcessRequest {
  /** The session's own options. */
  setup: Pick<
    SessionSetup,
    | 'paths'
    | 'env'
    | 'transcriptStore'
    | 'runtime'
    | 'createSpawner'
    | 'timeouts'
    | 'processOptions'
    | 'observer'
  >;
  record: SessionRecord;
  canUseTool: CanUseTool;
  /** A warm spare to claim (only for a session without a transcript). */
  spare: ClaimableSpare | undefined;
  /** When the turn that starts it began (epoch ms), and whether a workspace was restored for it. */
  start: { at: number | undefined; hydrated: boolean };
  report: (err: unknown) => void;
}

/** A fresh SDK session id (the SDK requires a UUID). */
export function newSdkSessionId(): string {
  return randomUUID();
}

/** Starts the session's subprocess (streaming input: the caller pushes the turn's message). */
export function startSessionProcess(request: SessionProcessRequest): AgentProcess {
  const { record, spare, setup } = request;
  const { paths } = setup;
  // A resumed CLI restores the session's cost so far from its transcript (see resume.ts).
  let costBaseline = 0;
  return AgentProcess.start({
    runtime: setup.runtime,
    createSpawner: setup.createSpawner,
    owner: {
      tenant: record.tenant,
      id: record.id,
      allowedDomains: record.agent.network?.allowed_domains,
      memoryBytes: record.agent.memory_bytes,
    },
    killGraceMs: setup.timeouts.killGraceMs,
    prompt: 'streaming',
    costBaseline: () => costBaseline,
    onError: request.report,
    onFirstMessage: (warm) => {
      const { at, hydrated } = request.start;
      if (at === undefined) return;
      setup.observer?.started(warm ? 'warm' : hydrated ? 'hydrate' : 'cold', Date.now() - at);
    },
    spare: spare && {
      spare,
      request: {
        cwd: paths.cwd,
        agent: record.agent,
        title: record.title ?? undefined,
        canUseTool: request.canUseTool,
        onRunsAnyway: (reason) => request.report(new Error(`session ${record.id}: ${reason}`)),
      },
    },
    queryOptions: ({ spawn, abortController }) =>
      buildQueryOptions(record.agent, {
        cwd: paths.cwd,
        env: setup.env,
        canUseTool: request.canUseTool,
        spawn: (spawnRequest) => {
          const adopted = adoptResumedTranscript(spawnRequest, paths.configDir);
          if (record.started) costBaseline = readCostBaseline(paths.configDir, record.sdkSessionId);
          return spawn(adopted);
        },
        abortController,
        transcript: {
          store: setup.transcriptStore,
          sessionId: record.sdkSessionId,
          resume: record.started,
        },
        extra: setup.processOptions?.(),
      }),
  });
}

/**
 * What the CLI's `init` message changes in the session's record: the transcript exists from now on, and
 * a claimed spare runs under the session id the CLI chose (the transcript is keyed by it).
 */
export function initPatch(
  message: SDKMessage,
  record: SessionRecord,
  warm: boolean,
): Partial<SessionRecord> | undefined {
  if (message.type !== 'system' || message.subtype !== 'init') return undefined;
  if (warm && message.session_id !== record.sdkSessionId) {
    return { started: true, sdkSessionId: message.session_id };
  }
  return record.started ? undefined : { started: true };
}
