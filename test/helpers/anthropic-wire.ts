/**
 * The Anthropic wire format as a client reads it, for the mock model's tests: SSE frames parsed and a
 * streamed message assembled the way an SDK client does (checking the order of events on the way), the
 * request bodies the `claude` CLI sends, and a small client for a mock model under test.
 */
import { expect } from 'vitest';
import type { MockModel } from '../../src/testing/mock-model.js';

export interface Block {
  type: string;
  id?: string;
  name?: string;
  text?: string;
  thinking?: string;
  signature?: string;
  input?: unknown;
}

export interface Message {
  id: string;
  type: string;
  role: string;
  model: string;
  content: Block[];
  stop_reason: string | null;
  stop_sequence: string | null;
  usage: { input_tokens: number; output_tokens: number };
}

export interface FrameData {
  type: string;
  index: number;
  message: Message;
  content_block: Block;
  delta: {
    type: string;
    text?: string;
    thinking?: string;
    signature?: string;
    partial_json?: string;
    stop_reason?: string;
    stop_sequence?: string | null;
  };
  usage: { output_tokens: number };
}

export interface SseFrame {
  event: string;
  data: FrameData;
}

export interface ErrorBody {
  type: string;
  error: { type: string; message: string };
}

export function parseSse(text: string): SseFrame[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim() !== '')
    .map((frame) => {
      const lines = frame.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))!.slice('event: '.length);
      const data = JSON.parse(lines.find((l) => l.startsWith('data: '))!.slice('data: '.length)) as FrameData;
      expect(data.type).toBe(event);
      return { event, data };
    });
}

/** Rebuilds the message from its events the way an SDK client does, checking the order on the way. */
export function assemble(frames: SseFrame[]): Message {
  expect(frames[0]!.event).toBe('message_start');
  expect(frames.at(-1)!.event).toBe('message_stop');
  const message = structuredClone(frames[0]!.data.message);
  const partialJson = new Map<number, string>();
  for (const { event, data } of frames.slice(1)) {
    if (event === 'content_block_start') {
      expect(data.index).toBe(message.content.length);
      message.content.push(structuredClone(data.content_block));
    } else if (event === 'content_block_delta') {
      const block = message.content[data.index]!;
      const { delta } = data;
      if (delta.type === 'text_delta') block.text = `${block.text}${delta.text}`;
      else if (delta.type === 'thinking_delta') block.thinking = `${block.thinking}${delta.thinking}`;
      else if (delta.type === 'signature_delta') block.signature = delta.signature;
      else if (delta.type === 'input_json_delta') {
        partialJson.set(data.index, (partialJson.get(data.index) ?? '') + delta.partial_json);
      } else throw new Error(`unexpected delta ${delta.type}`);
    } else if (event === 'content_block_stop') {
      const json = partialJson.get(data.index);
      if (json !== undefined) message.content[data.index]!.input = JSON.parse(json) as unknown;
    } else if (event === 'message_delta') {
      message.stop_reason = data.delta.stop_reason ?? null;
      message.stop_sequence = data.delta.stop_sequence ?? null;
      message.usage.output_tokens = data.usage.output_tokens;
    }
  }
  return message;
}

const bash = { name: 'Bash', description: 'Run a command', input_schema: { type: 'object' } };
const reminder = { type: 'text', text: '<system-reminder>\nnoise\n</system-reminder>\n' };

/** A user message the way the CLI sends one: reminders first, then the words. */
export function userMessage(text: string) {
  return { role: 'user', content: [reminder, { type: 'text', text }] };
}

export function toolUse(id: string, name = 'Bash', input: unknown = { command: 'ls' }) {
  return { role: 'assistant', content: [{ type: 'tool_use', id, name, input }] };
}

export function toolResult(id: string, text: string, isError = false) {
  return {
    role: 'user',
    content: [{ type: 'tool_result', tool_use_id: id, content: text, is_error: isError }],
  };
}

export function mainBody(messages: unknown[], extra: Record<string, unknown> = {}) {
  return { model: 'claude-test', max_tokens: 1000, stream: true, tools: [bash], messages, ...extra };
}

/** `post` and `ask` against the mock model `model()` returns (the one the current test started). */
export function wireClient(model: () => MockModel) {
  async function post(
    body: unknown,
    headers: Record<string, string> = {},
    path = '/v1/messages?beta=true',
    signal?: AbortSignal,
  ) {
    return fetch(model().url + path, {
      method: 'POST',
      signal,
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-secret', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  /** Sends a streaming request and returns the assembled message. */
  async function ask(
    messages: unknown[],
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    const res = await post(mainBody(messages, extra), headers);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    return assemble(parseSse(await res.text()));
  }
  return { post, ask };
}

/** The text blocks of a message, joined. */
export function textOf(message: Message): string {
  return message.content
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

export async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
  }
}
