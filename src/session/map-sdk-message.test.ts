import type { SDKMessage, SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import { describe, expect, it } from 'vitest';
import { mapSdkMessage, resultStopReason, resultUsage } from './map-sdk-message.js';

const assistant = (content: unknown[], extra: Record<string, unknown> = {}): SDKMessage =>
  ({
    type: 'assistant',
    message: { content },
    parent_tool_use_id: null,
    uuid: 'u',
    session_id: 's',
    ...extra,
  }) as never;

describe('mapSdkMessage', () => {
  it('merges adjacent text blocks and keeps block order around thinking and tool use', () => {
    const events = mapSdkMessage(
      assistant([
        { type: 'thinking', thinking: 'hmm', signature: 'x' },
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b' },
        { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } },
      ]),
    );
    expect(events).toEqual([
      { type: 'agent.thinking', thinking: 'hmm' },
      {
        type: 'agent.message',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
      { type: 'agent.tool_use', tool_use_id: 'toolu_1', name: 'Bash', input: { command: 'ls' } },
    ]);
  });

  it('reports a failed model request as session.error', () => {
    const events = mapSdkMessage(assistant([{ type: 'text', text: 'API Error' }], { error: 'rate_limit' }));
    expect(events.at(-1)).toMatchObject({ type: 'session.error', error: { type: 'model_rate_limit' } });
  });

  it('maps tool results and ignores replayed user input', () => {
    const result = {
      type: 'user',
      message: {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 't', content: 'ok', is_error: true }],
      },
      parent_tool_use_id: null,
    } as never;
    expect(mapSdkMessage(result)).toEqual([
      { type: 'agent.tool_result', tool_use_id: 't', content: 'ok', is_error: true },
    ]);
    expect(mapSdkMessage({ ...(result as object), isReplay: true } as never)).toEqual([]);
  });

  it('surfaces mirror errors and ignores other system messages', () => {
    expect(mapSdkMessage({ type: 'system', subtype: 'mirror_error' } as never)).toMatchObject([
      { type: 'session.error', error: { type: 'mirror_error' } },
    ]);
    expect(mapSdkMessage({ type: 'system', subtype: 'init' } as never)).toEqual([]);
  });
});

describe('results', () => {
  const result = (subtype: string): SDKResultMessage =>
    ({ type: 'result', subtype, usage: { input_tokens: 3, output_tokens: 4 }, total_cost_usd: 1 }) as never;

  it('maps subtypes to stop reasons', () => {
    expect(resultStopReason(result('success'), { interrupted: false })).toEqual({ type: 'end_turn' });
    expect(resultStopReason(result('error_max_turns'), { interrupted: false })).toEqual({
      type: 'max_turns',
    });
    expect(resultStopReason(result('error_during_execution'), { interrupted: false })).toEqual({
      type: 'error',
      subtype: 'error_during_execution',
    });
    expect(resultStopReason(result('error_during_execution'), { interrupted: true })).toEqual({
      type: 'interrupted',
    });
    // A failed model request fails the turn that the CLI reports as a success.
    expect(
      resultStopReason(result('success'), { interrupted: false, failedWith: 'budget_exceeded' }),
    ).toEqual({
      type: 'error',
      subtype: 'budget_exceeded',
    });
  });

  it('fills missing usage fields with 0', () => {
    expect(resultUsage(result('success'), 0.5)).toEqual({
      input_tokens: 3,
      output_tokens: 4,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_usd: 0.5,
    });
  });
});
