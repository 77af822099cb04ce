/**
 * The Managed Agents API through Anthropic's official TypeScript client (`@anthropic-ai/sdk`, pinned in
 * package.json), its base URL pointed at Berth and nothing else changed: agents, environments, sessions
 * and events, against the real `claude` CLI and the scripted model. Each step is what the client's own
 * documentation shows; a shape Berth gets wrong fails here as it would in a user's code.
 */
import Anthropic from '@anthropic-ai/sdk';
import type { BetaManagedAgentsStreamSessionEvents } from '@anthropic-ai/sdk/resources/beta/sessions/events';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

const scenarios: Scenario[] = [
  {
    name: 'probe',
    match: { userText: 'write probe #1#' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo probed > probe-1.txt && echo wrote' } } },
      { text: 'The probe is written.' },
    ],
  },
  {
    name: 'probe denied',
    match: { userText: 'write probe #2#' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo probed > probe-2.txt && echo wrote' } } },
      { text: 'The probe was not written.' },
    ],
  },
  {
    name: 'read-only echo',
    match: { userText: 'just echo #3#' },
    steps: [{ toolUse: { name: 'Bash', input: { command: 'echo harmless' } } }, { text: 'Echoed.' }],
  },
  {
    name: 'slow',
    match: { userText: 'a long story #4#' },
    steps: [{ text: 'Once upon a time '.repeat(200), fault: { chunkDelayMs: 100 } }],
  },
];

const KEYS = '--api-keys';
let berth: TestBerth;
let client: Anthropic;
let other: Anthropic;
/** Requests the client sent, to see what it retried. */
const sent: string[] = [];

beforeAll(async () => {
  // Estimated token counts, priced at list price: the tests read usage, list cost and a budget spent.
  berth = await TestBerth.start({
    scenarios,
    args: [KEYS, 'acme:key-acme-0001,globex:key-globex-0002'],
    modelUsage: 'estimate',
  });
  client = new Anthropic({
    baseURL: berth.url,
    apiKey: 'key-acme-0001',
    maxRetries: 2,
    fetch: (url, init) => {
      sent.push(`${init?.method ?? 'GET'} ${new URL(url instanceof Request ? url.url : url).pathname}`);
      return fetch(url, init);
    },
  });
  other = new Anthropic({ baseURL: berth.url, apiKey: 'key-globex-0002', maxRetries: 0 });
});

afterAll(async () => {
  await berth?.dispose();
});

/** A stream read in parts: the client's stream can be iterated only once, so the iterator is kept. */
async function open(sessionId: string) {
  const stream = await client.beta.sessions.events.stream(sessionId);
  return { events: stream[Symbol.asyncIterator](), close: () => stream.controller.abort() };
}

/** Reads the stream until `until` matches; returns what was read. */
async function readUntil(
  stream: { events: AsyncIterator<BetaManagedAgentsStreamSessionEvents> },
  until: (e: BetaManagedAgentsStreamSessionEvents) => boolean,
): Promise<BetaManagedAgentsStreamSessionEvents[]> {
  const seen: BetaManagedAgentsStreamSessionEvents[] = [];
  for (;;) {
    const next = await stream.events.next();
    if (next.done)
      throw new Error(`the stream ended before the event: ${seen.map((e) => e.type).join(', ')}`);
    seen.push(next.value);
    if (until(next.value)) return seen;
  }
}

const idleWith = (reason: string) => (e: BetaManagedAgentsStreamSessionEvents) =>
  e.type === 'session.status_idle' && e.stop_reason.type === reason;

async function setup(name: string) {
  const agent = await client.beta.agents.create({
    name,
    model: 'claude-sonnet-4-5',
    system: 'You are a careful agent.',
    tools: [
      {
        type: 'agent_toolset_20260401',
        default_config: { permission_policy: { type: 'always_allow' } },
        configs: [{ name: 'bash', permission_policy: { type: 'always_ask' } }],
      },
    ],
  });
  const environment = await client.beta.environments.create({
    name: `${name} env`,
    config: { type: 'cloud' },
  });
  return { agent, environment };
}

describe('the official client against Berth', () => {
  it('runs the whole flow: agent, environment, session, a turn, a confirmed and a denied Bash call', async () => {
    const { agent, environment } = await setup('flow');
    expect(agent).toMatchObject({ type: 'agent', version: 1, name: 'flow', archived_at: null });
    expect(agent.id).toMatch(/^agent_/);
    expect(environment.id).toMatch(/^env_/);
    // Agents on this host are confined (--sandbox bwrap, the default): no network unless allowed.
    expect(environment.config).toMatchObject({
      type: 'cloud',
      networking: { type: 'limited', allowed_hosts: [] },
    });

    const session = await client.beta.sessions.create({
      agent: agent.id,
      environment_id: environment.id,
      title: 'flow session',
      metadata: { owner: 'tests' },
    });
    expect(session).toMatchObject({
      type: 'session',
      status: 'idle',
      title: 'flow session',
      environment_id: environment.id,
      metadata: { owner: 'tests' },
      agent: { id: agent.id, version: 1, name: 'flow' },
    });
    expect(session.agent.tools[0]).toMatchObject({ type: 'agent_toolset_20260401' });

    const stream = await open(session.id);
    const cwd = berth.server.host.pathsFor({ tenant: 'acme', id: session.id }).cwd;

    // A plain turn.
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'hello berth' }] }],
    });
    const first = await readUntil(stream, idleWith('end_turn'));
    const reply = first.find((e) => e.type === 'agent.message');
    expect(reply?.type === 'agent.message' && reply.content[0]).toMatchObject({ type: 'text' });
    for (const e of first) {
      if ('id' in e) expect(e.id).toMatch(/^sevt_/);
      if ('processed_at' in e) expect(Number.isNaN(Date.parse(String(e.processed_at)))).toBe(false);
    }

    // always_ask: the session waits on the tool use's event id; allowing it runs the command.
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'write probe #1#' }] }],
    });
    const asked = await readUntil(stream, idleWith('requires_action'));
    const toolUse = asked.find((e) => e.type === 'agent.tool_use');
    const paused = asked.at(-1)!;
    if (toolUse?.type !== 'agent.tool_use' || paused.type !== 'session.status_idle')
      throw new Error('no tool use');
    expect(toolUse).toMatchObject({ name: 'bash', evaluated_permission: 'ask' });
    expect(paused.stop_reason).toEqual({ type: 'requires_action', event_ids: [toolUse.id] });
    expect((await client.beta.sessions.retrieve(session.id)).status).toBe('idle');
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.tool_confirmation', tool_use_id: toolUse.id, result: 'allow' }],
    });
    const allowed = await readUntil(stream, idleWith('end_turn'));
    const result = allowed.find((e) => e.type === 'agent.tool_result');
    expect(result).toMatchObject({ tool_use_id: toolUse.id, is_error: false, content: [{ type: 'text' }] });
    expect(readFileSync(path.join(cwd, 'probe-1.txt'), 'utf8').trim()).toBe('probed');

    // Denied with a message: the command never runs, and the agent is told why.
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'write probe #2#' }] }],
    });
    const asked2 = await readUntil(stream, idleWith('requires_action'));
    const toolUse2 = asked2.find((e) => e.type === 'agent.tool_use')!;
    await client.beta.sessions.events.send(session.id, {
      events: [
        {
          type: 'user.tool_confirmation',
          tool_use_id: toolUse2.id,
          result: 'deny',
          deny_message: 'not today',
        },
      ],
    });
    const denied = await readUntil(stream, idleWith('end_turn'));
    const result2 = denied.find((e) => e.type === 'agent.tool_result');
    expect(result2).toMatchObject({ tool_use_id: toolUse2.id, is_error: true });
    expect(JSON.stringify(result2)).toContain('not today');
    expect(existsSync(path.join(cwd, 'probe-2.txt'))).toBe(false);
    stream.close();

    // always_ask holds even where the CLI would not ask: a read-only `echo`. Answered as soon as the tool
    // use is seen, which may be before the CLI has asked: the answer is kept until it does.
    const stream2 = await open(session.id);
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'just echo #3#' }] }],
    });
    const seen3 = await readUntil(stream2, (e) => e.type === 'agent.tool_use');
    const toolUse3 = seen3.at(-1)!;
    if (toolUse3.type !== 'agent.tool_use') throw new Error('no tool use');
    expect(toolUse3).toMatchObject({ name: 'bash', evaluated_permission: 'ask' });
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.tool_confirmation', tool_use_id: toolUse3.id, result: 'allow' }],
    });
    const rest3 = await readUntil(stream2, idleWith('end_turn'));
    expect(rest3.find((e) => e.type === 'agent.tool_result')).toMatchObject({
      tool_use_id: toolUse3.id,
      is_error: false,
    });
    stream2.close();

    const done = await client.beta.sessions.retrieve(session.id);
    expect(done.usage.input_tokens).toBeGreaterThan(0);
    expect(done.usage.list_cost).toMatchObject({ currency: 'USD' });
  });

  it('pages a long event list to its end, in both orders, and filters by type', async () => {
    const { agent, environment } = await setup('pages');
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    const stream = await open(session.id);
    for (let i = 0; i < 4; i++) {
      await client.beta.sessions.events.send(session.id, {
        events: [{ type: 'user.message', content: [{ type: 'text', text: `turn ${i}` }] }],
      });
      await readUntil(stream, idleWith('end_turn'));
    }
    stream.close();
    const all = [];
    for await (const event of client.beta.sessions.events.list(session.id, { limit: 3 })) all.push(event);
    expect(all.length).toBeGreaterThanOrEqual(16);
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    const backwards = [];
    for await (const event of client.beta.sessions.events.list(session.id, { limit: 5, order: 'desc' })) {
      backwards.push(event);
    }
    expect(backwards.map((e) => e.id)).toEqual(all.map((e) => e.id).reverse());
    const messages = [];
    for await (const event of client.beta.sessions.events.list(session.id, {
      types: ['user.message'],
      limit: 2,
    })) {
      messages.push(event);
    }
    expect(messages.map((e) => e.type)).toEqual([
      'user.message',
      'user.message',
      'user.message',
      'user.message',
    ]);
  });

  it('interrupts a long turn', async () => {
    const { agent, environment } = await setup('interrupt');
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    const stream = await open(session.id);
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'a long story #4#' }] }],
    });
    await readUntil(stream, (e) => e.type === 'session.status_running');
    await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.interrupt' }] });
    const rest = await readUntil(stream, (e) => e.type === 'session.status_idle');
    expect(rest.some((e) => e.type === 'user.interrupt')).toBe(true);
    expect(rest.at(-1)).toMatchObject({ stop_reason: { type: 'end_turn' } });
    stream.close();
  });

  it('versions agents: an update is a new version, a session keeps the one it was made with', async () => {
    const { agent, environment } = await setup('versions');
    const pinned = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    const updated = await client.beta.agents.update(agent.id, { version: 1, system: 'Be brief.' });
    expect(updated).toMatchObject({ version: 2, system: 'Be brief.' });
    // Nothing changed: no new version.
    expect((await client.beta.agents.update(agent.id, { system: 'Be brief.' })).version).toBe(2);
    expect((await client.beta.sessions.retrieve(pinned.id)).agent).toMatchObject({
      version: 1,
      system: 'You are a careful agent.',
    });
    const fresh = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    expect(fresh.agent.version).toBe(2);
    const older = await client.beta.sessions.create({
      agent: { type: 'agent', id: agent.id, version: 1 },
      environment_id: environment.id,
    });
    expect(older.agent.version).toBe(1);
    expect((await client.beta.agents.retrieve(agent.id, { version: 1 })).system).toBe(
      'You are a careful agent.',
    );
    const versions = [];
    for await (const v of client.beta.agents.versions.list(agent.id)) versions.push(v.version);
    expect(versions).toEqual([2, 1]);
    // An update based on a version that is no longer current is refused, and not retried.
    const before = sent.length;
    await expect(client.beta.agents.update(agent.id, { version: 1, name: 'stale' })).rejects.toMatchObject({
      status: 409,
      errorCode: 'revision_conflict',
    });
    expect(sent.length - before).toBeGreaterThanOrEqual(1);
    const listed = [];
    for await (const a of client.beta.agents.list()) listed.push(a.id);
    expect(listed).toContain(agent.id);
    const archived = await client.beta.agents.archive(agent.id);
    expect(archived.archived_at).not.toBeNull();
    await expect(
      client.beta.sessions.create({ agent: agent.id, environment_id: environment.id }),
    ).rejects.toMatchObject({ status: 400, errorCode: 'agent_archived' });
  });

  it('starts a session with initial events, and with overrides of its agent', async () => {
    const { agent, environment } = await setup('overrides');
    const session = await client.beta.sessions.create({
      agent: { type: 'agent_with_overrides', id: agent.id, system: 'You are overridden.' },
      environment_id: environment.id,
      initial_events: [{ type: 'user.message', content: [{ type: 'text', text: 'first words #5#' }] }],
    });
    expect(session.agent).toMatchObject({ id: agent.id, version: 1, system: 'You are overridden.' });
    // The agent itself is unchanged: the override is the session's.
    expect((await client.beta.agents.retrieve(agent.id)).system).toBe('You are a careful agent.');
    let idle = false;
    for (let i = 0; i < 400 && !idle; i++) {
      for await (const e of client.beta.sessions.events.list(session.id, {
        types: ['session.status_idle'],
      })) {
        idle ||= e.type === 'session.status_idle';
      }
      if (!idle) await new Promise((r) => setTimeout(r, 50));
    }
    expect(idle).toBe(true);
    const request = berth.model.requests.findLast((r) => r.userText === 'first words #5#');
    expect(JSON.stringify(request?.body)).toContain('You are overridden.');
  });

  it('stops a session that spends past its budget with budget_reached, until the budget is raised', async () => {
    const { agent, environment } = await setup('budget');
    // One cent: the first turn's model request passes (nothing spent yet) and spends more than that.
    const budget = { type: 'limit' as const, max_list_cost: { amount: '1', currency: 'USD' as const } };
    const session = await client.beta.sessions.create({
      agent: agent.id,
      environment_id: environment.id,
      budget,
    });
    expect(session.budget).toEqual(budget);
    const stream = await open(session.id);
    const say = (text: string) =>
      client.beta.sessions.events.send(session.id, {
        events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
      });
    const requests = () => berth.model.requests.filter((r) => r.isMain).length;
    await say('first, within the budget');
    await readUntil(stream, idleWith('end_turn'));
    expect((await client.beta.sessions.retrieve(session.id)).usage.list_cost?.amount).not.toBe('0');
    const before = requests();
    await say('second, past the budget');
    const stopped = await readUntil(stream, (e) => e.type === 'session.status_idle');
    expect(stopped.at(-1)).toMatchObject({ stop_reason: { type: 'budget_reached' } });
    expect(stopped.find((e) => e.type === 'session.error')).toMatchObject({
      error: { type: 'billing_error', code: 'budget_exceeded' },
    });
    // The model never saw the request.
    expect(requests()).toBe(before);
    // Raised (removed): the session goes on.
    expect((await client.beta.sessions.update(session.id, { budget: null })).budget).toBeNull();
    await say('third, no budget');
    await readUntil(stream, idleWith('end_turn'));
    expect(requests()).toBe(before + 1);
    stream.close();
  });

  it('updates, lists, archives and deletes sessions; conflicts are not retried', async () => {
    const { agent, environment } = await setup('lifecycle');
    const a = await client.beta.sessions.create({
      agent: agent.id,
      environment_id: environment.id,
      title: 'a',
    });
    const b = await client.beta.sessions.create({
      agent: agent.id,
      environment_id: environment.id,
      title: 'b',
    });
    const updated = await client.beta.sessions.update(a.id, { title: 'a2', metadata: { k: 'v' } });
    expect(updated).toMatchObject({ title: 'a2', metadata: { k: 'v' } });
    const ids = async (params: Parameters<typeof client.beta.sessions.list>[0]) => {
      const out: string[] = [];
      for await (const s of client.beta.sessions.list(params)) out.push(s.id);
      return out;
    };
    expect(await ids({ agent_id: agent.id })).toEqual([b.id, a.id]);
    expect(await ids({ agent_id: agent.id, statuses: ['running'] })).toEqual([]);
    const archived = await client.beta.sessions.archive(a.id);
    expect(archived.archived_at).not.toBeNull();
    expect(archived.status).toBe('terminated');
    expect(await ids({ agent_id: agent.id })).toEqual([b.id]);
    expect(await ids({ agent_id: agent.id, include_archived: true })).toEqual([b.id, a.id]);

    // A conflict a retry cannot change: one request, no retries (the client retries 409s unless told not to).
    const before = sent.length;
    const refused = await client.beta.sessions.events
      .send(a.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'too late' }] }] })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(Anthropic.ConflictError);
    expect(refused).toMatchObject({
      errorCode: 'session_terminated',
      requestID: expect.stringMatching(/^req_/),
    });
    expect(sent.length - before).toBe(1);

    const watching = await open(b.id);
    const deleted = await client.beta.sessions.delete(b.id);
    expect(deleted).toEqual({ id: b.id, type: 'session_deleted' });
    // A stream open on it hears of it last.
    const last = await readUntil(watching, (e) => e.type === 'session.deleted');
    expect(last.at(-1)).toMatchObject({ type: 'session.deleted', id: expect.stringMatching(/^sevt_/) });
    expect((await watching.events.next()).done).toBe(true);
    await expect(client.beta.sessions.retrieve(b.id)).rejects.toBeInstanceOf(Anthropic.NotFoundError);
  });

  it("answers 404 for another tenant's agents, environments and sessions", async () => {
    const { agent, environment } = await setup('private');
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    for (const call of [
      () => other.beta.agents.retrieve(agent.id),
      () => other.beta.environments.retrieve(environment.id),
      () => other.beta.sessions.retrieve(session.id),
      () => other.beta.sessions.events.list(session.id),
      () => other.beta.sessions.create({ agent: agent.id, environment_id: environment.id }),
    ]) {
      await expect(call()).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    }
    const theirs = [];
    for await (const s of other.beta.sessions.list()) theirs.push(s.id);
    expect(theirs).not.toContain(session.id);
  });

  it('manages environments and refuses what Berth cannot honour, by field', async () => {
    const env = await client.beta.environments.create({ name: 'temp', metadata: { team: 'x' } });
    const renamed = await client.beta.environments.update(env.id, {
      name: 'temp2',
      metadata: { team: null },
    });
    expect(renamed).toMatchObject({ name: 'temp2', metadata: {} });
    const listed = [];
    for await (const e of client.beta.environments.list()) listed.push(e.id);
    expect(listed).toContain(env.id);
    expect((await client.beta.environments.archive(env.id)).archived_at).not.toBeNull();
    expect(await client.beta.environments.delete(env.id)).toEqual({
      id: env.id,
      type: 'environment_deleted',
    });
    await expect(client.beta.environments.retrieve(env.id)).rejects.toBeInstanceOf(Anthropic.NotFoundError);

    const refusals: [() => Promise<unknown>, RegExp][] = [
      [
        () =>
          client.beta.environments.create({ name: 'p', config: { type: 'cloud', packages: { pip: ['x'] } } }),
        /packages\.pip/,
      ],
      [() => client.beta.environments.create({ name: 's', config: { type: 'self_hosted' } }), /config\.type/],
      [
        () =>
          client.beta.agents.create({
            name: 'c',
            model: 'claude-sonnet-4-5',
            tools: [{ type: 'custom', name: 'x', description: 'x', input_schema: { type: 'object' } }],
          }),
        /tools\.0/,
      ],
      [
        () =>
          client.beta.agents.create({
            name: 'a',
            model: 'claude-sonnet-4-5',
            tools: [
              { type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'auto' } } },
            ],
          }),
        /permission_policy/,
      ],
    ];
    for (const [call, field] of refusals) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect((err as InstanceType<typeof Anthropic.BadRequestError>).errorCode).toBe('unsupported');
      expect(String((err as Error).message)).toMatch(field);
    }
  });
});
