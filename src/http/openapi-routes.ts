/**
 * The table of every route the server serves, for the OpenAPI document (openapi.ts builds it): method,
 * path, summary, the zod schemas that validate its query and body, what it answers and the error codes
 * of its own. test/openapi.test.ts fails when the app serves a route the table lacks, or the reverse.
 */
import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import { agentName, createGroupSchema, roundsEvent } from './group-routes.js';
import {
  agentCreateSchema,
  agentUpdateSchema,
  environmentCreateSchema,
  environmentUpdateSchema,
  eventListQuery,
  listQuery,
  retrieveAgentQuery,
  sessionCreateSchema,
  sessionListQuery,
  sessionUpdateSchema,
  toolConfirmationSchema,
  userInterruptSchema,
  userMessageSchema,
} from './managed-schemas.js';
import { groupEventSchema, sessionEventSchema, taskEventSchema } from './response-event-schemas.js';
import {
  agentSchema,
  deleted,
  environmentSchema,
  groupSchema,
  healthSchema,
  hostInfoSchema,
  hostSelfSchema,
  listPage,
  sessionListSchema,
  sessionSchema,
  taskSchema,
} from './response-schemas.js';
import { listEventsQuery, streamQuery, userEventSchema } from './schemas.js';
import { createTaskQuery, createTaskSchema } from './task-routes.js';

export type Method = 'get' | 'post' | 'delete';

/** A success answer: its status, what it is, and its body's media type and schema. */
export interface Answer {
  status: number;
  description: string;
  media: string;
  schema: z.ZodType;
}

export interface RouteDoc {
  method: Method;
  /** The path as the app registers it (`:id`, `*`). */
  path: string;
  summary: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  answers: Answer[];
  /** The route's own error codes, beyond those every route of its kind can give. */
  errors?: ErrorCode[];
  /** `/metrics`: an API key only when keys are configured and it is not `--metrics-public`. */
  optionalAuth?: boolean;
}

const json = (schema: z.ZodType, description: string, status = 200): Answer => ({
  status,
  description,
  media: 'application/json',
  schema,
});

/**
 * An SSE stream. OpenAPI 3.1 cannot type the items of a stream, so its schema is what each event's
 * `data:` holds (what OpenAPI 3.2 calls `itemSchema`).
 */
const sse = (event: z.ZodType, description: string): Answer => ({
  status: 200,
  description: `${description}: Server-Sent Events, each \`data:\` one event as this schema says, the SSE event name its \`type\` and the SSE \`id\` its \`seq\`; \`: heartbeat\` comments keep it open`,
  media: 'text/event-stream',
  schema: event,
});

// Bodies the routes validate in two steps (the batch, then each event by its type), made one schema here
// from the same parts; the routes keep their own.

const sessionEventsBody = z.strictObject({
  events: z
    .array(z.discriminatedUnion('type', [userMessageSchema, userInterruptSchema, toolConfirmationSchema]))
    .min(1)
    .max(100),
});

const groupEventsBody = z.strictObject({
  events: z
    .array(z.union([...userEventSchema.options.map((e) => e.extend({ agent: agentName })), roundsEvent]))
    .min(1)
    .max(100),
});

const sessionStreamQuery = streamQuery.extend({
  'event_deltas[]': z
    .array(z.string())
    .optional()
    .meta({ description: 'Refused (400 unsupported): Berth streams no deltas' }),
});

const sessionData = z.object({ data: z.array(sessionEventSchema) });

const SESSION: ErrorCode[] = ['invalid_id', 'session_not_found', 'session_elsewhere', 'store_unavailable'];
const AGENT: ErrorCode[] = ['invalid_id', 'agent_not_found', 'store_unavailable'];
const ENVIRONMENT: ErrorCode[] = ['invalid_id', 'environment_not_found', 'store_unavailable'];
const TASK: ErrorCode[] = ['invalid_id', 'task_not_found', 'store_unavailable'];
const GROUP: ErrorCode[] = ['invalid_id', 'group_not_found'];
/** A turn or a task that needs a subprocess slot, within the tenant's limits. */
const ADMISSION: ErrorCode[] = ['host_full', 'host_draining', 'quota_exceeded', 'budget_exceeded'];

/** Every route the server serves. */
export const ROUTES: readonly RouteDoc[] = [
  // Health, metrics, this document: no API key
  {
    method: 'get',
    path: '/healthz',
    summary: 'Whether the process serves requests',
    answers: [json(healthSchema, 'It does')],
  },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Whether the host admits work, and what it holds',
    answers: [
      json(hostInfoSchema, 'Ready'),
      json(hostInfoSchema, 'Draining (from SIGTERM on): `status` is `draining`', 503),
    ],
  },
  {
    method: 'get',
    path: '/metrics',
    summary: "The host's metrics, in Prometheus' text format",
    optionalAuth: true,
    answers: [{ status: 200, description: 'The metrics', media: 'text/plain', schema: z.string() }],
    errors: ['unauthorized'],
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    answers: [json(z.looseObject({ openapi: z.literal('3.1.0') }), 'The API as an OpenAPI 3.1 document')],
  },
  {
    method: 'get',
    path: '/console',
    summary: "The web console's page",
    answers: [{ status: 200, description: 'index.html', media: 'text/html', schema: z.string() }],
    errors: ['not_found'],
  },
  {
    method: 'get',
    path: '/console/*',
    summary: "One of the web console's files (HTML, CSS, ES modules, images)",
    answers: [{ status: 200, description: 'The file', media: '*/*', schema: z.string() }],
    errors: ['not_found'],
  },
  {
    method: 'get',
    path: '/v1/hosts/self',
    summary: 'This host: capacity, slots, sessions and the warm pool',
    answers: [json(hostSelfSchema, 'The host')],
  },
  // Agents
  {
    method: 'post',
    path: '/v1/agents',
    summary: 'Create an agent',
    body: agentCreateSchema.meta({ id: 'AgentCreateParams' }),
    answers: [json(agentSchema, 'The agent, at version 1')],
    errors: ['unsupported', 'store_unavailable'],
  },
  {
    method: 'get',
    path: '/v1/agents',
    summary: "List the tenant's agents, newest first",
    query: listQuery,
    answers: [json(listPage(agentSchema), 'A page of agents at their latest version')],
    errors: ['store_unavailable'],
  },
  {
    method: 'get',
    path: '/v1/agents/:agent_id',
    summary: 'Retrieve an agent, at its latest version or at `version`',
    query: retrieveAgentQuery,
    answers: [json(agentSchema, 'The agent')],
    errors: AGENT,
  },
  {
    method: 'post',
    path: '/v1/agents/:agent_id',
    summary: 'Update an agent: a new version when something changes',
    body: agentUpdateSchema.meta({ id: 'AgentUpdateParams' }),
    answers: [json(agentSchema, 'The agent, at its new version (or as it was when nothing changed)')],
    errors: [...AGENT, 'unsupported', 'agent_archived', 'revision_conflict'],
  },
  {
    method: 'get',
    path: '/v1/agents/:agent_id/versions',
    summary: "List an agent's versions, newest first",
    query: listQuery,
    answers: [json(listPage(agentSchema), 'A page of versions')],
    errors: AGENT,
  },
  {
    method: 'post',
    path: '/v1/agents/:agent_id/archive',
    summary: 'Archive an agent',
    answers: [json(agentSchema, 'The agent, archived')],
    errors: AGENT,
  },
  // Environments
  {
    method: 'post',
    path: '/v1/environments',
    summary: 'Create an environment',
    body: environmentCreateSchema.meta({ id: 'EnvironmentCreateParams' }),
    answers: [json(environmentSchema, 'The environment, its config filled in for this host')],
    errors: ['unsupported', 'store_unavailable'],
  },
  {
    method: 'get',
    path: '/v1/environments',
    summary: "List the tenant's environments, newest first",
    query: listQuery,
    answers: [json(listPage(environmentSchema), 'A page of environments')],
    errors: ['store_unavailable'],
  },
  {
    method: 'get',
    path: '/v1/environments/:environment_id',
    summary: 'Retrieve an environment',
    answers: [json(environmentSchema, 'The environment')],
    errors: ENVIRONMENT,
  },
  {
    method: 'post',
    path: '/v1/environments/:environment_id',
    summary: 'Update an environment',
    body: environmentUpdateSchema.meta({ id: 'EnvironmentUpdateParams' }),
    answers: [json(environmentSchema, 'The environment')],
    errors: [...ENVIRONMENT, 'unsupported', 'environment_archived'],
  },
  {
    method: 'delete',
    path: '/v1/environments/:environment_id',
    summary: 'Delete an environment (its sessions go on)',
    answers: [json(deleted('environment'), 'Deleted')],
    errors: ENVIRONMENT,
  },
  {
    method: 'post',
    path: '/v1/environments/:environment_id/archive',
    summary: 'Archive an environment',
    answers: [json(environmentSchema, 'The environment, archived')],
    errors: ENVIRONMENT,
  },
  // Sessions and their events
  {
    method: 'post',
    path: '/v1/sessions',
    summary: 'Create a session of an agent in an environment',
    body: sessionCreateSchema.meta({ id: 'SessionCreateParams' }),
    answers: [json(sessionSchema, 'The session (`running` when it had `initial_events`)')],
    errors: [
      'unsupported',
      'unknown_event_type',
      'agent_not_found',
      'environment_not_found',
      'agent_archived',
      'environment_archived',
      'session_exists',
      'store_unavailable',
      ...ADMISSION,
    ],
  },
  {
    method: 'get',
    path: '/v1/sessions',
    summary: "List the tenant's sessions, newest first",
    query: sessionListQuery,
    answers: [json(sessionListSchema, 'A page of sessions')],
    errors: ['unsupported', 'store_unavailable'],
  },
  {
    method: 'get',
    path: '/v1/sessions/:id',
    summary: 'Retrieve a session',
    answers: [json(sessionSchema, 'The session')],
    errors: SESSION,
  },
  {
    method: 'post',
    path: '/v1/sessions/:id',
    summary: "Update a session's title, metadata or budget",
    body: sessionUpdateSchema.meta({ id: 'SessionUpdateParams' }),
    answers: [json(sessionSchema, 'The session')],
    errors: [...SESSION, 'unsupported', 'lease_lost'],
  },
  {
    method: 'delete',
    path: '/v1/sessions/:id',
    summary: 'Delete a session: its processes, record, events, transcript and workspace',
    answers: [json(deleted('session'), 'Deleted')],
    errors: [...SESSION, 'lease_lost'],
  },
  {
    method: 'post',
    path: '/v1/sessions/:id/archive',
    summary: 'Archive a session, which terminates it',
    answers: [json(sessionSchema, 'The session, archived and terminated')],
    errors: [...SESSION, 'lease_lost'],
  },
  {
    method: 'post',
    path: '/v1/sessions/:id/events',
    summary: 'Send events: messages, interrupts, tool confirmations',
    body: sessionEventsBody.meta({ id: 'SessionEventsParams' }),
    answers: [json(sessionData, 'The events as stored')],
    errors: [
      ...SESSION,
      'unsupported',
      'unknown_event_type',
      'session_terminated',
      'tool_use_not_pending',
      'queue_full',
      'lease_lost',
      ...ADMISSION,
    ],
  },
  {
    method: 'get',
    path: '/v1/sessions/:id/events',
    summary: "List a session's events in pages",
    query: eventListQuery,
    answers: [json(listPage(sessionEventSchema), 'A page of events')],
    errors: SESSION,
  },
  {
    method: 'get',
    path: '/v1/sessions/:id/events/stream',
    summary: "Stream a session's events; `Last-Event-ID` or `after` replays what came after it first",
    query: sessionStreamQuery,
    answers: [sse(sessionEventSchema, "The session's events")],
    errors: [...SESSION, 'unsupported', 'quota_exceeded'],
  },
  // Tasks
  {
    method: 'post',
    path: '/v1/tasks',
    summary: 'Run a task: one prompt in a sandbox made for it',
    query: createTaskQuery,
    body: createTaskSchema.meta({ id: 'TaskCreateParams' }),
    answers: [
      json(taskSchema, 'Admitted: the task as queued', 202),
      json(taskSchema, 'With `wait=true`: the task once it has ended'),
    ],
    errors: ['invalid_path', 'limit_exceeded', 'store_unavailable', ...ADMISSION],
  },
  {
    method: 'get',
    path: '/v1/tasks/:id',
    summary: 'Retrieve a task',
    answers: [json(taskSchema, 'The task')],
    errors: TASK,
  },
  {
    method: 'get',
    path: '/v1/tasks/:id/artifacts/*',
    summary: 'Download one artifact of an ended task',
    answers: [
      {
        status: 200,
        description: "The artifact's bytes; `ETag` is its sha256",
        media: 'application/octet-stream',
        schema: z.string(),
      },
    ],
    errors: [...TASK, 'invalid_path', 'artifact_not_found'],
  },
  {
    method: 'get',
    path: '/v1/tasks/:id/events/stream',
    summary: "Stream a task's events from its start; the stream ends after its final status",
    query: streamQuery,
    answers: [sse(taskEventSchema, "The task's events")],
    errors: [...TASK, 'quota_exceeded'],
  },
  // Groups
  {
    method: 'post',
    path: '/v1/groups',
    summary: 'Create a group of agents that talk through a message bus',
    body: createGroupSchema.meta({ id: 'GroupCreateParams' }),
    answers: [json(groupSchema, 'The group')],
    errors: ['isolation_failed', 'store_unavailable', ...ADMISSION],
  },
  {
    method: 'get',
    path: '/v1/groups',
    summary: "List the tenant's groups on this host, newest first",
    answers: [json(listPage(groupSchema), 'Every group (`next_page` is null)')],
  },
  {
    method: 'get',
    path: '/v1/groups/:id',
    summary: 'Retrieve a group',
    answers: [json(groupSchema, 'The group')],
    errors: GROUP,
  },
  {
    method: 'delete',
    path: '/v1/groups/:id',
    summary: "Delete a group and every agent's session",
    answers: [json(deleted('group'), 'Deleted')],
    errors: GROUP,
  },
  {
    method: 'post',
    path: '/v1/groups/:id/events',
    summary: "Send events to a group's agents, or ask for rounds",
    body: groupEventsBody.meta({ id: 'GroupEventsParams' }),
    answers: [
      json(z.object({ data: z.array(groupEventSchema) }), 'The events as the group stream shows them'),
    ],
    errors: [
      ...GROUP,
      'unknown_event_type',
      'session_terminated',
      'tool_use_not_pending',
      'queue_full',
      ...ADMISSION,
    ],
  },
  {
    method: 'get',
    path: '/v1/groups/:id/events',
    summary: "List a group's buffered events, oldest first",
    query: listEventsQuery,
    answers: [
      json(
        listPage(groupEventSchema).extend({ oldest_seq: z.int().min(0) }),
        'A page of events; `oldest_seq` is the first the buffer holds',
      ),
    ],
    errors: GROUP,
  },
  {
    method: 'get',
    path: '/v1/groups/:id/events/stream',
    summary: "Stream a group's events",
    query: streamQuery,
    answers: [
      sse(
        groupEventSchema,
        "The group's events (a replay from before the buffer starts with `group.replay_gap {after, first_seq}`, without an id)",
      ),
    ],
    errors: [...GROUP, 'quota_exceeded'],
  },
];
