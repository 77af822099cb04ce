/**
 * `GET /openapi.json` against the server it describes:
 * - the app's routes and the document's are the same set (a route added without an entry fails here);
 * - every documented route is served by a real server, and what it answers to a request for a missing
 *   resource is what the document says of that status;
 * - real answers (agents, environments, sessions and their events, a task and its stream, a group, the
 *   host, errors) validate against the document's schema for their route and status (Ajv, JSON Schema
 *   2020-12, the dialect of OpenAPI 3.1).
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import { groupRoutes } from '../src/http/group-routes.js';
import { openApiPath } from '../src/http/openapi.js';
import { taskRoutes } from '../src/http/task-routes.js';
import type { SessionHost } from '../src/host/session-host.js';
import { makeTelemetry } from '../src/observe/telemetry.js';
import type { Catalog } from '../src/stores/catalog.js';
import type { TaskRunner } from '../src/tasks/task-runner.js';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth, type ApiResponse } from './helpers/berth.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

const scenarios: Scenario[] = [
  {
    name: 'echo',
    match: { userText: 'run the echo' },
    steps: [{ toolUse: { name: 'Bash', input: { command: 'echo hi' } } }, { text: 'Echoed.' }],
  },
];

interface Document {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
}

let berth: TestBerth;
let doc: Document;
let ajv: Ajv2020;

beforeAll(async () => {
  berth = await TestBerth.start({ scenarios });
  const res = await berth.api('GET', '/openapi.json');
  expect(res.status).toBe(200);
  doc = res.body as Document;
  // `date-time` is checked by the pattern zod puts beside it; Ajv is told the format exists.
  ajv = new Ajv2020({ strict: true, allErrors: true, formats: { 'date-time': true } });
  // The document is added whole (its components are where its `$ref`s point); these are not schema keywords.
  ajv.addVocabulary(['openapi', 'info', 'paths', 'components']);
  ajv.addSchema(doc, 'openapi');
});

afterAll(async () => {
  await berth?.dispose();
});

/** `METHOD /path` of every route the app registers (middleware is `ALL`), in OpenAPI's path syntax. */
function servedRoutes(routes: readonly { method: string; path: string }[]): string[] {
  const served = routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${openApiPath(r.path)}`);
  return [...new Set(served)].sort();
}

function documentedRoutes(): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

/** The schema the document gives the body of `route` (`GET /v1/agents/{agent_id}`) at `status`. */
function schemaOf(route: string, status: number, media = 'application/json'): ValidateFunction {
  const [method, path] = route.split(' ') as [string, string];
  const pointer = [
    'paths',
    path,
    method.toLowerCase(),
    'responses',
    String(status),
    'content',
    media,
    'schema',
  ]
    .map((part) => part.replace(/~/g, '~0').replace(/\//g, '~1'))
    .join('/');
  const validate = ajv.getSchema(`openapi#/${pointer}`);
  if (!validate) throw new Error(`The document has no ${media} answer ${status} for ${route}`);
  return validate;
}

/** `res` is what the document says `route` answers with its status. */
function expectDocumented(route: string, res: ApiResponse): void {
  const validate = schemaOf(route, res.status);
  const valid = validate(res.body);
  expect(
    valid ? [] : validate.errors,
    `${route} ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`,
  ).toEqual([]);
}

/** The event page at `url` once it holds the turn's end (`session.status_idle`). */
async function turnOver(url: string): Promise<ApiResponse> {
  let res: ApiResponse | undefined;
  const over = async () => {
    res = await berth.api('GET', url);
    return (res.body.data as { type: string }[]).some((e) => e.type === 'session.status_idle');
  };
  await eventually(over, `the end of the turn at ${url}`, { boundMs: 60_000 });
  return res!;
}

describe('GET /openapi.json', () => {
  it('is OpenAPI 3.1, served without an API key, the same document at every request', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const keyed = await TestBerth.start({ args: ['--api-keys', 'acme:key-acme-0001'], model: berth.model });
    try {
      const res = await keyed.api('GET', '/openapi.json');
      expect(res.status).toBe(200);
      expect(res.body).toEqual(doc);
      expect((await keyed.api('GET', '/v1/agents')).status).toBe(401);
    } finally {
      await keyed.dispose();
    }
  });

  it('documents every route the app serves, and no other', () => {
    const app = createApp({
      host: {} as SessionHost,
      apiKeys: new Map(),
      maxBodyBytes: 1024,
      heartbeatMs: 1000,
      isReady: () => true,
      catalog: {} as Catalog,
      network: { confined: false },
      telemetry: makeTelemetry(),
      // The route groups server.ts adds; registering them reaches neither runner nor host.
      routes: [
        taskRoutes({ tasks: {} as TaskRunner, heartbeatMs: 1000 }),
        groupRoutes({ host: {} as SessionHost, dataDir: os.tmpdir(), heartbeatMs: 1000 }),
      ],
    });
    const served = servedRoutes(app.routes);
    expect(served.length).toBeGreaterThan(30);
    expect(served).toEqual(documentedRoutes());
  });

  it('every documented route is served, and its answer to a missing resource is documented', async () => {
    const fill: Record<string, string> = {
      '{agent_id}': 'agent_missing',
      '{environment_id}': 'env_missing',
      '{path}': 'missing.txt',
    };
    for (const route of documentedRoutes()) {
      const [method, path] = route.split(' ') as [string, string];
      const url = path
        .replace('{id}', path.startsWith('/v1/tasks/') ? 'task_missing' : 'missing')
        .replace(/\{[a-z_]+\}/g, (name) => fill[name]!);
      const res = await berth.api(method, url, method === 'POST' ? {} : undefined);
      const body = res.body as { error?: { message?: string } };
      expect(body.error?.message ?? '', route).not.toMatch(/^No route for/);
      if (res.headers.get('content-type')?.startsWith('application/json')) expectDocumented(route, res);
    }
  });
});

describe('answers validate against the document', () => {
  it('agents and environments', async () => {
    const created = await berth.api('POST', '/v1/agents', {
      name: 'documented',
      model: { id: 'claude-sonnet-4-5', effort: 'high' },
      system: 'Be brief.',
      tools: [
        {
          type: 'agent_toolset_20260401',
          default_config: { permission_policy: { type: 'always_allow' } },
          configs: [{ name: 'bash', permission_policy: { type: 'always_ask' } }],
        },
      ],
      metadata: { team: 'docs' },
    });
    expectDocumented('POST /v1/agents', created);
    const id = created.body.id as string;
    const updated = await berth.api('POST', `/v1/agents/${id}`, { version: 1, description: 'v2' });
    expectDocumented('POST /v1/agents/{agent_id}', updated);
    expectDocumented('GET /v1/agents/{agent_id}', await berth.api('GET', `/v1/agents/${id}?version=1`));
    expectDocumented('GET /v1/agents', await berth.api('GET', '/v1/agents?limit=5'));
    expectDocumented(
      'GET /v1/agents/{agent_id}/versions',
      await berth.api('GET', `/v1/agents/${id}/versions`),
    );
    expectDocumented(
      'POST /v1/agents/{agent_id}/archive',
      await berth.api('POST', `/v1/agents/${id}/archive`),
    );

    const env = await berth.api('POST', '/v1/environments', {
      name: 'documented',
      config: { type: 'cloud', pattern: 'hybrid', limits: { max_turns: 5 } },
    });
    expectDocumented('POST /v1/environments', env);
    const envId = env.body.id as string;
    expectDocumented(
      'GET /v1/environments/{environment_id}',
      await berth.api('GET', `/v1/environments/${envId}`),
    );
    expectDocumented(
      'POST /v1/environments/{environment_id}',
      await berth.api('POST', `/v1/environments/${envId}`, { metadata: { a: 'b' } }),
    );
    expectDocumented('GET /v1/environments', await berth.api('GET', '/v1/environments'));
    expectDocumented(
      'POST /v1/environments/{environment_id}/archive',
      await berth.api('POST', `/v1/environments/${envId}/archive`),
    );
    expectDocumented(
      'DELETE /v1/environments/{environment_id}',
      await berth.api('DELETE', `/v1/environments/${envId}`),
    );
  });

  it('sessions, their events and their stream', async () => {
    const created = await berth.api(
      'POST',
      '/v1/sessions',
      await berth.sessionBody({ allow: ['bash'], title: 'documented', metadata: { k: 'v' } }),
    );
    expectDocumented('POST /v1/sessions', created);
    const id = created.body.id as string;
    const sent = await berth.api('POST', `/v1/sessions/${id}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'please run the echo' }] }],
    });
    expectDocumented('POST /v1/sessions/{id}/events', sent);
    const events = await turnOver(`/v1/sessions/${id}/events?limit=1000`);
    expect((events.body.data as { type: string }[]).map((e) => e.type)).toEqual(
      expect.arrayContaining(['agent.tool_use', 'agent.tool_result', 'agent.message', 'session.status_idle']),
    );
    expectDocumented('GET /v1/sessions/{id}/events', events);

    const stream = new SseClient(`${berth.url}/v1/sessions/${id}/events/stream?after=0`);
    try {
      await stream.waitFor((e) => e.type === 'session.status_idle');
      const validate = schemaOf('GET /v1/sessions/{id}/events/stream', 200, 'text/event-stream');
      for (const event of stream.events)
        expect(validate(event) ? [] : validate.errors, event.type).toEqual([]);
    } finally {
      stream.close();
    }

    expectDocumented('GET /v1/sessions/{id}', await berth.api('GET', `/v1/sessions/${id}`));
    expectDocumented(
      'POST /v1/sessions/{id}',
      await berth.api('POST', `/v1/sessions/${id}`, {
        budget: { type: 'limit', max_list_cost: { amount: '500', currency: 'USD' } },
      }),
    );
    expectDocumented('GET /v1/sessions', await berth.api('GET', '/v1/sessions?statuses[]=idle'));
    expectDocumented('POST /v1/sessions/{id}/archive', await berth.api('POST', `/v1/sessions/${id}/archive`));
    expectDocumented('DELETE /v1/sessions/{id}', await berth.api('DELETE', `/v1/sessions/${id}`));
  });

  it('a task, its record and its stream', async () => {
    const done = await berth.api('POST', '/v1/tasks?wait=true', { prompt: 'just say hi', max_turns: 3 });
    expectDocumented('POST /v1/tasks', done);
    expect(done.body.status).toBe('succeeded');
    const id = done.body.id as string;
    expectDocumented('GET /v1/tasks/{id}', await berth.api('GET', `/v1/tasks/${id}`));
    const stream = new SseClient(`${berth.url}/v1/tasks/${id}/events/stream`);
    await stream.waitForEnd();
    const validate = schemaOf('GET /v1/tasks/{id}/events/stream', 200, 'text/event-stream');
    expect(stream.events.map((e) => e.type)).toContain('task.status_succeeded');
    for (const event of stream.events) expect(validate(event) ? [] : validate.errors, event.type).toEqual([]);
  });

  it('a group, its events and its deletion', async () => {
    const created = await berth.api('POST', '/v1/groups', {
      title: 'documented',
      agents: [{ name: 'writer' }, { name: 'critic', system_prompt: 'Be careful.' }],
    });
    expectDocumented('POST /v1/groups', created);
    const id = created.body.id as string;
    const sent = await berth.api('POST', `/v1/groups/${id}/events`, {
      events: [{ type: 'user.message', agent: 'writer', content: 'say something' }],
    });
    expectDocumented('POST /v1/groups/{id}/events', sent);
    const events = await turnOver(`/v1/groups/${id}/events`);
    expectDocumented('GET /v1/groups/{id}/events', events);
    expectDocumented('GET /v1/groups/{id}', await berth.api('GET', `/v1/groups/${id}`));
    expectDocumented('GET /v1/groups', await berth.api('GET', '/v1/groups'));
    expectDocumented('DELETE /v1/groups/{id}', await berth.api('DELETE', `/v1/groups/${id}`));
  });

  it('the host, health and errors', async () => {
    expectDocumented('GET /v1/hosts/self', await berth.api('GET', '/v1/hosts/self'));
    expectDocumented('GET /readyz', await berth.api('GET', '/readyz'));
    expectDocumented('GET /healthz', await berth.api('GET', '/healthz'));

    const missing = await berth.api('GET', '/v1/sessions/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.details.error_code).toBe('session_not_found');
    expectDocumented('GET /v1/sessions/{id}', missing);

    const invalid = await berth.api('POST', '/v1/agents', { name: 'no model' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details.error_code).toBe('invalid_request');
    expectDocumented('POST /v1/agents', invalid);

    const badId = await berth.api('GET', '/v1/sessions/-bad');
    expect(badId.status).toBe(400);
    expectDocumented('GET /v1/sessions/{id}', badId);

    // What the document does not list fails: a code the route never gives, a field the view lacks.
    const misfiled = { ...missing.body.error, details: { error_code: 'task_not_found' } };
    expect(schemaOf('GET /v1/sessions/{id}', 404)({ ...missing.body, error: misfiled })).toBe(false);
    const host = (await berth.api('GET', '/v1/hosts/self')).body as object;
    expect(schemaOf('GET /v1/hosts/self', 200)({ ...host, undocumented: true })).toBe(false);
  });
});
