import type { HookCallbackMatcher, Options } from '@anthropic-ai/claude-agent-sdk';
import { describe, expect, it } from 'vitest';
import { answers } from '../../test/helpers/hooks.js';
import type { AgentConfig } from '../stores/types.js';
import {
  CLAIMABLE_AGENT_KEYS,
  buildQueryOptions,
  buildSpareOptions,
  spareCanCarry,
  type ProcessSetup,
  type SpareSetup,
} from './sdk-options.js';
import { TOOLSET_CLI_TOOLS, toolPolicyOf, type ToolPolicy } from './tool-policy.js';

const setup = (extra?: Partial<Options>): ProcessSetup => ({
  cwd: '/work',
  env: { PATH: '/usr/bin' },
  canUseTool: () => Promise.resolve({ behavior: 'deny', message: 'no' }),
  spawn: () => {
    throw new Error('not spawned in these tests');
  },
  abortController: new AbortController(),
  extra,
});

/** The permission decision `matcher` answers for `toolName`, or undefined for none. */
async function decision(matcher: HookCallbackMatcher | undefined, toolName: string): Promise<unknown> {
  const [answer] = (await answers(matcher, toolName)) as {
    hookSpecificOutput?: { permissionDecision: string };
  }[];
  return answer?.hookSpecificOutput?.permissionDecision;
}

/** An API agent with the whole toolset: Read and the rest always_allow, Bash always_ask. */
const TOOLSET_AGENT: AgentConfig = {
  model: 'claude-sonnet-4-5',
  tools: [...TOOLSET_CLI_TOOLS],
  allowed_tools: TOOLSET_CLI_TOOLS.filter((t) => t !== 'Bash'),
  ask_tools: ['Bash'],
  permission_mode: 'default',
};

describe('buildQueryOptions', () => {
  it('passes tools and effort on, an empty tools list included', () => {
    expect(buildQueryOptions({ tools: ['Bash', 'Read'], effort: 'low' }, setup())).toMatchObject({
      tools: ['Bash', 'Read'],
      effort: 'low',
    });
    expect(buildQueryOptions({ tools: [] }, setup()).tools).toEqual([]);
    const plain = buildQueryOptions({}, setup());
    expect(plain).not.toHaveProperty('tools');
    expect(plain).not.toHaveProperty('effort');
    expect(plain).not.toHaveProperty('hooks');
  });

  it('answers each tool use of an API agent by its policy, in one hook', async () => {
    const options = buildQueryOptions({ ...TOOLSET_AGENT, tools: ['Bash', 'Read'] }, setup());
    const [hook, ...more] = options.hooks?.PreToolUse ?? [];
    expect(more).toEqual([]);
    expect(hook?.onFailure).toBe('block');
    expect(await decision(hook, 'Bash')).toBe('ask');
    expect(await decision(hook, 'Read')).toBe('allow');
    // Not the agent's: the CLI refuses it before the hook (it is not in `tools`), and so would the hook.
    expect(await decision(hook, 'Write')).toBe('deny');
    expect(options.tools).toEqual(['Bash', 'Read']);
  });

  it('allows bare allowed_tools names in the hook, and leaves only rules with a specifier as allow rules', async () => {
    const options = buildQueryOptions({ allowed_tools: ['Read', 'Bash(npm test:*)', 'Write'] }, setup());
    // No bare name left in allowedTools: the SDK's CLAUDE_SDK_CAN_USE_TOOL_SHADOWED warning stays out.
    expect(options.allowedTools).toEqual(['Bash(npm test:*)']);
    const [hook] = options.hooks?.PreToolUse ?? [];
    expect(await decision(hook, 'Read')).toBe('allow');
    expect(await decision(hook, 'Write')).toBe('allow');
    expect(await decision(hook, 'Bash')).toBeUndefined();
    const onlyBare = buildQueryOptions({ allowed_tools: ['Read'] }, setup({ allowedTools: ['Write'] }));
    // The agent's allowed_tools replaces an extra option's, bare names or not.
    expect(onlyBare).not.toHaveProperty('allowedTools');
  });

  it('answers ask for every use of an ask_tools tool, and nothing for the others', async () => {
    const options = buildQueryOptions({ ask_tools: ['Bash', 'mcp__bus__send'] }, setup());
    const [hook] = options.hooks?.PreToolUse ?? [];
    for (const tool of ['Bash', 'mcp__bus__send']) {
      expect(await answers(hook, tool)).toEqual([
        {
          hookSpecificOutput: expect.objectContaining({
            hookEventName: 'PreToolUse',
            permissionDecision: 'ask',
          }),
        },
      ]);
    }
    // Exact names: no pattern matching, no prefix.
    for (const tool of ['Read', 'BashOutput', 'mcp__bus__send_all'])
      expect(await answers(hook, tool)).toEqual([{}]);
    expect(buildQueryOptions({ ask_tools: [] }, setup())).not.toHaveProperty('hooks');
  });

  it('keeps the hooks of extra options and adds its own after them', async () => {
    const theirs: HookCallbackMatcher = {
      matcher: 'Bash',
      hooks: [() => Promise.resolve({ continue: true })],
    };
    const stop: HookCallbackMatcher = { hooks: [() => Promise.resolve({})] };
    const options = buildQueryOptions(
      { ask_tools: ['Bash'] },
      setup({ hooks: { PreToolUse: [theirs], Stop: [stop] } }),
    );
    expect(options.hooks?.Stop).toEqual([stop]);
    const [first, second, ...rest] = options.hooks?.PreToolUse ?? [];
    expect(first).toBe(theirs);
    expect(rest).toEqual([]);
    expect(await decision(second, 'Bash')).toBe('ask');
    // Without a tool policy, extra hooks pass through untouched.
    expect(buildQueryOptions({}, setup({ hooks: { PreToolUse: [theirs] } })).hooks).toEqual({
      PreToolUse: [theirs],
    });
  });

  it('drops the allow rules of ask_tools tools, wherever they came from', () => {
    const agent: AgentConfig = {
      allowed_tools: ['Bash', 'Bash(npm test:*)', 'Read', 'Edit(./src/**)'],
      ask_tools: ['Bash', 'Edit'],
    };
    expect(buildQueryOptions(agent, setup())).not.toHaveProperty('allowedTools');
    expect(
      buildQueryOptions({ ask_tools: ['Bash'] }, setup({ allowedTools: ['Bash( ls:*)', 'Write'] }))
        .allowedTools,
    ).toEqual(['Write']);
    expect(buildQueryOptions({ ask_tools: ['Bash'] }, setup())).not.toHaveProperty('allowedTools');
  });

  it('lets no extra option replace what the agent config sets', () => {
    const options = buildQueryOptions(
      { tools: ['Read'], effort: 'high' },
      setup({ tools: ['Bash'], effort: 'low', cwd: '/elsewhere', settingSources: ['user'] }),
    );
    expect(options).toMatchObject({ tools: ['Read'], effort: 'high', cwd: '/work', settingSources: [] });
  });
});

describe('buildQueryOptions with MCP servers', () => {
  const mcpAgent: AgentConfig = {
    tools: ['Read'],
    mcp_servers: [
      {
        name: 'notes',
        url: 'https://notes.example.com/mcp',
        default: { enabled: true, policy: 'always_ask' },
        tools: { erase_all: { enabled: false, policy: 'always_allow' } },
      },
    ],
  };

  it("passes the agent's servers over stdin, beside an extra option's, and decides their tools in the hook", async () => {
    const bus = { type: 'sdk' as const, name: 'bus', instance: {} as never };
    const options = buildQueryOptions(mcpAgent, setup({ mcpServers: { bus } }));
    expect(options.mcpServers).toEqual({
      notes: { type: 'http', url: 'https://notes.example.com/mcp' },
      bus,
    });
    expect(options.mcpServersDelivery).toBe('initialize');
    const hook = options.hooks?.PreToolUse?.at(-1);
    expect(await decision(hook, 'mcp__notes__write_note')).toBe('ask');
    expect(await decision(hook, 'mcp__notes__erase_all')).toBe('deny');
    expect(await decision(hook, 'mcp__elsewhere__x')).toBe('deny');
  });

  it('passes no MCP servers for an agent without any', () => {
    const options = buildQueryOptions({ tools: ['Read'] }, setup());
    expect(options).not.toHaveProperty('mcpServers');
    expect(options).not.toHaveProperty('mcpServersDelivery');
  });

  it('never lets a warm spare run an agent with MCP servers (they are fixed at prewarm)', () => {
    expect(CLAIMABLE_AGENT_KEYS.has('mcp_servers')).toBe(false);
    expect(spareCanCarry(mcpAgent)).toBe(false);
    expect(spareCanCarry({ ...mcpAgent, mcp_servers: undefined })).toBe(true);
  });
});

describe('buildSpareOptions', () => {
  const spareSetup = (toolPolicy?: () => ToolPolicy | undefined): SpareSetup => ({
    env: { PATH: '/usr/bin' },
    canUseTool: () => Promise.resolve({ behavior: 'deny', message: 'no' }),
    spawn: () => {
      throw new Error('not spawned in these tests');
    },
    toolPolicy,
  });

  it("gives a session's spare the tools a cold start of the whole toolset gets", () => {
    const cold = buildQueryOptions(TOOLSET_AGENT, setup());
    expect(buildSpareOptions(spareSetup(() => undefined)).tools).toEqual(cold.tools);
  });

  it("denies every tool before a claim, then answers its claimer's policy as a cold start's hook does", async () => {
    const route: { claimer?: ToolPolicy } = {};
    const options = buildSpareOptions(spareSetup(() => route.claimer));
    const [hook, ...more] = options.hooks?.PreToolUse ?? [];
    expect(more).toEqual([]);
    expect(hook?.onFailure).toBe('block');
    for (const tool of [...TOOLSET_CLI_TOOLS, 'mcp__x__y']) expect(await decision(hook, tool)).toBe('deny');
    expect(await answers(hook, 'Read')).toEqual([
      {
        hookSpecificOutput: expect.objectContaining({
          permissionDecisionReason: 'This process is not serving a session.',
        }),
      },
    ]);

    const agent: AgentConfig = { ...TOOLSET_AGENT, tools: TOOLSET_CLI_TOOLS.filter((t) => t !== 'Bash') };
    route.claimer = toolPolicyOf(agent);
    const [coldHook] = buildQueryOptions(agent, setup()).hooks?.PreToolUse ?? [];
    for (const tool of [...TOOLSET_CLI_TOOLS, 'TodoWrite', 'mcp__x__y'])
      expect(await answers(hook, tool)).toEqual(await answers(coldHook, tool));
    expect(await decision(hook, 'Bash')).toBe('deny');
    expect(await decision(hook, 'Read')).toBe('allow');
  });

  it("gives a task's spare the CLI's default tools and no hook", () => {
    const options = buildSpareOptions(spareSetup());
    expect(options).not.toHaveProperty('tools');
    expect(options).not.toHaveProperty('hooks');
  });
});

describe('what a warm spare carries', () => {
  it('claims model, permission mode and the tool policy; the rest is fixed at prewarm', () => {
    for (const key of ['model', 'permission_mode', 'tools', 'allowed_tools', 'ask_tools'] as const)
      expect(CLAIMABLE_AGENT_KEYS.has(key)).toBe(true);
    for (const key of ['system_prompt', 'effort', 'disallowed_tools', 'max_turns', 'network'] as const)
      expect(CLAIMABLE_AGENT_KEYS.has(key)).toBe(false);
  });

  it('carries a toolset agent, with tools among the spare ones and bare allowed names', () => {
    expect(spareCanCarry(TOOLSET_AGENT)).toBe(true);
    expect(spareCanCarry({ tools: ['Read'], allowed_tools: [], ask_tools: [] })).toBe(true);
    expect(spareCanCarry({ tools: [] })).toBe(true);
    // Keys left undefined are not set.
    expect(spareCanCarry({ ...TOOLSET_AGENT, effort: undefined, network: undefined })).toBe(true);
  });

  it("refuses what a spare's tools and hook cannot reproduce", () => {
    // No tools: the CLI's default set, more than a spare has.
    expect(spareCanCarry({})).toBe(false);
    expect(spareCanCarry({ model: 'm', allowed_tools: ['Read'] })).toBe(false);
    expect(spareCanCarry({ tools: ['Read', 'TodoWrite'] })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, allowed_tools: ['Bash(npm test:*)'] })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, effort: 'low' })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, system_prompt: 'x' })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, network: { allowed_domains: ['example.com'] } })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, memory_bytes: 256 * 1024 ** 2 })).toBe(false);
    expect(spareCanCarry({ ...TOOLSET_AGENT, max_turns: 3 })).toBe(false);
  });
});
