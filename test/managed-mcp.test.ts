/**
 * MCP servers on agents through the official client (`@anthropic-ai/sdk`), against the real `claude` CLI,
 * the scripted model and a real streamable-HTTP MCP server started here (`@modelcontextprotocol/sdk`,
 * the Agent SDK's own dependency) whose tools record each call: an `mcp_toolset`'s always_ask pauses the
 * session on an `agent.mcp_tool_use`, allow runs the tool (the server sees the call), deny and a disabled
 * tool never reach the server. A host that confines agents (--sandbox bwrap) refuses MCP servers by field.
 */
import Anthropic from '@anthropic-ai/sdk';
import type { BetaManagedAgentsStreamSessionEvents } from '@anthropic-ai/sdk/resources/beta/sessions/events';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

const TOOL = 'mcp__notes__record_visit';
const DISABLED = 'mcp__notes__erase_all';

const scenarios: Scenario[] = [
  {
    name: 'mcp allowed',
    match: { userText: 'visit #1#' },
    steps: [{ toolUse: { name: TOOL, input: { note: 'first' } } }, { text: 'Visited.' }],
  },
  {
    name: 'mcp denied',
    match: { userText: 'visit #2#' },
    steps: [{ toolUse: { name: TOOL, input: { note: 'second' } } }, { text: 'Not visited.' }],
  },
  {
    name: 'mcp disabled',
    match: { userText: 'erase #3#' },
    steps: [{ toolUse: { name: DISABLED, input: {} } }, { text: 'Not erased.' }],
  },
];

/** Every tool call the MCP server received: `record_visit:<note>` or `erase_all`. */
const calls: string[] = [];

/** A stateless streamable-HTTP MCP server: a fresh server and transport per request. */
async function startMcpServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const http: Server = createServer((req, res) => {
    const mcp = new McpServer({ name: 'notes', version: '1.0.0' });
    mcp.registerTool(
      'record_visit',
      { description: 'Records a visit.', inputSchema: { note: z.string() } },
      ({ note }) => {
        calls.push(`record_visit:${note}`);
        return { content: [{ type: 'text', text: `recorded ${note}` }] };
      },
    );
    mcp.registerTool('erase_all', { description: 'Erases every visit.' }, () => {
      calls.push('erase_all');
      return { content: [{ type: 'text', text: 'erased' }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    void mcp
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

const KEYS = ['--api-keys', 'acme:key-acme-0001'];
let berth: TestBerth;
let confined: TestBerth;
let mcp: { url: string; close: () => Promise<void> };
let client: Anthropic;

beforeAll(async () => {
  mcp = await startMcpServer();
  berth = await TestBerth.start({ scenarios, args: [...KEYS, '--sandbox', 'none'] });
  client = new Anthropic({ baseURL: berth.url, apiKey: 'key-acme-0001', maxRetries: 0 });
});

afterAll(async () => {
  await berth?.dispose();
  await confined?.dispose();
  await mcp?.close();
});

type Event = BetaManagedAgentsStreamSessionEvents;

async function readUntil(events: AsyncIterator<Event>, until: (e: Event) => boolean): Promise<Event[]> {
  const seen: Event[] = [];
  for (;;) {
    const next = await events.next();
    if (next.done) throw new Error(`the stream ended early: ${seen.map((e) => e.type).join(', ')}`);
    seen.push(next.value);
    if (until(next.value)) return seen;
  }
}

const idleWith = (reason: string) => (e: Event) =>
  e.type === 'session.status_idle' && e.stop_reason.type === reason;
/** Any pause: a test that expects one stop reason sees the other at once, not after a timeout. */
const idle = (e: Event) => e.type === 'session.status_idle';

const say = (sessionId: string, text: string) =>
  client.beta.sessions.events.send(sessionId, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });

function mcpAgent(url: string) {
  return client.beta.agents.create({
    name: 'mcp agent',
    model: 'claude-sonnet-4-5',
    tools: [
      { type: 'agent_toolset_20260401' },
      {
        type: 'mcp_toolset',
        mcp_server_name: 'notes',
        default_config: { permission_policy: { type: 'always_allow' } },
        configs: [
          { name: 'record_visit', permission_policy: { type: 'always_ask' } },
          { name: 'erase_all', enabled: false },
        ],
      },
    ],
    mcp_servers: [{ type: 'url', name: 'notes', url }],
  });
}

describe('MCP servers on agents', () => {
  it('asks before an always_ask MCP tool runs; allow reaches the server, deny and disabled do not', async () => {
    const agent = await mcpAgent(mcp.url);
    expect(agent.mcp_servers).toEqual([{ type: 'url', name: 'notes', url: mcp.url }]);
    expect(agent.tools[1]).toEqual({
      type: 'mcp_toolset',
      mcp_server_name: 'notes',
      default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
      configs: [
        { name: 'record_visit', enabled: true, permission_policy: { type: 'always_ask' } },
        { name: 'erase_all', enabled: false, permission_policy: { type: 'always_allow' } },
      ],
    });
    const environment = await client.beta.environments.create({ name: 'mcp env' });
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
    const stream = await client.beta.sessions.events.stream(session.id);
    const events = stream[Symbol.asyncIterator]();

    // always_ask: the session waits on the MCP tool use's event id; allowing it calls the server.
    await say(session.id, 'visit #1#');
    const asked = await readUntil(events, idle);
    const use = asked.find((e) => e.type === 'agent.mcp_tool_use');
    const paused = asked.at(-1)!;
    if (use?.type !== 'agent.mcp_tool_use' || paused.type !== 'session.status_idle')
      throw new Error(`no MCP tool use: ${asked.map((e) => e.type).join(', ')}`);
    expect(use).toMatchObject({
      mcp_server_name: 'notes',
      name: 'record_visit',
      input: { note: 'first' },
      evaluated_permission: 'ask',
    });
    expect(calls).toEqual([]);
    expect(paused.stop_reason).toEqual({ type: 'requires_action', event_ids: [use.id] });
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow' }],
    });
    const allowed = await readUntil(events, idleWith('end_turn'));
    const result = allowed.find((e) => e.type === 'agent.mcp_tool_result');
    expect(result).toMatchObject({
      mcp_tool_use_id: use.id,
      is_error: false,
      content: [{ type: 'text', text: 'recorded first' }],
    });
    expect(calls).toEqual(['record_visit:first']);

    // Denied: the server never sees the call.
    await say(session.id, 'visit #2#');
    const asked2 = await readUntil(events, idle);
    expect(asked2.at(-1)).toMatchObject({ stop_reason: { type: 'requires_action' } });
    const use2 = asked2.find((e) => e.type === 'agent.mcp_tool_use')!;
    await client.beta.sessions.events.send(session.id, {
      events: [
        { type: 'user.tool_confirmation', tool_use_id: use2.id, result: 'deny', deny_message: 'no visits' },
      ],
    });
    const denied = await readUntil(events, idleWith('end_turn'));
    expect(denied.find((e) => e.type === 'agent.mcp_tool_result')).toMatchObject({
      mcp_tool_use_id: use2.id,
      is_error: true,
    });
    expect(calls).toEqual(['record_visit:first']);

    // Disabled in the toolset: refused without asking, and without reaching the server.
    await say(session.id, 'erase #3#');
    const refused = await readUntil(events, idle);
    expect(refused.at(-1)).toMatchObject({ stop_reason: { type: 'end_turn' } });
    expect(refused.find((e) => e.type === 'agent.mcp_tool_use')).toMatchObject({
      mcp_server_name: 'notes',
      name: 'erase_all',
    });
    const erased = refused.find((e) => e.type === 'agent.mcp_tool_result');
    expect(erased).toMatchObject({ is_error: true });
    expect(JSON.stringify(erased)).toContain('not enabled');
    expect(calls).toEqual(['record_visit:first']);
    stream.controller.abort();

    // The list filters by the types the API shows: the three MCP tool uses, not the CLI's agent.tool_use.
    const listed = [];
    for await (const e of client.beta.sessions.events.list(session.id, { types: ['agent.mcp_tool_use'] })) {
      listed.push(e.id);
    }
    expect(listed).toEqual([use.id, use2.id, refused.find((e) => e.type === 'agent.mcp_tool_use')!.id]);
  });

  it('refuses a toolset naming an undeclared server, and the auto policy', async () => {
    const refusals: [() => Promise<unknown>, string, RegExp][] = [
      [
        () =>
          client.beta.agents.create({
            name: 'x',
            model: 'claude-sonnet-4-5',
            tools: [{ type: 'mcp_toolset', mcp_server_name: 'nowhere' }],
          }),
        'invalid_request',
        /tools\.0\.mcp_server_name/,
      ],
      [
        () =>
          client.beta.agents.create({
            name: 'x',
            model: 'claude-sonnet-4-5',
            mcp_servers: [{ type: 'url', name: 'notes', url: mcp.url }],
            tools: [
              {
                type: 'mcp_toolset',
                mcp_server_name: 'notes',
                default_config: { permission_policy: { type: 'auto' } },
              },
            ],
          }),
        'unsupported',
        /tools\.0\.default_config\.permission_policy/,
      ],
    ];
    for (const [call, code, field] of refusals) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect((err as InstanceType<typeof Anthropic.BadRequestError>).errorCode).toBe(code);
      expect(String((err as Error).message)).toMatch(field);
    }
  });

  it('takes MCP servers in agent_with_overrides, checked against the toolsets as overridden', async () => {
    const agent = await mcpAgent(mcp.url);
    const environment = await client.beta.environments.create({ name: 'overrides env' });
    const other = { type: 'url' as const, name: 'notes', url: `${mcp.url}?other` };
    const session = await client.beta.sessions.create({
      agent: { type: 'agent_with_overrides', id: agent.id, mcp_servers: [other] },
      environment_id: environment.id,
    });
    expect(session.agent.mcp_servers).toEqual([other]);
    // Dropping the server its toolset names.
    const err = await client.beta.sessions
      .create({
        agent: { type: 'agent_with_overrides', id: agent.id, mcp_servers: [] },
        environment_id: environment.id,
      })
      .catch((e: unknown) => e);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).errorCode).toBe('invalid_request');
    expect(String((err as Error).message)).toMatch(/agent\.tools\.1\.mcp_server_name/);
  });

  it('fills in always_ask, the default policy of an MCP toolset', async () => {
    const agent = await client.beta.agents.create({
      name: 'defaults',
      model: 'claude-sonnet-4-5',
      mcp_servers: [{ type: 'url', name: 'notes', url: mcp.url }],
      tools: [{ type: 'mcp_toolset', mcp_server_name: 'notes' }],
    });
    expect(agent.tools[0]).toEqual({
      type: 'mcp_toolset',
      mcp_server_name: 'notes',
      default_config: { enabled: true, permission_policy: { type: 'always_ask' } },
      configs: [],
    });
  });

  it('refuses MCP servers on a host that confines agents, naming the field', async () => {
    confined = await TestBerth.start({ args: [...KEYS, '--sandbox', 'bwrap'] });
    const there = new Anthropic({ baseURL: confined.url, apiKey: 'key-acme-0001', maxRetries: 0 });
    const agent = await there.beta.agents.create({
      name: 'mcp agent',
      model: 'claude-sonnet-4-5',
      mcp_servers: [{ type: 'url', name: 'notes', url: mcp.url }],
      tools: [{ type: 'mcp_toolset', mcp_server_name: 'notes' }],
    });
    const environment = await there.beta.environments.create({ name: 'confined' });
    const err = await there.beta.sessions
      .create({ agent: agent.id, environment_id: environment.id })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).errorCode).toBe('unsupported');
    expect(String((err as Error).message)).toMatch(/agent\.mcp_servers/);
    const env = await there.beta.environments
      .create({
        name: 'x',
        config: { type: 'cloud', networking: { type: 'limited', allow_mcp_servers: true } },
      })
      .catch((e: unknown) => e);
    expect(String((env as Error).message)).toMatch(/allow_mcp_servers/);
  });
});
