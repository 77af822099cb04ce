/**
 * Events as the API shows them, as zod schemas for the OpenAPI document: a session's (event-view.ts), a
 * task's (task-routes.ts: its agent's events as a session's, plus `task.*`) and a group's
 * (group-routes.ts: its agents' session events tagged with the agent, plus `group.*`). Each is a union on
 * `type`; every event has `id`, `type`, `processed_at` and `seq`.
 */
import { z } from 'zod';
import { failureSchema, taskSchema, timestamp, usageSchema } from './response-schemas.js';

const base = { id: z.string(), processed_at: timestamp, seq: z.int().min(1) };

function event<T extends string, S extends z.ZodRawShape>(type: T, fields: S) {
  return z.object({ ...base, type: z.literal(type), ...fields });
}

const contentBlock = z.looseObject({ type: z.string() });
const permission = z.enum(['allow', 'ask']);

const userEvents = [
  event('user.message', { content: z.array(contentBlock) }),
  event('user.interrupt', {}),
  event('user.tool_confirmation', {
    tool_use_id: z.string(),
    result: z.enum(['allow', 'deny']),
    deny_message: z.string().optional(),
  }),
] as const;

/** What the agent does in a turn: a session's, a task's and a group agent's alike. */
const agentEvents = [
  event('agent.message', { content: z.array(contentBlock) }),
  event('agent.thinking', { thinking: z.string() }),
  event('agent.tool_use', { name: z.string(), input: z.unknown(), evaluated_permission: permission }),
  event('agent.mcp_tool_use', {
    mcp_server_name: z.string(),
    name: z.string(),
    input: z.unknown(),
    evaluated_permission: permission,
  }),
  event('agent.tool_result', {
    tool_use_id: z.string(),
    content: z.array(contentBlock),
    is_error: z.boolean(),
  }),
  event('agent.mcp_tool_result', {
    mcp_tool_use_id: z.string(),
    content: z.array(contentBlock),
    is_error: z.boolean(),
  }),
] as const;

const stopReason = z.discriminatedUnion('type', [
  z.object({ type: z.literal('end_turn') }),
  z.object({ type: z.literal('requires_action'), event_ids: z.array(z.string()) }),
  z.object({ type: z.literal('retries_exhausted') }),
  z.object({ type: z.literal('budget_reached') }),
]);

const sessionOwnEvents = [
  event('session.status_running', {}),
  event('session.status_idle', {
    stop_reason: stopReason,
    stop_details: z.null(),
    usage: usageSchema.optional(),
    duration_ms: z.int().min(0).optional(),
  }),
  event('session.error', {
    error: z.object({
      type: z.enum([
        'model_overloaded_error',
        'model_rate_limited_error',
        'billing_error',
        'model_request_failed_error',
        'unknown_error',
      ]),
      message: z.string(),
      retry_status: z.object({ type: z.enum(['retrying', 'exhausted']) }),
      code: z.string().meta({ description: "Berth's cause (docs/errors.md)" }),
    }),
  }),
  event('session.status_suspended', { reason: z.string() }),
  event('session.status_rescheduled', { reason: z.string() }),
  event('session.status_terminated', { reason: z.string() }),
] as const;

const sessionEvents = [...userEvents, ...agentEvents, ...sessionOwnEvents] as const;

export const sessionEventSchema = z
  .discriminatedUnion('type', sessionEvents)
  .meta({ id: 'SessionEvent', description: "An event of a session's history" });

export const taskEventSchema = z
  .discriminatedUnion('type', [
    ...agentEvents,
    event('task.status_queued', {}),
    event('task.status_running', { warm_start: z.boolean() }),
    event('task.status_succeeded', { task: taskSchema }),
    event('task.status_failed', { task: taskSchema }),
    event('task.status_timed_out', { task: taskSchema }),
    event('task.error', { error: failureSchema }),
  ])
  .meta({ id: 'TaskEvent', description: "An event of a task's stream" });

/** An agent's session event on its group's stream: `seq` is the group's, `session_seq` the session's. */
const tagged = {
  agent: z.string(),
  session_id: z.string(),
  session_seq: z.int().min(1),
};

export const groupEventSchema = z
  .discriminatedUnion('type', [
    event('group.message', {
      message_id: z.string(),
      from: z.string(),
      to: z.string(),
      recipients: z.array(z.string()),
      text: z.string(),
      sent_at: timestamp,
    }),
    event('group.rounds', { rounds: z.int().min(1), content: z.string().optional() }),
    event('group.round_started', { round: z.int().min(1), rounds: z.int().min(1) }),
    event('group.rounds_finished', {
      rounds: z.int().min(1),
      completed: z.int().min(0),
      stop_reason: z.enum(['done', 'error', 'deleted']),
    }),
    event('group.error', { agent: z.string().optional(), error: failureSchema }),
    event('group.status_terminated', { reason: z.string() }),
    ...sessionEvents.map((e) => e.extend(tagged)),
  ])
  .meta({ id: 'GroupEvent', description: "An event of a group's stream" });
