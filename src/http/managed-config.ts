/**
 * Managed Agents' agent and environment resources, and what a session made from them runs with.
 *
 * An agent's API shape (model, system prompt, toolset with permission policies) becomes the
 * {@link AgentConfig} Berth builds SDK options from; an environment's (the hosting pattern, networking)
 * becomes the session's pattern and network allowlist. What Berth cannot honour is refused by name
 * (`unsupported`), never accepted and ignored.
 */
import type { z } from 'zod';
import { BerthError } from '../errors.js';
import type { AgentConfig, AgentMcpServer, McpToolRule, Pattern } from '../stores/types.js';
import type {
  agentCreateSchema,
  environmentConfigSchema,
  mcpServersSchema,
  modelSchema,
  toolsSchema,
} from './managed-schemas.js';
import { API_TOOL_NAMES, cliToolName, type ApiToolName } from './tool-names.js';

type ToolsParam = z.infer<typeof toolsSchema>;
type ModelParam = z.infer<typeof modelSchema>;
type Policy = { type: 'always_allow' | 'always_ask' | 'auto' };

function unsupported(field: string, what: string): BerthError {
  return new BerthError('unsupported', `${field}: ${what} is not supported by Berth`);
}

/** The model as the API shows it: `{id, effort?, speed?}`. */
export function normalizeModel(model: ModelParam, field = 'model'): Record<string, unknown> {
  if (typeof model === 'string') return { id: model };
  if (model.speed === 'fast') throw unsupported(`${field}.speed`, 'fast mode');
  if (model.inference_geo) throw unsupported(`${field}.inference_geo`, 'an inference region');
  const effort = typeof model.effort === 'string' ? { type: model.effort } : (model.effort ?? undefined);
  return { id: model.id, ...(effort && { effort }), ...(model.speed && { speed: model.speed }) };
}

/**
 * The tools as the API shows them, with every default filled in (a tool's config names its policy even
 * when it took the toolset's). Refuses what Berth cannot run: custom tools (the client would run them),
 * `auto` policies and web search settings. An MCP toolset's server is checked against the agent's
 * servers by {@link checkMcpToolsets}, once both are known.
 */
export function normalizeTools(tools: ToolsParam, field = 'tools'): Record<string, unknown>[] {
  let toolsets = 0;
  return tools.map((tool, index) => {
    const at = `${field}.${index}`;
    if (tool.type === 'custom') throw unsupported(at, 'a custom tool');
    if (tool.type === 'mcp_toolset') return normalizeMcpToolset(tool, at);
    if (++toolsets > 1) {
      throw new BerthError('invalid_request', `${at}: an agent has at most one agent_toolset_20260401`);
    }
    const defaults = toolsetDefaults(tool, at, 'always_allow');
    const configs = (tool.configs ?? []).map((config, i) => {
      const where = `${at}.configs.${i}`;
      checkOnce(tool.configs!, i, where);
      if (config.type !== undefined && config.type !== config.name) {
        throw new BerthError('invalid_request', `${where}.type: must be ${JSON.stringify(config.name)}`);
      }
      if (config.allowed_domains || config.blocked_domains || config.user_location) {
        throw unsupported(where, 'setting web search domains or a location');
      }
      return {
        type: config.name,
        name: config.name,
        enabled: config.enabled ?? defaults.enabled,
        permission_policy: checkPolicy(config.permission_policy, where) ?? defaults.permission_policy,
      };
    });
    return { type: 'agent_toolset_20260401', default_config: defaults, configs };
  });
}

/** A toolset's `default_config` with its defaults filled in (`policy` when it names none). */
function toolsetDefaults(
  tool: { default_config?: { enabled?: boolean | null; permission_policy?: Policy | null } | null },
  at: string,
  policy: 'always_allow' | 'always_ask',
): { enabled: boolean; permission_policy: Policy } {
  return {
    enabled: tool.default_config?.enabled ?? true,
    permission_policy: checkPolicy(tool.default_config?.permission_policy, `${at}.default_config`) ?? {
      type: policy,
    },
  };
}

/** `invalid_request` when the tool of `configs[index]` was configured before it in the same list. */
function checkOnce(configs: readonly { name: string }[], index: number, where: string): void {
  const name = configs[index]!.name;
  if (configs.findIndex((c) => c.name === name) < index) {
    throw new BerthError('invalid_request', `${where}: ${name} is configured twice`);
  }
}

type McpToolsetParam = Extract<ToolsParam[number], { type: 'mcp_toolset' }>;

/** An MCP toolset as the API shows it; its default policy is Managed Agents' `always_ask`. */
function normalizeMcpToolset(tool: McpToolsetParam, at: string): Record<string, unknown> {
  const defaults = toolsetDefaults(tool, at, 'always_ask');
  const configs = (tool.configs ?? []).map((config, i) => {
    const where = `${at}.configs.${i}`;
    checkOnce(tool.configs!, i, where);
    return {
      name: config.name,
      enabled: config.enabled ?? defaults.enabled,
      permission_policy: checkPolicy(config.permission_policy, where) ?? defaults.permission_policy,
    };
  });
  return { type: 'mcp_toolset', mcp_server_name: tool.mcp_server_name, default_config: defaults, configs };
}

function checkPolicy(policy: Policy | null | undefined, field: string): Policy | undefined {
  if (policy?.type === 'auto') throw unsupported(`${field}.permission_policy`, 'the auto permission policy');
  return policy ?? undefined;
}

/**
 * The MCP servers as the API shows them. Names are unique and hold no `__`: the CLI names a server's
 * tools `mcp__<server>__<tool>`, and Berth splits that name at the first `__` after the prefix.
 */
export function normalizeMcpServers(
  servers: z.infer<typeof mcpServersSchema> | null | undefined,
  field = 'mcp_servers',
): Record<string, unknown>[] {
  const seen = new Set<string>();
  return (servers ?? []).map((server, i) => {
    const at = `${field}.${i}.name`;
    if (seen.has(server.name))
      throw new BerthError('invalid_request', `${at}: ${server.name} is declared twice`);
    if (server.name.includes('__'))
      throw new BerthError(
        'invalid_request',
        `${at}: must not hold "__" (the CLI's separator in tool names)`,
      );
    seen.add(server.name);
    return { type: 'url', name: server.name, url: server.url };
  });
}

/** Each MCP toolset names a declared server, at most one toolset per server. */
export function checkMcpToolsets(
  tools: Record<string, unknown>[],
  servers: Record<string, unknown>[],
  field = 'tools',
): void {
  const names = new Set(servers.map((s) => s.name));
  const seen = new Set<unknown>();
  tools.forEach((tool, i) => {
    if (tool.type !== 'mcp_toolset') return;
    const at = `${field}.${i}.mcp_server_name`;
    if (!names.has(tool.mcp_server_name)) {
      throw new BerthError(
        'invalid_request',
        `${at}: no MCP server ${JSON.stringify(tool.mcp_server_name)} in the agent's mcp_servers`,
      );
    }
    if (seen.has(tool.mcp_server_name))
      throw new BerthError('invalid_request', `${at}: the server has a toolset already`);
    seen.add(tool.mcp_server_name);
  });
}

/** Refuses the agent fields Berth has no counterpart for when they are set. */
export function checkAgentExtras(
  input: Pick<z.infer<typeof agentCreateSchema>, 'skills' | 'multiagent' | 'execution_identity'>,
): void {
  if (input.skills && input.skills.length > 0) throw unsupported('skills', 'a skill');
  if (input.multiagent !== undefined && input.multiagent !== null) {
    throw unsupported('multiagent', 'a multi-agent roster (use /v1/groups)');
  }
  if (input.execution_identity !== undefined && input.execution_identity !== null) {
    throw unsupported('execution_identity', 'an execution identity');
  }
}

interface ToolsetDoc {
  type: string;
  mcp_server_name?: string;
  default_config: { enabled: boolean; permission_policy: Policy };
  configs: { name: ApiToolName; enabled: boolean; permission_policy: Policy }[];
}

const mcpRule = (config: { enabled: boolean; permission_policy: Policy }): McpToolRule => ({
  enabled: config.enabled,
  // `auto` never gets this far: it is refused when the agent is made.
  policy: config.permission_policy.type === 'always_allow' ? 'always_allow' : 'always_ask',
});

/**
 * The agent's MCP servers with their toolsets' rules. A server without a toolset has none of its tools
 * enabled: a Managed Agents server's tools reach the agent through its `mcp_toolset`.
 */
function mcpServersOf(agent: Record<string, unknown>): AgentMcpServer[] {
  const toolsets = (agent.tools as ToolsetDoc[] | undefined)?.filter((t) => t.type === 'mcp_toolset') ?? [];
  return ((agent.mcp_servers as { name: string; url: string }[] | undefined) ?? []).map((server) => {
    const toolset = toolsets.find((t) => t.mcp_server_name === server.name);
    return {
      name: server.name,
      url: server.url,
      default: toolset ? mcpRule(toolset.default_config) : { enabled: false, policy: 'always_ask' },
      tools: Object.fromEntries((toolset?.configs ?? []).map((c) => [c.name, mcpRule(c)])),
    };
  });
}

/**
 * What a session runs with, from its agent (as the API shows it, overrides applied): the CLI's tool
 * set, which tools always ask (`ask_tools`, a PreToolUse hook) and which never do (`allowed_tools`), and
 * its MCP servers with their toolsets' rules (`mcp_servers`, the same hook).
 */
export function agentConfigOf(agent: Record<string, unknown>): AgentConfig {
  const model = agent.model as { id: string; effort?: { type: AgentConfig['effort'] } } | undefined;
  const toolset = (agent.tools as ToolsetDoc[] | undefined)?.find((t) => t.type === 'agent_toolset_20260401');
  const tools: string[] = [];
  const ask: string[] = [];
  const allow: string[] = [];
  if (toolset) {
    for (const name of API_TOOL_NAMES) {
      const config = toolset.configs.find((c) => c.name === name) ?? toolset.default_config;
      if (!config.enabled) continue;
      const cli = cliToolName(name);
      tools.push(cli);
      (config.permission_policy.type === 'always_ask' ? ask : allow).push(cli);
    }
  }
  const mcp = mcpServersOf(agent);
  return {
    ...(model && { model: model.id }),
    ...(model?.effort && { effort: model.effort.type }),
    // An empty system prompt clears it (Managed Agents): the CLI's own applies.
    ...(typeof agent.system === 'string' && agent.system !== '' && { system_prompt: agent.system }),
    tools,
    allowed_tools: allow,
    ask_tools: ask,
    permission_mode: 'default',
    ...(mcp.length > 0 && { mcp_servers: mcp }),
  };
}

/**
 * Refuses an agent's MCP servers where its sessions could not reach them: a confined host's agents reach
 * only the hosts of a limited network, and MCP servers are not among them (`allow_mcp_servers` is refused
 * there). Accepting them would start a session whose MCP tools silently fail to connect.
 */
export function checkMcpReach(
  servers: readonly unknown[] | undefined,
  host: HostAbilities,
  field = 'agent.mcp_servers',
): void {
  if (host.confined && (servers?.length ?? 0) > 0) {
    throw unsupported(
      field,
      'reaching MCP servers from a host that confines agents (--sandbox bwrap; use --sandbox none)',
    );
  }
}

type EnvironmentConfigParam = z.infer<typeof environmentConfigSchema>;

/** What this host can enforce of an environment's config: its networking and its limits. */
export interface HostAbilities {
  /** True when agents run in a sandbox with no direct network (`--sandbox bwrap`): only `limited` works. */
  confined: boolean;
  /**
   * The memory limit of each agent's cgroup (`--session-ram-ceiling`) when the host gives agents one
   * (`--sandbox bwrap` where a cgroup can be made); undefined: no memory limit can be enforced here.
   */
  agentMemoryBytes?: number | undefined;
}

/**
 * An environment's config as the API shows it, defaults filled in for this host: `limited` with no hosts
 * where agents are confined, `unrestricted` where they are not (nothing could limit them). Refuses what
 * the host cannot honour, naming the field.
 */
export function normalizeEnvironmentConfig(
  config: EnvironmentConfigParam | null | undefined,
  host: HostAbilities,
): Record<string, unknown> {
  const field = 'config';
  if (config?.type === 'self_hosted')
    throw unsupported(`${field}.type`, 'a self_hosted environment (Berth is the host)');
  const packages = config?.packages;
  for (const manager of ['apt', 'cargo', 'gem', 'go', 'npm', 'pip'] as const) {
    if ((packages?.[manager]?.length ?? 0) > 0)
      throw unsupported(`${field}.packages.${manager}`, 'installing packages');
  }
  const networking =
    config?.networking ?? (host.confined ? { type: 'limited' as const } : { type: 'unrestricted' as const });
  let network: Record<string, unknown>;
  if (networking.type === 'unrestricted') {
    if (host.confined) {
      throw new BerthError(
        'invalid_request',
        `${field}.networking: this host confines agents (--sandbox bwrap): they reach only the hosts of a limited network`,
      );
    }
    network = { type: 'unrestricted' };
  } else {
    if (!host.confined) {
      throw new BerthError(
        'invalid_request',
        `${field}.networking: a limited network is enforced by the sandbox, and this host runs with --sandbox none (its agents reach whatever the server can)`,
      );
    }
    if (networking.allow_mcp_servers)
      throw unsupported(`${field}.networking.allow_mcp_servers`, 'reaching MCP servers');
    if (networking.allow_package_managers) {
      throw unsupported(`${field}.networking.allow_package_managers`, 'reaching package registries');
    }
    network = {
      type: 'limited',
      allowed_hosts: networking.allowed_hosts ?? [],
      allow_mcp_servers: false,
      allow_package_managers: false,
    };
  }
  const limits = config?.limits;
  if (limits?.memory_bytes !== undefined)
    checkMemoryLimit(limits.memory_bytes, host, `${field}.limits.memory_bytes`);
  return {
    type: 'cloud',
    networking: network,
    packages: { type: 'packages', apt: [], cargo: [], gem: [], go: [], npm: [], pip: [] },
    // Berth's additions; absent means the host's `--pattern`, and the host's limits.
    ...(config?.pattern && { pattern: config.pattern }),
    ...(limits && Object.keys(limits).length > 0 && { limits: { ...limits } }),
  };
}

/**
 * A session's memory limit is its cgroup's, lowered from the host's: refused where there is no cgroup
 * (accepted and ignored, it would read as a protection the host does not give), and above the host's
 * limit, which admission counts each session at.
 */
function checkMemoryLimit(bytes: number, host: HostAbilities, field: string): void {
  if (host.agentMemoryBytes === undefined) {
    throw new BerthError(
      'invalid_request',
      `${field}: a memory limit is enforced by an agent's cgroup, and this host has none (--sandbox none, or no cgroup can be made here)`,
    );
  }
  if (bytes > host.agentMemoryBytes) {
    throw new BerthError(
      'invalid_request',
      `${field}: ${bytes} is over this host's memory limit per session (--session-ram-ceiling: ${host.agentMemoryBytes} bytes)`,
    );
  }
}

/**
 * The session's pattern (undefined: the host's), network and limits (as agent config keys), from its
 * environment's (normalized) config.
 */
export function hostingOf(config: Record<string, unknown>): {
  pattern: Pattern | undefined;
  network: AgentConfig['network'];
  limits: Pick<AgentConfig, 'memory_bytes' | 'max_turns'>;
} {
  const networking = config.networking as { type: string; allowed_hosts?: string[] };
  const limits = (config.limits ?? {}) as { memory_bytes?: number; max_turns?: number };
  return {
    pattern: config.pattern as Pattern | undefined,
    limits: {
      ...(limits.memory_bytes !== undefined && { memory_bytes: limits.memory_bytes }),
      ...(limits.max_turns !== undefined && { max_turns: limits.max_turns }),
    },
    // No hosts is what a confined agent has anyway: no egress proxy to start for it.
    network:
      networking.type === 'limited' && (networking.allowed_hosts?.length ?? 0) > 0
        ? { allowed_domains: networking.allowed_hosts! }
        : undefined,
  };
}
