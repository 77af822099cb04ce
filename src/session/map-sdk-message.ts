/**
 * SDK messages to Berth events. Pure, so every mapping is unit-tested without a subprocess. Turn ends
 * (`result`) are the session's business, not this module's: they carry usage and change state.
 */
import type { SDKMessage, SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import { budgetRefusal } from '../sandbox/budget-refusal.js';
import type { ContentBlock, NewEvent, StopReason, Usage } from './events.js';

function isBlock(value: unknown): value is ContentBlock {
  return (
    typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
  );
}

function blocksOf(content: unknown): ContentBlock[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content.filter(isBlock) : [];
}

/** The events an SDK message becomes; empty for messages that Berth does not surface. */
export function mapSdkMessage(message: SDKMessage): NewEvent[] {
  switch (message.type) {
    case 'assistant': {
      const events: NewEvent[] = [];
      let text: ContentBlock[] = [];
      const flushText = (): void => {
        if (text.length > 0) events.push({ type: 'agent.message', content: text });
        text = [];
      };
      for (const block of blocksOf(message.message.content)) {
        if (block.type === 'text') {
          text.push({ type: 'text', text: typeof block.text === 'string' ? block.text : '' });
          continue;
        }
        flushText();
        if (block.type === 'thinking') {
          events.push({
            type: 'agent.thinking',
            thinking: typeof block.thinking === 'string' ? block.thinking : '',
          });
        } else if (block.type === 'tool_use') {
          events.push({
            type: 'agent.tool_use',
            tool_use_id: String(block.id),
            name: String(block.name),
            input: block.input ?? {},
          });
        }
      }
      flushText();
      if (message.error) {
        events.push({
          type: 'session.error',
          // The model proxy's refusal of a tenant over its budget is a 429 too, but not the model's own.
          error: budgetRefusal(message.message.content) ?? {
            type: `model_${message.error}`,
            message: `The model request failed: ${message.error}`,
          },
        });
      }
      return events;
    }
    case 'user': {
      if ('isReplay' in message && message.isReplay) return [];
      const events: NewEvent[] = [];
      for (const block of blocksOf(message.message.content)) {
        if (block.type !== 'tool_result') continue;
        events.push({
          type: 'agent.tool_result',
          tool_use_id: String(block.tool_use_id),
          content: block.content ?? '',
          is_error: block.is_error === true,
        });
      }
      return events;
    }
    case 'system':
      if (message.subtype === 'mirror_error') {
        return [
          {
            type: 'session.error',
            error: {
              type: 'mirror_error',
              message: 'The SDK could not mirror a transcript batch to the store',
            },
          },
        ];
      }
      return [];
    default:
      return [];
  }
}

/** Token usage of a turn's `result`; cost is filled in by the caller (the SDK reports it cumulatively). */
export function resultUsage(result: SDKResultMessage, costUsd: number): Usage {
  const u = result.usage as Partial<Record<keyof Usage, number>> | undefined;
  return {
    input_tokens: u?.input_tokens ?? 0,
    output_tokens: u?.output_tokens ?? 0,
    cache_creation_input_tokens: u?.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: u?.cache_read_input_tokens ?? 0,
    cost_usd: costUsd,
  };
}

/**
 * The error type of a failed model request among a message's events (`model_*`, or the tenant's budget
 * refusal), if there is one: it fails its turn, which the CLI may yet report as a success.
 */
export function modelFailure(events: readonly NewEvent[]): string | undefined {
  for (const e of events) {
    if (e.type !== 'session.error') continue;
    const type = e.error.type;
    // A reply cut at the output limit is no failed request: the CLI goes on from it.
    if ((type.startsWith('model_') && type !== 'model_max_output_tokens') || type === 'budget_exceeded') {
      return type;
    }
  }
  return undefined;
}

/** Why a turn ended, from its `result` and what the turn saw (an interrupt, a failed model request). */
export function resultStopReason(
  result: SDKResultMessage,
  turn: { interrupted: boolean; failedWith?: string | undefined },
): StopReason {
  if (turn.interrupted) return { type: 'interrupted' };
  if (turn.failedWith !== undefined) return { type: 'error', subtype: turn.failedWith };
  if (result.subtype === 'success') return { type: 'end_turn' };
  if (result.subtype === 'error_max_turns') return { type: 'max_turns' };
  return { type: 'error', subtype: result.subtype };
}
