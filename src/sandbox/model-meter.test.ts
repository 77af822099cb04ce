import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { budgetRefusal } from './budget-refusal.js';
import { ModelMeter, meterReply } from './model-meter.js';
import { MODEL_PRICES, UNKNOWN_MODEL_PRICE, costUsd, priceOf, type TokenCounts } from './model-prices.js';
import { ModelProxy } from './model-proxy.js';

const ALPHA = { tenant: 'alpha', id: 'sess_1' };

function frame(event: string, data: Record<string, unknown>): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A streamed reply as the Messages API sends it; the text holds a multi-byte character and the word "usage". */
function sseReply(model: string): string {
  return [
    frame('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_1',
        model,
        content: [],
        usage: {
          input_tokens: 1000,
          output_tokens: 1,
          cache_creation_input_tokens: 300,
          cache_read_input_tokens: 5000,
          cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 100 },
        },
      },
    }),
    frame('ping', { type: 'ping' }),
    frame('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text' } }),
    frame('content_block_delta', {
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'text_delta', text: 'the "usage" of € is {"usage":1}' },
    }),
    frame('content_block_stop', { type: 'content_block_stop', index: 0 }),
    // Cumulative: the input and cache counts again, and the final output count.
    frame('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn' },
      usage: { input_tokens: 1000, cache_read_input_tokens: 5000, output_tokens: 250 },
    }),
    frame('message_stop', { type: 'message_stop' }),
  ].join('');
}

const EXPECTED: TokenCounts = {
  input_tokens: 1000,
  output_tokens: 250,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  cache_creation_1h_input_tokens: 100,
};

/** Feeds `chunks` through a meter tap; resolves to what the meter counted and the bytes that came out. */
async function tap(
  contentType: string,
  chunks: Buffer[],
  encoding?: string,
): Promise<{ meter: ModelMeter; out: Buffer; errors: unknown[] }> {
  const meter = new ModelMeter();
  const errors: unknown[] = [];
  const stream = meterReply(
    { 'content-type': contentType, ...(encoding && { 'content-encoding': encoding }) },
    (model, tokens, first) => meter.add(ALPHA, model, tokens, first),
    (err) => errors.push(err),
  );
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  if (!encoding) expect(errors).toEqual([]);
  return { meter, out: Buffer.concat(out), errors };
}

describe('meterReply', () => {
  it('reads the usage of an SSE reply cut at every byte, counting cumulative counts once', async () => {
    const body = Buffer.from(sseReply('claude-sonnet-4-5-20250929'));
    const expectedCost = costUsd('claude-sonnet-4-5-20250929', EXPECTED);
    // 3.75 per million for the 200 5-minute writes, 6 for the 100 1-hour ones, 0.3 for reads.
    expect(expectedCost).toBeCloseTo((1000 * 3 + 250 * 15 + 200 * 3.75 + 100 * 6 + 5000 * 0.3) / 1e6, 12);
    for (let cut = 1; cut < body.length; cut += 7) {
      const { meter, out } = await tap('text/event-stream; charset=utf-8', [
        body.subarray(0, cut),
        body.subarray(cut),
      ]);
      expect(out.equals(body)).toBe(true);
      expect(meter.usageOf('alpha')).toEqual({
        input_tokens: 1000,
        output_tokens: 250,
        cache_creation_input_tokens: 300,
        cache_read_input_tokens: 5000,
        cost_usd: expect.closeTo(expectedCost, 12),
        requests: 1,
      });
    }
    // One byte at a time, CRLF line ends.
    const crlf = Buffer.from(sseReply('claude-haiku-4-5').replace(/\n/g, '\r\n'));
    const { meter } = await tap(
      'text/event-stream',
      [...crlf].map((b) => Buffer.from([b])),
    );
    expect(meter.usageOf('alpha').output_tokens).toBe(250);
    expect(meter.usageOfOwner('alpha', 'sess_1')?.cost_usd).toBeCloseTo(
      costUsd('claude-haiku-4-5', EXPECTED),
    );
  });

  it('counts what a stream cut short reported', async () => {
    const body = sseReply('claude-opus-4-6');
    const { meter } = await tap('text/event-stream', [
      Buffer.from(body.slice(0, body.indexOf('event: ping'))),
    ]);
    expect(meter.usageOf('alpha')).toMatchObject({ input_tokens: 1000, output_tokens: 1, requests: 1 });
  });

  it('reads the usage of a JSON reply', async () => {
    const body = Buffer.from(
      JSON.stringify({
        type: 'message',
        model: 'claude-opus-4-1-20250805',
        content: [{ type: 'text', text: 'hi' }],
        usage: {
          input_tokens: 10,
          output_tokens: 20,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      }),
    );
    const { meter } = await tap('application/json', [body.subarray(0, 9), body.subarray(9)]);
    // Opus 4.1: $15 and $75 per million.
    expect(meter.usageOf('alpha')).toMatchObject({ input_tokens: 10, output_tokens: 20, requests: 1 });
    expect(meter.usageOf('alpha').cost_usd).toBeCloseTo((10 * 15 + 20 * 75) / 1e6, 12);
    // An error reply has no usage: nothing is counted.
    const error = await tap('application/json', [Buffer.from('{"type":"error","error":{"type":"x"}}')]);
    expect(error.meter.usageOf('alpha').requests).toBe(0);
    // A compressed reply is passed on but cannot be read: said, not guessed.
    const gzipped = await tap('application/json', [body], 'gzip');
    expect(gzipped.out.equals(body)).toBe(true);
    expect(String(gzipped.errors[0])).toContain('content-encoding gzip');
  });

  it('passes each chunk on before the next one arrives', async () => {
    const stream = meterReply({ 'content-type': 'text/event-stream' }, () => undefined);
    const out = new PassThrough();
    stream.pipe(out);
    const body = sseReply('claude-opus-5-5');
    stream.write(Buffer.from(body.slice(0, 20)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(String(out.read())).toBe(body.slice(0, 20));
    stream.end();
  });
});

describe('ModelMeter sums', () => {
  it('keeps costs to a billionth of a dollar, however many replies are added', () => {
    const meter = new ModelMeter();
    // 2,300 input and 3 output tokens of Opus 5.5 (USD 4 and 20 per million): 0.00926 a reply, which
    // plain floating-point addition sums to 0.046299999999999994 five times over.
    const tokens: TokenCounts = {
      input_tokens: 2300,
      output_tokens: 3,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation_1h_input_tokens: 0,
    };
    expect(costUsd('claude-opus-5-5', tokens)).toBe(0.00926);
    for (let i = 0; i < 5; i++) meter.add(ALPHA, 'claude-opus-5-5', tokens, true);
    expect(meter.usageOf('alpha').cost_usd).toBe(0.0463);
    expect(meter.usageOfOwner('alpha', 'sess_1')?.cost_usd).toBe(0.0463);
    meter.seed('alpha', 0.1);
    meter.seed('alpha', 0.2);
    expect(meter.spentUsd('alpha')).toBe(0.3463);
  });
});

describe('model prices', () => {
  it('prices an unknown model at the dearest price, never zero, and a dated id as its model', () => {
    for (const [, price] of MODEL_PRICES) {
      for (const key of ['input', 'output', 'cacheWrite', 'cacheWrite1h', 'cacheRead'] as const) {
        expect(UNKNOWN_MODEL_PRICE[key]).toBeGreaterThanOrEqual(price[key]);
      }
    }
    expect(priceOf('claude-test')).toEqual({ price: UNKNOWN_MODEL_PRICE, known: false });
    expect(priceOf('gpt-9').price).toBe(UNKNOWN_MODEL_PRICE);
    expect(costUsd('claude-test', { ...EXPECTED })).toBeGreaterThan(0);
    // A newer model of a known family: the family's dearest price.
    expect(priceOf('claude-haiku-9').price.input).toBe(1);
    expect(priceOf('claude-sonnet-4-5-20250929').price).toEqual(priceOf('claude-sonnet-4-5').price);
    // The scripted model answers as the model asked for: the CLI's default, priced as such.
    expect(priceOf('claude-opus-5-5').price).toMatchObject({ input: 4, output: 20 });
    expect(priceOf('claude-opus-4-5-20251101').price).toMatchObject({ input: 5, output: 25 });
    expect(priceOf('claude-opus-4-20250514').price).toMatchObject({ input: 15, output: 75 });
  });
});

describe('ModelProxy metering and budgets', () => {
  let upstream: http.Server | undefined;
  let proxy: ModelProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => (upstream ? upstream.close(resolve) : resolve(undefined)));
  });

  /** An upstream that sends the first event at once and the rest only when `release` is called. */
  async function slowUpstream(): Promise<{
    url: string;
    release: () => void;
    requests: () => number;
    ended: () => boolean;
  }> {
    let release = (): void => undefined;
    let requests = 0;
    let ended = false;
    upstream = http.createServer((req, res) => {
      requests += 1;
      // The meter reads the reply's bytes: the proxy asks for them uncompressed.
      expect(req.headers['accept-encoding']).toBe(undefined);
      req.resume();
      const body = sseReply('claude-sonnet-4-6');
      const cut = body.indexOf('event: ping');
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(body.slice(0, cut));
      release = () => {
        ended = true;
        res.end(body.slice(cut));
      };
    });
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      release: () => release(),
      requests: () => requests,
      ended: () => ended,
    };
  }

  function post(baseUrl: string, token: string): Promise<Response> {
    return fetch(`${baseUrl}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': token, 'accept-encoding': 'gzip, br' },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 5, stream: true, messages: [] }),
    });
  }

  it('streams the first byte before the upstream has finished, meters per owner, and refuses a tenant over budget', async () => {
    const model = await slowUpstream();
    proxy = await ModelProxy.start({
      upstream: model.url,
      apiKey: 'sk-real',
      budgetUsd: (tenant) => (tenant === 'alpha' ? 0.001 : Infinity),
    });
    const grant = proxy.grant(ALPHA);
    const reply = await post(grant.baseUrl, grant.token);
    const reader = reply.body!.getReader();
    const first = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the proxy held the stream back')), 3000),
      ),
    ]);
    expect(model.ended()).toBe(false);
    expect(new TextDecoder().decode(first.value as Uint8Array)).toContain('message_start');
    // What message_start reported is counted already, while the reply is still streaming.
    expect(proxy.usageOf('alpha')).toMatchObject({ input_tokens: 1000, output_tokens: 1 });
    model.release();
    while (!(await reader.read()).done);
    const spent = costUsd('claude-sonnet-4-6', EXPECTED);
    expect(proxy.usageOfOwner('alpha', 'sess_1')).toMatchObject({ output_tokens: 250, requests: 1 });
    expect(proxy.spentUsd('alpha')).toBeCloseTo(spent, 12);
    expect(spent).toBeGreaterThan(0.001);

    // Alpha is over its budget: refused with a Messages API error the CLI does not retry, nothing forwarded.
    const refused = await post(grant.baseUrl, grant.token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-should-retry')).toBe('false');
    const body = (await refused.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('rate_limit_error');
    expect(body.error.message).toMatch(
      /^budget_exceeded: tenant alpha has spent \$0\.\d{4} of its budget of \$0\.001/,
    );
    expect(model.requests()).toBe(1);
    // The CLI reports it as an assistant message whose text carries the API's message.
    const cliText = `API Error: Request rejected (429) · ${body.error.message}`;
    expect(budgetRefusal([{ type: 'text', text: cliText }])).toMatchObject({ type: 'budget_exceeded' });
    expect(budgetRefusal([{ type: 'text', text: 'API Error: Request rejected (429) · rate limited' }])).toBe(
      undefined,
    );

    // Another tenant, and a spare of alpha's (no owner id): counted for the tenant only.
    const beta = proxy.grant({ tenant: 'beta' });
    const ok = post(beta.baseUrl, beta.token);
    await new Promise((resolve) => setTimeout(resolve, 100));
    model.release();
    expect((await ok).status).toBe(200);
    await (await ok).text();
    expect(proxy.usageOf('beta')).toMatchObject({ requests: 1, output_tokens: 250 });
    expect(proxy.usageOfOwner('beta', 'sess_1')).toBe(undefined);
  });

  it("meters a claimed spare's requests for its claimant, not the spare's pseudo-tenant", async () => {
    const model = await slowUpstream();
    proxy = await ModelProxy.start({ upstream: model.url, apiKey: 'sk-real' });
    const grant = proxy.grant({ tenant: '_tasks' });
    grant.assign({ tenant: 'alpha', id: 'task_1' });
    const reply = post(grant.baseUrl, grant.token);
    await new Promise((resolve) => setTimeout(resolve, 100));
    model.release();
    await (await reply).text();
    expect(proxy.usageOfOwner('alpha', 'task_1')).toMatchObject({ requests: 1, output_tokens: 250 });
    expect(proxy.usageOf('_tasks').requests).toBe(0);
    // A revoked grant stays revoked.
    grant.revoke();
    grant.assign({ tenant: 'alpha' });
    expect((await post(grant.baseUrl, grant.token)).status).toBe(401);
  });

  it('counts a seeded spend against the budget', async () => {
    const model = await slowUpstream();
    proxy = await ModelProxy.start({ upstream: model.url, apiKey: 'sk-real', budgetUsd: () => 5 });
    proxy.meter.seed('alpha', 5);
    const grant = proxy.grant({ tenant: 'alpha' });
    expect((await post(grant.baseUrl, grant.token)).status).toBe(429);
    expect(model.requests()).toBe(0);
  });
});
