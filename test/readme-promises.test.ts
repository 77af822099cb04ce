/**
 * Promises of the README's "What it does today" that no other test held, with the real CLI against the
 * scripted model:
 * - queued messages run one turn at a time, in the order sent, and the event stream shows the turns so;
 * - a message that arrives while a subprocess is being recycled starts its turn only once every process
 *   of the old tree has exited;
 * - an agent the warm spare cannot carry (a system prompt, a different tool list) starts with a normal
 *   `query()` and leaves the spare parked, while a plain session claims it.
 * The store promises (hybrid refused on a disk blob store, the spool shipped after a restart) are in
 * readme-promises-stores.test.ts.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TOOLSET_CLI_TOOLS } from '../src/session/tool-policy.js';
import type { AgentConfig } from '../src/stores/types.js';
import type { RecordedRequest, Scenario } from '../src/testing/index.js';
import { textOf, type ApiEvent } from './helpers/api-events.js';
import { TestBerth, UNSANDBOXED, replyTexts } from './helpers/berth.js';
import { markedProcessesUnder } from './helpers/processes.js';
import { eventually } from './helpers/wait.js';

const servers: TestBerth[] = [];

async function start(args: string[], scenarios: Scenario[] = []): Promise<TestBerth> {
  const berth = await TestBerth.start({ args, scenarios });
  servers.push(berth);
  return berth;
}

// dispose() kills every tree its host started, so a test that fails midway leaves no process behind.
afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.dispose()));
});

/** The first model request of each turn: the one that carries the user's words and no tool result yet. */
function turnOpeners(requests: readonly RecordedRequest[]): RecordedRequest[] {
  return requests.filter((r) => r.isMain && r.userText !== null && r.toolResults.length === 0);
}

describe('queued messages', () => {
  // The first turn holds in a tool until the test creates `gate` in the session's cwd: the other
  // messages are sent while it runs, whatever the machine's speed.
  const scenarios: Scenario[] = [
    {
      name: 'held',
      match: { userText: 'hold the first turn' },
      steps: [
        {
          toolUse: {
            name: 'Bash',
            input: { command: 'until [ -e gate ]; do sleep 0.05; done; echo released' },
          },
        },
        { text: 'The first turn is over.' },
      ],
    },
  ];
  const later = ['queued message two', 'queued message three', 'queued message four'];

  it('run one turn at a time, in the order sent, and the event stream shows the turns in order', async () => {
    const berth = await start([...UNSANDBOXED], scenarios);
    const id = await berth.createSession({ allow: ['bash'] });
    const stream = berth.stream(id, { after: 0 });
    try {
      await berth.send(id, [{ type: 'user.message', content: 'hold the first turn' }]);
      await berth.model.waitForRequest((r) => r.isMain && r.matchedScenario === 'held', {
        timeoutMs: 30_000,
      });
      // Two in one request, then one more at once: all three wait for the held turn.
      await Promise.all([
        berth.send(id, [
          { type: 'user.message', content: later[0] },
          { type: 'user.message', content: later[1] },
        ]),
        berth.send(id, [{ type: 'user.message', content: later[2] }]),
      ]);
      // The queued messages are stored at once, before their turns, in the order sent.
      const sent = await stream.waitFor((e) => e.type === 'user.message' && textOf(e.content) === later[2]);
      const userTexts = stream.events.filter((e) => e.type === 'user.message').map((e) => textOf(e.content));
      expect(userTexts).toEqual(['hold the first turn', ...later]);
      // While the first turn is held in its tool, the model has seen none of the queued messages.
      expect(berth.model.requests.filter((r) => later.some((m) => r.userText?.includes(m) ?? false))).toEqual(
        [],
      );
      await writeFile(path.join(berth.dataDir, 'workspaces', 'default', id, 'gate'), '');

      const session = await berth.server.host.get('default', id);
      const lastReply = (): ApiEvent | undefined =>
        stream.events.find((e) => e.type === 'agent.message' && textOf(e.content).includes(later[2]!));
      await eventually(
        () =>
          session.isQuiet ||
          overlapping(stream.events).length > 0 ||
          stream.events.some(
            (e) => e.type === 'session.status_idle' && e.seq > (lastReply()?.seq ?? Infinity),
          ),
        'the last queued turn to end',
        { boundMs: 40_000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; the stream: ${stream.describe()}`);
      });
      // No turn starts (`session.status_running`) before the one before it has gone idle.
      expect(overlapping(stream.events), stream.describe()).toEqual([]);

      // The model: one turn per message, in the order sent, each opened only after the turn before had
      // its reply (the request carries that reply): never two turns at once, never two messages merged.
      const openers = turnOpeners(berth.model.requests);
      expect(openers.map((r) => r.userText)).toEqual(['hold the first turn', ...later]);
      const replies = ['The first turn is over.', ...later];
      openers.forEach((request, i) => {
        if (i === 0) return;
        const before = JSON.stringify(request.messages);
        expect(before, `turn ${i + 1} after turn ${i}'s reply`).toContain(replies[i - 1]);
        const next = later[i];
        if (next !== undefined) expect(before, `turn ${i + 1} before turn ${i + 2}`).not.toContain(next);
      });

      // The events: after the messages, the turns one after another, each from running to idle.
      const events = (await berth.history(id)).filter((e) => e.seq > sent.seq);
      const turns = splitTurns(events);
      expect(turns.map((t) => replyTexts(t).join(' | '))).toEqual([
        'The first turn is over.',
        ...later.map((m) => expect.stringContaining(m) as unknown as string),
      ]);
      // Each later turn opens with `session.status_running` after the one before went idle.
      turns.forEach((turn, i) => {
        if (i > 0) expect(turn[0]?.type, `turn ${i + 1}`).toBe('session.status_running');
        expect(turn.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
      });
    } finally {
      stream.close();
    }
  });
});

/** The `session.status_running` events that came while a turn was running already. */
function overlapping(events: readonly ApiEvent[]): ApiEvent[] {
  let running = false;
  const found: ApiEvent[] = [];
  for (const event of events) {
    if (event.type === 'session.status_running') {
      if (running) found.push(event);
      running = true;
    } else if (event.type === 'session.status_idle' && event.stop_reason.type !== 'requires_action') {
      running = false;
    }
  }
  return found;
}

/**
 * Events after the last queued message, cut at each turn's final `session.status_idle`. The first turn's
 * earlier events (its start, its tool call) precede the queued messages, so its part starts mid-turn.
 */
function splitTurns(events: readonly ApiEvent[]): ApiEvent[][] {
  const turns: ApiEvent[][] = [];
  let current: ApiEvent[] = [];
  for (const event of events) {
    current.push(event);
    if (event.type === 'session.status_idle' && event.stop_reason.type !== 'requires_action') {
      turns.push(current);
      current = [];
    }
  }
  expect(
    current.map((e) => e.type),
    'events after the last turn',
  ).toEqual([]);
  return turns;
}

describe('a message during a recycle', () => {
  // A job that leaves the tool shell's session (so the CLI's exit does not end it) and ignores SIGTERM:
  // the old tree is gone only once Berth's kill reaches it with SIGKILL, after --kill-grace. The CLI
  // refuses commands that start with `sleep`, so the job runs a copy of it under another name.
  const scenarios: Scenario[] = [
    {
      name: 'stubborn',
      match: { userText: 'leave a stubborn job' },
      steps: [
        {
          toolUse: {
            name: 'Bash',
            input: {
              command:
                'cp "$(command -v sleep)" ./stubborn && ' +
                '{ setsid sh -c \'trap "" TERM; exec ./stubborn 4801\' >/dev/null 2>&1 & } ; echo started',
            },
          },
        },
        { text: 'The job is started.' },
      ],
    },
  ];

  it('starts the new subprocess only after every process of the old tree has exited', async () => {
    const berth = await start(
      [...UNSANDBOXED, '--recycle-after-turns', '1', '--kill-grace', '2s'],
      scenarios,
    );
    const id = await berth.createSession({ allow: ['bash'] });
    const tenants = path.join(berth.dataDir, 'tenants');
    const stream = berth.stream(id, { after: 0 });
    try {
      const [sent] = await berth.send(id, [{ type: 'user.message', content: 'leave a stubborn job' }]);
      // Until the recycle, every process under the data dir is of the old tree (no spares on this host):
      // each one seen is collected, the CLI before it exits included.
      const old = new Set<number>();
      await eventually(
        async () => {
          for (const p of await markedProcessesUnder(tenants)) old.add(p.pid);
          return stream.events.some((e) => e.type === 'session.status_rescheduled' && e.seq > sent!.seq);
        },
        'the recycle',
        { everyMs: 20 },
      );
      for (const p of await markedProcessesUnder(tenants)) old.add(p.pid);
      const job = (await markedProcessesUnder(tenants)).find((p) => p.cmdline.includes('stubborn 4801'));
      expect(job && old.has(job.pid), 'the stubborn job is of the old tree and alive').toBe(true);
      expect(old.size).toBeGreaterThan(1);

      await berth.send(id, [{ type: 'user.message', content: 'the message after the recycle' }]);
      // Watched until the new turn's reply: at no moment may a process of a new tree run beside one of the
      // old tree. The job outlives SIGTERM, so a new subprocess that did not wait would be seen here.
      let waitedForOld = false;
      let overlap: string | undefined;
      await eventually(
        async () => {
          const live = await markedProcessesUnder(tenants);
          const oldLeft = live.filter((p) => old.has(p.pid));
          const fresh = live.filter((p) => !old.has(p.pid));
          if (oldLeft.length > 0 && fresh.length === 0) waitedForOld = true;
          if (oldLeft.length > 0 && fresh.length > 0) {
            overlap ??= `old ${oldLeft.map((p) => p.cmdline).join('; ')} beside new ${fresh.map((p) => p.cmdline).join('; ')}`;
          }
          return berth.model.requests.some((r) => r.userText === 'the message after the recycle');
        },
        'the new turn',
        { everyMs: 20, boundMs: 40_000 },
      );
      expect(overlap).toBeUndefined();
      // The message did arrive while the old tree was still there (else nothing was tested).
      expect(waitedForOld).toBe(true);
      // The turn runs to its reply in the new subprocess, and nothing of the old tree is left.
      await stream.waitFor(
        (e) => e.type === 'agent.message' && textOf(e.content).includes('the message after the recycle'),
        30_000,
      );
      expect((await markedProcessesUnder(tenants)).filter((p) => old.has(p.pid))).toEqual([]);
    } finally {
      stream.close();
    }
  });
});

describe('the warm spare', () => {
  /** An API agent's config with every toolset tool allowed, as a spare can carry it (see tool-policy.ts). */
  const TOOLSET_AGENT: AgentConfig = { tools: [...TOOLSET_CLI_TOOLS], allowed_tools: [...TOOLSET_CLI_TOOLS] };

  /** The first main request of the CLI session whose first turn said `words`. */
  async function firstRequest(berth: TestBerth, words: string): Promise<RecordedRequest> {
    return berth.model.waitForRequest((r) => r.isMain && r.userText === words, { timeoutMs: 30_000 });
  }

  const toolNames = (r: RecordedRequest): string[] =>
    ((r.body as { tools?: { name: string }[] }).tools ?? []).map((t) => t.name).sort();

  const systemText = (r: RecordedRequest): string => JSON.stringify((r.body as { system?: unknown }).system);

  it('is passed by an agent with a system prompt or another tool list, and claimed by a plain one', async () => {
    const berth = await start(['--warm-pool', '1']);
    const host = berth.server.host;
    const stats = (): string => JSON.stringify(host.warmPoolStats);
    await eventually(() => host.warmPoolStats.parked === 1, 'a parked spare', { boundMs: 60_000 });

    // A system prompt: a spare's is fixed at prewarm, so the session starts cold and the model gets it.
    const system = 'You are the harbour master of Berth. Answer in one line.';
    const prompted = await berth.createSession({ system });
    expect(replyTexts(await berth.turn(prompted, 'hello from the prompted agent')).join()).toContain(
      'hello from the prompted agent',
    );
    expect(systemText(await firstRequest(berth, 'hello from the prompted agent'))).toContain(system);
    expect(host.warmPoolStats.claimed, stats()).toBe(0);
    expect(host.warmPoolStats.parked, stats()).toBe(1);

    // A tool list the spare does not have (no list: the CLI's own default tools, as a group's agents run).
    const defaults = await host.create('default', { agent: { allowed_tools: [...TOOLSET_CLI_TOOLS] } });
    defaults.send([{ type: 'user.message', content: 'hello from the default tools' }]);
    const defaultsRequest = await firstRequest(berth, 'hello from the default tools');
    await eventually(() => defaults.isQuiet, 'the default-tools turn to end');
    // Disallowed tools: a spare's `disallowedTools` is fixed at prewarm.
    const narrowed = await host.create('default', {
      agent: { ...TOOLSET_AGENT, disallowed_tools: ['Write'] },
    });
    narrowed.send([{ type: 'user.message', content: 'hello from the narrowed tools' }]);
    const narrowedRequest = await firstRequest(berth, 'hello from the narrowed tools');
    await eventually(() => narrowed.isQuiet, 'the narrowed turn to end');
    expect(host.warmPoolStats.claimed, stats()).toBe(0);
    expect(host.warmPoolStats.parked, stats()).toBe(1);

    // A plain session claims the spare, and the model is offered the spare's tools: the toolset's eight.
    const plain = await host.create('default', { agent: TOOLSET_AGENT });
    plain.send([{ type: 'user.message', content: 'hello from the plain agent' }]);
    const plainRequest = await firstRequest(berth, 'hello from the plain agent');
    await eventually(() => plain.isQuiet, 'the plain turn to end');
    expect(host.warmPoolStats.claimed, stats()).toBe(1);
    const spareTools = toolNames(plainRequest);
    expect(spareTools).toEqual(expect.arrayContaining([...TOOLSET_CLI_TOOLS]));
    expect(systemText(plainRequest)).not.toContain(system);

    // The cold starts were offered what their agents have, not the spare's list.
    expect(toolNames(defaultsRequest)).not.toEqual(spareTools);
    expect(toolNames(defaultsRequest).length).toBeGreaterThan(spareTools.length);
    expect(toolNames(narrowedRequest)).not.toContain('Write');
    expect(spareTools).toContain('Write');
  });
});
