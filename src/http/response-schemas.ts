/**
 * What the API answers, as zod schemas: the shapes that session-view.ts, catalog-routes.ts, task-routes.ts,
 * group-routes.ts and host-info.ts build, for the OpenAPI document (openapi.ts). Nothing parses a response
 * with them; test/openapi.test.ts checks real answers against the document they make.
 *
 * Objects are `z.object`, which the document renders with `additionalProperties: false`: a field a view
 * adds without adding it here fails that test, so the document cannot fall behind the views unnoticed.
 * A schema with an `id` in its `meta` is one component of the document, referred to wherever it is used.
 */
import { z } from 'zod';
import type { HostInfo } from '../host/host-info.js';
import { PATTERNS, type SessionStatus } from '../stores/types.js';
import type { TaskRecord, TaskStatus } from '../tasks/task.js';
import type { GroupStatus } from '../groups/group.js';
import { ENVIRONMENT_PATTERNS, effort } from './managed-schemas.js';
import type { ApiSessionStatus } from './session-view.js';
import { API_TOOL_NAMES } from './tool-names.js';

/**
 * Every member of the string union `T`, checked at compile time: a member added to the type and not
 * here fails to compile.
 */
export function everyOf<T extends string>() {
  return <const V extends readonly [T, ...T[]]>(
    ...values: V & ([T] extends [V[number]] ? unknown : { missing: Exclude<T, V[number]> })
  ): V => values;
}

export const timestamp = z.iso.datetime().meta({ id: 'Timestamp', description: 'ISO 8601, UTC' });
const metadata = z.record(z.string(), z.string());
/** A list Berth always answers empty (a Managed Agents feature it does not implement). */
const alwaysEmpty = z.array(z.unknown()).max(0);
const count = z.int().min(0);

/** A page of a list: `next_page` is the cursor of the next (`page=`), null at the end. */
export function listPage<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), next_page: z.string().nullable() });
}

/** What `DELETE` answers: the id, and `<kind>_deleted`. */
export function deleted<K extends string>(kind: K) {
  return z.object({ id: z.string(), type: z.literal(`${kind}_deleted`) });
}

// Agents (catalog-routes.ts; the tools as managed-config.ts fills them in)

const policy = z.object({ type: z.enum(['always_allow', 'always_ask']) });
const toolDefaults = z.object({ enabled: z.boolean(), permission_policy: policy });
const toolName = z.enum(API_TOOL_NAMES as [string, ...string[]]);

const agentToolset = z.object({
  type: z.literal('agent_toolset_20260401'),
  default_config: toolDefaults,
  configs: z.array(z.object({ type: toolName, name: toolName, ...toolDefaults.shape })),
});

const mcpToolset = z.object({
  type: z.literal('mcp_toolset'),
  mcp_server_name: z.string(),
  default_config: toolDefaults,
  configs: z.array(z.object({ name: z.string(), ...toolDefaults.shape })),
});

const agentFields = {
  id: z.string(),
  type: z.literal('agent'),
  name: z.string(),
  description: z.string().nullable(),
  model: z.object({
    id: z.string(),
    effort: z.object({ type: effort }).optional(),
    speed: z.literal('standard').optional(),
  }),
  system: z.string().nullable(),
  tools: z.array(z.discriminatedUnion('type', [agentToolset, mcpToolset])),
  mcp_servers: z.array(z.object({ type: z.literal('url'), name: z.string(), url: z.string() })),
  skills: alwaysEmpty,
  multiagent: z.null(),
  execution_identity: z.null(),
  version: z.int().min(1),
};

export const agentSchema = z
  .object({
    ...agentFields,
    metadata,
    created_at: timestamp,
    updated_at: timestamp,
    archived_at: timestamp.nullable(),
  })
  .meta({ id: 'Agent', description: 'An agent at one of its versions' });

// Environments

const networking = z.discriminatedUnion('type', [
  z.object({ type: z.literal('unrestricted') }),
  z.object({
    type: z.literal('limited'),
    allowed_hosts: z.array(z.string()),
    allow_mcp_servers: z.literal(false),
    allow_package_managers: z.literal(false),
  }),
]);

const packageList = z.array(z.string()).max(0);

export const environmentSchema = z
  .object({
    id: z.string(),
    type: z.literal('environment'),
    name: z.string(),
    description: z.string().nullable(),
    config: z.object({
      type: z.literal('cloud'),
      networking,
      packages: z.object({
        type: z.literal('packages'),
        apt: packageList,
        cargo: packageList,
        gem: packageList,
        go: packageList,
        npm: packageList,
        pip: packageList,
      }),
      pattern: z.enum(ENVIRONMENT_PATTERNS).optional(),
      limits: z
        .object({ memory_bytes: z.int().positive().optional(), max_turns: z.int().positive().optional() })
        .optional(),
    }),
    metadata,
    scope: z.enum(['organization', 'account']),
    created_at: timestamp,
    updated_at: timestamp,
    archived_at: timestamp.nullable(),
  })
  .meta({ id: 'Environment' });

// Sessions (session-view.ts)

const SESSION_STATUSES = everyOf<SessionStatus>()(
  'idle',
  'running',
  'requires_action',
  'suspended',
  'terminated',
);
export const sessionStatus = z.enum(SESSION_STATUSES);

const money = z.object({ amount: z.string().regex(/^\d+$/), currency: z.literal('USD') });

export const sessionSchema = z
  .object({
    id: z.string(),
    type: z.literal('session'),
    status: z.enum(everyOf<ApiSessionStatus>()('idle', 'running', 'rescheduling', 'terminated')),
    title: z.string().nullable(),
    metadata,
    agent: z
      .union([
        z.object(agentFields),
        // The pinned version could not be read: what the session names.
        z.object({ type: z.literal('agent'), id: z.string(), version: z.int() }),
      ])
      .nullable()
      .meta({
        description:
          'The agent the session runs (its pinned version, overrides applied); null for a group agent',
      }),
    environment_id: z.string().nullable(),
    archived_at: timestamp.nullable(),
    budget: z.object({ type: z.literal('limit'), max_list_cost: money }).nullable(),
    usage: z.object({
      input_tokens: count,
      output_tokens: count,
      cache_read_input_tokens: count,
      cache_creation: z.object({ ephemeral_5m_input_tokens: count }),
      list_cost: money,
    }),
    stats: z.object({ duration_seconds: count }),
    resources: alwaysEmpty,
    outcome_evaluations: alwaysEmpty,
    vault_ids: alwaysEmpty,
    created_at: timestamp,
    updated_at: timestamp,
    berth: z
      .object({ status: sessionStatus, pattern: z.enum(PATTERNS), turns: count, cost_usd: z.number().min(0) })
      .meta({ description: "Berth's own: its finer status, the hosting pattern, turns and cost in dollars" }),
  })
  .meta({ id: 'Session' });

export const sessionListSchema = listPage(sessionSchema).extend({ prev_page: z.null() });

// Hosts (host-info.ts)

const nullableCount = count.nullable();

export const hostInfoSchema = z
  .object({
    status: z.enum(['ready', 'draining']),
    capacity: z.object({
      agents_per_host: nullableCount,
      host_ram_bytes: nullableCount,
      overhead_bytes: nullableCount,
      session_ceiling_bytes: nullableCount,
    }),
    slots: z.object({ used: count, sessions: count, spares: count, tasks: count, free: nullableCount }),
    sessions: z.object({ loaded: count, running: count, suspended: count }),
    warm_pool: z.object({
      size: count,
      parked: count,
      starting: count,
      prewarmed: count,
      claimed: count,
      refused: count,
      lost: count,
    }),
  })
  .meta({ id: 'HostInfo' }) satisfies z.ZodType<HostInfo>;

export const hostSelfSchema = hostInfoSchema
  .extend({ type: z.literal('host') })
  .meta({ id: 'Host', description: 'This host: what it holds and may hold' });

// Tasks (src/tasks/task.ts)

export const usageSchema = z
  .object({
    input_tokens: count,
    output_tokens: count,
    cache_creation_input_tokens: count,
    cache_read_input_tokens: count,
    cost_usd: z.number().min(0),
  })
  .meta({ id: 'Usage' });

const TASK_STATUSES = everyOf<TaskStatus>()('queued', 'running', 'succeeded', 'failed', 'timed_out');

export const failureSchema = z.object({ type: z.string(), message: z.string() });

export const taskSchema = z
  .object({
    id: z.string(),
    type: z.literal('task'),
    status: z.enum(TASK_STATUSES),
    prompt: z.string(),
    agent: z.object({
      model: z.string().optional(),
      system_prompt: z.string().optional(),
      allowed_tools: z.array(z.string()).optional(),
      disallowed_tools: z.array(z.string()).optional(),
      permission_mode: z.enum(['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk']).optional(),
      network: z.object({ allowed_domains: z.array(z.string()) }).optional(),
    }),
    timeout_ms: z.int().positive(),
    max_turns: z.int().positive().nullable(),
    result: z.string().nullable(),
    usage: usageSchema.nullable(),
    cost_usd: z.number().min(0).nullable(),
    duration_ms: count.nullable(),
    num_turns: count.nullable(),
    error: failureSchema.nullable(),
    artifacts: z.array(z.object({ path: z.string(), bytes: count, sha256: z.string() })),
    created_at: timestamp,
    finished_at: timestamp.nullable(),
    warm_start: z.boolean(),
  })
  .meta({ id: 'Task' }) satisfies z.ZodType<TaskRecord>;

// Groups (group-routes.ts)

export const groupSchema = z
  .object({
    id: z.string(),
    type: z.literal('group'),
    status: z.enum(everyOf<GroupStatus>()('idle', 'running', 'terminated')),
    title: z.string().nullable(),
    agents: z.array(z.object({ name: z.string(), session_id: z.string(), status: sessionStatus })),
    shared_dir_path: z.string().nullable(),
    rounds: z.object({
      active: z.object({ round: z.int().min(1), rounds: z.int().min(1) }).nullable(),
      queued: count,
    }),
    created_at: timestamp,
  })
  .meta({ id: 'Group' });

// The rest

export const healthSchema = z.object({ status: z.literal('ok') });
