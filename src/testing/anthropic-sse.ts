/**
 * The wire shapes of the Anthropic Messages API that the mock model speaks: a complete assistant
 * message, the server-sent events that stream it, and the error body.
 *
 * SSE framing: every event is `event: NAME\ndata: JSON\n\n`. A message streams as
 * `message_start`, `ping`, then per content block `content_block_start` / `content_block_delta`* /
 * `content_block_stop`, then `message_delta` (stop reason, output tokens) and `message_stop`.
 */

/** One content block of an assistant message, in the Messages API's JSON shape. */
export interface WireContentBlock {
  type: string;
  [key: string]: unknown;
}

/** Token counts as the Messages API reports them. */
export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** A complete assistant message, as a non-streaming Messages API response returns it. */
export interface WireMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: WireContentBlock[];
  stop_reason: string;
  stop_sequence: null;
  usage: WireUsage;
}

/** One server-sent event before framing. */
export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** The Anthropic error body, `{type:'error', error:{type, message}}`. */
export interface WireError {
  type: 'error';
  error: { type: string; message: string };
}

// Small deltas exercise the client's reassembly like the real API does; a large text is split
// into at most this many deltas so that a multi-megabyte reply does not become 100k events.
const MIN_DELTA_CHARS = 64;
const MAX_DELTAS_PER_BLOCK = 256;

/** Frames one event for a `text/event-stream` body. */
export function formatSseFrame(event: SseEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

/** The Anthropic error body for `type` (e.g. `rate_limit_error`). */
export function wireError(type: string, message: string): WireError {
  return { type: 'error', error: { type, message } };
}

/** The Anthropic error type the real API uses for an HTTP status. */
export function errorTypeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
      return 'overloaded_error';
    default:
      return 'api_error';
  }
}

/**
 * Splits `text` into deltas of roughly equal size. Cuts never fall inside a UTF-16 surrogate
 * pair, so every delta is valid text on its own.
 */
export function chunkText(text: string): string[] {
  if (text.length === 0) return [''];
  const size = Math.max(MIN_DELTA_CHARS, Math.ceil(text.length / MAX_DELTAS_PER_BLOCK));
  const chunks: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + size, text.length);
    const code = text.charCodeAt(end - 1);
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end += 1;
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}

/**
 * The events that stream `message`, in order. A generator, so that a large reply is framed one
 * event at a time instead of being held twice in memory.
 */
export function* streamEvents(message: WireMessage): Generator<SseEvent> {
  yield {
    event: 'message_start',
    data: {
      type: 'message_start',
      message: {
        ...message,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // The real API reports output tokens so far; the final count arrives in message_delta.
        usage: { ...message.usage, output_tokens: Math.min(1, message.usage.output_tokens) },
      },
    },
  };
  yield { event: 'ping', data: { type: 'ping' } };
  for (const [index, block] of message.content.entries()) {
    yield* streamBlock(index, block);
  }
  yield {
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: message.usage.output_tokens },
    },
  };
  yield { event: 'message_stop', data: { type: 'message_stop' } };
}

function* streamBlock(index: number, block: WireContentBlock): Generator<SseEvent> {
  const start = (contentBlock: Record<string, unknown>): SseEvent => ({
    event: 'content_block_start',
    data: { type: 'content_block_start', index, content_block: contentBlock },
  });
  const delta = (d: Record<string, unknown>): SseEvent => ({
    event: 'content_block_delta',
    data: { type: 'content_block_delta', index, delta: d },
  });

  if (block.type === 'text' && typeof block.text === 'string') {
    yield start({ ...block, text: '' });
    for (const text of chunkText(block.text)) yield delta({ type: 'text_delta', text });
  } else if (block.type === 'thinking' && typeof block.thinking === 'string') {
    const signature = typeof block.signature === 'string' ? block.signature : '';
    yield start({ type: 'thinking', thinking: '', signature: '' });
    for (const thinking of chunkText(block.thinking)) yield delta({ type: 'thinking_delta', thinking });
    yield delta({ type: 'signature_delta', signature });
  } else if (block.type.endsWith('tool_use') && 'input' in block) {
    // tool_use, server_tool_use and mcp_tool_use all start with an empty input that the client
    // rebuilds from input_json_delta fragments.
    yield start({ ...block, input: {} });
    for (const partial_json of chunkText(JSON.stringify(block.input ?? {}))) {
      yield delta({ type: 'input_json_delta', partial_json });
    }
  } else {
    // Blocks without a delta type (redacted_thinking, tool results of server tools, ...) arrive
    // whole in content_block_start.
    yield start(block);
  }
  yield { event: 'content_block_stop', data: { type: 'content_block_stop', index } };
}
