/**
 * An agent's tool policies against the real `claude` CLI and the scripted model, on a SessionHost without
 * HTTP: `tools` (the CLI's built-in tool set), `ask_tools` (every use waits for a confirmation, the API's
 * `always_ask`, even of what the CLI runs unasked), `allowed_tools` (the API's `always_allow`) and
 * `effort`, on a cold start and on a warm spare (whose hook, fixed at prewarm, asks its claimer's policy).
 * The command the model asks for, `cat marker.txt`, is one the CLI runs without asking: only the
 * `ask_tools` hook makes it wait. Its marker file is written while the confirmation is pending, so its
 * content in a tool result shows the command ran after the answer. The file an allowed Read reads is
 * outside the session's cwd, which the CLI would ask about without the allow. The scripted model calls
 * only tools it is offered, so a proxy offers it Bash for the test of a cold agent without Bash (a spare
 * offers every toolset tool itself).
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeConfig } from '../src/config.js';
import { openBerthCore } from '../src/host/open-core.js';
import type { StoredEvent } from '../src/session/events.js';
import type { Session } from '../src/session/session.js';
import type { AgentConfig } from '../src/stores/types.js';
import { startMockModel, type MockModel, type Scenario } from '../src/testing/index.js';
import { eventually } from './helpers/wait.js';

const CAT = 'cat marker.txt';

/** An API agent with the whole toolset: Bash always_ask, every other tool always_allow. */
const TOOLSET: AgentConfig = {
  tools: ['Bash', 'Read', 'Write', 'Edit', 'Glob', 'Grep', 'WebFetch', 'WebSearch'],
  allowed_tools: ['Read', 'Write', 'Edit', 'Glob', 'Grep', 'WebFetch', 'WebSearch'],
  ask_tools: ['Bash'],
  permission_mode: 'default',
};

const scenarios: Scenario[] = [
  {
    match: { userText: 'show me the marker' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: CAT, description: 'Show the marker' } } },
      { text: 'shown' },
    ],
  },
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Host {
  create: (agent: AgentConfig) => Promise<Session>;
  /** Where the session's agent runs its commands (made by `create`). */
  cwd: (session: Session) => string;
  /** The session's HOME: outside its cwd, inside its sandbox. */
  home: (session: Session) => string;
  model: MockModel;
  warmPool: () => { parked: number; claimed: number };
}

/** A host with one warm spare, parked. */
async function warmHost(): Promise<Host> {
  const host = await startHost({ args: ['--warm-pool', '1'] });
  await eventually(() => host.warmPool().parked === 1, 'a parked spare');
  return host;
}

/** The tool names the CLI offered the model in the main request of the turn that began with `userText`. */
function offeredTools(model: MockModel, userText: string): string[] {
  const request = model.requests.find((r) => r.isMain && r.userText === userText);
  return (request?.body as { tools: { name: string }[] }).tools.map((t) => t.name);
}

/**
 * A host on its own data dir and scripted model. With `offerBash`, the model is offered Bash whatever
 * the CLI offered it (a proxy adds it), so it can call a tool the agent does not have.
 */
async function startHost(options: { offerBash?: boolean; args?: string[] } = {}): Promise<Host> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-tool-policy-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const model = await startMockModel({ scenarios });
  cleanups.push(() => model.close());
  const endpoint = options.offerBash ? await offeringBash(model.url) : model.url;
  const config = parseServeConfig(
    [
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--model-endpoint',
      endpoint,
      '--kill-grace',
      '1s',
      '--warm-pool',
      '0',
      ...(options.args ?? []),
    ],
    { PATH: process.env.PATH },
  );
  const core = await openBerthCore(config, { telemetry: makeTelemetry() });
  cleanups.push(() => core.close());
  return {
    create: async (agent) => {
      const session = await core.host.create('default', { agent });
      cleanups.push(() => session.close());
      return session;
    },
    cwd: (session) => core.host.pathsFor(session.snapshot).cwd,
    home: (session) => core.host.pathsFor(session.snapshot).home,
    model,
    warmPool: () => core.host.warmPoolStats,
  };
}

/** A proxy to `upstream` that adds a Bash tool to the tools of every model request that offers tools. */
async function offeringBash(upstream: string): Promise<string> {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.method === 'POST' && body.length > 0) {
        const json = JSON.parse(body.toString()) as { tools?: Record<string, unknown>[] };
        if (json.tools && !json.tools.some((t) => t.name === 'Bash')) {
          json.tools.push({ name: 'Bash', description: 'Run a command', input_schema: { type: 'object' } });
          body = Buffer.from(JSON.stringify(json));
        }
      }
      const headers = { ...req.headers, host: target.host, 'content-length': String(body.length) };
      const forward = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The session's events so far. */
async function history(session: Session): Promise<StoredEvent[]> {
  await session.events.flush();
  return session.events.list(0, 1000);
}

/** Sends `content` and waits until the turn waits for a confirmation or is over. */
async function sendMessage(session: Session, content: string): Promise<void> {
  session.send([{ type: 'user.message', content }]);
  await eventually(
    () => session.currentState === 'requires_action' || !session.isBusy,
    'the turn to wait or end',
  );
}

/**
 * Checks that the session waits for a confirmation of its one Bash use, not yet run, and returns the id
 * a confirmation names.
 */
async function pendingBash(session: Session, model: MockModel): Promise<string> {
  expect(session.currentState).toBe('requires_action');
  const events = await history(session);
  const uses = events.filter((e) => e.type === 'agent.tool_use');
  expect(uses).toEqual([
    expect.objectContaining({ name: 'Bash', input: expect.objectContaining({ command: CAT }) }),
  ]);
  // The use that waits is the one the pause names. (Its `requires_confirmation` is not set: the CLI's
  // assistant message announced it before the CLI asked `canUseTool`; see tool-confirmations.ts.)
  const idle = events.findLast((e) => e.type === 'session.status_idle');
  expect(idle).toMatchObject({ stop_reason: { type: 'requires_action', event_ids: [uses[0]!.id] } });
  expect(session.pendingToolUses).toHaveLength(1);
  // Not run: no result, and the model was not asked again.
  expect(events.filter((e) => e.type === 'agent.tool_result')).toEqual([]);
  expect(model.requests.filter((r) => r.isMain && r.toolResults.length > 0)).toEqual([]);
  return session.pendingToolUses[0]!;
}

function toolResults(events: StoredEvent[]) {
  return events.flatMap((e) => (e.type === 'agent.tool_result' ? [e] : []));
}

describe('ask_tools', () => {
  it('makes a read-only command wait for a confirmation, and runs it only once allowed', async () => {
    const host = await startHost();
    const session = await host.create({ tools: ['Bash'], ask_tools: ['Bash'], effort: 'low' });
    await sendMessage(session, 'show me the marker');
    const toolUseId = await pendingBash(session, host.model);
    const secret = `marker-${randomUUID()}`;
    await writeFile(path.join(host.cwd(session), 'marker.txt'), `${secret}\n`);

    session.send([{ type: 'user.tool_confirmation', tool_use_id: toolUseId, result: 'allow' }]);
    await session.whenNotBusy();
    const events = await history(session);
    expect(toolResults(events)).toEqual([expect.objectContaining({ is_error: false, content: secret })]);
    expect(events.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });

    // tools and effort reached the model request.
    const request = host.model.requests.find((r) => r.isMain && r.userText === 'show me the marker');
    const body = request?.body as { tools: { name: string }[]; output_config?: { effort?: string } };
    const offered = body.tools.map((t) => t.name);
    expect(offered).toContain('Bash');
    expect(offered).not.toContain('Read');
    expect(body.output_config?.effort).toBe('low');
  });

  it('never runs the command when the confirmation is a deny', async () => {
    const host = await startHost();
    const session = await host.create({ tools: ['Bash'], ask_tools: ['Bash'] });
    await sendMessage(session, 'show me the marker');
    const toolUseId = await pendingBash(session, host.model);
    const secret = `marker-${randomUUID()}`;
    await writeFile(path.join(host.cwd(session), 'marker.txt'), `${secret}\n`);

    session.send([
      { type: 'user.tool_confirmation', tool_use_id: toolUseId, result: 'deny', deny_message: 'not today' },
    ]);
    await session.whenNotBusy();
    const results = toolResults(await history(session));
    expect(results).toEqual([expect.objectContaining({ is_error: true })]);
    expect(JSON.stringify(results)).toContain('not today');
    expect(JSON.stringify(host.model.requests.map((r) => r.body))).not.toContain(secret);
  });

  it('still asks for a tool that allowed_tools also names (always_ask wins)', async () => {
    const host = await startHost();
    const session = await host.create({ allowed_tools: ['Bash'], ask_tools: ['Bash'] });
    await sendMessage(session, 'show me the marker');
    const toolUseId = await pendingBash(session, host.model);
    await writeFile(path.join(host.cwd(session), 'marker.txt'), 'allowed after all\n');
    session.send([{ type: 'user.tool_confirmation', tool_use_id: toolUseId, result: 'allow' }]);
    await session.whenNotBusy();
    expect(toolResults(await history(session))).toEqual([
      expect.objectContaining({ is_error: false, content: 'allowed after all' }),
    ]);
  });

  it('is not served by a warm spare when the agent sets what a spare cannot carry (effort)', async () => {
    const host = await warmHost();
    const session = await host.create({ ...TOOLSET, effort: 'low' });
    await sendMessage(session, 'show me the marker');
    await pendingBash(session, host.model);
    expect(host.warmPool().claimed).toBe(0);
    // A session the spare can serve takes it: the spare was there to be taken.
    const toolset = await host.create(TOOLSET);
    await sendMessage(toolset, 'hello');
    expect(host.warmPool().claimed).toBe(1);
  });
});

describe('allowed_tools', () => {
  it('runs an allowed Read the CLI would ask about without a confirmation, and no SDK warning says canUseTool is shadowed', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? warning.name);
    process.on('warning', onWarning);
    cleanups.push(() => Promise.resolve(void process.off('warning', onWarning)));
    const host = await startHost();
    const session = await host.create(TOOLSET);
    const read = await outsideRead(host, session);
    await sendMessage(session, read.prompt);
    await expectReadRan(session, read.secret);
    expect(warnings).not.toContain('CLAUDE_SDK_CAN_USE_TOOL_SHADOWED');
  });
});

/**
 * A file outside the session's cwd (the CLI asks before it reads one), in its HOME (which its sandbox
 * binds), and a scenario whose model reads it when told `prompt`.
 */
async function outsideRead(host: Host, session: Session): Promise<{ prompt: string; secret: string }> {
  const secret = `outside-${randomUUID()}`;
  const file = path.join(host.home(session), `${secret}.txt`);
  await writeFile(file, `${secret}\n`);
  const prompt = `read the outside file ${randomUUID()}`;
  host.model.addScenario({
    match: { userText: prompt },
    steps: [{ toolUse: { name: 'Read', input: { file_path: file } } }, { text: 'read' }],
  });
  return { prompt, secret };
}

/** Checks that the session's turn ended having read `secret`, without waiting for a confirmation. */
async function expectReadRan(session: Session, secret: string): Promise<void> {
  expect(session.currentState).toBe('idle');
  const events = await history(session);
  expect(toolResults(events)).toEqual([
    expect.objectContaining({ is_error: false, content: expect.stringContaining(secret) }),
  ]);
  const stops = events.flatMap((e) => (e.type === 'session.status_idle' ? [e.stop_reason.type] : []));
  expect(stops).toEqual(['end_turn']);
}

describe('on a warm spare', () => {
  it('serves a toolset agent, whose Bash use waits for a confirmation and runs only once allowed', async () => {
    const host = await warmHost();
    const session = await host.create(TOOLSET);
    await sendMessage(session, 'show me the marker');
    const toolUseId = await pendingBash(session, host.model);
    const secret = `marker-${randomUUID()}`;
    await writeFile(path.join(host.cwd(session), 'marker.txt'), `${secret}\n`);
    session.send([{ type: 'user.tool_confirmation', tool_use_id: toolUseId, result: 'allow' }]);
    await session.whenNotBusy();
    expect(toolResults(await history(session))).toEqual([
      expect.objectContaining({ is_error: false, content: secret }),
    ]);
    expect(host.warmPool().claimed).toBe(1);

    // The model was offered what a cold start of the same agent offers it.
    const cold = await startHost();
    const coldSession = await cold.create(TOOLSET);
    await sendMessage(coldSession, 'show me the marker');
    expect(offeredTools(host.model, 'show me the marker')).toEqual(
      offeredTools(cold.model, 'show me the marker'),
    );
  });

  it('refuses a tool the agent does not have, which the spare offers: it never runs', async () => {
    const host = await warmHost();
    const session = await host.create({ ...TOOLSET, tools: TOOLSET.tools!.filter((t) => t !== 'Bash') });
    const secret = `marker-${randomUUID()}`;
    await writeFile(path.join(host.cwd(session), 'marker.txt'), `${secret}\n`);
    await sendMessage(session, 'show me the marker');
    expect(session.currentState).toBe('idle');
    expect(host.warmPool().claimed).toBe(1);
    // The difference from a cold start, accepted: the spare offered Bash (a cold start would not).
    expect(offeredTools(host.model, 'show me the marker')).toContain('Bash');
    const events = await history(session);
    expect(toolResults(events)).toEqual([
      expect.objectContaining({
        is_error: true,
        content: expect.stringContaining('Bash is not enabled for this agent.'),
      }),
    ]);
    expect(JSON.stringify(events)).not.toContain(secret);
    const stops = events.flatMap((e) => (e.type === 'session.status_idle' ? [e.stop_reason.type] : []));
    expect(stops).toEqual(['end_turn']);
  });

  it('runs an allowed Read the CLI would ask about without a confirmation', async () => {
    const host = await warmHost();
    const session = await host.create(TOOLSET);
    const read = await outsideRead(host, session);
    await sendMessage(session, read.prompt);
    await expectReadRan(session, read.secret);
    expect(host.warmPool().claimed).toBe(1);
  });
});

describe('tools', () => {
  it('leaves Bash out of an agent with tools [Read]: a Bash call gets an error result and runs nothing', async () => {
    const host = await startHost({ offerBash: true });
    const session = await host.create({ tools: ['Read'] });
    const secret = `marker-${randomUUID()}`;
    await writeFile(path.join(host.cwd(session), 'marker.txt'), `${secret}\n`);
    await sendMessage(session, 'show me the marker');
    expect(session.currentState).toBe('idle');
    const events = await history(session);
    const results = toolResults(events);
    expect(results).toEqual([
      expect.objectContaining({
        is_error: true,
        content: expect.stringContaining('No such tool available: Bash'),
      }),
    ]);
    expect(JSON.stringify(events)).not.toContain(secret);
    // Nothing asked for a confirmation.
    const stops = events.flatMap((e) => (e.type === 'session.status_idle' ? [e.stop_reason.type] : []));
    expect(stops).toEqual(['end_turn']);
    // What the CLI itself offered the model (the proxy appended Bash): Read, and no Bash.
    const request = host.model.requests.find((r) => r.isMain && r.userText === 'show me the marker');
    const offered = (request?.body as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(offered.at(-1)).toBe('Bash');
    expect(offered.slice(0, -1)).toContain('Read');
    expect(offered.slice(0, -1)).not.toContain('Bash');
  });
});
