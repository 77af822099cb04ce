/**
 * Every example of docs/api.md, run against a real server (the `claude` CLI and the scripted model) in
 * the order the page shows them, so that the page cannot drift from what Berth answers.
 *
 * The page reads as one walk: the agent `agent_nIjg3ayvGLA5R9zHpNY7` made in "Agents" is the one the
 * session of "Sessions" uses, whose events "Events" shows. The walk keeps that story: an id the page
 * shows is learned from the first real answer where it appears (the same documented id must then always
 * be the same real one), and later commands are sent with the real ids in their place.
 *
 * A documented answer is compared with the real one: every documented key exists with the same JSON
 * type, recursively, and arrays have the same length; values are equal except ids (learned, see
 * above), timestamps (any ISO 8601 string), strings that elide with `...` (a pattern) and the values
 * under {@link RUN_SPECIFIC} keys (type only). An example without `...` is the whole answer: the real
 * one has no key it does not show. The status is the documented one (the status line, an error code's,
 * an `Answers NNN` after the example) or 200.
 *
 * A `sh` block is run command by command; the `json` or plain block after it (no heading between) is
 * the last command's answer, a `# -> ...` comment a command's. A stream is read from its replay (the
 * walk reaches it after the turn it shows), and a turn that sent events start runs to its end before the
 * next example. Every other block is in {@link EXAMPLES}, run by its own code or skipped with a reason;
 * a block neither run nor listed fails the first test.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth, UNSANDBOXED } from './helpers/berth.js';
import {
  parseBlocks,
  parseCurl,
  parseElidedJson,
  parseHttpResponse,
  parseShell,
  parseSseFrames,
  type DocBlock,
  type DocSseFrame,
} from './helpers/doc-blocks.js';
import type { ApiEvent } from './helpers/api-events.js';
import { DocChecker } from './helpers/doc-compare.js';
import { TYPESCRIPT_STEP_MS, runTypeScript } from './helpers/doc-run.js';
import { SseClient, type SseFrame } from './helpers/sse.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOC = 'docs/api.md';
const BLOCKS = parseBlocks(readFileSync(path.join(ROOT, DOC), 'utf8'));

/** The page's base URL (its curl commands drop the scheme) and data dir, replaced by the server's. */
const DOC_BASE_URL = 'http://127.0.0.1:8080';
const DOC_DATA_DIR = '/var/lib/berth';
/** The session the "Events" examples show. */
const DOC_SESSION = 'sess_CnKRPltAY6M3h_cmU-RA';

/**
 * Keys whose values depend on the run (the model's token counts and prices, the clock, the host's RAM,
 * what else the walk made): compared by JSON type only, recursively.
 */
const RUN_SPECIFIC = new Set([
  'usage', // token counts and cost of the scripted model's replies
  'cost_usd',
  'duration_ms',
  'bytes', // an artifact's size and hash are the scripted agent's file
  'sha256',
  'capacity', // /readyz: the host's RAM and sizing
  'slots',
  'sessions',
  'warm_pool',
]);

/** The scripted model's turns for the examples that make the agent use a tool. */
const scenarios: Scenario[] = [
  {
    // "The official client" and "Tool confirmations": bash (always_ask) waits for a confirmation.
    name: 'disk',
    match: { userText: 'How full is the disk?' },
    steps: [
      { text: 'Let me check.', toolUse: { name: 'Bash', input: { command: 'df -h .' } } },
      { text: 'The disk has room to spare.' },
    ],
  },
  {
    // "Event types": a turn with one tool call that needs no confirmation (glob is always_allow).
    name: 'files',
    match: { userText: 'Which files are here?' },
    steps: [{ toolUse: { name: 'Glob', input: { pattern: '*' } } }, { text: 'None yet.' }],
  },
  {
    // "Tasks": reads the input, writes the artifact, answers: three turns.
    name: 'task',
    match: { userText: 'Summarise report.csv into summary.md' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'cat report.csv' } } },
      { toolUse: { name: 'Bash', input: { command: "printf '# Summary\\n\\nnorth: 12\\n' > summary.md" } } },
      { text: 'summary.md is written.' },
    ],
  },
];

type JsonObject = Record<string, unknown>;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** The walk's state: the server, and what it learned of the page's ids. */
class Walk extends DocChecker {
  group: string | undefined;

  constructor(readonly berth: TestBerth) {
    super(RUN_SPECIFIC);
    this.learn(DOC_DATA_DIR, berth.dataDir);
  }

  async request(method: string, route: string, body?: string, headers: Record<string, string> = {}) {
    const res = await fetch(`${this.berth.url}${this.substitute(route)}`, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
      ...(body !== undefined && { body: this.substitute(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    return { status: res.status, headers: res.headers, text: await res.text() } satisfies Answer;
  }

  /** Opens a stream, reads until every `wanted` SSE id has come, and compares the documented frames. */
  async checkStream(route: string, headers: Record<string, string>, docFrames: DocSseFrame[]) {
    const wanted = docFrames.map((f) => f.id);
    const client = new SseClient(`${this.berth.url}${this.substitute(route)}`, headers);
    try {
      const status = await client.status;
      if (status !== 200) return { problems: [`status: documented 200, got ${status}`], frames: [] };
      await waitForFrames(client, wanted);
    } finally {
      client.close();
    }
    const problems: string[] = [];
    for (const doc of docFrames) {
      const real = client.frames.find((f) => f.id === doc.id);
      if (!real) {
        problems.push(`frame id ${doc.id}: missing; got ${describeFrames(client.frames)}`);
        continue;
      }
      if (real.event !== doc.event)
        problems.push(`frame id ${doc.id}: documented ${doc.event}, got ${real.event}`);
      const data = doc.data.trim() === '...' ? undefined : parseElidedJson(doc.data);
      if (data) {
        const at = this.compare(data.value, JSON.parse(real.data), !data.elided);
        problems.push(...at.map((p) => `frame id ${doc.id} ${p}`));
      }
    }
    return { problems, frames: client.frames };
  }
}

function describeFrames(frames: readonly SseFrame[]): string {
  return frames.map((f) => `${f.id ?? '-'}:${f.event ?? '-'}`).join(', ') || '(nothing)';
}

/** The status the prose around an answer gives (`Answers \`200\`.` after it, `Answers \`200\`:` before). */
function documentedStatus(block: DocBlock): number | undefined {
  const answers = /^Answers `(\d{3})`/.exec(block.after) ?? /Answers `(\d{3})`:$/.exec(block.before);
  return answers ? Number(answers[1]) : undefined;
}

async function waitForFrames(client: SseClient, ids: ReadonlyArray<string | undefined>): Promise<void> {
  const have = () => ids.every((id) => client.frames.some((f) => f.id === id));
  const deadline = Date.now() + 20_000;
  while (!have() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** A stream example is reached after the turn it shows: it is read from the replay of the session's start. */
function replayed(route: string, headers: Record<string, string>): string {
  if ('last-event-id' in headers || /[?&]after=/.test(route)) return route;
  return `${route}${route.includes('?') ? '&' : '?'}after=0`;
}

/** Runs a `sh` block; `response` is the block that shows its last command's answer. */
async function runShell(walk: Walk, block: DocBlock, response: DocBlock | undefined): Promise<string[]> {
  const commands = parseShell(block.text);
  const problems: string[] = [];
  for (const [i, command] of commands.entries()) {
    const where = `${DOC}:${block.line + command.line}`;
    const req = parseCurl(command.argv);
    const shown = i === commands.length - 1 ? response : undefined;
    if (req.stream) {
      // `# -> event: TYPE ... id: N, then ...` or the SSE frames of the next block.
      const docFrames = shown
        ? parseSseFrames(shown.text)
        : [...(command.output ?? '').matchAll(/event: ([\w.]+) \.\.\. id: (\d+)/g)].map(([, event, id]) => ({
            event,
            id,
            data: '...',
          }));
      if (docFrames.length === 0) problems.push(`${where}: a stream example shows no frame`);
      const result = await walk.checkStream(replayed(req.path, req.headers), req.headers, docFrames);
      problems.push(...result.problems.map((p) => `${where}: ${p}`));
      // With a replay point, the stream starts right after it: no gap, no duplicate.
      const first = result.frames[0];
      if ('last-event-id' in req.headers && first?.id !== docFrames[0]?.id)
        problems.push(`${where}: the replay starts at ${first?.id}, documented ${docFrames[0]?.id}`);
      continue;
    }
    const answer = await walk.request(req.method, req.path, req.body, req.headers);
    await settle(walk, req.method, req.path, answer);
    if (command.output !== undefined) {
      problems.push(...walk.checkJson(command.output, answer, undefined).map((p) => `${where}: ${p}`));
    } else if (shown?.text.startsWith('HTTP/')) {
      const doc = parseHttpResponse(shown.text);
      if (answer.status !== doc.status)
        problems.push(`${where}: status: documented ${doc.status}, got ${answer.status}`);
      for (const [name, value] of Object.entries(doc.headers)) {
        const real = answer.headers.get(name);
        if (real === null) problems.push(`${where}: header ${name}: documented, missing`);
        else problems.push(...walk.compare(value, real, false, name).map((p) => `${where}: header ${p}`));
      }
      problems.push(...walk.checkJson(doc.body, answer, doc.status).map((p) => `${where}: ${p}`));
    } else if (shown) {
      problems.push(
        ...walk.checkJson(shown.text, answer, documentedStatus(shown)).map((p) => `${where}: ${p}`),
      );
    } else if (answer.status !== 200) {
      problems.push(`${where}: status: expected 200, got ${answer.status}: ${answer.text.slice(0, 300)}`);
    }
  }
  return problems;
}

/** Waits (bounded) until the session's latest `session.status_idle` is later than `afterSeq`. */
async function idleAfter(walk: Walk, session: string, afterSeq: number): Promise<ApiEvent> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const events = await walk.berth.history(session);
    const idle = events.find((e) => e.type === 'session.status_idle' && e.seq > afterSeq);
    if (idle) return idle;
    if (Date.now() > deadline)
      throw new Error(`${session} did not go idle: ${events.map((e) => e.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * After events are sent to a session, the turn they start or resume runs to its end before the next
 * example, as it would for a reader trying the page: the examples after it show its events.
 */
async function settle(walk: Walk, method: string, route: string, answer: Answer): Promise<void> {
  const session = /^\/v1\/sessions\/([^/?]+)\/events$/.exec(route)?.[1];
  if (method !== 'POST' || !session || answer.status !== 200) return;
  const sent = (JSON.parse(answer.text) as { data: Array<{ seq: number }> }).data;
  await idleAfter(walk, walk.substitute(session), Math.max(...sent.map((e) => e.seq)));
}

/** A block that is not a curl command, or needs the walk to do something first; or a skipped one. */
interface Example {
  /** Text of the block (its first line's words are enough), matched against every block. */
  phrase: string;
  /** Done before the block runs: a step the page assumes and does not show. */
  before?: (walk: Walk) => Promise<void>;
  /** Runs the block; `response` is the block after it (no heading between), for `pairs`. */
  run?: (walk: Walk, block: DocBlock, response: DocBlock | undefined) => Promise<string[]>;
  /** The next block (no heading between) is this one's answer. */
  pairs?: boolean;
  /** Why the block is not run. */
  skip?: string;
}

const EXAMPLES: Example[] = [
  {
    phrase: "import Anthropic from '@anthropic-ai/sdk';",
    run: (walk, block) => runClientExample(walk, block),
  },
  {
    // "Added by Berth": a session id chosen by the client. The page updates and lists it, never makes it.
    phrase: 'localhost:8080/v1/sessions/support-4711',
    before: async (walk) => {
      const body = {
        agent: walk.real('agent_nIjg3ayvGLA5R9zHpNY7'),
        environment_id: walk.real('env_I-bBcM4DtCzUK36faLZ8'),
      };
      const res = await walk.berth.api('POST', '/v1/sessions', { ...body, id: 'support-4711' });
      if (res.status !== 200)
        throw new Error(`create support-4711: ${res.status} ${JSON.stringify(res.body)}`);
    },
  },
  {
    // The typical turn: run one like it, in a session of its own so the doc session's seqs stay.
    phrase: 'user.message → session.status_running',
    run: async (walk, block) => {
      const spec = {
        agent: walk.real('agent_nIjg3ayvGLA5R9zHpNY7'),
        environment_id: walk.real('env_I-bBcM4DtCzUK36faLZ8'),
      };
      const res = await walk.berth.api('POST', '/v1/sessions', spec);
      if (res.status !== 200) return [`create a session: ${res.status}`];
      const session = res.body.id as string;
      const [sent] = await walk.berth.send(session, [
        { type: 'user.message', content: 'Which files are here?' },
      ]);
      const idle = await idleAfter(walk, session, sent!.seq);
      const events = (await walk.berth.history(session)).filter(
        (e) => e.seq >= sent!.seq && e.seq <= idle.seq,
      );
      const documented = block.text.match(/[a-z_]+\.[a-z_]+/g) ?? [];
      const problems: string[] = [];
      const types = events.map((e) => e.type);
      if (JSON.stringify(types) !== JSON.stringify(documented))
        problems.push(`documented ${documented.join(' → ')}, got ${types.join(' → ')}`);
      // `{stop_reason: {type: "end_turn"}, usage, duration_ms}`: keys and quoted values of the last event.
      const last = events.at(-1);
      const braces = /\{.*\}/s.exec(block.text)?.[0] ?? '';
      for (const [, key] of braces.matchAll(/(\w+)\s*[:,}]/g))
        if (!JSON.stringify(last).includes(`"${key}":`)) problems.push(`last event: no ${key}`);
      for (const [, value] of braces.matchAll(/"([^"]*)"/g))
        if (!JSON.stringify(last).includes(`"${value}"`)) problems.push(`last event: no value ${value}`);
      return problems;
    },
  },
  {
    // The doc session's second message, which the page does not show: the agent asks to run `df -h .`.
    phrase: 'event: agent.tool_use',
    before: async (walk) => {
      const session = walk.real(DOC_SESSION);
      const [sent] = await walk.berth.send(session, [
        { type: 'user.message', content: 'How full is the disk?' },
      ]);
      await idleAfter(walk, session, sent!.seq);
    },
    run: async (walk, block) => {
      const route = `/v1/sessions/${DOC_SESSION}/events/stream?after=0`;
      return (await walk.checkStream(route, {}, parseSseFrames(block.text))).problems;
    },
  },
  {
    phrase: '"prompt": "Summarise report.csv into summary.md"',
    pairs: true,
    run: async (walk, block, response) => {
      // The record the page shows is a final one: the request waits for it.
      const answer = await walk.request('POST', '/v1/tasks?wait=true', block.text);
      return walk.checkJson(response!.text, answer, 200);
    },
  },
  {
    phrase: '"title": "pricing review"',
    pairs: true,
    run: async (walk, block, response) => {
      const answer = await walk.request('POST', '/v1/groups', block.text);
      walk.group = (JSON.parse(answer.text) as { id?: string }).id;
      return walk.checkJson(response!.text, answer, documentedStatus(response!));
    },
  },
  {
    phrase: '{ "type": "group.rounds", "rounds": 3 }',
    run: async (walk, block) => {
      const answer = await walk.request('POST', `/v1/groups/${walk.group}/events`, block.text);
      if (answer.status !== 200) return [`status: documented 200, got ${answer.status}: ${answer.text}`];
      // "Answers `200` with `{"data": [...]}`: the events as the group stream shows them."
      const problems: string[] = [];
      const sent = (JSON.parse(block.text) as { events: Array<{ type: string }> }).events.map((e) => e.type);
      const shown = (JSON.parse(answer.text) as { data: Array<{ type: string }> }).data.map((e) => e.type);
      if (JSON.stringify(shown) !== JSON.stringify(sent))
        problems.push(`sent ${sent.join()}, shown ${shown.join()}`);
      // The rounds would go on for a while: the group is deleted, as the page's next section does.
      const deleted = await walk.request('DELETE', `/v1/groups/${walk.group}`);
      if (deleted.status !== 200) problems.push(`DELETE the group: ${deleted.status}`);
      return problems;
    },
  },
  {
    phrase: '"status": "ready"',
    // "`GET /readyz` and `GET /v1/hosts/self` (the latter ..., with `"type": "host"` first)".
    run: async (walk, block) => {
      const self = JSON.stringify({ type: 'host', ...(JSON.parse(block.text) as JsonObject) });
      return [
        ...walk.checkJson(block.text, await walk.request('GET', '/readyz'), 200).map((p) => `/readyz ${p}`),
        ...walk.checkJson(self, await walk.request('GET', '/v1/hosts/self'), 200).map((p) => `self ${p}`),
      ];
    },
  },
];

/**
 * The official client example, run as its own text in a file of its own (its base URL the server's):
 * type-checked against the pinned `@anthropic-ai/sdk` first (strict), then run with tsx.
 */
async function runClientExample(walk: Walk, block: DocBlock): Promise<string[]> {
  if (!block.text.includes(DOC_BASE_URL)) return [`the example does not use ${DOC_BASE_URL}`];
  const ran = await runTypeScript(block.text.replaceAll(DOC_BASE_URL, walk.berth.url), process.env);
  if (ran.code !== 0) return [`the example exited ${ran.code}: ${ran.stderr.slice(0, 2000)}`];
  // It prints the agent's messages: the scripted turn's, before and after the confirmation.
  const printed = ran.stdout.trim().split('\n');
  const scripted = scenarios[0]!.steps.map((s) => s.text);
  return JSON.stringify(printed) === JSON.stringify(scripted)
    ? []
    : [`printed ${JSON.stringify(printed)}, expected ${JSON.stringify(scripted)}`];
}

interface Step {
  block: DocBlock;
  response: DocBlock | undefined;
  example: Example | undefined;
}

/** The walk's steps, and the blocks that are neither run nor listed. */
function plan(): { steps: Step[]; unclaimed: DocBlock[]; unused: Example[] } {
  const steps: Step[] = [];
  const unclaimed: DocBlock[] = [];
  const used = new Set<Example>();
  for (let i = 0; i < BLOCKS.length; i++) {
    const block = BLOCKS[i]!;
    const matches = EXAMPLES.filter((e) => block.text.includes(e.phrase));
    if (matches.length > 1) throw new Error(`${DOC}:${block.line}: matches ${matches.length} EXAMPLES`);
    const example = matches[0];
    if (example) used.add(example);
    const next = BLOCKS[i + 1];
    const pairs = example?.pairs || (block.lang === 'sh' && !example?.skip);
    const response =
      pairs && next && next.section === block.section && ['json', ''].includes(next.lang) ? next : undefined;
    if (example || block.lang === 'sh') steps.push({ block, response, example });
    else unclaimed.push(block);
    if (response) i++;
  }
  return { steps, unclaimed, unused: EXAMPLES.filter((e) => !used.has(e)) };
}

const { steps, unclaimed, unused } = plan();
let walk: Walk;

beforeAll(async () => {
  // The page's environment example is a host with `--sandbox none` (its networking is unrestricted).
  walk = new Walk(await TestBerth.start({ scenarios, args: [...UNSANDBOXED] }));
});

afterAll(async () => {
  await walk?.berth.dispose();
});

describe(`${DOC} examples`, () => {
  it('every block is run or listed with a reason', () => {
    expect(unclaimed.map((b) => `${DOC}:${b.line} ${b.text.split('\n')[0]}`)).toEqual([]);
    expect(unused.map((e) => e.phrase)).toEqual([]);
  });

  for (const { block, response, example } of steps) {
    const name = `${DOC}:${block.line}${response ? `-${response.endLine}` : ''} (${block.heading})`;
    if (example?.skip) {
      it.skip(`${name}: ${example.skip}`, () => undefined);
      continue;
    }
    it(
      name,
      async () => {
        await example?.before?.(walk);
        const problems = example?.run
          ? await example.run(walk, block, response)
          : await runShell(walk, block, response);
        expect(problems).toEqual([]);
        // Room for an example run with tsc and tsx (each bounded by TYPESCRIPT_STEP_MS) and the walk's waits.
      },
      3 * TYPESCRIPT_STEP_MS,
    );
  }
});
