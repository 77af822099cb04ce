/**
 * Berth events: what clients send to a session and what a session reports back. Names follow Anthropic's
 * Managed Agents where the meaning matches. Every stored event carries a per-session sequence number
 * (`seq`, from 1, no gaps) that is also its SSE `id`, so a reconnecting client can ask for what it missed.
 */

import { addUsd } from '../usd.js';

export type ContentBlock = { type: string; [k: string]: unknown };

/** Token usage and cost, summed over a turn or a session's lifetime; `cost_usd` is rounded (see usd.ts). */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
}

export const ZERO_USAGE: Usage = Object.freeze({
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cost_usd: 0,
});

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    cost_usd: addUsd(a.cost_usd, b.cost_usd),
  };
}

export type StopReason =
  | { type: 'end_turn' }
  | { type: 'requires_action'; event_ids: string[] }
  | { type: 'interrupted' }
  | { type: 'error'; subtype: string }
  | { type: 'max_turns' };

/** The payload of each event type; `id`, `seq` and `created_at` are added when it is stored. */
export interface EventPayloads {
  'user.message': { content: string | ContentBlock[] };
  'user.interrupt': object;
  /** `tool_use_id` is the id of the `agent.tool_use` event it answers. */
  'user.tool_confirmation': { tool_use_id: string; result: 'allow' | 'deny'; deny_message?: string };
  'agent.message': { content: ContentBlock[] };
  'agent.thinking': { thinking: string };
  /** `mcp_server_name`: the agent's MCP server whose tool it is (the API shows it as `agent.mcp_tool_use`). */
  'agent.tool_use': {
    tool_use_id: string;
    name: string;
    input: unknown;
    requires_confirmation?: boolean;
    mcp_server_name?: string;
  };
  /** `tool_use_id` is the CLI's; `tool_use_event_id` the id of the `agent.tool_use` event it answers. */
  'agent.tool_result': {
    tool_use_id: string;
    content: unknown;
    is_error: boolean;
    tool_use_event_id?: string;
    /** The agent's MCP server whose tool it answers (the API shows it as `agent.mcp_tool_result`). */
    mcp_server_name?: string;
  };
  'session.status_running': object;
  'session.status_idle': { stop_reason: StopReason; usage?: Usage; duration_ms?: number };
  'session.status_suspended': { reason: string };
  'session.status_rescheduled': { reason: string };
  'session.status_terminated': { reason: string };
  'session.error': { error: { type: string; message: string } };
}

export type EventType = keyof EventPayloads;

export type NewEvent = {
  [T in EventType]: { type: T } & EventPayloads[T];
}[EventType];

export type StoredEvent = NewEvent & { id: string; seq: number; created_at: string };

export const USER_EVENT_TYPES = ['user.message', 'user.interrupt', 'user.tool_confirmation'] as const;
export type UserEventType = (typeof USER_EVENT_TYPES)[number];
