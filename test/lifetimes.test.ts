/**
 * Host lifetimes with the real subprocess: idle suspend and hydrate on another host, admission when the
 * host is full (LRU suspend with a durable store, `503 host_full` without one), the warm pool (claims
 * used, a refused claim falling back), and a subprocess SIGKILLed mid-turn.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listTree, type ProcessTreeId } from '../src/sandbox/process-tree.js';
import { TOOLSET_CLI_TOOLS } from '../src/session/tool-policy.js';
import type { ApiEvent } from './helpers/api-events.js';
import type { Scenario } from '../src/testing/index.js';
import { startMockModel } from '../src/testing/index.js';
import { postgresBackend, s3Backend } from './helpers/backends.js';
import { TestBerth, replyTexts } from './helpers/berth.js';
import { hostProcesses } from './helpers/processes.js';
import { eventually } from './helpers/wait.js';

const scenarios: Scenario[] = [
  {
    name: 'write-file',
    match: { userText: 'write the plan' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo step-one > plan.txt && echo wrote' } } },
      { text: 'The plan is written.' },
    ],
  },
  {
    name: 'read-file',
    match: { userText: 'read the plan' },
    steps: [{ toolUse: { name: 'Bash', input: { command: 'cat plan.txt' } } }, { text: 'I read the plan.' }],
  },
  {
    name: 'stall',
    match: { userText: 'stall forever' },
    steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
  },
];

const servers: TestBerth[] = [];
const cleanups: Array<() => Promise<void>> = [];

async function start(
  args: string[],
  options: Parameters<typeof TestBerth.start>[0] = {},
): Promise<TestBerth> {
  const berth = await TestBerth.start({ scenarios, ...options, args });
  servers.push(berth);
  return berth;
}

afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.dispose()));
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function liveTree(berth: TestBerth, id: string): Promise<ProcessTreeId> {
  const session = await berth.server.host.get('default', id);
  const tree = session.processInfo?.tree;
  if (!tree) throw new Error(`session ${id} has no live subprocess`);
  return { ...tree };
}

async function expectTreeGone(tree: ProcessTreeId): Promise<void> {
  await eventually(async () => (await listTree(tree)).length === 0, `tree ${tree.leaderPid} to end`);
}

const types = (events: readonly ApiEvent[]): string[] => events.map((e) => e.type);

describe('idle suspend and hydrate (hybrid)', () => {
  it('suspends an idle session, and another host hydrates it with the file the agent wrote', async () => {
    const pg = await postgresBackend().create();
    cleanups.push(() => pg.cleanup());
    const s3 = s3Backend();
    cleanups.push(() => s3.close());
    const bucket = await s3.create();
    const blobUrl = bucket.url.replace('/sessions?', '/blobs?');
    const model = await startMockModel({ scenarios });
    cleanups.push(() => model.close());
    const shared = ['--store', pg.url, '--blob-store', blobUrl, '--pattern', 'hybrid'];

    const first = await start([...shared, '--idle-timeout', '1s'], { model });
    const id = await first.createSession({ allow: ['bash'] });
    const stream = first.stream(id);
    try {
      const written = await first.turn(id, 'please write the plan');
      expect(replyTexts(written).join()).toContain('The plan is written.');
      const tree = await liveTree(first, id);
      const suspended = await stream.waitFor((e) => e.type === 'session.status_suspended', 30_000);
      expect(suspended).toMatchObject({ reason: 'idle_timeout' });
      await expectTreeGone(tree);
      expect((await first.api('GET', `/v1/sessions/${id}`)).body.berth.status).toBe('suspended');
    } finally {
      stream.close();
    }
    await first.stop();

    // Another host: its own data dir, the same store and blob store.
    const second = await start([...shared, '--idle-timeout', '0'], { model });
    expect((await second.api('GET', `/v1/sessions/${id}`)).body.berth.status).toBe('suspended');
    const read = await second.turn(id, 'now read the plan');
    const result = read.find((e) => e.type === 'agent.tool_result');
    expect(JSON.stringify(result)).toContain('step-one');
    expect(await readFile(path.join(second.dataDir, 'workspaces', 'default', id, 'plan.txt'), 'utf8')).toBe(
      'step-one\n',
    );
    // The model saw the first host's turn: the transcript came from the store.
    const request = model.requests.findLast((r) => r.isMain && r.userText === 'now read the plan');
    expect(JSON.stringify(request?.body)).toContain('please write the plan');
  });

  it('refuses --pattern hybrid on stores that do not reach other hosts', async () => {
    await expect(TestBerth.start({ args: ['--pattern', 'hybrid'] })).rejects.toThrow(
      /--pattern hybrid is refused: its store \(sqlite:\.\.\.\) is not reachable from other hosts/,
    );
    const berth = await start([]);
    const res = await berth.api('POST', '/v1/sessions', await berth.sessionBody({ pattern: 'hybrid' }));
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/pattern hybrid is not available on this host/);
    expect((await berth.api('GET', '/v1/sessions')).body.data).toEqual([]);
  });
});

/** An API agent's config with every toolset tool allowed: what a spare can serve (see tool-policy.ts). */
const TOOLSET_AGENT = { agent: { tools: [...TOOLSET_CLI_TOOLS], allowed_tools: [...TOOLSET_CLI_TOOLS] } };

describe('admission on a full host', () => {
  // (2 GiB - 1 GiB) / 1 GiB = room for one subprocess.
  const oneSlot = ['--host-ram', '2GiB', '--host-overhead', '1GiB', '--session-ram-ceiling', '1GiB'];

  it('suspends the least recently used idle session when the store is durable', async () => {
    const berth = await start(oneSlot);
    const info = (await berth.api('GET', '/v1/hosts/self')).body;
    expect(info.capacity.agents_per_host).toBe(1);

    const a = await berth.createSession({ allow: ['bash'] });
    const b = await berth.createSession();
    await berth.turn(a, 'please write the plan');
    const treeA = await liveTree(berth, a);

    const secondTurn = await berth.turn(b, 'hello from b');
    expect(replyTexts(secondTurn).join()).toContain('hello from b');
    await expectTreeGone(treeA);
    const historyA = await berth.history(a);
    expect(historyA.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'capacity' });
    expect((await berth.api('GET', '/v1/hosts/self')).body.slots).toMatchObject({ used: 1, sessions: 1 });

    // A comes back: B is suspended in turn, and A still has its history and its file.
    const again = await berth.turn(a, 'now read the plan');
    expect(JSON.stringify(again.find((e) => e.type === 'agent.tool_result'))).toContain('step-one');
    expect((await berth.history(b)).at(-1)).toMatchObject({ type: 'session.status_suspended' });
  });

  it('keeps a session whose workspace is over the snapshot limit resumable here, and says why', async () => {
    const berth = await start([...oneSlot, '--snapshot-limit', '4B']);
    const a = await berth.createSession({ allow: ['bash'] });
    const b = await berth.createSession();
    await berth.turn(a, 'please write the plan');
    await berth.turn(b, 'hello from b');
    const failed = (await berth.history(a)).find((e) => e.type === 'session.error');
    expect(failed).toMatchObject({ error: { code: 'suspend_failed' } });
    expect(JSON.stringify(failed)).toMatch(/more than the snapshot limit|limit of 4 bytes|over the limit/);
    expect((await berth.api('GET', `/v1/sessions/${a}`)).body.status).toBe('idle');
    // Its subprocess made room all the same, and its next turn resumes here with its file.
    const again = await berth.turn(a, 'now read the plan');
    expect(JSON.stringify(again.find((e) => e.type === 'agent.tool_result'))).toContain('step-one');
  });

  it('answers 503 host_full with Retry-After when nothing may be suspended, and stores nothing', async () => {
    const berth = await start([...oneSlot, '--store', 'memory:']);
    const a = await berth.createSession();
    const b = await berth.createSession();
    await berth.turn(a, 'hello from a');
    const before = await berth.history(b);

    const res = await berth.api('POST', `/v1/sessions/${b}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'hello from b' }] }],
    });
    expect(res.status).toBe(503);
    expect(res.body.error.details.error_code).toBe('host_full');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await berth.history(b)).toEqual(before);
    // A is untouched and still served.
    expect(replyTexts(await berth.turn(a, 'still there?')).join()).toContain('still there?');
  });

  it('admits one session, not two, against the one parked spare of a full host', async () => {
    const berth = await start([...oneSlot, '--store', 'memory:', '--warm-pool', '1']);
    const host = berth.server.host;
    await eventually(() => host.warmPoolStats.parked === 1, 'a parked spare');
    const a = await host.create('default', TOOLSET_AGENT);
    const b = await host.create('default', TOOLSET_AGENT);
    // Both in one tick: neither turn has claimed the spare yet when the second is admitted.
    a.send([{ type: 'user.message', content: 'hello from a' }]);
    expect(() => b.send([{ type: 'user.message', content: 'hello from b' }])).toThrow(
      expect.objectContaining({ code: 'host_full' }),
    );
    expect(host.info().slots.used).toBe(1);
    await eventually(() => a.currentState === 'idle', "a's turn to end");
    expect(host.warmPoolStats.claimed).toBe(1);
    expect(replyTexts(await berth.history(a.id)).join()).toContain('hello from a');
    expect(b.currentState).toBe('cold');
    expect(host.info().slots).toMatchObject({ used: 1, sessions: 1 });
  });

  it('gives a reserved spare back when its session never starts, for the next session to claim', async () => {
    const berth = await start([...oneSlot, '--store', 'memory:', '--warm-pool', '1']);
    const host = berth.server.host;
    await eventually(() => host.warmPoolStats.parked === 1, 'a parked spare');
    const a = await host.create('default', TOOLSET_AGENT);
    a.send([{ type: 'user.message', content: 'hello from a' }]);
    expect(host.warmPoolStats.parked).toBe(0);
    // Closed before its turn could claim the spare it was admitted against.
    await a.close();
    await eventually(() => host.warmPoolStats.parked === 1, 'the spare back in the pool');
    const b = await berth.createSession();
    expect(replyTexts(await berth.turn(b, 'hello from b')).join()).toContain('hello from b');
    expect(host.warmPoolStats.claimed).toBe(1);
  });
});

describe('warm pool', () => {
  it('binds a new session to a prewarmed spare, and the session resumes from the store later', async () => {
    const berth = await start(['--warm-pool', '1', '--recycle-after-turns', '1']);
    await eventually(() => berth.server.host.warmPoolStats.parked === 1, 'a parked spare');
    const id = await berth.createSession();
    const first = await berth.turn(id, 'the code word is heron');
    expect(replyTexts(first).join()).toContain('the code word is heron');
    expect(berth.server.host.warmPoolStats.claimed).toBe(1);
    // The claimed process is recycled after its turn; the next turn resumes the claimed transcript.
    await berth.turn(id, 'what was the code word?');
    const request = berth.model.requests.findLast(
      (r) => r.isMain && r.userText === 'what was the code word?',
    );
    expect(JSON.stringify(request?.body)).toContain('the code word is heron');
    // The pool refills.
    await eventually(() => berth.server.host.warmPoolStats.parked === 1, 'the pool to refill');
  });

  it('falls back to a normal query() when the spare cannot honour the claim', async () => {
    const berth = await start(['--warm-pool', '1']);
    await eventually(() => berth.server.host.warmPoolStats.parked === 1, 'a parked spare');
    // Every process of the spare's tree (sandboxed, bwrap leads it and the CLI runs below).
    const spare = await hostProcesses(berth.dataDir);
    expect(spare.length).toBeGreaterThan(0);
    // A frozen spare takes the claim but cannot answer it; killing it then makes the claim fail.
    for (const pid of spare) process.kill(pid, 'SIGSTOP');
    const id = await berth.createSession();
    const [sent] = await berth.send(id, [{ type: 'user.message', content: 'hello after a refusal' }]);
    // The claim is made once the session's process is the spare's: only then may the spare die.
    const session = await berth.server.host.get('default', id);
    await eventually(
      () => session.pid !== undefined && spare.includes(session.pid),
      'the session to claim the frozen spare',
    );
    // All of them; one may be gone already (the PID namespace's init takes its members with it).
    for (const pid of spare) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ESRCH
      }
    }
    let events: ApiEvent[] = [];
    await eventually(async () => {
      events = (await berth.history(id)).filter((e) => e.seq > sent!.seq);
      return events.some((e) => e.type === 'session.status_idle');
    }, 'the turn to finish');
    expect(replyTexts(events).join()).toContain('hello after a refusal');
    expect(types(events)).not.toContain('session.error');
    expect(berth.server.host.warmPoolStats.refused).toBe(1);
  });
});

describe('a subprocess killed mid-turn', () => {
  it('ends the turn with session.error, and the next message resumes', async () => {
    const berth = await start([]);
    const id = await berth.createSession();
    await berth.turn(id, 'remember the number 8128');
    const tree = await liveTree(berth, id);
    const [sent] = await berth.send(id, [{ type: 'user.message', content: 'stall forever' }]);
    await eventually(
      () => berth.model.requests.some((r) => r.userText === 'stall forever'),
      'the stalled request',
    );
    process.kill(tree.leaderPid, 'SIGKILL');
    let events: ApiEvent[] = [];
    await eventually(async () => {
      events = (await berth.history(id)).filter((e) => e.seq > sent!.seq);
      return events.some((e) => e.type === 'session.status_idle');
    }, 'the turn to end');
    expect(events.find((e) => e.type === 'session.error')).toMatchObject({
      error: { type: 'unknown_error', code: 'subprocess_exited' },
    });
    await expectTreeGone(tree);
    await berth.turn(id, 'which number?');
    const request = berth.model.requests.findLast((r) => r.isMain && r.userText === 'which number?');
    expect(JSON.stringify(request?.body)).toContain('remember the number 8128');
  });
});
