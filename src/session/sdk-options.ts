/**
 * The SDK `Options` of every subprocess Berth starts - a session's, a group agent's, a task's, a warm
 * spare's - and the options of a warm-spare claim, built in one place, so that the isolation levers are
 * applied the same way everywhere:
 * - `settingSources: []`: no settings files, project `CLAUDE.md` or hooks from the agent's directories;
 * - the environment built from nothing (`buildAgentEnv`), with the tenant's `CLAUDE_CONFIG_DIR`, a
 *   `HOME` of its own and auto memory off;
 * - an explicit per-session (or per-task) `cwd`.
 * Extra options (a group's message bus) are applied first, so they cannot replace any of these; the
 * tool-policy hook is added to theirs, never replaced by them.
 *
 * An agent's tool policy (see `tool-policy.ts`) reaches the CLI in two ways: `tools` as `Options.tools`
 * (the model is not even offered the others; a call to one is refused, "No such tool available", before
 * any hook or `canUseTool` is asked), and everything else - `ask_tools`, `allowed_tools`' bare names, and
 * `tools` once more - through one `PreToolUse` hook, which a warm spare has too (fixed at prewarm, asking
 * its claimer's policy), so that a cold start and a warm one decide alike. Only `allowed_tools` rules with
 * a specifier (`Bash(npm test:*)`) stay allow rules (`allowedTools`): the CLI must apply those itself.
 */
import type { CanUseTool, ClaimOptions, Options, SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { AgentConfig } from '../stores/types.js';
import {
  NOT_SERVING,
  TOOLSET_CLI_TOOLS,
  decideToolUse,
  hasToolPolicy,
  isBareToolName,
  ruleTool,
  toolPolicyHook,
  toolPolicyOf,
  type ToolPolicy,
} from './tool-policy.js';

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
    // Bare names are the tool-policy hook's to allow (see `withToolPolicy`).
    ...(agent.allowed_tools !== undefined && {
      allowedTools: agent.allowed_tools.filter((rule) => !isBareToolName(rule)),
    }),
    ...(agent.disallowed_tools !== undefined && { disallowedTools: agent.disallowed_tools }),
    ...(agent.permission_mode !== undefined && { permissionMode: agent.permission_mode }),
    ...(agent.max_turns !== undefined && { maxTurns: agent.max_turns }),
    ...(agent.tools !== undefined && { tools: agent.tools }),
    ...(agent.effort !== undefined && { effort: agent.effort }),
  };
}

/** The agent's MCP servers as the CLI takes them (streamable HTTP), or undefined for none. */
function mcpServersOf(agent: AgentConfig): Options['mcpServers'] {
  if (!agent.mcp_servers?.length) return undefined;
  return Object.fromEntries(agent.mcp_servers.map((s) => [s.name, { type: 'http' as const, url: s.url }]));
}

/**
 * The agent's tool policy applied to complete options: its hook goes after any `PreToolUse` hooks already
 * there (an extra option's), and allow rules for `ask_tools` tools are dropped. The CLI asks under an
 * allow rule anyway (measured), but always_ask must not rest on which of the two it ranks first.
 */
function withToolPolicy(options: Options, policy: ToolPolicy): Options {
  const { allowedTools, ...rest } = options;
  const rules = allowedTools?.filter((rule) => !policy.ask.has(ruleTool(rule)));
  const hooks = options.hooks ?? {};
  return {
    ...rest,
    ...(rules && rules.length > 0 && { allowedTools: rules }),
    ...(hasToolPolicy(policy) && {
      hooks: {
        ...hooks,
        PreToolUse: [...(hooks.PreToolUse ?? []), toolPolicyHook((tool) => decideToolUse(policy, tool))],
      },
    }),
  };
}

/** The options of one subprocess started with `query()`. */
export function buildQueryOptions(agent: AgentConfig, setup: ProcessSetup): Options {
  const transcript = setup.transcript;
  const mcpServers = mcpServersOf(agent);
  const options: Options = {
    ...setup.extra,
    ...agentOptions(agent),
    // Added to an extra option's servers (a group's bus), never replacing them; sent over stdin, not on
    // the command line other users of the machine can read (the bundled CLI takes them there).
    ...(mcpServers && {
      mcpServers: { ...mcpServers, ...setup.extra?.mcpServers },
      mcpServersDelivery: 'initialize' as const,
    }),
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
  return withToolPolicy(options, toolPolicyOf(agent));
}

/**
 * Agent settings a session's warm spare runs exactly as `query()` would: `model` and `permission_mode` go
 * in the claim; `tools`, `allowed_tools` and `ask_tools` are the claimer's tool policy, which the spare's
 * hook asks (see `buildSpareOptions`), as far as {@link spareCanCarry} says. The others are fixed when a
 * spare starts, before its claimer is known, so an agent with any of them starts with `query()`:
 * - `system_prompt`: a string `systemPrompt` replaces the CLI's own prompt; a claim can only append to it
 *   (`appendSystemPrompt`);
 * - `effort`: a claim could carry it only in a settings overlay (`effortLevel`), which holds the prompt one
 *   more round trip, can be refused (`settings_not_applied`), and is not measured to reach the model the way
 *   `Options.effort` does;
 * - `disallowed_tools`: `disallowedTools` is fixed at prewarm, and its rules (`Bash(rm:*)`) are the CLI's
 *   to match, not a hook's;
 * - `max_turns`: `maxTurns` is fixed at prewarm, and no claim option sets it;
 * - `network`: the allowlist is granted when the spawner starts the process tree (sandbox, egress proxy),
 *   which for a spare was before its claimer was known;
 * - `memory_bytes`: the cgroup's limit is set when the spawner starts the process tree, which for a spare
 *   was at prewarm, with the host's limit (the kernel's documented answer to lowering a limit below what a
 *   cgroup already uses is reclaim, then EBUSY on v1 or an OOM kill on v2: not a claim to race);
 * - `mcp_servers`: `mcpServers` is fixed at prewarm (the CLI connects to them at start), and no claim
 *   option sets it.
 */
export const CLAIMABLE_AGENT_KEYS: ReadonlySet<keyof AgentConfig> = new Set([
  'model',
  'permission_mode',
  'tools',
  'allowed_tools',
  'ask_tools',
]);

const SPARE_TOOLS: ReadonlySet<string> = new Set(TOOLSET_CLI_TOOLS);

/**
 * Whether a session's warm spare carries this agent config exactly: only claimable keys, `tools` given
 * (absent means the CLI's default set, which is more than a spare has) and among the spare's, and
 * `allowed_tools` bare names only (a rule with a specifier is the CLI's to apply, as an allow rule).
 *
 * One difference remains, accepted: a spare offers the model all of {@link TOOLSET_CLI_TOOLS}, so an agent
 * with fewer `tools` is offered tools it does not have; calling one gets the hook's `deny` (an error result
 * naming the tool, nothing runs) where a cold start's CLI answers "No such tool available".
 */
export function spareCanCarry(agent: AgentConfig): boolean {
  return (
    Object.entries(agent).every(
      ([k, v]) => v === undefined || CLAIMABLE_AGENT_KEYS.has(k as keyof AgentConfig),
    ) &&
    agent.tools !== undefined &&
    agent.tools.every((tool) => SPARE_TOOLS.has(tool)) &&
    (agent.allowed_tools ?? []).every(isBareToolName)
  );
}

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
  /**
   * For a session's spare: the tool policy of the session that claimed it, undefined before a claim. The
   * spare then gets the toolset's tools and a `PreToolUse` hook that asks this at each tool use (and denies
   * every tool before a claim). A task's spare has neither: its tools are the CLI's default set, as a
   * task's `query()` has, and its gate is `canUseTool`.
   */
  toolPolicy?: (() => ToolPolicy | undefined) | undefined;
}

/** The options of a spare started with `prewarm()`. */
export function buildSpareOptions(setup: SpareSetup): Options {
  const policy = setup.toolPolicy;
  return {
    env: setup.env,
    ...(setup.cwd && { cwd: setup.cwd }),
    settingSources: [],
    canUseTool: setup.canUseTool,
    spawnClaudeCodeProcess: setup.spawn,
    ...(setup.transcriptStore && { sessionStore: setup.transcriptStore }),
    ...(policy && {
      tools: [...TOOLSET_CLI_TOOLS],
      hooks: {
        PreToolUse: [
          toolPolicyHook((tool) => {
            const claimer = policy();
            return claimer ? decideToolUse(claimer, tool) : NOT_SERVING;
          }),
        ],
      },
    }),
  };
}
