import { describe, expect, it } from 'vitest';
import { chunkText, formatSseFrame, streamEvents, type WireMessage } from './anthropic-sse.js';

function message(content: WireMessage['content'], stopReason = 'end_turn'): WireMessage {
  return {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'm',
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };
}

describe('chunkText', () => {
  it('splits into pieces that join back to the text', () => {
    const text = 'x'.repeat(1000);
    const chunks = chunkText(text);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('')).toBe(text);
  });

  it('never cuts a surrogate pair', () => {
    const text = 'a' + '😀'.repeat(200);
    for (const chunk of chunkText(text)) {
      expect(chunk).toBe(Buffer.from(chunk, 'utf8').toString('utf8'));
    }
  });

  it('caps the number of deltas for a large text', () => {
    expect(chunkText('y'.repeat(10_000_000)).length).toBeLessThanOrEqual(256);
  });

  it('keeps an empty text as one empty delta', () => {
    expect(chunkText('')).toEqual(['']);
  });
});

describe('streamEvents', () => {
  it('frames events as event/data pairs', () => {
    expect(formatSseFrame({ event: 'ping', data: { type: 'ping' } })).toBe(
      'event: ping\ndata: {"type":"ping"}\n\n',
    );
  });

  it('streams the message envelope, each block and the stop reason', () => {
    const events = [
      ...streamEvents(
        message(
          [
            { type: 'thinking', thinking: 'hmm', signature: 'c2ln' },
            { type: 'text', text: 'hello' },
            { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } },
          ],
          'tool_use',
        ),
      ),
    ];
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const start = events[0]!.data.message as Record<string, unknown>;
    expect(start).toMatchObject({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [],
      stop_reason: null,
    });
    expect(events[3]!.data.delta).toEqual({ type: 'thinking_delta', thinking: 'hmm' });
    expect(events[4]!.data.delta).toEqual({ type: 'signature_delta', signature: 'c2ln' });
    expect(events[9]!.data.content_block).toEqual({
      type: 'tool_use',
      id: 'toolu_1',
      name: 'Bash',
      input: {},
    });
    expect(events[10]!.data.delta).toEqual({ type: 'input_json_delta', partial_json: '{"command":"ls"}' });
    expect(events[12]!.data).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: { output_tokens: 7 },
    });
  });

  it('sends blocks without a delta type whole in content_block_start', () => {
    const events = [...streamEvents(message([{ type: 'redacted_thinking', data: 'abc' }]))];
    expect(events[2]!.data.content_block).toEqual({ type: 'redacted_thinking', data: 'abc' });
    expect(events[3]!.event).toBe('content_block_stop');
  });
});
