/**
 * The SDK `Options` of every subprocess Berth starts - a session's, a group agent's, a task's, a warm
 * spare's - and the options of a warm-spare claim, built in one place, so that the isolation levers are
 * applied the same way everywhere:
 * - `settingSources: []`: no settings files, project `CLAUDE.md` or hooks from the agent's directories;
 * - the environment built from nothing (`buildAgentEnv`), with the tenant's `CLAUDE_CONFIG_DIR`, a
 *   `HOME` of its own and auto memory off;
 * - an explicit per-session (or per-task) `cwd`.
 * Extra options (a group's message bus) are applied first, so they cannot replace any of these.
 */
import type { CanUseTool, ClaimOptions, Options, SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { AgentConfig } from '../stores/types.js';

/** What a subprocess needs from outside its agent config. */
export interface ProcessSetup {
  cwd: string;
  /** The complete subprocess environment (see `buildAgentEnv`). */
  env: Record<string, string>;
  canUseTool: CanUseTool;
  /** Passed as `options.spawnClaudeCodeProcess`. */
  spawn: NonNullable<Options['spawnClaudeCodeProcess']>;
  /** Aborting it ends the subprocess (the SDK kills it, then the spawner its whole tree). */
  abortController: AbortController;
  /**
   * The session's transcript: its SDK session id, whether the transcript exists already (then the
   * process resumes it), and the store it is mirrored to. Undefined for a process that keeps no
   * transcript (an ephemeral task).
   */
  transcript?: { store: SessionStore; sessionId: string; resume: boolean } | undefined;
  /** More options (a group's MCP bus, its shared directory); they cannot replace the ones above. */
  extra?: Partial<Options> | undefined;
}

/** The agent-config part of the options, as the CLI takes them. */
function agentOptions(agent: AgentConfig): Partial<Options> {
  return {
    ...(agent.model !== undefined && { model: agent.model }),
    ...(agent.system_prompt !== undefined && { systemPrompt: agent.system_prompt }),
    ...(agent.allowed_tools !== undefined && { allowedTools: agent.allowed_tools }),
    ...(agent.disallowed_tools !== undefined && { disallowedTools: agent.disallowed_tools }),
    ...(agent.permission_mode !== undefined && { permissionMode: agent.permission_mode }),
    ...(agent.max_turns !== undefined && { maxTurns: agent.max_turns }),
  };
}

/** The options of one subprocess started with `query()`. */
export function buildQueryOptions(agent: AgentConfig, setup: ProcessSetup): Options {
  const transcript = setup.transcript;
  return {
    ...setup.extra,
    ...agentOptions(agent),
    cwd: setup.cwd,
    env: setup.env,
    settingSources: [],
    canUseTool: setup.canUseTool,
    spawnClaudeCodeProcess: setup.spawn,
    abortController: setup.abortController,
    ...(transcript
      ? {
          sessionStore: transcript.store,
          ...(transcript.resume ? { resume: transcript.sessionId } : { sessionId: transcript.sessionId }),
        }
      : { persistSession: false }),
  };
}

/** Agent settings a claim carries in full; everything else is fixed when the spare is prewarmed. */
export const CLAIMABLE_AGENT_KEYS: ReadonlySet<keyof AgentConfig> = new Set(['model', 'permission_mode']);

/** The options of a warm-spare claim: the cwd, the model, the permission mode and the title. */
export function buildClaimOptions(
  agent: Pick<AgentConfig, 'model' | 'permission_mode'>,
  cwd: string,
  title?: string,
): ClaimOptions {
  return {
    cwd,
    ...(agent.model !== undefined && { model: agent.model }),
    ...(agent.permission_mode !== undefined && { permissionMode: agent.permission_mode }),
    ...(title !== undefined && { title }),
  };
}

/** What a warm spare is started with; the rest (cwd, model, permission mode) comes with its claim. */
export interface SpareSetup {
  /** The complete subprocess environment (see `buildAgentEnv`). */
  env: Record<string, string>;
  /** Fixed at prewarm: it forwards to whichever session or task claims the spare. */
  canUseTool: CanUseTool;
  spawn: NonNullable<Options['spawnClaudeCodeProcess']>;
  /** The tenant's transcript scope; none for a task's spare (a task keeps no transcript). */
  transcriptStore?: SessionStore | undefined;
  /**
   * Where the spare starts: a directory its claimer's cwd is under, so that a sandbox, whose mounts are
   * fixed at start, has the claimer's cwd inside (see `DataDirLayout.spareEnvironment`).
   */
  cwd?: string | undefined;
}

/** The options of a spare started with `prewarm()`. */
export function buildSpareOptions(setup: SpareSetup): Options {
  return {
    env: setup.env,
    ...(setup.cwd && { cwd: setup.cwd }),
    settingSources: [],
    canUseTool: setup.canUseTool,
    spawnClaudeCodeProcess: setup.spawn,
    ...(setup.transcriptStore && { sessionStore: setup.transcriptStore }),
  };
}
