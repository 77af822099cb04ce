/**
 * How a task's agent config becomes its subprocess's: which tools run without asking (a task has nobody
 * to confirm a tool use), and whether a warm spare can run the task exactly as `query()` would.
 */
import type { CanUseTool } from '@anthropic-ai/claude-agent-sdk';
import type { AgentConfig } from '../stores/types.js';
import type { TaskAgent } from './task.js';

/** Agent keys a claimed spare can carry (model and permission mode go in the claim; see `toolGate`). */
/** What the gate's refusal says (and `berth run` looks for in a task's events to report a denial). */
export const TOOL_DENIED_MARK = "is not in this task's agent.allowed_tools";

const CLAIMABLE_AGENT_KEYS: ReadonlySet<string> = new Set(['model', 'permission_mode', 'allowed_tools']);

/** A tool name on its own (`Bash`), as opposed to a rule with a specifier (`Bash(npm test:*)`). */
export function isBareToolName(tool: string): boolean {
  return !tool.includes('(');
}

/**
 * Whether a claimed spare runs this task exactly as `query()` would: a claim carries the cwd, model and
 * permission mode, and the tool gate carries bare allowed tool names; everything else (a system prompt,
 * disallowed tools, tool rules, a turn limit) is fixed when a spare is prewarmed.
 */
export function fitsSpare(agent: TaskAgent, maxTurns: number | undefined): boolean {
  return (
    maxTurns === undefined &&
    // A spare is prewarmed without `allowDangerouslySkipPermissions`, and `dontAsk` bypasses the gate.
    agent.permission_mode !== 'bypassPermissions' &&
    agent.permission_mode !== 'dontAsk' &&
    Object.entries(agent).every(([k, v]) => v === undefined || CLAIMABLE_AGENT_KEYS.has(k)) &&
    (agent.allowed_tools ?? []).every(isBareToolName)
  );
}

/**
 * The task's `canUseTool`: nobody is there to confirm a tool use, so the tools named in `allowed_tools`
 * are allowed and every other one that asks is denied.
 */
export function toolGate(agent: TaskAgent): CanUseTool {
  const allowed = new Set((agent.allowed_tools ?? []).filter(isBareToolName));
  return (toolName, input) =>
    Promise.resolve(
      allowed.has(toolName)
        ? { behavior: 'allow', updatedInput: input }
        : {
            behavior: 'deny',
            message: `${toolName} ${TOOL_DENIED_MARK}, and a task has no one to confirm a tool use.`,
          },
    );
}

/**
 * The agent config a task's `query()` runs with. Bare tool names are allowed by the gate (as on a warm
 * start); only rules the CLI must evaluate, like `Bash(npm test:*)`, are given to it. `dontAsk` never
 * asks the gate, so it gets them all.
 */
export function taskQueryAgent(agent: TaskAgent, maxTurns: number | null): AgentConfig {
  const rules = (agent.allowed_tools ?? []).filter(
    (t) => agent.permission_mode === 'dontAsk' || !isBareToolName(t),
  );
  return {
    ...(agent.model !== undefined && { model: agent.model }),
    ...(agent.system_prompt !== undefined && { system_prompt: agent.system_prompt }),
    ...(rules.length > 0 && { allowed_tools: rules }),
    ...(agent.disallowed_tools !== undefined && { disallowed_tools: agent.disallowed_tools }),
    ...(agent.permission_mode !== undefined && { permission_mode: agent.permission_mode }),
    ...(maxTurns !== null && { max_turns: maxTurns }),
  };
}
