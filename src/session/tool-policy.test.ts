import { describe, expect, it } from 'vitest';
import { answers, preToolUse } from '../../test/helpers/hooks.js';
import { agentConfigOf } from '../http/managed-config.js';
import { TOOLSET_TOOLS } from '../http/tool-names.js';
import {
  TOOLSET_CLI_TOOLS,
  decideToolUse,
  splitMcpToolName,
  toolPolicyHook,
  toolEvents,
  toolPolicyOf,
} from './tool-policy.js';

describe('TOOLSET_CLI_TOOLS', () => {
  it('is the API toolset by CLI name, as an agent with every tool enabled passes it', () => {
    expect(TOOLSET_CLI_TOOLS).toEqual(Object.values(TOOLSET_TOOLS));
    const allEnabled = agentConfigOf({
      tools: [
        {
          type: 'agent_toolset_20260401',
          default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
          configs: [],
        },
      ],
    });
    expect(allEnabled.tools).toEqual(TOOLSET_CLI_TOOLS);
  });
});

describe('decideToolUse', () => {
  const policy = toolPolicyOf({
    tools: ['Bash', 'Read', 'Write'],
    allowed_tools: ['Read', 'Bash', 'Write(./out/**)'],
    ask_tools: ['Bash'],
  });
  const decision = (tool: string) => decideToolUse(policy, tool)?.permissionDecision;

  it('denies a built-in tool the agent does not have, naming it', () => {
    expect(decideToolUse(policy, 'Edit')).toEqual({
      permissionDecision: 'deny',
      permissionDecisionReason: 'Edit is not enabled for this agent.',
    });
    // Not even when allowed_tools or ask_tools name it.
    expect(
      decideToolUse(toolPolicyOf({ tools: [], allowed_tools: ['Read'], ask_tools: ['Grep'] }), 'Read'),
    ).toMatchObject({ permissionDecision: 'deny' });
    expect(decision('BashOutput')).toBe('deny');
  });

  it('asks for an ask_tools tool, also one allowed_tools names (always_ask wins)', () => {
    expect(decision('Bash')).toBe('ask');
  });

  it('allows a bare allowed_tools name, and leaves a rule with a specifier to the CLI', () => {
    expect(decision('Read')).toBe('allow');
    expect(decision('Write')).toBeUndefined();
  });

  it('decides nothing where the agent config says nothing', () => {
    const none = toolPolicyOf({});
    for (const tool of ['Bash', 'Read', 'mcp__bus__send', 'TodoWrite'])
      expect(decideToolUse(none, tool)).toBeUndefined();
  });

  it('leaves MCP tools out of what tools governs, and compares names exactly', () => {
    const group = toolPolicyOf({
      tools: ['Read'],
      allowed_tools: ['mcp__bus__send'],
      ask_tools: ['mcp__bus__read'],
    });
    expect(decideToolUse(group, 'mcp__bus__send')?.permissionDecision).toBe('allow');
    expect(decideToolUse(group, 'mcp__bus__read')?.permissionDecision).toBe('ask');
    expect(decideToolUse(group, 'mcp__bus__other')).toBeUndefined();
    const ask = toolPolicyOf({ ask_tools: ['Bash'] });
    for (const tool of ['bash', 'BashOutput', 'Bash ']) expect(decideToolUse(ask, tool)).toBeUndefined();
  });
});

describe('decideToolUse for the MCP servers of an agent', () => {
  // As agentConfigOf makes it from an agent with a `notes` server and its mcp_toolset.
  const agent = agentConfigOf({
    tools: [
      {
        type: 'agent_toolset_20260401',
        default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
        configs: [],
      },
      {
        type: 'mcp_toolset',
        mcp_server_name: 'notes',
        default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
        configs: [
          { name: 'write_note', enabled: true, permission_policy: { type: 'always_ask' } },
          { name: 'erase_all', enabled: false, permission_policy: { type: 'always_allow' } },
        ],
      },
    ],
    mcp_servers: [
      { type: 'url', name: 'notes', url: 'https://notes.example.com/mcp' },
      { type: 'url', name: 'bare', url: 'https://bare.example.com/mcp' },
    ],
  });
  const decision = (tool: string) => decideToolUse(toolPolicyOf(agent), tool)?.permissionDecision;

  it('maps the servers and their toolsets onto the agent config', () => {
    expect(agent.mcp_servers).toEqual([
      {
        name: 'notes',
        url: 'https://notes.example.com/mcp',
        default: { enabled: true, policy: 'always_allow' },
        tools: {
          write_note: { enabled: true, policy: 'always_ask' },
          erase_all: { enabled: false, policy: 'always_allow' },
        },
      },
      // A server without a toolset: none of its tools reach the agent.
      {
        name: 'bare',
        url: 'https://bare.example.com/mcp',
        default: { enabled: false, policy: 'always_ask' },
        tools: {},
      },
    ]);
    expect(agentConfigOf({ tools: [], mcp_servers: [] })).not.toHaveProperty('mcp_servers');
  });

  it('asks for always_ask, allows always_allow, denies a disabled tool', () => {
    expect(decision('mcp__notes__write_note')).toBe('ask');
    expect(decision('mcp__notes__read_note')).toBe('allow');
    expect(decision('mcp__notes__erase_all')).toBe('deny');
    expect(decideToolUse(toolPolicyOf(agent), 'mcp__notes__erase_all')?.permissionDecisionReason).toMatch(
      /erase_all.*not enabled/,
    );
  });

  it('denies the tools of a server without a toolset, of an undeclared server, and malformed names', () => {
    expect(decision('mcp__bare__anything')).toBe('deny');
    expect(decision('mcp__other__write_note')).toBe('deny');
    expect(decision('mcp__notes')).toBe('deny');
    expect(decision('mcp____x')).toBe('deny');
    // Built-in tools are decided as before.
    expect(decision('Bash')).toBe('allow');
  });

  it('tells which tools always ask and whose server a tool is, as the agent.tool_use event shows them', () => {
    const events = toolEvents({ ...agent, ask_tools: ['Bash'] });
    expect(events.askTools.has('mcp__notes__write_note')).toBe(true);
    expect(events.askTools.has('Bash')).toBe(true);
    expect(events.askTools.has('mcp__notes__read_note')).toBe(false);
    expect(events.askTools.has('mcp__notes__erase_all')).toBe(false);
    expect(events.mcpServerOf('mcp__notes__write_note')).toBe('notes');
    // Not a server of the agent's (a group's bus): no MCP event.
    expect(events.mcpServerOf('mcp__berth_bus__send_message')).toBeUndefined();
    expect(toolEvents({ tools: ['Read'] }).mcpServerOf('mcp__notes__write_note')).toBeUndefined();
    expect(events.mcpServerOf('Bash')).toBeUndefined();
  });

  it('splits a CLI MCP tool name at the first __ after the prefix', () => {
    expect(splitMcpToolName('mcp__notes__write__note')).toEqual({ server: 'notes', tool: 'write__note' });
    expect(splitMcpToolName('Bash')).toBeUndefined();
    expect(splitMcpToolName('mcp__notes')).toBeUndefined();
  });
});

describe('toolPolicyHook', () => {
  it('answers what decide says, asked at each use, and nothing when it says nothing', async () => {
    let policy = toolPolicyOf({ ask_tools: ['Bash'] });
    const hook = toolPolicyHook((tool) => decideToolUse(policy, tool));
    expect(hook.onFailure).toBe('block');
    expect(await answers(hook, 'Bash')).toEqual([
      {
        hookSpecificOutput: {
          hookEventName: 'PreToolUse',
          permissionDecision: 'ask',
          permissionDecisionReason: "Bash is in the agent's ask_tools: every use waits for a confirmation.",
        },
      },
    ]);
    expect(await answers(hook, 'Read')).toEqual([{}]);
    policy = toolPolicyOf({ allowed_tools: ['Read'] });
    expect(await answers(hook, 'Read')).toEqual([
      { hookSpecificOutput: expect.objectContaining({ permissionDecision: 'allow' }) },
    ]);
  });

  it('answers nothing for a hook event other than PreToolUse', async () => {
    const [hook] = toolPolicyHook(() => ({
      permissionDecision: 'deny',
      permissionDecisionReason: 'x',
    })).hooks;
    const input = { ...preToolUse('Bash'), hook_event_name: 'PostToolUse', tool_response: '' } as const;
    expect(await hook?.(input, 'toolu_1', { signal: new AbortController().signal })).toEqual({});
  });
});
