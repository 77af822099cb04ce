/**
 * Claiming a prewarmed subprocess (see `WarmPool`), the same way for a session's first turn and for a
 * task: the claim carries the cwd, model and permission mode (everything else is fixed at prewarm), the
 * spare's `canUseTool` and tool-policy hook are bound to the claimer, and the pool is told how it settled.
 */
import type { CanUseTool, Query, SDKUserMessage, SpareProcess } from '@anthropic-ai/claude-agent-sdk';
import { describeError } from '../errors.js';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import type { AgentConfig } from '../stores/types.js';
import { buildClaimOptions } from './sdk-options.js';
import { toolPolicyOf, type ToolPolicy } from './tool-policy.js';

/** What a spare's callbacks, fixed at prewarm, forward to once it is claimed. */
export interface SpareClaimer {
  canUseTool: CanUseTool;
  /** What a session's spare's `PreToolUse` hook decides by (a task's spare has no such hook). */
  toolPolicy: ToolPolicy;
}

/** A prewarmed subprocess (see `WarmPool`) that a session or a task can bind to instead of spawning. */
export interface ClaimableSpare {
  readonly spare: SpareProcess;
  readonly spawner: SpawnedTree;
  /** Routes the spare's `canUseTool` and tool-policy hook, fixed at prewarm, to the claimer. */
  bind(claimer: SpareClaimer): void;
  /** Called once the claim is settled: `claimed` false means it was refused and the claimer fell back. */
  settled(claimed: boolean, reason?: string): void;
  /** Called when the claimed process's first turn has ended: the pool may start a replacement now. */
  firstTurnEnded(): void;
  /** Directories prewarmed for this spare alone (a task's config dir and home), if any. */
  readonly dirs?: { root: string; configDir: string; home: string };
}

export interface SpareClaimRequest {
  prompt: string | AsyncIterable<SDKUserMessage>;
  cwd: string;
  /** The claimable agent settings: the claim's, and the tool policy the spare's hook asks. */
  agent: {
    model?: AgentConfig['model'] | undefined;
    permission_mode?: AgentConfig['permission_mode'] | undefined;
    tools?: AgentConfig['tools'] | undefined;
    allowed_tools?: AgentConfig['allowed_tools'] | undefined;
    ask_tools?: AgentConfig['ask_tools'] | undefined;
  };
  title?: string | undefined;
  canUseTool: CanUseTool;
  /** A claim that runs the prompt although the spare refused part of it (the model was not applied). */
  onRunsAnyway: (reason: string) => void;
}

export interface SpareClaim {
  query: Query;
  /** True once the claim is honoured (or refused in the one way the prompt still runs); false when refused. */
  claimed: Promise<boolean>;
}

/** Claims `spare` for one prompt; undefined when it died or was closed before it could be claimed. */
export function claimSpare(spare: ClaimableSpare, request: SpareClaimRequest): SpareClaim | undefined {
  spare.bind({ canUseTool: request.canUseTool, toolPolicy: toolPolicyOf(request.agent) });
  let query: Query;
  try {
    query = spare.spare.claim({
      prompt: request.prompt,
      options: buildClaimOptions(request.agent, request.cwd, request.title),
    });
  } catch (err) {
    // claim() throws when the spare died or was closed before it was claimed.
    spare.settled(false, describeError(err));
    return undefined;
  }
  const claimed = spare.spare.claimed.then(
    () => {
      spare.settled(true);
      return true;
    },
    (err: unknown) => {
      const reason = describeError(err);
      // The one refusal after which the prompt runs anyway: the model was not applied.
      const runs = reason.startsWith('option_not_applied');
      spare.settled(runs, reason);
      if (runs) request.onRunsAnyway(reason);
      return runs;
    },
  );
  return { query, claimed };
}
