/**
 * An agent's tool policy, decided for each tool use by one function ({@link decideToolUse}) that a
 * `PreToolUse` hook asks, the same way in a process started with `query()` and in a warm spare (whose
 * hook is fixed at prewarm and asks the policy of whoever claimed it). The policy is the Managed Agents
 * toolset's: which built-in tools the agent has (`tools`), which always ask (`ask_tools`, `always_ask`)
 * and which never do (`allowed_tools`' bare names, `always_allow`).
 *
 * What the CLI (SDK 0.3.330) does with the hook's answers, as measured against the real CLI (and checked
 * by test/tool-policy.test.ts where Berth relies on it):
 * - `deny`: the tool does not run; the model gets an error result with the reason, `canUseTool` is not
 *   asked.
 * - `ask`: the CLI asks `canUseTool` (the session's confirmation), even for what it runs unasked
 *   otherwise (Read, Glob, Grep, `echo`, `ls`, `cat`), under an allow rule, in `dontAsk` and
 *   `bypassPermissions` modes, and when another hook answers `allow` (the strictest answer wins).
 * - `allow`: the same as a bare `allowedTools` entry for that tool, in every case measured (Write, Edit,
 *   Read, WebFetch, WebSearch, an MCP tool, and Bash with writes, `cd` out of the cwd, `$(...)` and `rm`, in
 *   the `default`, `plan`, `acceptEdits` and `dontAsk` modes): what either one lets run, the other does;
 *   where either still asks `canUseTool` (a write under `.claude/` or `.git/`) or refuses (a
 *   `disallowedTools` rule, `plan` mode's refusals), so does the other; the model's request is the same.
 *   Unlike a bare `allowedTools` entry, it leaves the SDK's `[CLAUDE_SDK_CAN_USE_TOOL_SHADOWED]` warning
 *   out.
 * - no answer: the CLI's own rules decide.
 */
import type { HookCallbackMatcher } from '@anthropic-ai/claude-agent-sdk';
import type { AgentConfig, AgentMcpServer } from '../stores/types.js';

/**
 * Managed Agents' agent toolset (`agent_toolset_20260401`) by CLI name, in the order an agent with all of
 * them enabled passes them as `tools` (src/http/tool-names.ts, whose list a test checks against this one).
 * A session's warm spare is prewarmed with exactly these.
 */
export const TOOLSET_CLI_TOOLS: readonly string[] = [
  'Bash',
  'Read',
  'Write',
  'Edit',
  'Glob',
  'Grep',
  'WebFetch',
  'WebSearch',
];

/** What an agent config says about its tools, as the decision reads it. */
export interface ToolPolicy {
  /** The built-in tools the agent has; undefined for the CLI's default set (then none is denied here). */
  readonly tools: ReadonlySet<string> | undefined;
  /** Tools whose every use asks for a confirmation. */
  readonly ask: ReadonlySet<string>;
  /** Tools that run without asking (bare names; a rule such as `Bash(npm test:*)` is the CLI's to apply). */
  readonly allow: ReadonlySet<string>;
  /**
   * The agent's MCP servers by name; undefined when the agent declares none (then MCP tools, such as a
   * group's message bus, are not governed here).
   */
  readonly mcp: ReadonlyMap<string, AgentMcpServer> | undefined;
}

/** A `PreToolUse` hook's answer for one tool use. */
export interface ToolDecision {
  permissionDecision: 'allow' | 'ask' | 'deny';
  permissionDecisionReason: string;
}

/** A tool name on its own (`Bash`), as opposed to a rule with a specifier (`Bash(npm test:*)`). */
export function isBareToolName(rule: string): boolean {
  return !rule.includes('(');
}

/** The tool a permission rule is about: `Bash` for `Bash` and for `Bash(npm test:*)`. */
export function ruleTool(rule: string): string {
  const open = rule.indexOf('(');
  return (open < 0 ? rule : rule.slice(0, open)).trim();
}

/** The policy of an agent config. */
export function toolPolicyOf(
  agent: Pick<AgentConfig, 'tools' | 'allowed_tools' | 'ask_tools' | 'mcp_servers'>,
): ToolPolicy {
  return {
    tools: agent.tools && new Set(agent.tools),
    ask: new Set(agent.ask_tools),
    allow: new Set((agent.allowed_tools ?? []).filter(isBareToolName)),
    mcp: agent.mcp_servers && new Map(agent.mcp_servers.map((s) => [s.name, s])),
  };
}

/** True when the policy decides anything a `PreToolUse` hook must answer. */
export function hasToolPolicy(policy: ToolPolicy): boolean {
  return (
    policy.tools !== undefined || policy.ask.size > 0 || policy.allow.size > 0 || policy.mcp !== undefined
  );
}

/**
 * The server and the tool's own name of a CLI MCP tool name (`mcp__<server>__<tool>`), split at the first
 * `__` after the prefix: an agent's server names never hold `__` (managed-config.ts refuses them).
 */
export function splitMcpToolName(toolName: string): { server: string; tool: string } | undefined {
  if (!toolName.startsWith('mcp__')) return undefined;
  const rest = toolName.slice('mcp__'.length);
  const at = rest.indexOf('__');
  return at <= 0 ? undefined : { server: rest.slice(0, at), tool: rest.slice(at + 2) };
}

/** The decision for an MCP tool of an agent that declares MCP servers: its toolset's rule. */
function decideMcpToolUse(servers: ReadonlyMap<string, AgentMcpServer>, toolName: string): ToolDecision {
  const name = splitMcpToolName(toolName);
  const server = name && servers.get(name.server);
  if (!name || !server) {
    return {
      permissionDecision: 'deny',
      permissionDecisionReason: `${toolName} is not a tool of an MCP server of this agent.`,
    };
  }
  const rule = server.tools[name.tool] ?? server.default;
  if (!rule.enabled) {
    return {
      permissionDecision: 'deny',
      permissionDecisionReason: `${name.tool} of MCP server ${server.name} is not enabled for this agent.`,
    };
  }
  return rule.policy === 'always_ask'
    ? {
        permissionDecision: 'ask',
        permissionDecisionReason: `${name.tool} of MCP server ${server.name} is always_ask: every use waits for a confirmation.`,
      }
    : {
        permissionDecision: 'allow',
        permissionDecisionReason: `${name.tool} of MCP server ${server.name} is always_allow.`,
      };
}

/**
 * The one decision for a use of `toolName`: `deny` for a built-in tool the agent does not have, `ask` for
 * an `ask_tools` tool (before `allow`: always_ask wins), `allow` for a bare `allowed_tools` name, else
 * none (the CLI's own rules). An MCP tool (`mcp__server__tool`) is no built-in: the agent's `tools` does not
 * govern it, as the CLI's `tools` option does not; an agent with MCP servers decides it by its server's
 * toolset (disabled: `deny`, always_ask: `ask`, always_allow: `allow`; an undeclared server: `deny`), and
 * one without (a group's message bus) leaves it to the CLI.
 */
export function decideToolUse(policy: ToolPolicy, toolName: string): ToolDecision | undefined {
  if (policy.mcp && toolName.startsWith('mcp__')) return decideMcpToolUse(policy.mcp, toolName);
  if (policy.tools && !policy.tools.has(toolName) && !toolName.startsWith('mcp__')) {
    return {
      permissionDecision: 'deny',
      permissionDecisionReason: `${toolName} is not enabled for this agent.`,
    };
  }
  if (policy.ask.has(toolName)) {
    return {
      permissionDecision: 'ask',
      permissionDecisionReason: `${toolName} is in the agent's ask_tools: every use waits for a confirmation.`,
    };
  }
  if (policy.allow.has(toolName)) {
    return {
      permissionDecision: 'allow',
      permissionDecisionReason: `${toolName} is in the agent's allowed_tools.`,
    };
  }
  return undefined;
}

/**
 * What a tool use's event says before the CLI's permission request arrives, by the agent's policy:
 * whether every use asks (`ask_tools`, and MCP tools under always_ask), and which of the agent's MCP
 * servers the tool belongs to (the options of `ToolConfirmations`).
 */
export function toolEvents(agent: AgentConfig): {
  askTools: Pick<ReadonlySet<string>, 'has'>;
  mcpServerOf: (toolName: string) => string | undefined;
} {
  const policy = toolPolicyOf(agent);
  return {
    askTools: { has: (toolName) => decideToolUse(policy, toolName)?.permissionDecision === 'ask' },
    mcpServerOf: (toolName) => {
      const server = splitMcpToolName(toolName)?.server;
      return server !== undefined && policy.mcp?.has(server) ? server : undefined;
    },
  };
}

/** The answer of a warm spare's hook before any session claimed it: nothing runs. */
export const NOT_SERVING: ToolDecision = {
  permissionDecision: 'deny',
  permissionDecisionReason: 'This process is not serving a session.',
};

/**
 * The `PreToolUse` hook that answers what `decide` says for each tool use (nothing when it says nothing).
 * `decide` is asked at each use, so a spare's hook, fixed at prewarm, can ask its claimer's policy.
 */
export function toolPolicyHook(decide: (toolName: string) => ToolDecision | undefined): HookCallbackMatcher {
  return {
    // No `matcher`: the CLI reads one as a pattern; `decide` compares tool names exactly instead.
    hooks: [
      (input) => {
        const decision = input.hook_event_name === 'PreToolUse' ? decide(input.tool_name) : undefined;
        return Promise.resolve(
          decision ? { hookSpecificOutput: { hookEventName: 'PreToolUse' as const, ...decision } } : {},
        );
      },
    ],
    // A hook that fails lets the tool run by default; this one fails closed.
    onFailure: 'block',
  };
}
