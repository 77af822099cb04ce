import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { startMockModel, type MockModel } from './mock-model.js';
import type { Scenario } from './scenario.js';

// Plain fetch against the real server: these tests pin the wire format the `claude` CLI consumes.

interface Block {
  type: string;
  id?: string;
  name?: string;
  text?: string;
  thinking?: string;
  signature?: string;
  input?: unknown;
}

interface Message {
  id: string;
  type: string;
  role: string;
  model: string;
  content: Block[];
  stop_reason: string | null;
  stop_sequence: string | null;
  usage: { input_tokens: number; output_tokens: number };
}

interface FrameData {
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

interface SseFrame {
  event: string;
  data: FrameData;
}

interface ErrorBody {
  type: string;
  error: { type: string; message: string };
}

function parseSse(text: string): SseFrame[] {
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
function assemble(frames: SseFrame[]): Message {
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
function userMessage(text: string) {
  return { role: 'user', content: [reminder, { type: 'text', text }] };
}

function toolUse(id: string, name = 'Bash', input: unknown = { command: 'ls' }) {
  return { role: 'assistant', content: [{ type: 'tool_use', id, name, input }] };
}

function toolResult(id: string, text: string, isError = false) {
  return {
    role: 'user',
    content: [{ type: 'tool_result', tool_use_id: id, content: text, is_error: isError }],
  };
}

function mainBody(messages: unknown[], extra: Record<string, unknown> = {}) {
  return { model: 'claude-test', max_tokens: 1000, stream: true, tools: [bash], messages, ...extra };
}

describe('mock model', () => {
  let model: MockModel;

  beforeEach(async () => {
    model = await startMockModel();
  });

  afterEach(async () => {
    await model.close();
  });

  async function post(
    body: unknown,
    headers: Record<string, string> = {},
    path = '/v1/messages?beta=true',
    signal?: AbortSignal,
  ) {
    return fetch(model.url + path, {
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

  function textOf(message: Message): string {
    return message.content
      .filter((b) => b.type === 'text')
      .map((b) => b.text)
      .join('');
  }

  describe('routes', () => {
    it('answers the HEAD /api/hello probe', async () => {
      const res = await fetch(`${model.url}/api/hello`, { method: 'HEAD' });
      expect(res.status).toBe(200);
      expect(model.requests.at(-1)).toMatchObject({ method: 'HEAD', path: '/api/hello' });
    });

    it('answers unknown routes with a 404 Anthropic error', async () => {
      const res = await fetch(`${model.url}/v1/models?x=1`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
      expect((await fetch(`${model.url}/v1/messages`)).status).toBe(404);
    });

    it('answers malformed JSON and a body without messages with 400', async () => {
      const bad = await post('{"messages": [');
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      const noMessages = await post({ model: 'x', messages: 'hi' });
      expect(noMessages.status).toBe(400);
      expect(((await noMessages.json()) as ErrorBody).error.message).toContain('messages');
      expect(model.requests.map((r) => r.body)).toEqual(['{"messages": [', { model: 'x', messages: 'hi' }]);
    });

    it('estimates tokens for count_tokens', async () => {
      const res = await post(
        mainBody([userMessage('x'.repeat(400))]),
        {},
        '/v1/messages/count_tokens?beta=true',
      );
      expect(res.status).toBe(200);
      const { input_tokens } = (await res.json()) as { input_tokens: number };
      expect(input_tokens).toBeGreaterThanOrEqual(100);
    });
  });

  describe('reply shapes', () => {
    it('streams a default reply that echoes the user text', async () => {
      const res = await post(mainBody([userMessage('hello there'), { role: 'system', content: 'env' }]));
      const frames = parseSse(await res.text());
      expect(frames.map((f) => f.event)).toEqual([
        'message_start',
        'ping',
        'content_block_start',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ]);
      expect(frames[0]!.data.message).toMatchObject({
        type: 'message',
        role: 'assistant',
        model: 'claude-test',
        content: [],
        stop_reason: null,
        usage: { input_tokens: expect.any(Number), output_tokens: expect.any(Number) },
      });
      expect(frames[0]!.data.message.id).toMatch(/^msg_/);
      const message = assemble(frames);
      expect(message.content).toEqual([{ type: 'text', text: 'Scripted reply to: hello there' }]);
      expect(message.stop_reason).toBe('end_turn');
    });

    it('answers a non-streaming request with a JSON message', async () => {
      const res = await post(mainBody([userMessage('plain')], { stream: false }));
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(await res.json()).toMatchObject({
        type: 'message',
        role: 'assistant',
        content: [{ type: 'text', text: 'Scripted reply to: plain' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: expect.any(Number), output_tokens: expect.any(Number) },
      });
    });

    it('caps the echo at 200 characters', async () => {
      const message = await ask([userMessage('z'.repeat(500))]);
      expect(textOf(message)).toBe(`Scripted reply to: ${'z'.repeat(200)}`);
    });

    it('answers a structured-output side request with JSON that fits the schema', async () => {
      const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] };
      const res = await post({
        model: 'm',
        stream: true,
        tools: [],
        output_config: { format: { type: 'json_schema', schema } },
        messages: [{ role: 'user', content: [{ type: 'text', text: '<session>\nfix it\n</session>' }] }],
      });
      const parsed = JSON.parse(textOf(assemble(parseSse(await res.text()))));
      expect(parsed).toEqual({ title: expect.stringContaining('fix it') });
    });

    it('streams thinking, text, raw blocks and tool uses with their deltas', async () => {
      model.setScenarios([
        {
          match: {},
          steps: [
            {
              thinking: 'let me think',
              text: 'running it',
              content: [{ type: 'redacted_thinking', data: 'xyz' }],
              toolUse: [
                { name: 'Bash', input: { command: 'echo hi', description: 'say hi' } },
                { name: 'Bash', input: {} },
              ],
              usage: { input_tokens: 11, output_tokens: 22 },
            },
          ],
        },
      ]);
      const message = await ask([userMessage('go')]);
      expect(message.content).toEqual([
        { type: 'thinking', thinking: 'let me think', signature: expect.any(String) },
        { type: 'text', text: 'running it' },
        { type: 'redacted_thinking', data: 'xyz' },
        {
          type: 'tool_use',
          id: expect.stringMatching(/^toolu_/),
          name: 'Bash',
          input: { command: 'echo hi', description: 'say hi' },
        },
        { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'Bash', input: {} },
      ]);
      expect(message.content[3]!.id).not.toBe(message.content[4]!.id);
      expect(message.stop_reason).toBe('tool_use');
      expect(message.usage).toMatchObject({ input_tokens: 11, output_tokens: 22 });
    });
  });

  describe('scenarios', () => {
    const threeSteps: Scenario = {
      name: 'three',
      match: { userText: 'deploy' },
      steps: [
        { toolUse: { name: 'Bash', input: { command: 'step0' }, id: 'toolu_a' } },
        { toolUse: { name: 'Bash', input: { command: 'step1' }, id: 'toolu_b' } },
        { text: 'deployed {{userText}}', stopReason: 'stop_sequence' },
      ],
    };

    it('derives the step from the request: assistant replies since the user text', async () => {
      model.setScenarios([threeSteps]);
      const turn = [userMessage('please deploy now'), { role: 'system', content: 'env' }];
      const step0 = await ask(turn);
      expect(step0.content[0]).toMatchObject({ id: 'toolu_a', input: { command: 'step0' } });

      const afterOne = [...turn, toolUse('toolu_a'), toolResult('toolu_a', 'ok')];
      expect((await ask(afterOne)).content[0]!.input).toEqual({ command: 'step1' });
      // A retry of the same request gets the same step.
      expect((await ask(afterOne)).content[0]!.input).toEqual({ command: 'step1' });

      const afterTwo = [...afterOne, toolUse('toolu_b'), toolResult('toolu_b', 'ok')];
      const step2 = await ask(afterTwo);
      expect(textOf(step2)).toBe('deployed please deploy now');
      expect(step2.stop_reason).toBe('stop_sequence');

      const pastEnd = [
        ...afterTwo,
        { role: 'assistant', content: [{ type: 'text', text: 'x' }] },
        toolResult('z', 'late'),
      ];
      expect(textOf(await ask(pastEnd))).toBe('Scripted reply to: please deploy now');

      expect(model.requests.map((r) => [r.matchedScenario, r.stepIndex])).toEqual([
        ['three', 0],
        ['three', 1],
        ['three', 1],
        ['three', 2],
        [null, 3],
      ]);
    });

    it('starts over at step 0 when a new user message arrives', async () => {
      model.setScenarios([threeSteps]);
      const earlier = [
        userMessage('deploy it'),
        toolUse('toolu_a'),
        toolResult('toolu_a', 'ok'),
        { role: 'assistant', content: [{ type: 'text', text: 'done' }] },
      ];
      const message = await ask([...earlier, userMessage('deploy again')]);
      expect(message.content[0]!.input).toEqual({ command: 'step0' });
    });

    it('matches user text by regular expression', async () => {
      model.setScenarios([
        { match: { userText: { regex: '^ORDER\\s+\\d+$', flags: 'i' } }, steps: [{ text: 'matched' }] },
      ]);
      expect(textOf(await ask([userMessage('order 42')]))).toBe('matched');
      expect(textOf(await ask([userMessage('an order 42')]))).toBe('Scripted reply to: an order 42');
    });

    it('starts a sequence from a matching tool result', async () => {
      model.setScenarios([
        {
          name: 'on-error',
          match: { toolResult: { contains: 'command not found', isError: true } },
          steps: [{ toolUse: { name: 'Bash', input: { command: 'retry' } } }, { text: 'recovered' }],
        },
      ]);
      const turn = [
        userMessage('build'),
        toolUse('t1'),
        toolResult('t1', 'bash: make: command not found', true),
      ];
      expect((await ask(turn)).content[0]!.input).toEqual({ command: 'retry' });
      expect(textOf(await ask([...turn, toolUse('t2'), toolResult('t2', 'ok')]))).toBe('recovered');
      // The same text without is_error does not match.
      const notError = [userMessage('build'), toolUse('t1'), toolResult('t1', 'command not found', false)];
      expect(textOf(await ask(notError))).toBe('Scripted reply to: build');
      expect(model.requests.map((r) => r.matchedScenario)).toEqual(['on-error', 'on-error', null]);
      expect(model.requests[0]!.toolResults).toEqual([
        { tool_use_id: 't1', text: 'bash: make: command not found', is_error: true },
      ]);
    });

    it('lets the first matching scenario win', async () => {
      model.setScenarios([
        { name: 'specific', match: { userText: 'alpha' }, steps: [{ text: 'specific' }] },
        { name: 'catch-all', match: {}, steps: [{ text: 'catch-all' }] },
      ]);
      model.addScenario({ name: 'never', match: {}, steps: [{ text: 'never' }] });
      expect(textOf(await ask([userMessage('alpha beta')]))).toBe('specific');
      expect(textOf(await ask([userMessage('gamma')]))).toBe('catch-all');
    });

    it('matches at most `times` turns, counting a retried turn once', async () => {
      model.setScenarios([
        {
          name: 'once',
          match: { userText: 'hi' },
          times: 1,
          steps: [{ toolUse: { name: 'Bash', input: {} } }, { text: 'second step' }],
        },
      ]);
      const session = { 'x-claude-code-session-id': 's1' };
      expect((await ask([userMessage('hi one')], {}, session)).content[0]!.type).toBe('tool_use');
      expect((await ask([userMessage('hi one')], {}, session)).content[0]!.type).toBe('tool_use');
      const stepOne = [userMessage('hi one'), toolUse('t'), toolResult('t', 'ok')];
      expect(textOf(await ask(stepOne, {}, session))).toBe('second step');
      expect(textOf(await ask([userMessage('hi two')], {}, session))).toBe('Scripted reply to: hi two');
      // Another session's turn is another turn too.
      expect(textOf(await ask([userMessage('hi one')], {}, { 'x-claude-code-session-id': 's2' }))).toBe(
        'Scripted reply to: hi one',
      );
    });

    it('answers side requests only when the scenario asks for them', async () => {
      model.setScenarios([{ name: 'main-only', match: {}, steps: [{ text: 'scripted' }] }]);
      const side = { model: 'm', stream: true, messages: [userMessage('title please')] };
      const sideRes = await post(side);
      expect(textOf(assemble(parseSse(await sideRes.text())))).toBe('Scripted reply to: title please');
      expect(model.requests.at(-1)).toMatchObject({ isMain: false, matchedScenario: null });

      model.setScenarios([{ name: 'both', match: {}, steps: [{ text: 'scripted' }], sideRequests: true }]);
      const res = await post(side);
      expect(textOf(assemble(parseSse(await res.text())))).toBe('scripted');
    });

    it('never sends a tool_use for a tool the request does not offer', async () => {
      model.setScenarios([{ match: {}, steps: [{ toolUse: { name: 'Write', input: { file_path: 'x' } } }] }]);
      const message = await ask([userMessage('write it')]);
      expect(message.content).toEqual([{ type: 'text', text: 'Scripted reply to: write it' }]);
      expect(message.stop_reason).toBe('end_turn');
      expect(model.requests.at(-1)!.matchedScenario).toBeNull();
    });

    it('rejects invalid scenarios with invalid_config', () => {
      expect(() =>
        model.setScenarios([{ match: {}, steps: [{ toolUse: { name: '', input: {} } }] }]),
      ).toThrow(/steps\[0\]\.toolUse\.name/);
      try {
        model.addScenario({ match: { userText: { regex: '[' } }, steps: [] });
        expect.unreachable();
      } catch (err) {
        expect(isBerthError(err, 'invalid_config')).toBe(true);
      }
    });
  });

  describe('faults', () => {
    it('delays every SSE frame by chunkDelayMs', async () => {
      model.setFault({ chunkDelayMs: 40 });
      const started = Date.now();
      const frames = parseSse(await (await post(mainBody([userMessage('slow')]))).text());
      // 7 frames, 6 gaps; timers never fire early, the margin absorbs clock granularity.
      expect(frames).toHaveLength(7);
      expect(Date.now() - started).toBeGreaterThanOrEqual(6 * 40 - 10);
    });

    it('stalls after message_start until the client disconnects', async () => {
      model.setFault({ stallMs: Infinity });
      const abort = new AbortController();
      const res = await post(mainBody([userMessage('stall')]), {}, undefined, abort.signal);
      const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain('event: message_start');
      // Nothing more arrives while stalled.
      const next = reader.read();
      const outcome = await Promise.race([next.then(() => 'data'), sleep(300).then(() => 'stalled')]);
      expect(outcome).toBe('stalled');
      expect(model.openResponses).toBe(1);
      abort.abort();
      await expect(next).rejects.toThrow();
      await waitUntil(() => model.openResponses === 0);
    });

    it('ends a stall when the mock model closes', async () => {
      model.setFault({ stallMs: 1e12 });
      const res = await post(mainBody([userMessage('stall')]));
      const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      await reader.read();
      const rest = readAll(reader);
      await model.close();
      await expect(rest).rejects.toThrow();
      expect(model.openResponses).toBe(0);
    });

    it('answers with a status, an Anthropic error and retry-after, for `times` requests', async () => {
      model.setFault({ status: 429, retryAfterSeconds: 3, times: 2 });
      for (let i = 0; i < 2; i += 1) {
        const res = await post(mainBody([userMessage('busy')]));
        expect(res.status).toBe(429);
        expect(res.headers.get('retry-after')).toBe('3');
        expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
      }
      expect((await post(mainBody([userMessage('busy')]))).status).toBe(200);
    });

    it('uses the API error type of each status', async () => {
      for (const [status, type] of [
        [529, 'overloaded_error'],
        [500, 'api_error'],
        [503, 'api_error'],
      ] as const) {
        model.setFault({ status });
        const res = await post(mainBody([userMessage('x')]));
        expect(res.status).toBe(status);
        expect(res.headers.get('retry-after')).toBeNull();
        expect(((await res.json()) as ErrorBody).error.type).toBe(type);
      }
      model.setFault(null);
      expect((await post(mainBody([userMessage('x')]))).status).toBe(200);
    });

    it('limits a global fault to main or side requests by scope', async () => {
      model.setFault({ status: 529, scope: 'main', times: 1 });
      const side = await post({ model: 'm', stream: true, messages: [userMessage('title')] });
      expect(side.status).toBe(200);
      await side.text();
      expect((await post(mainBody([userMessage('main')]))).status).toBe(529);
      expect((await post(mainBody([userMessage('main')]))).status).toBe(200);
    });

    it('drops the connection after dropAfterEvents events', async () => {
      model.setFault({ dropAfterEvents: 3 });
      const res = await post(mainBody([userMessage('drop')]));
      expect(res.status).toBe(200);
      const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      let received = '';
      await expect(
        (async () => {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return;
            received += new TextDecoder().decode(value);
          }
        })(),
      ).rejects.toThrow();
      expect(parseSse(received).map((f) => f.event)).toEqual([
        'message_start',
        'ping',
        'content_block_start',
      ]);
    });

    it('drops the connection before any response with dropAfterEvents 0', async () => {
      model.setFault({ dropAfterEvents: 0 });
      await expect(post(mainBody([userMessage('drop')]))).rejects.toThrow();
      await expect(post(mainBody([userMessage('drop')], { stream: false }))).rejects.toThrow();
    });

    it('sends a text reply of largeReplyBytes bytes', async () => {
      model.setFault({ largeReplyBytes: 3_000_000 });
      const message = await ask([userMessage('big')]);
      expect(message.content).toHaveLength(1);
      expect(Buffer.byteLength(textOf(message))).toBe(3_000_000);
      const json = await (await post(mainBody([userMessage('big')], { stream: false }))).json();
      expect((json as Message).content[0]!.text).toHaveLength(3_000_000);
    });

    it('applies a reply fault to its first `times` sends, so a retry succeeds', async () => {
      model.setScenarios([{ match: {}, steps: [{ text: 'finally', fault: { status: 529, times: 1 } }] }]);
      expect((await post(mainBody([userMessage('x')]))).status).toBe(529);
      expect(textOf(await ask([userMessage('x')]))).toBe('finally');
    });

    it('stalls a non-streaming reply until the client gives up', async () => {
      model.setFault({ stallMs: Infinity });
      const abort = new AbortController();
      const pending = post(mainBody([userMessage('x')], { stream: false }), {}, undefined, abort.signal);
      await waitUntil(() => model.openResponses === 1 && model.requests.length === 1);
      abort.abort();
      await expect(pending).rejects.toThrow();
      await waitUntil(() => model.openResponses === 0);
    });
  });

  describe('request log', () => {
    it('records requests without credentials', async () => {
      await ask(
        [userMessage('logged')],
        {},
        { 'x-claude-code-session-id': 'sess-1', authorization: 'Bearer t' },
      );
      await fetch(`${model.url}/api/hello`, { method: 'HEAD' });
      const [first, second] = model.requests;
      expect(first).toMatchObject({
        seq: 1,
        method: 'POST',
        path: '/v1/messages',
        sessionId: 'sess-1',
        isMain: true,
        userText: 'logged',
        toolResults: [],
        matchedScenario: null,
        stepIndex: 0,
      });
      expect(first!.messages).toHaveLength(1);
      expect(first!.body).toMatchObject({ model: 'claude-test' });
      expect(first!.headers['x-api-key']).toBeUndefined();
      expect(first!.headers.authorization).toBeUndefined();
      expect(first!.headers['content-type']).toBe('application/json');
      expect(JSON.stringify(model.requests)).not.toContain('sk-secret');
      expect(second).toMatchObject({ seq: 2, sessionId: null, stepIndex: null });
      expect(second!.at).toBeGreaterThanOrEqual(first!.at);

      model.clearRequests();
      expect(model.requests).toEqual([]);
    });

    it('keeps only the newest requests', async () => {
      const small = await startMockModel({ maxRecordedRequests: 3 });
      try {
        for (let i = 0; i < 5; i += 1) await fetch(`${small.url}/api/hello`, { method: 'HEAD' });
        expect(small.requests.map((r) => r.seq)).toEqual([3, 4, 5]);
      } finally {
        await small.close();
      }
    });

    it('waits for a request, times out, and honours a signal', async () => {
      const waiting = model.waitForRequest((r) => r.userText === 'later');
      await ask([userMessage('sooner')]);
      await ask([userMessage('later')]);
      expect((await waiting).seq).toBe(2);
      // An already logged request resolves at once.
      expect((await model.waitForRequest((r) => r.userText === 'sooner')).seq).toBe(1);

      await expect(model.waitForRequest(() => false, { timeoutMs: 20 })).rejects.toThrow(/within 20 ms/);
      const abort = new AbortController();
      const aborted = model.waitForRequest(() => false, { signal: abort.signal });
      abort.abort(new Error('gave up'));
      await expect(aborted).rejects.toThrow('gave up');
      const pending = model.waitForRequest(() => false);
      await model.close();
      await expect(pending).rejects.toThrow(/closed/);
    });
  });

  it('closes idempotently', async () => {
    const first = model.close();
    expect(model.close()).toBe(first);
    await first;
    await expect(fetch(`${model.url}/api/hello`)).rejects.toThrow();
  });

  it('serves several sessions at once', async () => {
    model.setScenarios([{ match: { userText: 'n' }, steps: [{ text: '{{userText}}!' }] }]);
    const texts = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => textOf(await ask([userMessage(`n${i}`)], { stream: true }))),
    );
    expect(texts).toEqual(Array.from({ length: 8 }, (_, i) => `n${i}!`));
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
  }
}
