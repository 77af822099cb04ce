import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../session/events.js';
import { eventView } from './event-view.js';

const AT = '2026-12-07T05:00:00.000Z';
const stored = (event: Record<string, unknown>, id: string, seq: number): StoredEvent =>
  ({ ...event, id, seq, created_at: AT }) as unknown as StoredEvent;

describe('eventView of MCP tool events', () => {
  it("shows a tool of the agent's MCP server as agent.mcp_tool_use, and its result as agent.mcp_tool_result", () => {
    const use = stored(
      {
        type: 'agent.tool_use',
        tool_use_id: 'toolu_1',
        name: 'mcp__notes__write__note',
        input: { text: 'x' },
        requires_confirmation: true,
        mcp_server_name: 'notes',
      },
      'sevt_use',
      1,
    );
    expect(eventView(use)).toEqual({
      id: 'sevt_use',
      type: 'agent.mcp_tool_use',
      processed_at: AT,
      seq: 1,
      mcp_server_name: 'notes',
      name: 'write__note',
      input: { text: 'x' },
      evaluated_permission: 'ask',
    });
    const result = stored(
      {
        type: 'agent.tool_result',
        tool_use_id: 'toolu_1',
        tool_use_event_id: 'sevt_use',
        content: [{ type: 'text', text: 'ok' }],
        is_error: false,
        mcp_server_name: 'notes',
      },
      'sevt_result',
      2,
    );
    expect(eventView(result)).toEqual({
      id: 'sevt_result',
      type: 'agent.mcp_tool_result',
      processed_at: AT,
      seq: 2,
      mcp_tool_use_id: 'sevt_use',
      content: [{ type: 'text', text: 'ok' }],
      is_error: false,
    });
  });

  it("keeps an MCP tool of no server of the agent's (a group's bus) an agent.tool_use with its CLI name", () => {
    const use = stored(
      { type: 'agent.tool_use', tool_use_id: 'toolu_2', name: 'mcp__berth_bus__send_message', input: {} },
      'sevt_bus',
      3,
    );
    expect(eventView(use)).toMatchObject({ type: 'agent.tool_use', name: 'mcp__berth_bus__send_message' });
  });
});
