// The faults the mock model injects: delays, stalls, error statuses, dropped connections, large replies.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from './mock-model.js';
import {
  mainBody,
  parseSse,
  readAll,
  sleep,
  textOf,
  userMessage,
  waitUntil,
  wireClient,
  type ErrorBody,
  type Message,
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
});
