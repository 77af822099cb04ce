/**
 * Bad input: every case gets a 4xx with a stable code and a clear message, and changes nothing.
 * "Changes nothing" is checked by comparing the tenant's sessions and a session's events before and after.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBerth, type ApiResponse } from './helpers/berth.js';

const ACME = { authorization: 'Bearer key-acme-0001' };
const GLOBEX = { authorization: 'Bearer key-globex-0002' };

let berth: TestBerth;
let sessionId: string;

beforeAll(async () => {
  berth = await TestBerth.start({
    args: ['--api-keys', 'acme:key-acme-0001,globex:key-globex-0002', '--max-body', '4KiB'],
  });
  sessionId = await berth.createSession({ id: 'acme-main', title: 'kept' }, ACME);
});

afterAll(async () => {
  await berth?.dispose();
});

/** The tenant's sessions and the main session's events, to prove a rejected request changed nothing. */
async function state(): Promise<unknown> {
  const sessions = await berth.api('GET', '/v1/sessions?limit=100', undefined, ACME);
  const events = await berth.api('GET', `/v1/sessions/${sessionId}/events`, undefined, ACME);
  return { sessions: sessions.body, events: events.body };
}

function expectError(res: ApiResponse, status: number, code: string, message?: RegExp): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.type).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(10);
  if (message) expect(res.body.error.message).toMatch(message);
}

/** A request with a raw path, so that no client library normalises `..` or percent-escapes away. */
function rawRequest(method: string, rawPath: string, headers: Record<string, string>): Promise<ApiResponse> {
  const url = new URL(berth.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method, path: rawPath, headers },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}'), headers: new Headers() }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('bad input changes nothing', () => {
  it('malformed JSON', async () => {
    const before = await state();
    expectError(
      await berth.api('POST', '/v1/sessions', '{"title": ', ACME),
      400,
      'invalid_json',
      /not valid JSON/,
    );
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, '{events: [}', ACME),
      400,
      'invalid_json',
    );
    expectError(await berth.api('POST', '/v1/sessions', '', ACME), 400, 'invalid_json', /empty/);
    expect(await state()).toEqual(before);
  });

  it('a body over the limit', async () => {
    const before = await state();
    const big = { events: [{ type: 'user.message', content: 'x'.repeat(8 * 1024) }] };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, big, ACME),
      413,
      'body_too_large',
    );
    expect(await state()).toEqual(before);
  });

  it('an unknown event type, and unknown fields', async () => {
    const before = await state();
    const res = await berth.api(
      'POST',
      `/v1/sessions/${sessionId}/events`,
      { events: [{ type: 'agent.message' }] },
      ACME,
    );
    expectError(res, 400, 'unknown_event_type', /agent\.message/);
    // A valid event next to an invalid one: the whole batch is refused.
    const mixed = { events: [{ type: 'user.message', content: 'hi' }, { type: 'user.dance' }] };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, mixed, ACME),
      400,
      'unknown_event_type',
    );
    const extra = { events: [{ type: 'user.message', content: 'hi', colour: 'blue' }] };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, extra, ACME),
      400,
      'invalid_request',
    );
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, { events: [] }, ACME),
      400,
      'invalid_request',
    );
    expectError(
      await berth.api('POST', '/v1/sessions', { titel: 'typo' }, ACME),
      400,
      'invalid_request',
      /titel/,
    );
    expect(await state()).toEqual(before);
  });

  it('user.message with empty or non-string content', async () => {
    const before = await state();
    for (const content of [
      '',
      '   ',
      42,
      null,
      [],
      { text: 'hi' },
      [{ text: 'no type' }],
      [{ type: 'text', text: '' }],
      [{ type: 'tool_result', tool_use_id: 'x' }],
    ]) {
      const res = await berth.api(
        'POST',
        `/v1/sessions/${sessionId}/events`,
        { events: [{ type: 'user.message', content }] },
        ACME,
      );
      expectError(res, 400, 'invalid_request', /content/);
    }
    const missing = { events: [{ type: 'user.message' }] };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, missing, ACME),
      400,
      'invalid_request',
    );
    expect(await state()).toEqual(before);
  });

  it('session ids with /, .., NUL, 65+ characters or unicode', async () => {
    const before = await state();
    for (const id of ['a/b', '..', '../etc', 'a\u0000b', 'x'.repeat(65), 'sessão', '日本', '-lead', '']) {
      expectError(await berth.api('POST', '/v1/sessions', { id }, ACME), 400, 'invalid_request', /id/);
    }
    for (const raw of [
      'a%2Fb',
      '%2E%2E',
      '..%2F..%2Fetc',
      'a%00b',
      'x'.repeat(65),
      'sess%C3%A3o',
      '%F0%9F%90%B3',
    ]) {
      const res = await rawRequest('GET', `/v1/sessions/${raw}/events`, ACME);
      expect([400, 404], `${raw}: ${JSON.stringify(res.body)}`).toContain(res.status);
      expect(['invalid_id', 'not_found']).toContain(res.body.error.code);
    }
    expectError(await rawRequest('GET', '/v1/sessions/a%00b', ACME), 400, 'invalid_id');
    expectError(await rawRequest('POST', '/v1/sessions/..%2Fetc/events', ACME), 400, 'invalid_id');
    expect(await state()).toEqual(before);
  });

  it('an unknown session', async () => {
    const before = await state();
    expectError(await berth.api('GET', '/v1/sessions/nope', undefined, ACME), 404, 'session_not_found');
    const msg = { events: [{ type: 'user.message', content: 'hi' }] };
    expectError(await berth.api('POST', '/v1/sessions/nope/events', msg, ACME), 404, 'session_not_found');
    expectError(await berth.api('DELETE', '/v1/sessions/nope', undefined, ACME), 404, 'session_not_found');
    expectError(
      await berth.api('GET', '/v1/sessions/nope/events/stream', undefined, ACME),
      404,
      'session_not_found',
    );
    expect(await state()).toEqual(before);
  });

  it('a missing or wrong API key', async () => {
    const before = await state();
    expectError(await berth.api('GET', '/v1/sessions'), 401, 'unauthorized', /Missing API key/);
    expectError(
      await berth.api('POST', '/v1/sessions', {}, { authorization: 'Bearer wrong-key-000' }),
      401,
      'unauthorized',
    );
    expectError(
      await berth.api('GET', `/v1/sessions/${sessionId}`, undefined, { authorization: 'Basic abc' }),
      401,
      'unauthorized',
    );
    expect((await berth.api('GET', '/v1/sessions', undefined, { 'x-api-key': 'key-acme-0001' })).status).toBe(
      200,
    );
    expect((await berth.api('GET', '/healthz')).status).toBe(200);
    expect(await state()).toEqual(before);
  });

  it("another tenant's session is not found, and its id is free for that tenant", async () => {
    const before = await state();
    for (const [method, route, body] of [
      ['GET', `/v1/sessions/${sessionId}`, undefined],
      ['DELETE', `/v1/sessions/${sessionId}`, undefined],
      ['GET', `/v1/sessions/${sessionId}/events`, undefined],
      ['GET', `/v1/sessions/${sessionId}/events/stream`, undefined],
      ['POST', `/v1/sessions/${sessionId}/events`, { events: [{ type: 'user.interrupt' }] }],
    ] as const) {
      expectError(await berth.api(method, route, body, GLOBEX), 404, 'session_not_found');
    }
    const theirs = await berth.api('GET', '/v1/sessions', undefined, GLOBEX);
    expect(theirs.body.data).toEqual([]);
    // Ids are per tenant: globex may use the same id, and neither sees the other's.
    expect(await berth.createSession({ id: sessionId, title: 'globex own' }, GLOBEX)).toBe(sessionId);
    expect((await berth.api('GET', `/v1/sessions/${sessionId}`, undefined, GLOBEX)).body.title).toBe(
      'globex own',
    );
    expect((await berth.api('GET', `/v1/sessions/${sessionId}`, undefined, ACME)).body.title).toBe('kept');
    expect((await berth.api('DELETE', `/v1/sessions/${sessionId}`, undefined, GLOBEX)).status).toBe(200);
    expect(await state()).toEqual(before);
    // A tenant's own duplicate id is a conflict.
    expectError(await berth.api('POST', '/v1/sessions', { id: sessionId }, ACME), 409, 'session_exists');
  });

  it('a tool confirmation for a tool use that is not pending', async () => {
    const before = await state();
    const confirm = {
      events: [{ type: 'user.tool_confirmation', tool_use_id: 'toolu_nope', result: 'allow' }],
    };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, confirm, ACME),
      409,
      'tool_use_not_pending',
      /toolu_nope/,
    );
    const bad = { events: [{ type: 'user.tool_confirmation', tool_use_id: 'toolu_nope', result: 'maybe' }] };
    expectError(
      await berth.api('POST', `/v1/sessions/${sessionId}/events`, bad, ACME),
      400,
      'invalid_request',
    );
    expect(await state()).toEqual(before);
  });

  it('a message to a deleted session', async () => {
    const id = await berth.createSession({ id: 'short-lived' }, ACME);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
    const before = await state();
    const msg = { events: [{ type: 'user.message', content: 'anyone there?' }] };
    expectError(await berth.api('POST', `/v1/sessions/${id}/events`, msg, ACME), 404, 'session_not_found');
    expectError(await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME), 404, 'session_not_found');
    expect(await state()).toEqual(before);
  });

  it('bad query strings and Last-Event-ID', async () => {
    const before = await state();
    expectError(
      await berth.api('GET', `/v1/sessions/${sessionId}/events?after=-1`, undefined, ACME),
      400,
      'invalid_request',
    );
    expectError(
      await berth.api('GET', `/v1/sessions/${sessionId}/events?limit=abc`, undefined, ACME),
      400,
      'invalid_request',
    );
    expectError(
      await berth.api('GET', '/v1/sessions?page=not-a-cursor', undefined, ACME),
      400,
      'invalid_request',
    );
    expectError(
      await berth.api('GET', `/v1/sessions/${sessionId}/events/stream`, undefined, {
        ...ACME,
        'last-event-id': 'x',
      }),
      400,
      'invalid_request',
    );
    expectError(await berth.api('GET', '/v1/nothing-here', undefined, ACME), 404, 'not_found');
    expect(await state()).toEqual(before);
  });

  it('more waiting messages than a session takes', async () => {
    const id = await berth.createSession({}, ACME);
    const before = await berth.api('GET', `/v1/sessions/${id}/events`, undefined, ACME);
    const flood = {
      events: Array.from({ length: 100 }, (_, i) => ({ type: 'user.message', content: `m${i}` })),
    };
    // 100 fit in one request only if nothing waits yet; a second full batch cannot.
    expect((await berth.api('POST', `/v1/sessions/${id}/events`, flood, ACME)).status).toBe(202);
    const res = await berth.api('POST', `/v1/sessions/${id}/events`, flood, ACME);
    expectError(res, 429, 'queue_full', /at most 100/);
    const after = await berth.api('GET', `/v1/sessions/${id}/events?limit=1000`, undefined, ACME);
    const stored = after.body.data as Array<{ type: string }>;
    expect(stored.filter((e) => e.type === 'user.message')).toHaveLength(100);
    expect(before.status).toBe(200);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
  });

  it('refuses bypassPermissions when agents would run as root', async () => {
    const res = await berth.api(
      'POST',
      '/v1/sessions',
      { agent: { permission_mode: 'bypassPermissions' } },
      ACME,
    );
    if (process.getuid?.() === 0) expectError(res, 400, 'invalid_request', /root/);
    else expect(res.status).toBe(201);
  });
});
