/**
 * Multi-agent groups end to end: `/v1/groups`, one real `claude` subprocess per agent, the scripted
 * model. Two agents talk through the bus tools over two rounds and both write into the shared
 * directory; what one agent's working directory and the host user's home hold never reaches the other
 * agent's model requests; bad input is refused and creates nothing; DELETE leaves no process and no
 * directory.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBerthError } from '../src/errors.js';
import { BUS_TOOLS, READ_MESSAGES_TOOL, SEND_MESSAGE_TOOL } from '../src/groups/bus-mcp.js';
import type { GroupEvent } from '../src/groups/group-events.js';
import { checkGroupIsolation, type AgentIsolationPlan } from '../src/groups/group-isolation.js';
import { findProcesses, listTree, type ProcessTreeId } from '../src/sandbox/process-tree.js';
import type { RecordedRequest, Scenario } from '../src/testing/index.js';
import { TestBerth, type ApiResponse } from './helpers/berth.js';
import { SseClient } from './helpers/sse.js';

const ACME = { authorization: 'Bearer key-acme-groups-1' };
const GLOBEX = { authorization: 'Bearer key-globex-groups-2' };

/** Unique words that must never reach agent B's model (and the host's, no agent's). */
const A_MARKER = 'agent-a-project-memory-7f3c1d';
const HOST_MARKER = 'host-user-memory-9b2e4a';

let berth: TestBerth;
let home: string;
let savedHome: string | undefined;

beforeAll(async () => {
  // The host user's ~/.claude/CLAUDE.md, as a developer's machine has one. Set before the server starts,
  // so that anything that reads HOME at start or at spawn would find it.
  home = await mkdtemp(path.join(os.tmpdir(), 'berth-test-groups-home-'));
  await mkdir(path.join(home, '.claude'), { recursive: true });
  await writeFile(path.join(home, '.claude', 'CLAUDE.md'), `Always mention ${HOST_MARKER}.\n`);
  savedHome = process.env.HOME;
  process.env.HOME = home;
  berth = await TestBerth.start({
    args: ['--api-keys', 'acme:key-acme-groups-1,globex:key-globex-groups-2'],
  });
});

afterAll(async () => {
  await berth?.dispose();
  if (savedHome === undefined) delete process.env.HOME;
  else process.env.HOME = savedHome;
  if (home) await rm(home, { recursive: true, force: true });
});

function expectError(res: ApiResponse, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.message.length).toBeGreaterThan(10);
}

/** The scripted turns of the two-round exchange; they need the shared directory's path. */
function exchangeScenarios(shared: string): Scenario[] {
  return [
    {
      // Answers only when the tool result B got holds A's words, so B's reply itself proves delivery.
      name: 'b-replies',
      match: { toolResult: { contains: 'hello from A' } },
      steps: [
        { toolUse: { name: SEND_MESSAGE_TOOL, input: { to: 'A', text: 'hello back from B' } } },
        { toolUse: { name: 'Bash', input: { command: `echo from-B > '${shared}/b.txt' && echo b-wrote` } } },
        { text: 'B replied.' },
      ],
    },
    {
      name: 'a-heard-back',
      match: { toolResult: { contains: 'hello back from B' } },
      steps: [{ text: 'A heard from B.' }],
    },
    {
      name: 'a-round-1',
      match: { userText: 'Round 1 of 2 for agent A:' },
      steps: [
        { toolUse: { name: SEND_MESSAGE_TOOL, input: { to: 'B', text: 'hello from A' } } },
        // A reads its own CLAUDE.md: the marker is then in A's requests, which proves the request-log
        // check below would see it had it reached B.
        {
          toolUse: { name: 'Bash', input: { command: `cat CLAUDE.md && echo from-A > '${shared}/a.txt'` } },
        },
        { text: 'A sent.' },
      ],
    },
    {
      name: 'read-inbox',
      match: { userText: { regex: 'Round [12] of 2 for agent [AB]:' } },
      steps: [{ toolUse: { name: READ_MESSAGES_TOOL, input: {} } }, { text: 'Inbox read.' }],
    },
  ];
}

/** The text of a model request's system prompt. */
function systemText(request: RecordedRequest): string {
  const system = (request.body as { system?: unknown }).system;
  if (typeof system === 'string') return system;
  if (Array.isArray(system)) return system.map((b: { text?: string }) => b.text ?? '').join('\n');
  return '';
}

function groupEvents(stream: SseClient): GroupEvent[] {
  return stream.events as unknown as GroupEvent[];
}

describe('multi-agent groups on the real SDK', () => {
  it('two agents exchange messages over two rounds, isolated, sharing a directory; DELETE leaves nothing', async () => {
    const created = await berth.api(
      'POST',
      '/v1/groups',
      {
        title: 'pair',
        agents: [
          // A keeps the default Claude Code prompt (the group paragraph is appended); B has its own.
          { name: 'A', allowed_tools: ['Bash'] },
          { name: 'B', system_prompt: 'You are a careful reviewer.', allowed_tools: ['Bash'] },
        ],
      },
      ACME,
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const group = created.body as {
      id: string;
      agents: Array<{ name: string; session_id: string }>;
      shared_dir_path: string;
    };
    expect(group).toMatchObject({ type: 'group', status: 'idle', title: 'pair' });
    expect(group.id).toMatch(/^grp_/);
    expect(group.agents.map((a) => a.name)).toEqual(['A', 'B']);
    const shared: string = group.shared_dir_path;
    expect(existsSync(shared)).toBe(true);
    expect(shared).toContain(path.join('groups', 'acme', group.id, 'shared'));

    const host = berth.server.host;
    const [sa, sb] = await Promise.all(group.agents.map((a) => host.get('acme', a.session_id)));
    const pa = host.pathsFor(sa!.snapshot);
    const pb = host.pathsFor(sb!.snapshot);
    for (const [s, name] of [
      [sa!, 'A'],
      [sb!, 'B'],
    ] as const) {
      expect(s.snapshot).toMatchObject({
        pattern: 'multi-agent',
        metadata: { group: group.id, agent: name },
      });
      expect(s.snapshot.agent.allowed_tools).toEqual(expect.arrayContaining(['Bash', ...BUS_TOOLS]));
    }
    expect(new Set([pa.cwd, pb.cwd, pa.configDir, pb.configDir, pa.home, pb.home, shared]).size).toBe(7);
    // The host user's memory file is really there for anything that reads HOME.
    expect(await readFile(path.join(os.homedir(), '.claude', 'CLAUDE.md'), 'utf8')).toContain(HOST_MARKER);
    await writeFile(path.join(pa.cwd, 'CLAUDE.md'), `Always mention ${A_MARKER}.\n`);

    berth.model.setScenarios(exchangeScenarios(shared));
    const stream = new SseClient(`${berth.url}/v1/groups/${group.id}/events/stream?after=0`, ACME);
    try {
      expect(await stream.status).toBe(200);
      const sent = await berth.api(
        'POST',
        `/v1/groups/${group.id}/events`,
        { events: [{ type: 'group.rounds', rounds: 2 }] },
        ACME,
      );
      expect(sent.status, JSON.stringify(sent.body)).toBe(202);
      expect(sent.body.data).toEqual([expect.objectContaining({ type: 'group.rounds', rounds: 2, seq: 1 })]);
      const finished = await stream.waitFor((e) => e.type === ('group.rounds_finished' as never), 50_000);
      expect(finished).toMatchObject({ rounds: 2, completed: 2, stop_reason: 'done' });

      const events = groupEvents(stream);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.type === 'group.round_started').map((e) => e.seq)).toHaveLength(2);
      const messages = events.flatMap((e) => (e.type === 'group.message' ? [[e.from, e.to, e.text]] : []));
      expect(messages).toEqual([
        ['A', 'B', 'hello from A'],
        ['B', 'A', 'hello back from B'],
      ]);
      // Each agent took its turns in order: A, B, A, B.
      const turns = events.flatMap((e) =>
        e.type === 'session.status_running' && 'agent' in e ? [e.agent] : [],
      );
      expect(turns).toEqual(['A', 'B', 'A', 'B']);
      const tagged = events.flatMap((e) => ('session_id' in e ? [e] : []));
      expect(tagged.filter((e) => e.type === 'agent.tool_use').length).toBeGreaterThanOrEqual(6);
      for (const e of tagged) expect(e.session_id).toBe(e.agent === 'A' ? sa!.id : sb!.id);

      // The request log, by each agent's SDK session id (the CLI's x-claude-code-session-id header).
      const requests = berth.model.requests.filter((r) => r.path.startsWith('/v1/messages'));
      const ofA = requests.filter((r) => r.sessionId === sa!.snapshot.sdkSessionId);
      const ofB = requests.filter((r) => r.sessionId === sb!.snapshot.sdkSessionId);
      expect(ofA.length).toBeGreaterThan(3);
      expect(ofB.length).toBeGreaterThan(3);
      expect(ofA.length + ofB.length).toBe(requests.length);
      // Every request whose system prompt names agent B is one of B's, and each main request does.
      expect(requests.filter((r) => systemText(r).includes('You are agent "B"'))).toEqual(
        ofB.filter((r) => systemText(r).includes('You are agent "B"')),
      );
      for (const r of ofB.filter((q) => q.isMain)) {
        expect(systemText(r)).toContain('You are a careful reviewer.');
        expect(systemText(r)).toContain('You are agent "B"');
        expect(systemText(r)).toContain(shared);
      }
      for (const r of ofA.filter((q) => q.isMain)) {
        expect(systemText(r)).toContain('You are agent "A"');
        expect(systemText(r)).toContain(shared);
        // The default Claude Code prompt is kept under the appended paragraph.
        expect(systemText(r)).toContain('Claude Code');
        const tools = ((r.body as { tools?: Array<{ name: string }> }).tools ?? []).map((t) => t.name);
        expect(tools).toEqual(expect.arrayContaining([...BUS_TOOLS, 'Bash']));
      }
      // B's read_messages result holds A's words; A's holds B's reply.
      const resultsOf = (rs: RecordedRequest[]): string[] =>
        rs.flatMap((r) => r.toolResults.map((t) => t.text));
      expect(resultsOf(ofB).find((t) => t.includes('hello from A'))).toMatch(/"from":"A"/);
      expect(resultsOf(ofA).find((t) => t.includes('hello back from B'))).toMatch(/"from":"B"/);
      // Isolation: A's project memory and the host's user memory never reach B; the host's never reaches A.
      expect(resultsOf(ofA).some((t) => t.includes(A_MARKER))).toBe(true);
      for (const r of ofB) {
        const body = JSON.stringify(r.body);
        expect(body).not.toContain(A_MARKER);
        expect(body).not.toContain(HOST_MARKER);
      }
      for (const r of ofA) expect(JSON.stringify(r.body)).not.toContain(HOST_MARKER);

      // The shared directory holds what both wrote; neither wrote into the other's working directory.
      expect((await readFile(path.join(shared, 'a.txt'), 'utf8')).trim()).toBe('from-A');
      expect((await readFile(path.join(shared, 'b.txt'), 'utf8')).trim()).toBe('from-B');
      expect(readdirSync(pb.cwd)).not.toContain('CLAUDE.md');

      // A reconnecting client replays exactly what it missed from the group's buffer.
      const replay = new SseClient(`${berth.url}/v1/groups/${group.id}/events/stream`, {
        ...ACME,
        'last-event-id': '5',
      });
      try {
        const last = events.at(-1)!;
        await replay.waitFor((e) => e.seq === last.seq, 10_000);
        expect(replay.events.map((e) => e.id)).toEqual(events.slice(5).map((e) => e.id));
      } finally {
        replay.close();
      }

      // One agent can be spoken to alone; its events come back tagged.
      const direct = await berth.api(
        'POST',
        `/v1/groups/${group.id}/events`,
        { events: [{ type: 'user.message', agent: 'B', content: 'just for B' }] },
        ACME,
      );
      expect(direct.status, JSON.stringify(direct.body)).toBe(202);
      expect(direct.body.data).toEqual([
        expect.objectContaining({
          type: 'user.message',
          agent: 'B',
          session_id: sb!.id,
          content: 'just for B',
        }),
      ]);
      await stream.waitFor(
        (e) =>
          e.type === 'session.status_idle' &&
          (e as unknown as { agent: string }).agent === 'B' &&
          e.seq > direct.body.data[0].seq,
      );

      const view = await berth.api('GET', `/v1/groups/${group.id}`, undefined, ACME);
      expect(view.body).toMatchObject({
        id: group.id,
        status: 'idle',
        agents: [
          { name: 'A', session_id: sa!.id, status: 'idle' },
          { name: 'B', session_id: sb!.id, status: 'idle' },
        ],
        rounds: { active: null, queued: 0 },
      });

      // DELETE ends every process and removes every directory of the group.
      const trees = [sa!, sb!].map((s) => s.processInfo?.tree);
      expect(trees.every((t) => t !== undefined)).toBe(true);
      const deleted = await berth.api('DELETE', `/v1/groups/${group.id}`, undefined, ACME);
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
      await stream.waitForEnd(10_000);
      expect(groupEvents(stream).at(-1)).toMatchObject({
        type: 'group.status_terminated',
        reason: 'deleted',
      });
      for (const tree of trees) expect(await listTree(tree as ProcessTreeId)).toEqual([]);
      const configDirs = [pa.configDir, pb.configDir].map((d) => `CLAUDE_CONFIG_DIR=${d}`);
      expect(await findProcesses((p) => p.env.some((v) => configDirs.includes(v)))).toEqual([]);
      for (const dir of [
        pa.cwd,
        pb.cwd,
        pa.configDir,
        pb.configDir,
        pa.home,
        pb.home,
        path.dirname(shared),
      ]) {
        expect(existsSync(dir), dir).toBe(false);
      }
      expectError(await berth.api('GET', `/v1/groups/${group.id}`, undefined, ACME), 404, 'group_not_found');
      expectError(
        await berth.api('GET', `/v1/sessions/${sa!.id}`, undefined, ACME),
        404,
        'session_not_found',
      );
      expectError(
        await berth.api('GET', `/v1/sessions/${sb!.id}`, undefined, ACME),
        404,
        'session_not_found',
      );
    } finally {
      stream.close();
    }
  });

  it('DELETE during a round ends the stalled turn, the rounds and every process', async () => {
    berth.model.addScenario({
      name: 'stall',
      match: { userText: 'stall forever' },
      steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
    });
    const made = await berth.api(
      'POST',
      '/v1/groups',
      { agents: [{ name: 'first' }, { name: 'second' }], shared_dir: false },
      ACME,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const id: string = made.body.id;
    const stream = new SseClient(`${berth.url}/v1/groups/${id}/events/stream?after=0`, ACME);
    try {
      const sent = await berth.api(
        'POST',
        `/v1/groups/${id}/events`,
        { events: [{ type: 'group.rounds', rounds: 3, content: 'stall forever, {{agent}}' }] },
        ACME,
      );
      expect(sent.status, JSON.stringify(sent.body)).toBe(202);
      await berth.model.waitForRequest((r) => r.isMain && r.userText === 'stall forever, first');
      const first = await berth.server.host.get('acme', String(made.body.agents[0].session_id));
      const tree = first.processInfo?.tree;
      expect(tree).toBeDefined();
      expect((await berth.api('GET', `/v1/groups/${id}`, undefined, ACME)).body).toMatchObject({
        status: 'running',
        rounds: { active: { round: 1, rounds: 3 }, queued: 0 },
      });

      const deleted = await berth.api('DELETE', `/v1/groups/${id}`, undefined, ACME);
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
      await stream.waitForEnd(10_000);
      const types = groupEvents(stream).map((e) => e.type);
      expect(types.at(-1)).toBe('group.status_terminated');
      expect(groupEvents(stream).find((e) => e.type === 'group.rounds_finished')).toMatchObject({
        completed: 0,
        stop_reason: 'deleted',
      });
      // The second agent never got a turn.
      expect(
        groupEvents(stream).some((e) => e.type === 'user.message' && 'agent' in e && e.agent === 'second'),
      ).toBe(false);
      expect(await listTree(tree!)).toEqual([]);
    } finally {
      stream.close();
    }
  });

  it('refuses bad input with a 4xx and creates nothing', async () => {
    const dataDir = berth.dataDir;
    const listDir = (...parts: string[]): string[] => {
      const dir = path.join(dataDir, ...parts);
      return existsSync(dir) ? readdirSync(dir).sort() : [];
    };
    const state = async (): Promise<unknown> => ({
      sessions: (await berth.api('GET', '/v1/sessions?limit=100', undefined, ACME)).body,
      groups: (await berth.api('GET', '/v1/groups', undefined, ACME)).body,
      dirs: [listDir('groups', 'acme'), listDir('workspaces', 'acme'), listDir('tenants', 'acme', 'agents')],
    });
    const before = await state();
    const create = (body: unknown): Promise<ApiResponse> => berth.api('POST', '/v1/groups', body, ACME);
    const many = (n: number): Array<{ name: string }> =>
      Array.from({ length: n }, (_, i) => ({ name: `a${i}` }));

    for (const body of [
      { agents: [{ name: 'A' }, { name: 'A' }] },
      { agents: [{ name: 'A' }, { name: 'a' }] },
      { agents: [{ name: 'A' }] },
      { agents: [] },
      { agents: many(17) },
      { agents: [{ name: 'A' }, { name: 'a/b' }] },
      { agents: [{ name: 'A' }, { name: '../x' }] },
      { agents: [{ name: 'A' }, { name: '' }] },
      { agents: [{ name: 'A' }, { name: '*' }] },
      { agents: [{ name: 'A' }, { name: 'x'.repeat(65) }] },
      { agents: [{ name: 'A' }, {}] },
      { agents: [{ name: 'A' }, { name: 'B', tools: ['Bash'] }] },
      { agents: [{ name: 'A' }, { name: 'B' }], shared_dir: 'yes' },
      { agents: [{ name: 'A' }, { name: 'B' }], colour: 'blue' },
      {},
    ]) {
      expectError(await create(body), 400, 'invalid_request');
    }
    expectError(await create('{"agents": ['), 400, 'invalid_json');
    expect(await state()).toEqual(before);

    // Unknown groups, and another tenant's group, are not found; the owner's group is untouched.
    expectError(await berth.api('GET', '/v1/groups/grp_nope', undefined, ACME), 404, 'group_not_found');
    expectError(await berth.api('DELETE', '/v1/groups/grp_nope', undefined, ACME), 404, 'group_not_found');
    expectError(
      await berth.api(
        'POST',
        '/v1/groups/grp_nope/events',
        { events: [{ type: 'group.rounds', rounds: 1 }] },
        ACME,
      ),
      404,
      'group_not_found',
    );
    const made = await create({ agents: [{ name: 'A' }, { name: 'B' }], shared_dir: false });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.shared_dir_path).toBeNull();
    const id: string = made.body.id;
    try {
      expectError(await berth.api('GET', `/v1/groups/${id}`, undefined, GLOBEX), 404, 'group_not_found');
      expectError(await berth.api('DELETE', `/v1/groups/${id}`, undefined, GLOBEX), 404, 'group_not_found');
      expectError(
        await berth.api(
          'POST',
          `/v1/groups/${id}/events`,
          { events: [{ type: 'group.rounds', rounds: 1 }] },
          GLOBEX,
        ),
        404,
        'group_not_found',
      );
      const foreign = new SseClient(`${berth.url}/v1/groups/${id}/events/stream`, GLOBEX);
      expect(await foreign.status).toBe(404);
      foreign.close();
      expect((await berth.api('GET', '/v1/groups', undefined, GLOBEX)).body).toEqual({ data: [] });
      for (const s of made.body.agents as Array<{ session_id: string }>) {
        expectError(
          await berth.api('GET', `/v1/sessions/${s.session_id}`, undefined, GLOBEX),
          404,
          'session_not_found',
        );
      }

      // Bad events change nothing: the group's stream stays empty.
      const post = (events: unknown[]): Promise<ApiResponse> =>
        berth.api('POST', `/v1/groups/${id}/events`, { events }, ACME);
      for (const events of [
        [{ type: 'group.rounds', rounds: 0 }],
        [{ type: 'group.rounds', rounds: 21 }],
        [{ type: 'group.rounds', rounds: 1, agent: 'A' }],
        [{ type: 'group.rounds', rounds: 1, content: ' ' }],
        [{ type: 'user.message', agent: 'C', content: 'hi' }],
        [{ type: 'user.message', content: 'to nobody' }],
        [{ type: 'user.message', agent: 'A', content: '' }],
        [
          { type: 'user.message', agent: 'A', content: 'fine' },
          { type: 'user.message', agent: 'Z', content: 'not fine' },
        ],
        [],
      ]) {
        expectError(await post(events), 400, 'invalid_request');
      }
      expectError(
        await post([{ type: 'agent.message', agent: 'A', content: [] }]),
        400,
        'unknown_event_type',
      );
      expectError(
        await post([{ type: 'user.tool_confirmation', agent: 'A', tool_use_id: 'toolu_x', result: 'allow' }]),
        409,
        'tool_use_not_pending',
      );
      const history = await berth.api('GET', `/v1/groups/${id}/events`, undefined, ACME);
      expect(history.body.data).toEqual([]);
    } finally {
      const deleted = await berth.api('DELETE', `/v1/groups/${id}`, undefined, ACME);
      expect(deleted.status).toBe(200);
    }
    expect(await state()).toEqual(before);
  });
});

describe('checkGroupIsolation', () => {
  const plan = (name: string, root: string): AgentIsolationPlan => {
    const paths = { cwd: `${root}/work`, configDir: `${root}/config`, home: `${root}/home` };
    return {
      name,
      paths,
      env: { CLAUDE_CONFIG_DIR: paths.configDir, HOME: paths.home, CLAUDE_CODE_DISABLE_AUTO_MEMORY: '1' },
    };
  };
  const refused = (f: () => void): boolean => {
    try {
      f();
      return false;
    } catch (err) {
      return isBerthError(err, 'isolation_failed');
    }
  };

  it('passes agents with their own directories', () => {
    expect(refused(() => checkGroupIsolation([plan('A', '/d/a'), plan('B', '/d/b')], '/d/shared'))).toBe(
      false,
    );
  });

  it('refuses shared or nested directories, a shared dir inside an agent, and a missing lever', () => {
    const a = plan('A', '/d/a');
    const sameCwd = { ...plan('B', '/d/b'), paths: { ...plan('B', '/d/b').paths, cwd: a.paths.cwd } };
    expect(refused(() => checkGroupIsolation([a, sameCwd], null))).toBe(true);
    const sameConfig = plan('B', '/d/b');
    sameConfig.paths.configDir = a.paths.configDir;
    sameConfig.env = { ...sameConfig.env, CLAUDE_CONFIG_DIR: a.paths.configDir };
    expect(refused(() => checkGroupIsolation([a, sameConfig], null))).toBe(true);
    expect(refused(() => checkGroupIsolation([a, plan('B', '/d/a/work/b')], null))).toBe(true);
    expect(refused(() => checkGroupIsolation([a, plan('B', '/d/b')], '/d/a/work'))).toBe(true);
    expect(refused(() => checkGroupIsolation([a, plan('B', '/d/b')], '/d/b/home/x'))).toBe(true);
    const memory = plan('B', '/d/b');
    memory.env = { ...memory.env, CLAUDE_CODE_DISABLE_AUTO_MEMORY: '0' };
    expect(refused(() => checkGroupIsolation([a, memory], null))).toBe(true);
    const wrongConfig = plan('B', '/d/b');
    wrongConfig.env = { ...wrongConfig.env, CLAUDE_CONFIG_DIR: '/d/tenant/config' };
    expect(refused(() => checkGroupIsolation([a, wrongConfig], null))).toBe(true);
  });
});
