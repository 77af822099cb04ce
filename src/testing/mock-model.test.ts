// Plain fetch against the real server: these tests pin the wire format the `claude` CLI consumes.
// Scenarios and faults have their own files (mock-model-scenarios.test.ts, mock-model-faults.test.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from './mock-model.js';
import {
  assemble,
  mainBody,
  parseSse,
  textOf,
  userMessage,
  wireClient,
  type ErrorBody,
} from '../../test/helpers/anthropic-wire.js';

let model: MockModel;
const { post, ask } = wireClient(() => model);

describe('mock model', () => {
  beforeEach(async () => {
    model = await startMockModel();
  });

  afterEach(async () => {
    await model.close();
  });

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

  describe('usage', () => {
    const ZERO = {
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    };

    it('reports no tokens by default, so a scripted reply costs nothing', async () => {
      expect((await ask([userMessage('x'.repeat(400))])).usage).toEqual(ZERO);
    });

    it('reports the counts a reply gives, and 0 for the others', async () => {
      model.setScenarios([{ match: {}, steps: [{ text: 'ok', usage: { output_tokens: 500 } }] }]);
      expect((await ask([userMessage('hi')])).usage).toEqual({ ...ZERO, output_tokens: 500 });
    });

    it('estimates counts at 4 characters a token when asked to, where a reply gives none', async () => {
      const estimating = await startMockModel({
        usage: 'estimate',
        scenarios: [{ match: { userText: 'given' }, steps: [{ text: 'ok', usage: { input_tokens: 7 } }] }],
      });
      try {
        const { ask: askEstimating } = wireClient(() => estimating);
        const estimated = (await askEstimating([userMessage('x'.repeat(400))])).usage;
        expect(estimated.input_tokens).toBeGreaterThanOrEqual(100);
        expect(estimated.output_tokens).toBeGreaterThan(0);
        const given = (await askEstimating([userMessage('given')])).usage;
        expect(given.input_tokens).toBe(7);
        expect(given.output_tokens).toBeGreaterThan(0);
      } finally {
        await estimating.close();
      }
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
