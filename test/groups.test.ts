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
import type { GroupOwnEvent } from '../src/groups/group-events.js';
import { checkGroupIsolation, type AgentIsolationPlan } from '../src/groups/group-isolation.js';
import { findProcesses, listTree, type ProcessTreeId } from '../src/sandbox/process-tree.js';
import type { RecordedRequest, Scenario } from '../src/testing/index.js';
import type { ApiEvent } from './helpers/api-events.js';
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
  expect(res.body.error.details.error_code).toBe(code);
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

/** An agent's session event as a group shows it: as the API shows it, tagged, in the group's `seq`. */
type TaggedApiEvent = ApiEvent & { agent: string; session_id: string; session_seq: number };
/** A group's own event as the API shows it. */
type GroupOwnApiEvent = GroupOwnEvent & { id: string; seq: number; processed_at: string };
type GroupApiEvent = TaggedApiEvent | GroupOwnApiEvent;

function groupEvents(stream: SseClient): GroupApiEvent[] {
  return stream.events as unknown as GroupApiEvent[];
}

function isTagged(e: GroupApiEvent): e is TaggedApiEvent {
  return 'session_id' in e;
}

/** Every event of the group's list, page by page (`limit` each), and the pages' `oldest_seq`. */
async function listAll(
  id: string,
  limit: number,
): Promise<{ events: GroupApiEvent[]; pages: number; oldest: number[] }> {
  const events: GroupApiEvent[] = [];
  const oldest: number[] = [];
  let page: string | null = null;
  let pages = 0;
  do {
    const query: string = `limit=${limit}${page === null ? '' : `&page=${encodeURIComponent(page)}`}`;
    const res = await berth.api<{ data: GroupApiEvent[]; next_page: string | null; oldest_seq: number }>(
      'GET',
      `/v1/groups/${id}/events?${query}`,
      undefined,
      ACME,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['data', 'next_page', 'oldest_seq']);
    expect(res.body.data.length).toBeLessThanOrEqual(limit);
    events.push(...res.body.data);
    oldest.push(res.body.oldest_seq);
    page = res.body.next_page;
    pages += 1;
  } while (page !== null);
  return { events, pages, oldest };
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
    expect(created.status, JSON.stringify(created.body)).toBe(200);
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
      expect(sent.status, JSON.stringify(sent.body)).toBe(200);
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
      const tagged = events.filter(isTagged);
      expect(tagged.filter((e) => e.type === 'agent.tool_use').length).toBeGreaterThanOrEqual(6);
      for (const e of tagged) expect(e.session_id).toBe(e.agent === 'A' ? sa!.id : sb!.id);
      // Shown as the API shows session events: its session's id and time, API tool names, results
      // pointing at their tool use event; the group's own events with the same id, processed_at and seq.
      for (const e of events) {
        expect(e.id).toMatch(/^sevt_/);
        expect(Date.parse(String(e.processed_at))).not.toBeNaN();
        expect(e).not.toHaveProperty('created_at');
      }
      const uses = tagged.flatMap((e) => (e.type === 'agent.tool_use' ? [e] : []));
      // Each agent wrote its file in the shared directory with a shell command.
      expect(new Set(uses.filter((e) => e.name === 'bash').map((e) => e.agent))).toEqual(new Set(['A', 'B']));
      expect(uses.map((e) => e.name)).not.toContain('Bash');
      for (const e of uses) expect(e).not.toHaveProperty('tool_use_id');
      const results = tagged.flatMap((e) => (e.type === 'agent.tool_result' ? [e] : []));
      expect(results).toHaveLength(uses.length);
      for (const r of results) {
        const use = uses.find((u) => u.id === r.tool_use_id);
        expect(use, JSON.stringify(r)).toBeDefined();
        expect(use!.agent).toBe(r.agent);
        expect(Array.isArray(r.content)).toBe(true);
      }
      const idles = tagged.flatMap((e) => (e.type === 'session.status_idle' ? [e] : []));
      expect(idles.map((e) => e.stop_reason.type)).toEqual(['end_turn', 'end_turn', 'end_turn', 'end_turn']);
      // An agent's event is its session's event, numbered in the group.
      const [first] = await berth.history(sa!.id, ACME);
      const firstOfA = tagged.find((e) => e.agent === 'A' && e.session_seq === first!.seq);
      expect(firstOfA).toEqual({
        ...first,
        seq: firstOfA!.seq,
        agent: 'A',
        session_id: sa!.id,
        session_seq: 1,
      });

      // The list pages through the same events, as the stream showed them.
      const listed = await listAll(group.id, 7);
      expect(listed.events.slice(0, events.length)).toEqual(events);
      expect(listed.pages).toBe(Math.ceil(listed.events.length / 7));
      expect(listed.oldest).toEqual(listed.oldest.map(() => 1));
      // `after` went with the cursor change; a cursor is one this server gave out.
      expectError(
        await berth.api('GET', `/v1/groups/${group.id}/events?after=3`, undefined, ACME),
        400,
        'invalid_request',
      );
      expectError(
        await berth.api('GET', `/v1/groups/${group.id}/events?page=bm9wZQ`, undefined, ACME),
        400,
        'invalid_request',
      );

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
      expect(direct.status, JSON.stringify(direct.body)).toBe(200);
      expect(direct.body.data).toEqual([
        expect.objectContaining({
          type: 'user.message',
          agent: 'B',
          session_id: sb!.id,
          content: [{ type: 'text', text: 'just for B' }],
        }),
      ]);
      await stream.waitFor(
        (e) =>
          e.type === 'session.status_idle' &&
          (e as unknown as { agent: string }).agent === 'B' &&
          e.seq > direct.body.data[0].seq,
      );
      // What the POST answered is what the stream carries.
      expect(stream.events.find((e) => e.seq === direct.body.data[0].seq)).toEqual(direct.body.data[0]);

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
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    const id: string = made.body.id;
    const stream = new SseClient(`${berth.url}/v1/groups/${id}/events/stream?after=0`, ACME);
    try {
      const sent = await berth.api(
        'POST',
        `/v1/groups/${id}/events`,
        { events: [{ type: 'group.rounds', rounds: 3, content: 'stall forever, {{agent}}' }] },
        ACME,
      );
      expect(sent.status, JSON.stringify(sent.body)).toBe(200);
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
        groupEvents(stream).some((e) => e.type === 'user.message' && isTagged(e) && e.agent === 'second'),
      ).toBe(false);
      expect(await listTree(tree!)).toEqual([]);
    } finally {
      stream.close();
    }
  });

  it("asks for an agent's tool confirmation through the group; deny with a message, then allow", async () => {
    berth.model.addScenario({
      name: 'group-flag',
      match: { userText: 'touch the group flag' },
      steps: [
        { toolUse: { name: 'Bash', input: { command: 'touch group-flag.txt && echo touched' } } },
        { text: 'Flag handled.' },
      ],
    });
    const made = await berth.api(
      'POST',
      '/v1/groups',
      { agents: [{ name: 'A' }, { name: 'B' }], shared_dir: false },
      ACME,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    const id: string = made.body.id;
    const sessionOfA = String(made.body.agents[0].session_id);
    const cwd = berth.server.host.pathsFor({ tenant: 'acme', id: sessionOfA, pattern: 'multi-agent' }).cwd;
    const flag = path.join(cwd, 'group-flag.txt');
    const stream = new SseClient(`${berth.url}/v1/groups/${id}/events/stream?after=0`, ACME);
    const post = (events: unknown[]): Promise<ApiResponse> =>
      berth.api('POST', `/v1/groups/${id}/events`, { events }, ACME);
    /** Asks A for the flag; resolves with the tool use that waits for a confirmation. */
    const ask = async (after: number): Promise<TaggedApiEvent & { type: 'agent.tool_use' }> => {
      const sent = await post([{ type: 'user.message', agent: 'A', content: 'touch the group flag' }]);
      expect(sent.status, JSON.stringify(sent.body)).toBe(200);
      const paused = (await stream.waitFor(
        (e) => e.seq > after && e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action',
      )) as TaggedApiEvent;
      const use = groupEvents(stream).find(
        (e): e is TaggedApiEvent & { type: 'agent.tool_use' } =>
          e.seq > after && e.type === 'agent.tool_use' && isTagged(e),
      );
      // `evaluated_permission` is not checked: a group agent (Berth's own agent config, no `ask_tools`)
      // has its tool use stored from the CLI's message before the CLI asks, so it reads `allow` until
      // src/session marks a tool use the CLI then asks about.
      expect(use).toMatchObject({ agent: 'A', session_id: sessionOfA, name: 'bash' });
      if (paused.type !== 'session.status_idle' || paused.stop_reason.type !== 'requires_action') {
        throw new Error(JSON.stringify(paused));
      }
      expect(paused).toMatchObject({ agent: 'A' });
      expect(paused.stop_reason.event_ids).toEqual([use!.id]);
      expect((await berth.api('GET', `/v1/groups/${id}`, undefined, ACME)).body.agents[0]).toMatchObject({
        status: 'requires_action',
      });
      return use!;
    };
    try {
      expect(await stream.status).toBe(200);
      const denied = await ask(0);
      expect(existsSync(flag)).toBe(false);
      const deny = await post([
        {
          type: 'user.tool_confirmation',
          agent: 'A',
          tool_use_id: denied.id,
          result: 'deny',
          deny_message: 'not in this group',
        },
      ]);
      expect(deny.status, JSON.stringify(deny.body)).toBe(200);
      expect(deny.body.data).toEqual([
        expect.objectContaining({
          type: 'user.tool_confirmation',
          agent: 'A',
          session_id: sessionOfA,
          tool_use_id: denied.id,
          result: 'deny',
          deny_message: 'not in this group',
        }),
      ]);
      const result = await stream.waitFor((e) => e.type === 'agent.tool_result' && e.seq > denied.seq);
      expect(result).toMatchObject({ agent: 'A', is_error: true, tool_use_id: denied.id });
      expect(JSON.stringify(result)).toContain('not in this group');
      const ended = await stream.waitFor(
        (e) => e.seq > result.seq && e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn',
      );
      expect(existsSync(flag)).toBe(false);
      // A tool use is answered once.
      expectError(
        await post([{ type: 'user.tool_confirmation', agent: 'A', tool_use_id: denied.id, result: 'allow' }]),
        409,
        'tool_use_not_pending',
      );

      const allowed = await ask(ended.seq);
      // The tool use is A's: B has nothing waiting.
      expectError(
        await post([
          { type: 'user.tool_confirmation', agent: 'B', tool_use_id: allowed.id, result: 'allow' },
        ]),
        409,
        'tool_use_not_pending',
      );
      const allow = await post([
        { type: 'user.tool_confirmation', agent: 'A', tool_use_id: allowed.id, result: 'allow' },
      ]);
      expect(allow.status, JSON.stringify(allow.body)).toBe(200);
      const ran = await stream.waitFor((e) => e.type === 'agent.tool_result' && e.seq > allowed.seq);
      expect(ran).toMatchObject({ agent: 'A', is_error: false, tool_use_id: allowed.id });
      await stream.waitFor(
        (e) => e.seq > ran.seq && e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn',
      );
      expect(existsSync(flag)).toBe(true);
    } finally {
      stream.close();
      const deleted = await berth.api('DELETE', `/v1/groups/${id}`, undefined, ACME);
      expect(deleted.status).toBe(200);
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
    expect(made.status, JSON.stringify(made.body)).toBe(200);
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
      expect((await berth.api('GET', '/v1/groups', undefined, GLOBEX)).body).toEqual({
        data: [],
        next_page: null,
      });
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
