/**
 * A stored event as the API shows it: Managed Agents' event shapes. Stored events keep what Berth needs
 * inside (the CLI's tool use ids and names, a `seq`); this is the one place that turns them into what a
 * client of the Managed Agents API expects:
 * - `processed_at` (when the event was stored), and `seq`, Berth's own addition (the SSE id, and what
 *   `Last-Event-ID` takes);
 * - `agent.tool_use` with the API's tool name and `evaluated_permission`; `agent.tool_result` pointing at
 *   that event's id, its content as blocks;
 * - a use of a tool of the agent's MCP servers (stored with the CLI's name, `mcp__server__tool`, and the
 *   server's) as `agent.mcp_tool_use` with the tool's own name, and its result as `agent.mcp_tool_result`
 *   (`mcp_tool_use_id`); a group's bus tools, no server of the agent's, stay `agent.tool_use`;
 * - stop reasons and `session.error` types from Managed Agents' sets (Berth's own cause stays as `code`).
 * Berth's own events (`session.status_suspended`) keep their types.
 */
import type { ContentBlock, StopReason, StoredEvent } from '../session/events.js';
import { apiToolName } from './tool-names.js';

/** Managed Agents' stop reasons of `session.status_idle`. */
export type ApiStopReason =
  | { type: 'end_turn' }
  | { type: 'requires_action'; event_ids: string[] }
  | { type: 'retries_exhausted' }
  | { type: 'budget_reached' };

/**
 * Berth's stop reason in Managed Agents' set: an interrupted turn and one that reached `max_turns` ended
 * their turn; a failed one used up what could be tried (its `session.error` came just before).
 */
export function apiStopReason(reason: StopReason): ApiStopReason {
  switch (reason.type) {
    case 'requires_action':
      return { type: 'requires_action', event_ids: reason.event_ids };
    case 'error':
      return reason.subtype === 'budget_exceeded'
        ? { type: 'budget_reached' }
        : { type: 'retries_exhausted' };
    default:
      return { type: 'end_turn' };
  }
}

/** Berth's `session.error` types (docs/errors.md) in Managed Agents' set of session error types. */
export function apiErrorType(berthType: string): string {
  switch (berthType) {
    case 'model_overloaded':
      return 'model_overloaded_error';
    case 'model_rate_limit':
      return 'model_rate_limited_error';
    case 'model_billing_error':
    case 'budget_exceeded':
      return 'billing_error';
    default:
      return berthType.startsWith('model_') ? 'model_request_failed_error' : 'unknown_error';
  }
}

/**
 * Managed Agents' `retry_status` of a `session.error`: a transcript write that waits on this host is being
 * retried and the session goes on; any other error ended its turn, and the session takes the next message
 * (`exhausted`; `terminal` would mean the session itself is over, which no error makes it).
 */
function retryStatus(berthType: string): 'retrying' | 'exhausted' {
  return berthType === 'mirror_delayed' || berthType === 'mirror_error' ? 'retrying' : 'exhausted';
}

/** Tool result content as blocks: the CLI reports a plain string for most tools. */
function contentBlocks(content: unknown): ContentBlock[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (Array.isArray(content)) {
    return content.filter(
      (b: unknown): b is ContentBlock =>
        typeof b === 'object' && b !== null && typeof (b as { type?: unknown }).type === 'string',
    );
  }
  return content === undefined || content === null ? [] : [{ type: 'text', text: JSON.stringify(content) }];
}

/** The type the API shows an event as (an MCP tool's use and result have types of their own). */
export function apiEventType(event: StoredEvent): string {
  if (event.type === 'agent.tool_use' && event.mcp_server_name !== undefined) return 'agent.mcp_tool_use';
  if (event.type === 'agent.tool_result' && event.mcp_server_name !== undefined)
    return 'agent.mcp_tool_result';
  return event.type;
}

/** The event as the API shows it. */
export function eventView(event: StoredEvent): Record<string, unknown> {
  const base = { id: event.id, type: event.type, processed_at: event.created_at, seq: event.seq };
  switch (event.type) {
    case 'user.message':
      return {
        ...base,
        content: typeof event.content === 'string' ? [{ type: 'text', text: event.content }] : event.content,
      };
    case 'user.interrupt':
      return base;
    case 'user.tool_confirmation':
      return {
        ...base,
        tool_use_id: event.tool_use_id,
        result: event.result,
        ...(event.deny_message !== undefined && { deny_message: event.deny_message }),
      };
    case 'agent.message':
      return { ...base, content: event.content };
    case 'agent.thinking':
      // Managed Agents' thinking event has no text; Berth keeps the model's, when it had one.
      return { ...base, thinking: event.thinking };
    case 'agent.tool_use': {
      const server = event.mcp_server_name;
      return {
        ...base,
        ...(server !== undefined
          ? {
              type: 'agent.mcp_tool_use',
              mcp_server_name: server,
              // The CLI's name is mcp__<server>__<tool>.
              name: event.name.slice(`mcp__${server}__`.length),
            }
          : { name: apiToolName(event.name) }),
        input: event.input ?? {},
        evaluated_permission: event.requires_confirmation ? 'ask' : 'allow',
      };
    }
    case 'agent.tool_result':
      if (event.mcp_server_name !== undefined) {
        return {
          ...base,
          type: 'agent.mcp_tool_result',
          mcp_tool_use_id: event.tool_use_event_id ?? event.tool_use_id,
          content: contentBlocks(event.content),
          is_error: event.is_error,
        };
      }
      return {
        ...base,
        tool_use_id: event.tool_use_event_id ?? event.tool_use_id,
        content: contentBlocks(event.content),
        is_error: event.is_error,
      };
    case 'session.status_idle':
      return {
        ...base,
        stop_reason: apiStopReason(event.stop_reason),
        stop_details: null,
        ...(event.usage && { usage: event.usage }),
        ...(event.duration_ms !== undefined && { duration_ms: event.duration_ms }),
      };
    case 'session.error':
      return {
        ...base,
        error: {
          type: apiErrorType(event.error.type),
          message: event.error.message,
          retry_status: { type: retryStatus(event.error.type) },
          code: event.error.type,
        },
      };
    case 'session.status_running':
      return base;
    default: {
      // Status changes with a reason (suspended, rescheduled, terminated): as stored.
      const { created_at: _created, ...rest } = event;
      return { ...rest, processed_at: event.created_at };
    }
  }
}
