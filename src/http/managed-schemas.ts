/**
 * Request bodies and query strings of the Managed Agents resources (agents, environments, sessions,
 * events), as zod schemas shaped like the official client's parameter types. Unknown fields are refused
 * (`strict`): a typo is an error the client sees, and a field of Managed Agents that Berth does not
 * implement is refused by name (see `unsupported` in managed-config.ts) rather than ignored.
 */
import { z } from 'zod';
import { API_TOOL_NAMES } from './tool-names.js';

const metadata = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys');

/** An update's metadata: a null value removes the key. */
const metadataPatch = z
  .record(z.string().min(1).max(64), z.string().max(512).nullable())
  .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys');

const policy = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('always_allow') }),
  z.strictObject({ type: z.literal('always_ask') }),
  z.strictObject({ type: z.literal('auto') }),
]);

const toolConfig = z.strictObject({
  name: z.enum(API_TOOL_NAMES as [string, ...string[]]),
  type: z.string().optional(),
  enabled: z.boolean().nullable().optional(),
  permission_policy: policy.nullable().optional(),
  // web_search's own settings: refused by name when given (managed-config.ts).
  allowed_domains: z.array(z.string()).optional(),
  blocked_domains: z.array(z.string()).optional(),
  user_location: z.unknown().optional(),
});

const defaultConfig = z.strictObject({
  enabled: z.boolean().nullable().optional(),
  permission_policy: policy.nullable().optional(),
});

const agentToolset = z.strictObject({
  type: z.literal('agent_toolset_20260401'),
  configs: z.array(toolConfig).max(20).optional(),
  default_config: defaultConfig.nullable().optional(),
});

const mcpToolset = z.strictObject({
  type: z.literal('mcp_toolset'),
  mcp_server_name: z.string().min(1).max(100),
  configs: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(200),
        enabled: z.boolean().nullable().optional(),
        permission_policy: policy.nullable().optional(),
      }),
    )
    .max(200)
    .optional(),
  default_config: defaultConfig.nullable().optional(),
});

const customTool = z.strictObject({
  type: z.literal('custom'),
  name: z.string().min(1).max(128),
  description: z.string().max(10_000),
  input_schema: z.looseObject({ type: z.literal('object') }),
});

export const toolsSchema = z
  .array(z.discriminatedUnion('type', [agentToolset, mcpToolset, customTool]))
  .max(50);

export const mcpServersSchema = z
  .array(
    z.strictObject({
      type: z.literal('url'),
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -, at most 64'),
      url: z.url({ protocol: /^https?$/ }).max(2000),
    }),
  )
  .max(20);

export const effort = z.enum(['low', 'medium', 'high', 'xhigh', 'max']);

export const modelSchema = z.union([
  z.string().min(1).max(200),
  z.strictObject({
    id: z.string().min(1).max(200),
    effort: z
      .union([effort, z.strictObject({ type: effort })])
      .nullable()
      .optional(),
    inference_geo: z.string().nullable().optional(),
    speed: z.enum(['standard', 'fast']).nullable().optional(),
  }),
]);

/** Fields of Managed Agents that Berth refuses when set (managed-config.ts says why). */
const refusedAgentFields = {
  skills: z.array(z.unknown()).optional(),
  multiagent: z.unknown().optional(),
  execution_identity: z.unknown().optional(),
};

export const agentCreateSchema = z.strictObject({
  name: z.string().min(1).max(256),
  model: modelSchema,
  description: z.string().max(2048).nullable().optional(),
  system: z.string().max(100_000).nullable().optional(),
  tools: toolsSchema.optional(),
  mcp_servers: mcpServersSchema.optional(),
  metadata: metadata.optional(),
  ...refusedAgentFields,
});

export const agentUpdateSchema = z.strictObject({
  /** The version the update is based on: a 409 when the agent has moved on since. */
  version: z.number().int().min(1).optional(),
  name: z.string().min(1).max(256).optional(),
  model: modelSchema.optional(),
  description: z.string().max(2048).nullable().optional(),
  system: z.string().max(100_000).nullable().optional(),
  tools: toolsSchema.nullable().optional(),
  mcp_servers: mcpServersSchema.nullable().optional(),
  metadata: metadataPatch.nullable().optional(),
  ...refusedAgentFields,
});

const hostName = z
  .string()
  .max(253)
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$/,
    'must be a lowercase host name (example.com) or *.example.com for its subdomains',
  );

const networking = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('unrestricted') }),
  z.strictObject({
    type: z.literal('limited'),
    allowed_hosts: z.array(hostName).max(100).nullable().optional(),
    allow_mcp_servers: z.boolean().nullable().optional(),
    allow_package_managers: z.boolean().nullable().optional(),
  }),
]);

/** Berth's addition: per-session limits the host enforces (see `normalizeEnvironmentConfig`). */
const limits = z.strictObject({
  /** The session's subprocess tree's memory; at most the host's `--session-ram-ceiling`. */
  memory_bytes: z.int().positive().optional(),
  /** Agentic turns one user message may take (the SDK's `maxTurns`). */
  max_turns: z.int().positive().optional(),
});

const packages = z.strictObject({
  type: z.literal('packages').optional(),
  apt: z.array(z.string()).nullable().optional(),
  cargo: z.array(z.string()).nullable().optional(),
  gem: z.array(z.string()).nullable().optional(),
  go: z.array(z.string()).nullable().optional(),
  npm: z.array(z.string()).nullable().optional(),
  pip: z.array(z.string()).nullable().optional(),
});

/** Berth's hosting patterns an environment can choose (a group's agents are made by `/v1/groups`). */
export const ENVIRONMENT_PATTERNS = ['long-running', 'hybrid', 'ephemeral'] as const;

export const environmentConfigSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('cloud'),
    networking: networking.nullable().optional(),
    packages: packages.nullable().optional(),
    /** Berth's addition: how sessions in this environment are hosted. @default long-running */
    pattern: z.enum(ENVIRONMENT_PATTERNS).optional(),
    /** Berth's addition: per-session limits. @default the host's */
    limits: limits.optional(),
  }),
  z.strictObject({ type: z.literal('self_hosted') }),
]);

export const environmentCreateSchema = z.strictObject({
  name: z.string().min(1).max(256),
  config: environmentConfigSchema.nullable().optional(),
  description: z.string().max(2048).nullable().optional(),
  metadata: metadata.optional(),
  scope: z.enum(['organization', 'account']).nullable().optional(),
});

export const environmentUpdateSchema = z.strictObject({
  name: z.string().min(1).max(256).nullable().optional(),
  config: environmentConfigSchema.nullable().optional(),
  description: z.string().max(2048).nullable().optional(),
  metadata: metadataPatch.optional(),
  scope: z.enum(['organization', 'account']).nullable().optional(),
});

const textBlock = z.strictObject({
  type: z.literal('text'),
  text: z.string().refine((t) => t.trim().length > 0, 'must not be empty or only whitespace'),
});
const userContent = z
  .array(
    z.discriminatedUnion('type', [
      textBlock,
      z.looseObject({ type: z.literal('image'), source: z.looseObject({ type: z.string() }) }),
      z.looseObject({ type: z.literal('document'), source: z.looseObject({ type: z.string() }) }),
    ]),
  )
  .min(1, 'must hold at least one content block');

export const userMessageSchema = z.strictObject({ type: z.literal('user.message'), content: userContent });

export const userInterruptSchema = z.strictObject({
  type: z.literal('user.interrupt'),
  session_thread_id: z.null().optional(),
});

export const toolConfirmationSchema = z.strictObject({
  type: z.literal('user.tool_confirmation'),
  /** The id of the `agent.tool_use` event it answers. */
  tool_use_id: z.string().min(1).max(200),
  result: z.enum(['allow', 'deny']),
  deny_message: z.string().max(10_000).nullable().optional(),
});

export const sendEventsSchema = z.strictObject({
  events: z
    .array(z.looseObject({ type: z.string() }))
    .min(1)
    .max(100),
});

const agentParam = z.union([
  z.string().min(1).max(200),
  z.strictObject({
    type: z.literal('agent'),
    id: z.string().min(1).max(200),
    version: z.number().int().min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('agent_with_overrides'),
    id: z.string().min(1).max(200),
    version: z.number().int().min(1).optional(),
    model: modelSchema.optional(),
    system: z.string().max(100_000).nullable().optional(),
    tools: toolsSchema.optional(),
    mcp_servers: mcpServersSchema.optional(),
    skills: z.array(z.unknown()).optional(),
  }),
]);

const budget = z.strictObject({
  type: z.literal('limit'),
  max_list_cost: z.strictObject({
    amount: z.string().regex(/^(0|[1-9][0-9]{0,11})$/, 'an integer number of cents, as a string'),
    currency: z.literal('USD'),
  }),
});

export const sessionCreateSchema = z.strictObject({
  agent: agentParam,
  environment_id: z.string().min(1).max(200),
  title: z.string().max(500).nullable().optional(),
  metadata: metadata.optional(),
  budget: budget.optional(),
  initial_events: z
    .array(z.looseObject({ type: z.string() }))
    .max(100)
    .optional(),
  resources: z.array(z.unknown()).optional(),
  vault_ids: z.array(z.string()).optional(),
  /** Berth's addition: the session's id, chosen by the client (the router uses it to place the session). */
  id: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
      'letters, digits, _ and -, at most 64, not starting with _ or -',
    )
    .optional(),
});

export const sessionUpdateSchema = z.strictObject({
  title: z.string().max(500).nullable().optional(),
  metadata: metadataPatch.nullable().optional(),
  budget: budget.nullable().optional(),
  agent: z.unknown().optional(),
  vault_ids: z.array(z.string()).optional(),
});

const limit = (max: number) => z.coerce.number().int().min(1).max(max).optional();
const timestamp = z.iso.datetime({ offset: true }).optional();

export const listQuery = z.strictObject({
  limit: limit(100),
  page: z.string().max(500).optional(),
  include_archived: z.enum(['true', 'false']).optional(),
  'created_at[gte]': timestamp,
  'created_at[lte]': timestamp,
});

export const sessionListQuery = z.strictObject({
  limit: limit(100),
  page: z.string().max(500).optional(),
  include_archived: z.enum(['true', 'false']).optional(),
  agent_id: z.string().max(200).optional(),
  agent_version: z.coerce.number().int().min(1).optional(),
  'statuses[]': z.union([z.string(), z.array(z.string())]).optional(),
  'created_at[gt]': timestamp,
  'created_at[gte]': timestamp,
  'created_at[lt]': timestamp,
  'created_at[lte]': timestamp,
  order: z.enum(['asc', 'desc']).optional(),
});

/**
 * Every event type of Managed Agents (the official client's `BetaManagedAgentsSessionEventType`) and
 * Berth's own: what `types[]` may name. A type Berth never emits is a valid filter that matches nothing;
 * a name in neither list is a typo, and a 400.
 */
export const EVENT_TYPES: ReadonlySet<string> = new Set([
  'user.message',
  'user.interrupt',
  'user.tool_confirmation',
  'user.custom_tool_result',
  'user.define_outcome',
  'user.tool_result',
  'agent.custom_tool_use',
  'agent.message',
  'agent.thinking',
  'agent.mcp_tool_use',
  'agent.mcp_tool_result',
  'agent.tool_use',
  'agent.tool_result',
  'agent.thread_message_received',
  'agent.thread_message_sent',
  'agent.thread_context_compacted',
  'session.error',
  'session.status_rescheduled',
  'session.status_running',
  'session.status_idle',
  'session.status_terminated',
  'session.thread_created',
  'session.thread_status_running',
  'session.thread_status_idle',
  'session.thread_status_terminated',
  'session.thread_status_rescheduled',
  'session.deleted',
  'session.updated',
  'session.usage',
  'system.message',
  'span.outcome_evaluation_start',
  'span.outcome_evaluation_end',
  'span.outcome_evaluation_ongoing',
  'span.model_request_start',
  'span.model_request_end',
  'workflow_run.created',
  'workflow_run.status_running',
  'workflow_run.status_idle',
  'workflow_run.status_ended',
  'workflow_run.error',
  'workflow_run.phase_started',
  'workflow_run.phase_ended',
  // Berth's own
  'session.status_suspended',
]);

const eventType = z.string().superRefine((type, ctx) => {
  if (!EVENT_TYPES.has(type))
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(type)} is not an event type` });
});

export const eventListQuery = z.strictObject({
  limit: limit(1000),
  page: z.string().max(500).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  'types[]': z.union([eventType, z.array(eventType)]).optional(),
  'created_at[gt]': timestamp,
  'created_at[gte]': timestamp,
  'created_at[lt]': timestamp,
  'created_at[lte]': timestamp,
});

export const retrieveAgentQuery = z.strictObject({ version: z.coerce.number().int().min(1).optional() });
