/**
 * Bad input: every case gets a 4xx with a stable code and a clear message, and changes nothing.
 * "Changes nothing" is checked by comparing, before and after, both tenants' sessions, agents and
 * environments, the main agent's versions, and the events of the sessions a case sends to.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scenario } from '../src/testing/index.js';
import { textOf, type ApiEvent, type ApiSession } from './helpers/api-events.js';
import { TestBerth, type ApiResponse } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

const ACME = { authorization: 'Bearer key-acme-0001' };
const GLOBEX = { authorization: 'Bearer key-globex-0002' };

/** The CLI's id of the one tool use the scripted model asks for; the API shows only its event's id. */
const CLI_TOOL_USE_ID = 'toolu_api_input_flag';

const scenarios: Scenario[] = [
  {
    match: { userText: 'touch the flag' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'touch flag.txt' }, id: CLI_TOOL_USE_ID } },
      { text: 'Flag handled.' },
    ],
  },
];

/**
 * Codes whose request may succeed when sent again: `x-should-retry: true` (errors.ts). The one
 * `revision_conflict` here names a version that is not current: sending it again cannot help.
 */
const RETRYABLE = new Set(['queue_full']);

let berth: TestBerth;
let sessionId: string;
/** The agent and environment of acme's sessions (the helper's, made once per tenant). */
let agentId: string;
let environmentId: string;

beforeAll(async () => {
  berth = await TestBerth.start({
    scenarios,
    args: ['--api-keys', 'acme:key-acme-0001,globex:key-globex-0002', '--max-body', '8KiB'],
  });
  sessionId = await berth.createSession({ id: 'acme-main', title: 'kept' }, ACME);
  agentId = await berth.agent({}, ACME);
  environmentId = await berth.environment({}, ACME);
  // Globex's own, made now so that the cases that use them change nothing of what state() sees.
  await berth.agent({}, GLOBEX);
  await berth.environment({}, GLOBEX);
  // One turn, so that the main session has events to page through and to keep unchanged.
  const [sent] = await berth.send(sessionId, [{ type: 'user.message', content: 'hello' }], ACME);
  await waitForEvent(sessionId, sent!.seq, (e) => e.type === 'session.status_idle');
  await eventually(
    async () => (await get<ApiSession>(`/v1/sessions/${sessionId}`)).berth.status === 'idle',
    'the main session to be idle',
  );
});

afterAll(async () => {
  await berth?.dispose();
});

/** A page of a list. */
interface Listing<T = { id: string }> {
  data: T[];
  next_page: string | null;
}

/** A `GET` that must succeed. */
async function get<T = Listing>(route: string, headers: Record<string, string> = ACME): Promise<T> {
  const res = await berth.api<T>('GET', route, undefined, headers);
  expect(res.status, `${route}: ${JSON.stringify(res.body)}`).toBe(200);
  return res.body;
}

/**
 * What a rejected request must leave as it was: both tenants' sessions, agents and environments, the
 * main agent's versions, and the events of the main session and of `sessions`. `skip` leaves one
 * session out of the lists (one that is busy with turns of its own).
 */
async function state({ sessions = [], skip }: { sessions?: string[]; skip?: string } = {}): Promise<unknown> {
  const tenant = async (headers: Record<string, string>) => {
    const list = await get('/v1/sessions?limit=100&include_archived=true', headers);
    return {
      sessions: { ...list, data: list.data.filter((s) => s.id !== skip) },
      agents: await get('/v1/agents?limit=100&include_archived=true', headers),
      environments: await get('/v1/environments?limit=100&include_archived=true', headers),
    };
  };
  const events: Record<string, ApiEvent[]> = {};
  for (const id of [sessionId, ...sessions]) events[id] = await berth.history(id, ACME);
  return {
    acme: await tenant(ACME),
    globex: await tenant(GLOBEX),
    versions: await get(`/v1/agents/${agentId}/versions?limit=100`),
    events,
  };
}

/** Waits until the session has an event after `seq` that matches; returns it. */
async function waitForEvent(id: string, seq: number, match: (e: ApiEvent) => boolean): Promise<ApiEvent> {
  let found: ApiEvent | undefined;
  await eventually(async () => {
    found = (await berth.history(id, ACME)).find((e) => e.seq > seq && match(e));
    return found !== undefined;
  }, `an event of session ${id}`);
  return found!;
}

function expectError(res: ApiResponse, status: number, code: string, message?: RegExp, what = ''): void {
  expect(res.status, `${what} ${JSON.stringify(res.body)}`).toBe(status);
  expect(res.body).toMatchObject({ type: 'error', error: { details: { error_code: code } } });
  expect(typeof res.body.error.type).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(10);
  if (message) expect(res.body.error.message).toMatch(message);
  expect(res.body.request_id).toMatch(/^req_/);
  expect(res.headers.get('request-id')).toBe(res.body.request_id);
  expect(res.headers.get('x-should-retry')).toBe(String(RETRYABLE.has(code)));
}

/** A Managed Agents feature Berth refuses: `400 unsupported`, the message naming the field. */
function expectUnsupported(res: ApiResponse, field: RegExp): void {
  expectError(res, 400, 'unsupported', field);
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
        res.on('end', () => {
          const answer = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) answer.set(name, Array.isArray(value) ? value.join(', ') : value);
          }
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}'), headers: answer });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const post = (route: string, body: unknown, headers = ACME) => berth.api('POST', route, body, headers);
const send = (id: string, events: unknown[], headers = ACME) =>
  berth.api('POST', `/v1/sessions/${id}/events`, { events }, headers);
const text = (t: string) => [{ type: 'text', text: t }];
const message = (t: string) => ({ type: 'user.message', content: text(t) });
const confirm = (toolUseId: string, result = 'allow') => ({
  type: 'user.tool_confirmation',
  tool_use_id: toolUseId,
  result,
});
const toolset = (extra: Record<string, unknown>) => ({ type: 'agent_toolset_20260401', ...extra });
const manyKeys = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));

describe('bad input changes nothing', () => {
  it('malformed JSON', async () => {
    const before = await state();
    expectError(await post('/v1/sessions', '{"title": '), 400, 'invalid_json', /not valid JSON/);
    expectError(await post(`/v1/sessions/${sessionId}/events`, '{events: [}'), 400, 'invalid_json');
    expectError(await post('/v1/sessions', ''), 400, 'invalid_json', /empty/);
    expectError(await post(`/v1/sessions/${sessionId}`, '{"title"'), 400, 'invalid_json');
    expectError(await post('/v1/agents', '{"name": '), 400, 'invalid_json', /not valid JSON/);
    expectError(await post('/v1/agents', ''), 400, 'invalid_json', /empty/);
    expectError(await post(`/v1/agents/${agentId}`, '{'), 400, 'invalid_json');
    expectError(await post('/v1/environments', '[1,'), 400, 'invalid_json');
    expectError(await post(`/v1/environments/${environmentId}`, 'nope'), 400, 'invalid_json');
    expect(await state()).toEqual(before);
  });

  it('a body over the limit', async () => {
    const before = await state();
    const big = 'x'.repeat(16 * 1024);
    expectError(await send(sessionId, [message(big)]), 413, 'body_too_large');
    expectError(await post(`/v1/sessions/${sessionId}`, { metadata: { big } }), 413, 'body_too_large');
    expectError(
      await post('/v1/agents', { name: 'big', model: 'claude-sonnet-4-5', system: big }),
      413,
      'body_too_large',
    );
    expectError(await post('/v1/environments', { name: 'big', description: big }), 413, 'body_too_large');
    expect(await state()).toEqual(before);
  });

  it('an unknown event type, and unknown fields', async () => {
    const before = await state();
    expectError(
      await send(sessionId, [{ type: 'agent.message' }]),
      400,
      'unknown_event_type',
      /agent\.message/,
    );
    // A valid event next to an invalid one: the whole batch is refused.
    expectError(await send(sessionId, [message('hi'), { type: 'user.dance' }]), 400, 'unknown_event_type');
    expectError(
      await send(sessionId, [{ ...message('hi'), colour: 'blue' }]),
      400,
      'invalid_request',
      /colour/,
    );
    expectError(
      await send(sessionId, [{ type: 'user.interrupt', reason: 'bored' }]),
      400,
      'invalid_request',
      /reason/,
    );
    // The old confirmation's `message` is `deny_message` now.
    expectError(
      await send(sessionId, [{ ...confirm('sevt_x', 'deny'), message: 'no' }]),
      400,
      'invalid_request',
      /"message"/,
    );
    expectError(await send(sessionId, []), 400, 'invalid_request');
    expectError(
      await post(`/v1/sessions/${sessionId}/events`, { events: [message('hi')], colour: 1 }),
      400,
      'invalid_request',
      /colour/,
    );
    const body = await berth.sessionBody({}, ACME);
    expectError(await post('/v1/sessions', { ...body, titel: 'typo' }), 400, 'invalid_request', /titel/);
    // The hosting pattern is the environment's now, not the session's.
    expectError(
      await post('/v1/sessions', { ...body, pattern: 'hybrid' }),
      400,
      'invalid_request',
      /pattern/,
    );
    expectError(await post(`/v1/sessions/${sessionId}`, { titel: 'typo' }), 400, 'invalid_request', /titel/);
    expect(await state()).toEqual(before);
  });

  it('events of Managed Agents that Berth does not take', async () => {
    const before = await state();
    for (const type of [
      'user.custom_tool_result',
      'user.tool_result',
      'user.define_outcome',
      'system.message',
    ]) {
      expectUnsupported(await send(sessionId, [{ type }]), new RegExp(`events\\.0\\.type: ${type}`));
      // Behind a valid message: the batch is refused whole.
      expectUnsupported(await send(sessionId, [message('hi'), { type }]), /events\.1\.type/);
    }
    expect(await state()).toEqual(before);
  });

  it('user.message with empty or non-block content', async () => {
    const before = await state();
    for (const content of [
      // A plain string was the old shape: content is a list of blocks now.
      'hi',
      '',
      '   ',
      42,
      null,
      [],
      { text: 'hi' },
      [{ text: 'no type' }],
      [{ type: 'text' }],
      [{ type: 'text', text: '' }],
      [{ type: 'text', text: 42 }],
      [{ type: 'tool_result', tool_use_id: 'x' }],
    ]) {
      const res = await send(sessionId, [{ type: 'user.message', content }]);
      expectError(res, 400, 'invalid_request', /content/);
    }
    expectError(await send(sessionId, [{ type: 'user.message' }]), 400, 'invalid_request');
    expect(await state()).toEqual(before);
  });

  it('a user.message whose text is only whitespace', async () => {
    // Its own session, deleted whatever happens: were the message taken, it would start a turn.
    const id = await berth.createSession({}, ACME);
    try {
      const before = await state({ sessions: [id] });
      for (const content of [text('   '), text('\n\t'), [...text('  '), ...text(' ')]]) {
        expectError(await send(id, [{ type: 'user.message', content }]), 400, 'invalid_request', /content/);
      }
      expect(await state({ sessions: [id] })).toEqual(before);
    } finally {
      expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
    }
  });

  it('an event type filter that names no event type', async () => {
    const before = await state();
    const events = `/v1/sessions/${sessionId}/events`;
    for (const [query, field] of [
      ['types[]=user.dance', /user\.dance/],
      ['types[]=user.message&types[]=agent.mesage', /agent\.mesage/],
      ['types[]=', /types/],
    ] as const) {
      const res = await berth.api('GET', `${events}?${query}`, undefined, ACME);
      expectError(res, 400, 'invalid_request', field, query);
    }
    expect(await state()).toEqual(before);
  });

  it('session ids with /, .., NUL, 65+ characters or unicode', async () => {
    const body = await berth.sessionBody({}, ACME);
    const before = await state();
    for (const id of ['a/b', '..', '../etc', 'a\u0000b', 'x'.repeat(65), 'sessão', '日本', '-lead', '']) {
      expectError(await post('/v1/sessions', { ...body, id }), 400, 'invalid_request', /\bid: /);
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
      for (const [route, codes] of [
        [`/v1/sessions/${raw}/events`, ['invalid_id', 'not_found']],
        // Catalog ids may be 128 characters long: 65 x's is a well-formed id that names nothing.
        [`/v1/agents/${raw}`, ['invalid_id', 'not_found', 'agent_not_found']],
        [`/v1/environments/${raw}`, ['invalid_id', 'not_found', 'environment_not_found']],
      ] as const) {
        const res = await rawRequest('GET', route, ACME);
        const code = res.body.error?.details?.error_code as string;
        expect(codes, `${route}: ${JSON.stringify(res.body)}`).toContain(code);
        expectError(res, code === 'invalid_id' ? 400 : 404, code, undefined, route);
      }
    }
    expectError(await rawRequest('GET', '/v1/sessions/a%00b', ACME), 400, 'invalid_id');
    expectError(await rawRequest('GET', '/v1/agents/a%00b', ACME), 400, 'invalid_id');
    expectError(await rawRequest('POST', '/v1/environments/..%2Fetc/archive', ACME), 400, 'invalid_id');
    expectError(await rawRequest('POST', '/v1/sessions/..%2Fetc/events', ACME), 400, 'invalid_id');
    expectError(await rawRequest('POST', '/v1/sessions/..%2Fetc/archive', ACME), 400, 'invalid_id');
    expect(await state()).toEqual(before);
  });

  it('an unknown session', async () => {
    const before = await state();
    expectError(await berth.api('GET', '/v1/sessions/nope', undefined, ACME), 404, 'session_not_found');
    expectError(await send('nope', [message('hi')]), 404, 'session_not_found');
    expectError(await post('/v1/sessions/nope', { title: 'renamed' }), 404, 'session_not_found');
    expectError(await post('/v1/sessions/nope/archive', undefined), 404, 'session_not_found');
    expectError(await berth.api('DELETE', '/v1/sessions/nope', undefined, ACME), 404, 'session_not_found');
    expectError(
      await berth.api('GET', '/v1/sessions/nope/events', undefined, ACME),
      404,
      'session_not_found',
    );
    expectError(
      await berth.api('GET', '/v1/sessions/nope/events/stream', undefined, ACME),
      404,
      'session_not_found',
    );
    expect(await state()).toEqual(before);
  });

  it('an unknown agent or environment', async () => {
    const body = await berth.sessionBody({}, ACME);
    const before = await state();
    for (const [method, route, reqBody] of [
      ['GET', '/v1/agents/agent_nope', undefined],
      ['GET', '/v1/agents/agent_nope?version=1', undefined],
      ['GET', '/v1/agents/agent_nope/versions', undefined],
      ['GET', `/v1/agents/${agentId}?version=99`, undefined],
      ['POST', '/v1/agents/agent_nope', { name: 'renamed' }],
      ['POST', '/v1/agents/agent_nope/archive', undefined],
    ] as const) {
      expectError(await berth.api(method, route, reqBody, ACME), 404, 'agent_not_found');
    }
    for (const [method, route, reqBody] of [
      ['GET', '/v1/environments/env_nope', undefined],
      ['POST', '/v1/environments/env_nope', { name: 'renamed' }],
      ['POST', '/v1/environments/env_nope/archive', undefined],
      ['DELETE', '/v1/environments/env_nope', undefined],
    ] as const) {
      expectError(await berth.api(method, route, reqBody, ACME), 404, 'environment_not_found');
    }
    expectError(
      await post('/v1/sessions', { ...body, agent: 'agent_nope' }),
      404,
      'agent_not_found',
      /agent_nope/,
    );
    expectError(
      await post('/v1/sessions', { ...body, agent: { type: 'agent', id: agentId, version: 99 } }),
      404,
      'agent_not_found',
      /version 99/,
    );
    expectError(
      await post('/v1/sessions', { ...body, environment_id: 'env_nope' }),
      404,
      'environment_not_found',
      /env_nope/,
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
    expectError(await berth.api('POST', '/v1/agents', { name: 'x', model: 'm' }), 401, 'unauthorized');
    expectError(await berth.api('GET', `/v1/environments/${environmentId}`), 401, 'unauthorized');
    // `x-api-key` names its key's tenant, as `Authorization: Bearer` does: each tenant sees its own and
    // only its own.
    const acmeKey = { 'x-api-key': 'key-acme-0001' };
    const globexKey = { 'x-api-key': 'key-globex-0002' };
    expect(await get<ApiSession>(`/v1/sessions/${sessionId}`, acmeKey)).toMatchObject({
      id: sessionId,
      title: 'kept',
    });
    expectError(
      await berth.api('GET', `/v1/sessions/${sessionId}`, undefined, globexKey),
      404,
      'session_not_found',
    );
    for (const list of ['/v1/sessions', '/v1/agents', '/v1/environments']) {
      const acme = await get(list, acmeKey);
      const globex = await get(list, globexKey);
      expect(acme.data.length, list).toBeGreaterThan(0);
      expect(acme, list).toEqual(await get(list, ACME));
      expect(globex, list).toEqual(await get(list, GLOBEX));
      expect(
        globex.data.map((x) => x.id),
        list,
      ).not.toContain(acme.data[0]?.id);
    }
    expect((await get('/v1/sessions', acmeKey)).data.map((s) => s.id)).toContain(sessionId);
    expectError(
      await berth.api('GET', '/v1/sessions', undefined, { 'x-api-key': 'wrong-key-000' }),
      401,
      'unauthorized',
    );
    expect((await berth.api('GET', '/healthz')).status).toBe(200);
    expect(await state()).toEqual(before);
  });

  it("another tenant's session, agent and environment are not found, and the session id is free for it", async () => {
    const before = await state();
    for (const [method, route, body] of [
      ['GET', `/v1/sessions/${sessionId}`, undefined],
      ['POST', `/v1/sessions/${sessionId}`, { title: 'stolen' }],
      ['POST', `/v1/sessions/${sessionId}/archive`, undefined],
      ['DELETE', `/v1/sessions/${sessionId}`, undefined],
      ['GET', `/v1/sessions/${sessionId}/events`, undefined],
      ['GET', `/v1/sessions/${sessionId}/events/stream`, undefined],
      ['POST', `/v1/sessions/${sessionId}/events`, { events: [{ type: 'user.interrupt' }] }],
    ] as const) {
      expectError(await berth.api(method, route, body, GLOBEX), 404, 'session_not_found');
    }
    for (const [method, route, body] of [
      ['GET', `/v1/agents/${agentId}`, undefined],
      ['GET', `/v1/agents/${agentId}?version=1`, undefined],
      ['GET', `/v1/agents/${agentId}/versions`, undefined],
      ['POST', `/v1/agents/${agentId}`, { name: 'stolen' }],
      ['POST', `/v1/agents/${agentId}/archive`, undefined],
    ] as const) {
      expectError(await berth.api(method, route, body, GLOBEX), 404, 'agent_not_found');
    }
    for (const [method, route, body] of [
      ['GET', `/v1/environments/${environmentId}`, undefined],
      ['POST', `/v1/environments/${environmentId}`, { name: 'stolen' }],
      ['POST', `/v1/environments/${environmentId}/archive`, undefined],
      ['DELETE', `/v1/environments/${environmentId}`, undefined],
    ] as const) {
      expectError(await berth.api(method, route, body, GLOBEX), 404, 'environment_not_found');
    }
    // A session of acme's agent, or in acme's environment, is one globex cannot make.
    const theirBody = await berth.sessionBody({}, GLOBEX);
    expectError(await post('/v1/sessions', { ...theirBody, agent: agentId }, GLOBEX), 404, 'agent_not_found');
    expectError(
      await post('/v1/sessions', { ...theirBody, agent: { type: 'agent', id: agentId, version: 1 } }, GLOBEX),
      404,
      'agent_not_found',
    );
    expectError(
      await post('/v1/sessions', { ...theirBody, environment_id: environmentId }, GLOBEX),
      404,
      'environment_not_found',
    );
    expect((await get('/v1/sessions', GLOBEX)).data).toEqual([]);
    expect((await get('/v1/agents', GLOBEX)).data.map((a) => a.id)).not.toContain(agentId);
    expect((await get('/v1/environments', GLOBEX)).data.map((e) => e.id)).not.toContain(environmentId);
    expect(await state()).toEqual(before);
    // Ids are per tenant: globex may use the same id, and neither sees the other's.
    expect(await berth.createSession({ id: sessionId, title: 'globex own' }, GLOBEX)).toBe(sessionId);
    expect((await get<ApiSession>(`/v1/sessions/${sessionId}`, GLOBEX)).title).toBe('globex own');
    expect((await get<ApiSession>(`/v1/sessions/${sessionId}`, ACME)).title).toBe('kept');
    expect((await berth.api('DELETE', `/v1/sessions/${sessionId}`, undefined, GLOBEX)).status).toBe(200);
    expect(await state()).toEqual(before);
    // A tenant's own duplicate id is a conflict.
    const body = await berth.sessionBody({}, ACME);
    expectError(await post('/v1/sessions', { ...body, id: sessionId }), 409, 'session_exists');
    expect(await state()).toEqual(before);
  });

  it('a tool confirmation for a tool use that is not pending', async () => {
    const before = await state();
    const [first] = await berth.history(sessionId, ACME);
    // Nothing waits; nor is an event that is not a tool use (the main session's first message) one.
    for (const id of ['toolu_nope', 'sevt_nope', first!.id]) {
      expectError(await send(sessionId, [confirm(id)]), 409, 'tool_use_not_pending', new RegExp(id));
    }
    expectError(await send(sessionId, [confirm('toolu_nope', 'maybe')]), 400, 'invalid_request', /result/);
    expectError(await send(sessionId, [confirm('')]), 400, 'invalid_request', /tool_use_id/);
    expectError(
      await send(sessionId, [{ type: 'user.tool_confirmation', result: 'allow' }]),
      400,
      'invalid_request',
      /tool_use_id/,
    );
    expect(await state()).toEqual(before);
  });

  it("a tool confirmation naming the CLI's tool use id, not the agent.tool_use event's", async () => {
    // The helper's agent asks for every tool use.
    const id = await berth.createSession({}, ACME);
    const flag = path.join(berth.server.host.pathsFor({ tenant: 'acme', id }).cwd, 'flag.txt');
    const [sent] = await berth.send(id, [{ type: 'user.message', content: 'touch the flag' }], ACME);
    const paused = await waitForEvent(
      id,
      sent!.seq,
      (e) => e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action',
    );
    await eventually(
      async () => (await get<ApiSession>(`/v1/sessions/${id}`)).berth.status === 'requires_action',
      'the session to wait for the confirmation',
    );
    const toolUse = (await berth.history(id, ACME)).find((e) => e.type === 'agent.tool_use');
    if (toolUse?.type !== 'agent.tool_use' || paused.type !== 'session.status_idle')
      throw new Error('no tool use');
    expect(paused.stop_reason).toEqual({ type: 'requires_action', event_ids: [toolUse.id] });
    expect(toolUse).toMatchObject({ name: 'bash', evaluated_permission: 'ask' });
    // The stored event keeps the CLI's id, which the API never shows: a client that has it (from its own
    // logs, say) still cannot confirm with it.
    const stored = await (await berth.server.host.get('acme', id)).events.list(0, 100);
    expect(stored.find((e) => e.id === toolUse.id)).toMatchObject({ tool_use_id: CLI_TOOL_USE_ID });
    expect(JSON.stringify(await berth.history(id, ACME))).not.toContain(CLI_TOOL_USE_ID);

    const before = await state({ sessions: [id] });
    expectError(
      await send(id, [confirm(CLI_TOOL_USE_ID)]),
      409,
      'tool_use_not_pending',
      new RegExp(CLI_TOOL_USE_ID),
    );
    // A good confirmation next to the bad one: the batch is refused whole, so the command does not run.
    expectError(await send(id, [confirm(toolUse.id), confirm(CLI_TOOL_USE_ID)]), 409, 'tool_use_not_pending');
    // One tool use answered twice in a batch.
    expectError(
      await send(id, [confirm(toolUse.id), confirm(toolUse.id, 'deny')]),
      409,
      'tool_use_not_pending',
    );
    expect(await state({ sessions: [id] })).toEqual(before);
    expect(existsSync(flag)).toBe(false);

    // The event's id is what a confirmation takes: this deny ends the turn, and the command never ran.
    const [denied] = await berth.send(
      id,
      [{ ...confirm(toolUse.id, 'deny'), deny_message: 'not today' }],
      ACME,
    );
    const result = await waitForEvent(id, denied!.seq, (e) => e.type === 'agent.tool_result');
    expect(result).toMatchObject({ tool_use_id: toolUse.id, is_error: true });
    await waitForEvent(
      id,
      denied!.seq,
      (e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn',
    );
    expect(existsSync(flag)).toBe(false);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
  });

  it('a message to a deleted or archived session', async () => {
    const id = await berth.createSession({ id: 'short-lived' }, ACME);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
    const archived = await berth.createSession({ id: 'archived' }, ACME);
    expect((await post(`/v1/sessions/${archived}/archive`, undefined)).status).toBe(200);
    const before = await state({ sessions: [archived] });
    expectError(await send(id, [message('anyone there?')]), 404, 'session_not_found');
    expectError(await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME), 404, 'session_not_found');
    expectError(await send(archived, [message('anyone there?')]), 409, 'session_terminated');
    expect(await state({ sessions: [archived] })).toEqual(before);
    expect((await berth.api('DELETE', `/v1/sessions/${archived}`, undefined, ACME)).status).toBe(200);
  });

  it('bad query strings and Last-Event-ID', async () => {
    const before = await state();
    const events = `/v1/sessions/${sessionId}/events`;
    for (const [query, field] of [
      // `after` was the old paging of this list: pages are `page` cursors now.
      ['after=-1', /after/],
      ['after=2', /after/],
      ['limit=abc', /limit/],
      ['limit=0', /limit/],
      ['limit=1001', /limit/],
      ['order=sideways', /order/],
      ['order=', /order/],
      ['page=not-a-cursor', /page/],
      [`page=${Buffer.from('asc:x').toString('base64url')}`, /page/],
      [`page=${'x'.repeat(501)}`, /page/],
      ['types=user.message', /types/],
      ['created_at[gt]=yesterday', /created_at/],
      ['colour=blue', /colour/],
    ] as const) {
      expectError(
        await berth.api('GET', `${events}?${query}`, undefined, ACME),
        400,
        'invalid_request',
        field,
        query,
      );
    }
    for (const [query, field] of [
      ['page=not-a-cursor', /cursor/],
      ['limit=101', /limit/],
      ['order=sideways', /order/],
      ['statuses[]=sleeping', /sleeping/],
      ['agent_version=0', /agent_version/],
      ['created_at[lt]=soon', /created_at/],
      ['colour=blue', /colour/],
    ] as const) {
      expectError(
        await berth.api('GET', `/v1/sessions?${query}`, undefined, ACME),
        400,
        'invalid_request',
        field,
      );
    }
    expectUnsupported(await berth.api('GET', '/v1/sessions?order=asc', undefined, ACME), /order/);
    for (const route of [
      '/v1/agents?limit=0',
      '/v1/agents?page=not-a-cursor',
      '/v1/agents?colour=blue',
      `/v1/agents/${agentId}?version=0`,
      `/v1/agents/${agentId}?colour=blue`,
      `/v1/agents/${agentId}/versions?limit=101`,
      '/v1/environments?include_archived=yes',
      '/v1/environments?created_at[gte]=then',
    ]) {
      expectError(await berth.api('GET', route, undefined, ACME), 400, 'invalid_request');
    }
    for (const [query, field] of [
      ['after=-1', /after/],
      ['after=abc', /after/],
      ['page=x', /page/],
      ['order=desc', /order/],
    ] as const) {
      expectError(
        await berth.api('GET', `${events}/stream?${query}`, undefined, ACME),
        400,
        'invalid_request',
        field,
      );
    }
    expectUnsupported(
      await berth.api('GET', `${events}/stream?event_deltas[]=agent.message`, undefined, ACME),
      /event_deltas/,
    );
    expectError(
      await berth.api('GET', `${events}/stream`, undefined, { ...ACME, 'last-event-id': 'x' }),
      400,
      'invalid_request',
      /Last-Event-ID/,
    );
    expectError(await berth.api('GET', '/v1/nothing-here', undefined, ACME), 404, 'not_found');
    expect(await state()).toEqual(before);
  });

  it('a cursor of the other order, or of another list', async () => {
    const events = `/v1/sessions/${sessionId}/events`;
    const asc = await get<Listing<ApiEvent>>(`${events}?limit=1`);
    const desc = await get<Listing<ApiEvent>>(`${events}?order=desc&limit=1`);
    if (asc.next_page === null || desc.next_page === null) throw new Error('one page of events only');
    const before = await state();
    const page = (cursor: string) => `page=${encodeURIComponent(cursor)}`;
    for (const query of [page(desc.next_page), `order=asc&${page(desc.next_page)}`]) {
      expectError(
        await berth.api('GET', `${events}?${query}`, undefined, ACME),
        400,
        'invalid_request',
        /order=desc/,
      );
    }
    expectError(
      await berth.api('GET', `${events}?order=desc&${page(asc.next_page)}`, undefined, ACME),
      400,
      'invalid_request',
      /order=asc/,
    );
    // An event cursor is no cursor of the session or agent lists.
    for (const list of ['/v1/sessions', '/v1/agents', '/v1/environments']) {
      expectError(
        await berth.api('GET', `${list}?${page(asc.next_page)}`, undefined, ACME),
        400,
        'invalid_request',
      );
    }
    expect(await state()).toEqual(before);
    // In their own order, the same cursors go on where their pages ended.
    expect((await get<Listing<ApiEvent>>(`${events}?limit=1&${page(asc.next_page)}`)).data[0]!.seq).toBe(
      asc.data[0]!.seq + 1,
    );
    const back = await get<Listing<ApiEvent>>(`${events}?order=desc&limit=1&${page(desc.next_page)}`);
    expect(back.data[0]!.seq).toBe(desc.data[0]!.seq - 1);
  });

  it('session create and update: bad and unsupported fields', async () => {
    const body = await berth.sessionBody({}, ACME);
    const before = await state();
    const create = (extra: Record<string, unknown>) => post('/v1/sessions', { ...body, ...extra });
    const { agent: _agent, ...noAgent } = body;
    const { environment_id: _environment, ...noEnvironment } = body;
    expectError(await post('/v1/sessions', noAgent), 400, 'invalid_request', /agent/);
    expectError(await post('/v1/sessions', noEnvironment), 400, 'invalid_request', /environment_id/);
    expectError(await post('/v1/sessions', {}), 400, 'invalid_request');
    for (const [extra, field] of [
      [{ agent: '' }, /agent/],
      [{ agent: { type: 'agent', id: agentId, version: 0 } }, /agent/],
      [{ agent: { type: 'agent', id: agentId, model: 'claude-opus-4' } }, /agent/],
      [{ environment_id: 42 }, /environment_id/],
      [{ title: 'x'.repeat(501) }, /title/],
      [{ metadata: manyKeys }, /metadata/],
      [{ metadata: { k: 5 } }, /metadata/],
      [{ budget: { type: 'limit', max_list_cost: { amount: '1.50', currency: 'USD' } } }, /amount/],
      [{ budget: { type: 'limit', max_list_cost: { amount: '100', currency: 'EUR' } } }, /currency/],
      [{ initial_events: [{ type: 'user.interrupt' }] }, /initial_events/],
      [{ initial_events: [{ type: 'user.message', content: 'hi' }] }, /content/],
    ] as const) {
      expectError(await create(extra), 400, 'invalid_request', field);
    }
    expectError(await create({ initial_events: [{ type: 'user.dance' }] }), 400, 'unknown_event_type');
    const overrides = (extra: Record<string, unknown>) => ({
      agent: { type: 'agent_with_overrides', id: agentId, ...extra },
    });
    for (const [extra, field] of [
      [{ resources: [{ type: 'file', file_id: 'file_1', mount_path: '/data' }] }, /resources/],
      [{ vault_ids: ['vlt_1'] }, /vault_ids/],
      [overrides({ skills: [{ type: 'anthropic', skill_id: 'xlsx' }] }), /agent\.skills/],
      // This host confines its agents (--sandbox bwrap): they could not reach an MCP server.
      [
        overrides({ mcp_servers: [{ type: 'url', name: 'docs', url: 'https://mcp.example.com/sse' }] }),
        /agent\.mcp_servers/,
      ],
      [
        overrides({
          tools: [{ type: 'custom', name: 'lookup', description: 'x', input_schema: { type: 'object' } }],
        }),
        /agent\.tools\.0/,
      ],
      [
        overrides({ tools: [toolset({ default_config: { permission_policy: { type: 'auto' } } })] }),
        /agent\.tools\.0\.default_config\.permission_policy/,
      ],
      [overrides({ model: { id: 'claude-sonnet-4-5', speed: 'fast' } }), /agent\.model\.speed/],
    ] as const) {
      expectUnsupported(await create(extra), field);
    }
    const update = (patch: unknown) => post(`/v1/sessions/${sessionId}`, patch);
    expectUnsupported(await update({ agent: agentId }), /agent/);
    expectUnsupported(await update({ vault_ids: ['vlt_1'] }), /vault_ids/);
    expectError(await update({ metadata: { k: 5 } }), 400, 'invalid_request', /metadata/);
    expectError(await update({ title: 'x'.repeat(501) }), 400, 'invalid_request', /title/);
    expectError(await update({ budget: { type: 'limit' } }), 400, 'invalid_request', /budget/);
    expect(await state()).toEqual(before);
  });

  it('refuses the old per-session agent settings: a session has no permission mode or tool list', async () => {
    const body = await berth.sessionBody({}, ACME);
    const before = await state();
    for (const agent of [
      { permission_mode: 'bypassPermissions' },
      { allowed_tools: ['Bash'] },
      { system_prompt: 'You are terse.' },
      { type: 'agent_with_overrides', id: agentId, permission_mode: 'bypassPermissions' },
      { type: 'agent_with_overrides', id: agentId, allowed_tools: ['Bash'] },
    ]) {
      expectError(await post('/v1/sessions', { ...body, agent }), 400, 'invalid_request', /agent/);
    }
    expect(await state()).toEqual(before);
  });

  it('agents: bad and unsupported fields on create and update', async () => {
    const before = await state();
    const agent = (extra: Record<string, unknown>) => ({ name: 'bad', model: 'claude-sonnet-4-5', ...extra });
    const create = (body: unknown) => post('/v1/agents', body);
    const docs = { type: 'url', name: 'docs', url: 'https://mcp.example.com/sse' };
    expectError(await create({}), 400, 'invalid_request', /name/);
    expectError(await create({ name: 'no model' }), 400, 'invalid_request', /model/);
    for (const [body, field] of [
      [agent({ name: '' }), /name/],
      [agent({ colour: 'blue' }), /colour/],
      [agent({ model: { id: 'claude-sonnet-4-5', effort: 'extreme' } }), /model/],
      [agent({ metadata: manyKeys }), /metadata/],
      // Tools by their API names, in one toolset, each once.
      [agent({ tools: [toolset({ configs: [{ name: 'Bash' }] })] }), /tools\.0\.configs\.0\.name/],
      [agent({ tools: [{ type: 'agent_toolset_20250101' }] }), /tools\.0/],
      [agent({ tools: [toolset({}), toolset({})] }), /tools\.1.*at most one/],
      [agent({ tools: [toolset({ configs: [{ name: 'bash' }, { name: 'bash' }] })] }), /configured twice/],
      [agent({ tools: [toolset({ configs: [{ name: 'bash', type: 'read' }] })] }), /configs\.0\.type/],
      // An MCP toolset names one of the agent's servers, each server once, its name free of `__`.
      [agent({ tools: [{ type: 'mcp_toolset', mcp_server_name: 'docs' }] }), /tools\.0\.mcp_server_name/],
      [agent({ mcp_servers: [docs, docs] }), /mcp_servers\.1\.name.*twice/],
      [agent({ mcp_servers: [{ ...docs, name: 'my__docs' }] }), /mcp_servers\.0\.name/],
      [agent({ mcp_servers: [{ ...docs, url: 'ftp://mcp.example.com' }] }), /mcp_servers\.0\.url/],
      [
        agent({
          mcp_servers: [docs],
          tools: [
            { type: 'mcp_toolset', mcp_server_name: 'docs' },
            { type: 'mcp_toolset', mcp_server_name: 'docs' },
          ],
        }),
        /tools\.1\.mcp_server_name/,
      ],
    ] as const) {
      expectError(await create(body), 400, 'invalid_request', field);
    }
    const refused = [
      [
        { tools: [{ type: 'custom', name: 'lookup', description: 'x', input_schema: { type: 'object' } }] },
        /tools\.0: a custom tool/,
      ],
      [
        {
          mcp_servers: [docs],
          tools: [
            {
              type: 'mcp_toolset',
              mcp_server_name: 'docs',
              default_config: { permission_policy: { type: 'auto' } },
            },
          ],
        },
        /tools\.0\.default_config\.permission_policy/,
      ],
      [
        {
          mcp_servers: [docs],
          tools: [
            {
              type: 'mcp_toolset',
              mcp_server_name: 'docs',
              configs: [{ name: 'search', permission_policy: { type: 'auto' } }],
            },
          ],
        },
        /tools\.0\.configs\.0\.permission_policy/,
      ],
      [{ skills: [{ type: 'anthropic', skill_id: 'xlsx' }] }, /skills/],
      [
        { tools: [toolset({ default_config: { permission_policy: { type: 'auto' } } })] },
        /tools\.0\.default_config\.permission_policy/,
      ],
      [
        { tools: [toolset({ configs: [{ name: 'bash', permission_policy: { type: 'auto' } }] })] },
        /tools\.0\.configs\.0\.permission_policy/,
      ],
      [
        { tools: [toolset({ configs: [{ name: 'web_search', allowed_domains: ['example.com'] }] })] },
        /tools\.0\.configs\.0/,
      ],
      [{ multiagent: { type: 'coordinator', agents: [] } }, /multiagent/],
      [{ execution_identity: { type: 'user' } }, /execution_identity/],
      [{ model: { id: 'claude-sonnet-4-5', speed: 'fast' } }, /model\.speed/],
      [{ model: { id: 'claude-sonnet-4-5', inference_geo: 'eu' } }, /model\.inference_geo/],
    ] as const;
    for (const [extra, field] of refused) expectUnsupported(await create(agent(extra)), field);

    // The same on an update of an agent that sessions run: it stays at its version.
    const update = (patch: unknown) => post(`/v1/agents/${agentId}`, patch);
    for (const [extra, field] of refused) expectUnsupported(await update(extra), field);
    expectError(await update({ colour: 'blue' }), 400, 'invalid_request', /colour/);
    expectError(await update({ version: 0, name: 'x' }), 400, 'invalid_request', /version/);
    expectError(await update({ name: '' }), 400, 'invalid_request', /name/);
    expectError(await update({ tools: [toolset({ configs: [{ name: 'Bash' }] })] }), 400, 'invalid_request');
    // A toolset for a server the agent does not have (it has none).
    expectError(
      await update({ tools: [{ type: 'mcp_toolset', mcp_server_name: 'docs' }] }),
      400,
      'invalid_request',
      /tools\.0\.mcp_server_name/,
    );
    // Based on a version that is not the agent's: a conflict, not a silent overwrite.
    expectError(await update({ version: 99, name: 'stale' }), 409, 'revision_conflict', /version/);
    expect(await state()).toEqual(before);
  });

  it('environments: bad and unsupported fields on create and update', async () => {
    const before = await state();
    const env = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      name: 'bad',
      config: { type: 'cloud', ...config },
      ...extra,
    });
    const create = (body: unknown) => post('/v1/environments', body);
    expectError(await create({}), 400, 'invalid_request', /name/);
    for (const [body, field] of [
      [env({}, { colour: 'blue' }), /colour/],
      [env({}, { scope: 'world' }), /scope/],
      [{ name: 'bad', config: { type: 'docker' } }, /config/],
      [env({ pattern: 'forever' }), /pattern/],
      [env({ networking: { type: 'limited', allowed_hosts: ['http://example.com'] } }), /allowed_hosts/],
      [env({ networking: { type: 'limited', allowed_hosts: ['Example.COM'] } }), /allowed_hosts/],
      [env({ networking: { type: 'open' } }), /networking/],
      // This host confines its agents (--sandbox bwrap): nothing could keep an unrestricted one open.
      [env({ networking: { type: 'unrestricted' } }), /networking/],
      [env({ packages: { pip: 'requests' } }), /packages/],
    ] as const) {
      expectError(await create(body), 400, 'invalid_request', field);
    }
    const refused = [
      [{ packages: { pip: ['requests'] } }, /config\.packages\.pip/],
      [{ packages: { type: 'packages', apt: ['jq'] } }, /config\.packages\.apt/],
      [{ networking: { type: 'limited', allow_mcp_servers: true } }, /config\.networking\.allow_mcp_servers/],
      [
        { networking: { type: 'limited', allow_package_managers: true } },
        /config\.networking\.allow_package_managers/,
      ],
    ] as const;
    for (const [config, field] of refused) expectUnsupported(await create(env(config)), field);
    expectUnsupported(
      await create({ name: 'bad', config: { type: 'self_hosted' } }),
      /config\.type.*self_hosted/,
    );

    // The same on an update of the environment that sessions run in.
    const update = (patch: unknown) => post(`/v1/environments/${environmentId}`, patch);
    for (const [config, field] of refused) {
      expectUnsupported(await update({ config: { type: 'cloud', ...config } }), field);
    }
    expectUnsupported(await update({ config: { type: 'self_hosted' } }), /config\.type.*self_hosted/);
    expectError(await update({ colour: 'blue' }), 400, 'invalid_request', /colour/);
    expectError(await update({ name: '' }), 400, 'invalid_request', /name/);
    expectError(
      await update({ config: { type: 'cloud', pattern: 'forever' } }),
      400,
      'invalid_request',
      /pattern/,
    );
    expect(await state()).toEqual(before);
  });

  it('a session of an archived agent or in an archived environment', async () => {
    // Their own agent and environment: the helper's are shared by every case.
    const made = await post('/v1/agents', { name: 'to archive', model: 'claude-sonnet-4-5' });
    const madeEnv = await post('/v1/environments', { name: 'to archive' });
    expect([made.status, madeEnv.status]).toEqual([200, 200]);
    const agent = made.body.id as string;
    const env = madeEnv.body.id as string;
    expect((await post(`/v1/agents/${agent}/archive`, undefined)).body.archived_at).not.toBeNull();
    expect((await post(`/v1/environments/${env}/archive`, undefined)).body.archived_at).not.toBeNull();
    const before = await state();
    const create = (extra: Record<string, unknown>) =>
      post('/v1/sessions', { agent: agentId, environment_id: environmentId, ...extra });
    expectError(await create({ agent: agent }), 400, 'agent_archived', new RegExp(agent));
    expectError(await create({ agent: { type: 'agent', id: agent, version: 1 } }), 400, 'agent_archived');
    expectError(
      await create({ agent: { type: 'agent_with_overrides', id: agent, system: 'x' } }),
      400,
      'agent_archived',
    );
    expectError(await create({ environment_id: env }), 400, 'environment_archived', new RegExp(env));
    // Archived is for good: they take no updates either.
    expectError(await post(`/v1/agents/${agent}`, { name: 'revived' }), 400, 'agent_archived');
    expectError(await post(`/v1/environments/${env}`, { name: 'revived' }), 400, 'environment_archived');
    expect(await state()).toEqual(before);
  });

  it('more waiting messages than a session takes', async () => {
    const id = await berth.createSession({}, ACME);
    const batch = (prefix: string) => Array.from({ length: 100 }, (_, i) => message(`${prefix}${i}`));
    // 100 fit in one request only if nothing waits yet; a second full batch cannot.
    expect((await send(id, batch('m'))).status).toBe(200);
    // The flooded session works through its messages meanwhile: what else there is must not change.
    const before = await state({ skip: id });
    expectError(await send(id, batch('n')), 429, 'queue_full', /at most 100/);
    expect(await state({ skip: id })).toEqual(before);
    const stored = (await berth.history(id, ACME)).flatMap((e) =>
      e.type === 'user.message' ? [textOf(e.content)] : [],
    );
    expect(stored).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ACME)).status).toBe(200);
  });
});
