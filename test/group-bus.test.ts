/**
 * The group message bus through the real `claude` subprocess: two agents, each a held-open `query()` in
 * streaming-input mode with its own in-process bus MCP server, talk to each other through the scripted
 * model's tool calls.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  query,
  type Query,
  type SDKMessage,
  type SDKResultMessage,
  type SDKUserMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUS_TOOLS,
  READ_MESSAGES_TOOL,
  SEND_MESSAGE_TOOL,
  createBusMcpServer,
} from '../src/groups/bus-mcp.js';
import { MessageBus, type BusMessage } from '../src/groups/message-bus.js';
import { createPlainSpawner, type SpawnedTree } from '../src/sandbox/plain-spawn.js';
import { listTree } from '../src/sandbox/process-tree.js';
import { buildAgentEnv } from '../src/session/environment.js';
import { InputQueue } from '../src/session/input-queue.js';
import { startMockModel, type MockModel, type RecordedRequest, type Scenario } from '../src/testing/index.js';

const scenarios: Scenario[] = [
  {
    name: 'a-greets-b',
    match: { userText: 'greet B' },
    steps: [
      { toolUse: { name: SEND_MESSAGE_TOOL, input: { to: 'B', text: 'hello from A' } } },
      { text: 'Sent.' },
    ],
  },
  {
    name: 'a-writes-to-nobody',
    match: { userText: 'write to nobody' },
    steps: [
      { toolUse: { name: SEND_MESSAGE_TOOL, input: { to: 'nobody', text: 'anyone?' } } },
      { text: 'Oh.' },
    ],
  },
  {
    // Answers only when the tool result B got holds A's words, so B's reply itself proves the delivery.
    name: 'b-replies',
    match: { toolResult: { contains: 'hello from A' } },
    steps: [
      { toolUse: { name: SEND_MESSAGE_TOOL, input: { to: 'A', text: 'hello back from B' } } },
      { text: 'Replied.' },
    ],
  },
  {
    name: 'check-inbox',
    match: { userText: 'check your inbox' },
    steps: [{ toolUse: { name: READ_MESSAGES_TOOL, input: {} } }, { text: 'Nothing for me.' }],
  },
];

/** Bounds for hangs only. */
const TURN_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 1000;

/** One agent: a held-open subprocess whose bus tools act as `name`. */
class TestAgent {
  sessionId: string | undefined;
  private readonly input = new InputQueue<SDKUserMessage>();
  private readonly spawner: SpawnedTree = createPlainSpawner({ killGraceMs: 1000 });
  private readonly query: Query;
  private readonly reader: Promise<void>;
  private readonly messages: SDKMessage[] = [];
  private waiting: ((result: SDKResultMessage) => void) | undefined;
  private failure: unknown;

  constructor(
    readonly name: string,
    bus: MessageBus,
    model: MockModel,
    dir: string,
  ) {
    const server = createBusMcpServer(bus, name);
    this.query = query({
      prompt: this.input,
      options: {
        cwd: path.join(dir, 'cwd'),
        // The four isolation levers: no settings files, no auto memory and a config dir of its own (both
        // in env), an explicit cwd. `env` replaces the subprocess environment, hence PATH and HOME.
        settingSources: [],
        env: buildAgentEnv({
          modelEndpoint: model.url,
          apiKey: 'test-key',
          configDir: path.join(dir, 'config'),
          home: path.join(dir, 'home'),
          path: process.env.PATH ?? '/usr/bin:/bin',
        }),
        mcpServers: { [server.name]: server },
        allowedTools: [...BUS_TOOLS],
        spawnClaudeCodeProcess: (o) => this.spawner.spawn(o),
      },
    });
    this.reader = this.read();
  }

  static async start(name: string, bus: MessageBus, model: MockModel, root: string): Promise<TestAgent> {
    const dir = path.join(root, name);
    await Promise.all(['cwd', 'config', 'home'].map((d) => mkdir(path.join(dir, d), { recursive: true })));
    return new TestAgent(name, bus, model, dir);
  }

  /** Consumes the subprocess's messages for its whole life: stopping early would kill it. */
  private async read(): Promise<void> {
    try {
      for await (const message of this.query) {
        this.messages.push(message);
        if (message.type === 'system' && message.subtype === 'init') this.sessionId = message.session_id;
        if (message.type === 'result') {
          const resolve = this.waiting;
          this.waiting = undefined;
          resolve?.(message);
        }
      }
    } catch (err) {
      this.failure = err;
    }
  }

  /** Sends a user message and waits for the turn's result. */
  async turn(text: string): Promise<SDKResultMessage> {
    if (this.waiting) throw new Error(`${this.name}: a turn is already running`);
    const result = new Promise<SDKResultMessage>((resolve) => (this.waiting = resolve));
    this.input.push({ type: 'user', message: { role: 'user', content: text }, parent_tool_use_id: null });
    const ended = this.reader.then(() => {
      throw new Error(`${this.name}: the subprocess ended mid-turn: ${String(this.failure)}`);
    });
    const timeout = sleep(TURN_TIMEOUT_MS).then(() => {
      throw new Error(`${this.name}: no result within ${TURN_TIMEOUT_MS} ms`);
    });
    return Promise.race([result, ended, timeout]);
  }

  /** Ends the subprocess (stdin EOF, then the tree kill) and checks that nothing of its tree is left. */
  async close(): Promise<void> {
    this.input.end();
    await Promise.race([this.reader, sleep(KILL_GRACE_MS)]);
    this.query.close();
    await this.spawner.kill(KILL_GRACE_MS);
    await Promise.race([this.reader, sleep(KILL_GRACE_MS)]);
    const tree = this.spawner.tree;
    if (tree) expect(await listTree(tree)).toEqual([]);
  }
}

/** The main request of `agent` that carries a tool result containing `text`. */
function requestWithToolResult(
  model: MockModel,
  agent: TestAgent,
  text: string,
): RecordedRequest['toolResults'][number] | undefined {
  return model.requests
    .filter((r) => r.isMain && r.sessionId === agent.sessionId)
    .flatMap((r) => r.toolResults)
    .find((t) => t.text.includes(text));
}

let model: MockModel;
let root: string;
let bus: MessageBus;
let a: TestAgent | undefined;
let b: TestAgent | undefined;
const published: BusMessage[] = [];

beforeAll(async () => {
  model = await startMockModel({ scenarios });
  // `berth-test-` in the config dirs lets test/global-setup.ts find any process this file leaves behind.
  root = await mkdtemp(path.join(os.tmpdir(), 'berth-test-group-bus-'));
  bus = new MessageBus({ agents: ['A', 'B'] });
  bus.onMessage((m) => published.push(m));
  a = await TestAgent.start('A', bus, model, root);
  b = await TestAgent.start('B', bus, model, root);
});

afterAll(async () => {
  const closing = await Promise.allSettled([a?.close(), b?.close()]);
  bus?.close();
  await model?.close();
  if (root) await rm(root, { recursive: true, force: true });
  for (const c of closing) if (c.status === 'rejected') throw c.reason;
});

describe('the group message bus on the real SDK', () => {
  it('carries a message from A to B and B reply back to A', async () => {
    const sent = await a!.turn('please greet B');
    // The tools must be in the request's `tools` for the scripted tool_use to fire at all (the CLI defers
    // MCP tools behind ToolSearch unless the server sets alwaysLoad).
    const offered = model.requests.find((r) => r.isMain && r.sessionId === a!.sessionId);
    const toolNames = ((offered?.body as { tools?: Array<{ name: string }> }).tools ?? []).map((t) => t.name);
    expect(toolNames).toEqual(expect.arrayContaining([SEND_MESSAGE_TOOL, READ_MESSAGES_TOOL]));
    expect(sent).toMatchObject({ subtype: 'success', result: 'Sent.' });
    expect(requestWithToolResult(model, a!, 'delivered to B')).toMatchObject({ is_error: false });
    expect(bus.unreadCount('B')).toBe(1);

    const replied = await b!.turn('please check your inbox');
    expect(replied).toMatchObject({ subtype: 'success', result: 'Replied.' });
    const delivered = requestWithToolResult(model, b!, 'hello from A');
    expect(delivered).toMatchObject({ is_error: false });
    const read = JSON.parse(delivered!.text) as { messages: unknown[]; remaining: number };
    expect(read).toEqual({
      messages: [
        { id: expect.stringMatching(/^msg_/), from: 'A', text: 'hello from A', sent_at: expect.any(String) },
      ],
      remaining: 0,
    });
    expect(bus.unreadCount('B')).toBe(0);

    const answered = await a!.turn('please check your inbox');
    // The scripted model answers A's read with 'Nothing for me.' whatever it holds; the request log shows it.
    expect(answered).toMatchObject({ subtype: 'success' });
    expect(JSON.parse(requestWithToolResult(model, a!, 'hello back from B')!.text)).toMatchObject({
      messages: [{ from: 'B', text: 'hello back from B' }],
      remaining: 0,
    });

    expect(published.map((m) => [m.from, m.to, m.text])).toEqual([
      ['A', 'B', 'hello from A'],
      ['B', 'A', 'hello back from B'],
    ]);
    expect(a!.sessionId).toBeDefined();
    expect(a!.sessionId).not.toBe(b!.sessionId);
  });

  it('reports an unknown recipient to the agent as an error result, and the turn goes on', async () => {
    const before = published.length;
    const result = await a!.turn('write to nobody');
    expect(result).toMatchObject({ subtype: 'success', result: 'Oh.' });
    const error = requestWithToolResult(model, a!, 'is not an agent of this group');
    expect(error).toMatchObject({
      is_error: true,
      text: 'Recipient "nobody" is not an agent of this group (agents: A, B)',
    });
    expect(published).toHaveLength(before);
  });
});
