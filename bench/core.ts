/**
 * The core benchmark: what Berth adds on top of the bare Agent SDK, both running the real `claude` CLI
 * against the scripted model, in one process, on one machine, in one run.
 *
 * (a) Session start: `POST /v1/sessions`, open its SSE stream, post the first `user.message`, until
 *     `session.status_idle` arrives; against a cold `query()` (one-message streaming input) to its
 *     `result`. Interleaved Berth, bare, Berth, bare, ... so that machine drift hits both equally.
 * (b) Per-turn overhead: one held-open Berth session driven through the API and one held-open bare
 *     streaming-input `query()`, open side by side and taking turns one at a time, the same number of
 *     turns each, their first turn (start-up) excluded. Two such pairs; all turns pooled.
 *
 * The baseline gets the isolation Berth applies: `settingSources: []` and the same
 * environment (`buildAgentEnv`: its own CLAUDE_CONFIG_DIR and HOME, auto memory off), a fresh cwd per
 * session. Inside the Berth server the session's own events are timestamped too, to show where a turn's
 * extra milliseconds go (HTTP in, the SDK turn, SSE out).
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  query,
  type Options,
  type Query,
  type SDKMessage,
  type SDKUserMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { parseServeConfig } from '../src/config.js';
import { startBerth, type BerthServer } from '../src/server.js';
import { buildAgentEnv } from '../src/session/environment.js';
import { InputQueue } from '../src/session/input-queue.js';
import type { Session } from '../src/session/session.js';
import { startMockModel } from '../src/testing/index.js';
import {
  alternate,
  api,
  sessionBody,
  userMessage,
  SseReader,
  assertNoSubprocessesUnder,
  describeMachine,
  machineLine,
  markdownTable,
  median,
  ms,
  now,
  ratio,
  stopwatch,
  textTable,
  withTimeout,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
  type Machine,
  type Timing,
  statsRow,
  signedMs,
} from './lib.js';

const START_ITERATIONS = 8;
/** Measured turns per session; each session runs one more (its first, which includes start-up). */
const TURNS = 20;
/** Pairs of sessions (one Berth, one bare) for the per-turn measurement. */
const ROUNDS = 2;
/** Targets (issue: the core benchmark). */
const TURN_TARGET_MS = 5;
const START_TARGET_RATIO = 1.1;
/** Hang bounds, far above the ~1 s a cold start takes on 2 cores. */
const START_TIMEOUT_MS = 60_000;
const TURN_TIMEOUT_MS = 30_000;
/** The subprocesses of one measurement must be gone before the next starts (the kill grace is 3 s). */
const EXIT_GRACE_MS = 10_000;

export const core: Suite = { name: 'core', run };

interface Context {
  root: string;
  berth: BerthServer;
  bareOptions: (cwd: string) => Options;
  log: (line: string) => void;
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? START_ITERATIONS;
  const machine = describeMachine();
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-'));
  const model = await startMockModel();
  let berth: BerthServer | undefined;
  let failure: unknown;
  let report: SuiteReport | undefined;
  try {
    const config = parseServeConfig(
      [
        '--port',
        '0',
        '--data-dir',
        path.join(root, 'berth'),
        '--model-endpoint',
        model.url,
        // Cold against cold: a parked spare would skip the start-up the baseline pays for.
        '--warm-pool',
        '0',
        // Unconfined like the bare SDK; the sandbox's own cost is the `sandbox` suite.
        '--sandbox',
        'none',
      ],
      { PATH: process.env.PATH },
    );
    berth = await startBerth(config, { telemetry: makeTelemetry() });
    const bareHome = path.join(root, 'bare', 'home');
    const bareConfig = path.join(root, 'bare', 'claude-config');
    await Promise.all([mkdir(bareHome, { recursive: true }), mkdir(bareConfig, { recursive: true })]);
    const env = buildAgentEnv({
      modelEndpoint: model.url,
      apiKey: config.modelApiKey,
      configDir: bareConfig,
      home: bareHome,
      path: config.agentPath,
    });
    const ctx: Context = {
      root,
      berth,
      bareOptions: (cwd) => ({ cwd, env, settingSources: [] }),
      log: options.log,
    };

    const start = await measureStart(ctx, iterations);
    const turns = await measureTurns(ctx);
    report = buildReport(machine, iterations, start, turns);
  } catch (err) {
    failure = err;
  } finally {
    await berth?.close().catch((err: unknown) => (failure ??= err));
    await model.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
  }
  if (failure !== undefined || !report) throw failure;
  return report;
}

// ---- (a) session start --------------------------------------------------------------------------------

/** One Berth session start, in ms: `total` and its parts, which add up to it. */
interface BerthStart {
  total: number;
  /** See {@link Timing.cpuMs}. */
  cpu: number;
  /** `POST /v1/sessions` -> 200. */
  create: number;
  /** `GET .../events/stream` -> response headers. */
  stream: number;
  /** The first turn (its parts: see {@link BerthTurn}). */
  turn: BerthTurn;
}

interface StartResults {
  berth: BerthStart[];
  bare: Timing[];
}

async function measureStart(ctx: Context, iterations: number): Promise<StartResults> {
  const results: StartResults = { berth: [], bare: [] };
  for (let i = 0; i <= iterations; i++) {
    const label = i === 0 ? 'warm-up' : `${i}/${iterations}`;
    const berth = await berthStart(ctx);
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
    const bare = await bareStart(ctx, i);
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
    ctx.log(`  start ${label}: berth ${ms(berth.total)} ms, bare ${ms(bare.ms)} ms`);
    if (i === 0) continue;
    results.berth.push(berth);
    results.bare.push(bare);
  }
  return results;
}

async function berthStart(ctx: Context): Promise<BerthStart> {
  // The agent and environment are made once per server, before the first start is timed.
  await sessionBody(ctx.berth.url);
  const watch = stopwatch();
  const session = await BerthSession.create(ctx.berth);
  const created = watch().ms;
  try {
    await session.openStream();
    const streaming = watch().ms;
    const turn = await session.turn('hello', START_TIMEOUT_MS);
    const { cpuMs } = watch();
    return { total: streaming + turn.total, cpu: cpuMs, create: created, stream: streaming - created, turn };
  } finally {
    await session.delete();
  }
}

async function bareStart(ctx: Context, i: number): Promise<Timing> {
  const watch = stopwatch();
  const session = await BareSession.create(ctx, `start-${i}`);
  try {
    await session.turn('hello', START_TIMEOUT_MS);
    return watch();
  } finally {
    session.close();
  }
}

// ---- (b) per-turn overhead ----------------------------------------------------------------------------

interface TurnResults {
  berth: BerthTurn[];
  bare: Timing[];
}

/**
 * Both sessions are open at once and take turns, one turn at a time (Berth first on even turns, bare
 * first on odd ones), so that whatever else the machine does hits both alike.
 */
async function measureTurns(ctx: Context): Promise<TurnResults> {
  const results: TurnResults = { berth: [], bare: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const berth = await BerthSession.create(ctx.berth);
    const bare = await BareSession.create(ctx, `turns-${round}`);
    try {
      await berth.openStream();
      for (let i = 0; i <= TURNS; i++) {
        const timeout = i === 0 ? START_TIMEOUT_MS : TURN_TIMEOUT_MS;
        const [berthResult, bareResult] = await alternate(
          i,
          (): Promise<BerthTurn> => berth.turn(`turn ${i}`, timeout),
          (): Promise<Timing> => bare.turn(`turn ${i}`, timeout),
        );
        if (i === 0) continue; // includes the start-up
        results.berth.push(berthResult);
        results.bare.push(bareResult);
      }
    } finally {
      bare.close();
      await berth.delete();
    }
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
    const last = (xs: readonly number[]): number => median(xs.slice(-TURNS));
    ctx.log(
      `  turns ${round + 1}/${ROUNDS}: berth ${ms(last(results.berth.map((t) => t.total)))} ms, ` +
        `bare ${ms(last(results.bare.map((t) => t.ms)))} ms (medians)`,
    );
  }
  return results;
}

// ---- the two clients ----------------------------------------------------------------------------------

/** One Berth turn, in ms, timed at the client and, inside the server, at the session's own events. */
export interface BerthTurn {
  /** POST user.message sent -> `session.status_idle` parsed from the SSE stream. */
  total: number;
  /** See {@link Timing.cpuMs}. */
  cpu: number;
  /** POST sent -> its answer arrived (overlaps the rest). */
  postResponse: number;
  /** POST sent -> the server emitted `session.status_running` (HTTP in, parse, queue). */
  toRunning: number;
  /** `status_running` -> `status_idle` emitted: the SDK turn as Berth runs it. */
  sdkTurn: number;
  /** `status_idle` emitted -> its SSE frame parsed by the client. */
  sseDelivery: number;
}

/** A Berth session driven through the HTTP API, the way a client would. */
export class BerthSession {
  private sse: SseReader | undefined;
  /** When the server emitted each event type, this turn; the server runs in this process. */
  private readonly emitted = new Map<string, number>();
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly url: string,
    readonly id: string,
    session: Session,
  ) {
    this.unsubscribe = session.events.subscribe((e) => this.emitted.set(e.type, now()));
  }

  static async create(berth: BerthServer): Promise<BerthSession> {
    const { id } = (await api(berth.url, 'POST', '/v1/sessions', await sessionBody(berth.url))) as {
      id: string;
    };
    return new BerthSession(berth.url, id, await berth.host.get('default', id));
  }

  async openStream(): Promise<void> {
    this.sse = await SseReader.open(`${this.url}/v1/sessions/${this.id}/events/stream`);
  }

  async turn(content: string, timeoutMs: number): Promise<BerthTurn> {
    if (!this.sse) throw new Error('openStream() first');
    this.emitted.clear();
    const watch = stopwatch();
    const started = now();
    const events = { events: [userMessage(content)] };
    const posted = api(this.url, 'POST', `/v1/sessions/${this.id}/events`, events).then(() => now());
    const idle = await this.sse.next((e) => e.type === 'session.status_idle', timeoutMs);
    const postDone = await posted;
    const { cpuMs } = watch();
    // A turn that failed must not pass for a fast one.
    const reason = idle.data.stop_reason as { type?: string } | undefined;
    if (reason?.type !== 'end_turn') throw new Error(`a Berth turn ended with ${JSON.stringify(reason)}`);
    const running = this.emitted.get('session.status_running')!;
    const idleEmitted = this.emitted.get('session.status_idle')!;
    return {
      total: idle.at - started,
      cpu: cpuMs,
      postResponse: postDone - started,
      toRunning: running - started,
      sdkTurn: idleEmitted - running,
      sseDelivery: idle.at - idleEmitted,
    };
  }

  async delete(): Promise<void> {
    this.unsubscribe();
    this.sse?.close();
    await api(this.url, 'DELETE', `/v1/sessions/${this.id}`);
  }
}

/** A bare SDK session in streaming-input mode: the subprocess starts with the first turn. */
class BareSession {
  private readonly input = new InputQueue<SDKUserMessage>();
  private readonly query: Query;
  private readonly messages: AsyncIterator<SDKMessage>;

  private constructor(options: Options) {
    this.query = query({ prompt: this.input, options });
    this.messages = this.query[Symbol.asyncIterator]();
  }

  /** A session in its own fresh cwd, like each Berth session. */
  static async create(ctx: Context, name: string): Promise<BareSession> {
    const cwd = path.join(ctx.root, 'bare', 'workspaces', name);
    await mkdir(cwd, { recursive: true });
    return new BareSession(ctx.bareOptions(cwd));
  }

  /** Sends one message and reads up to its `result`. */
  async turn(text: string, timeoutMs: number): Promise<Timing> {
    const watch = stopwatch();
    this.input.push({ type: 'user', message: { role: 'user', content: text }, parent_tool_use_id: null });
    for (;;) {
      const next = await withTimeout(this.messages.next(), timeoutMs, 'a bare SDK turn');
      if (next.done) throw new Error('the bare SDK session ended before its result');
      if (next.value.type !== 'result') continue;
      if (next.value.subtype !== 'success') throw new Error(`bare SDK turn failed: ${next.value.subtype}`);
      return watch();
    }
  }

  close(): void {
    this.input.end();
    this.query.close();
  }
}

// ---- the report ---------------------------------------------------------------------------------------

const HEADER: Row = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
const CPU_BARE = 'CPU of this process meanwhile: bare SDK';
const CPU_BERTH = 'CPU of this process meanwhile: Berth';

/** The keys of T whose values are numbers. */
type NumberKey<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];

/** One field of every record. */
function column<T>(records: readonly T[], key: NumberKey<T>): number[] {
  return records.map((r) => r[key] as number);
}

/** Rows that split the Berth row above them. */
const PART = '↳ ';

/** Where a Berth turn's time goes. */
function turnParts(turns: readonly BerthTurn[]): Row[] {
  return [
    statsRow(`${PART}POST sent -> status_running emitted`, column(turns, 'toRunning')),
    statsRow(`${PART}status_running -> status_idle emitted (SDK)`, column(turns, 'sdkTurn')),
    statsRow(`${PART}status_idle emitted -> received on SSE`, column(turns, 'sseDelivery')),
    statsRow(`${PART}(POST sent -> 200 received)`, column(turns, 'postResponse')),
  ];
}

function buildReport(
  machine: Machine,
  iterations: number,
  start: StartResults,
  turns: TurnResults,
): SuiteReport {
  const startRatio = median(column(start.berth, 'total')) / median(column(start.bare, 'ms'));
  const turnBerth = median(column(turns.berth, 'total'));
  const turnBare = median(column(turns.bare, 'ms'));
  const turnDiff = turnBerth - turnBare;
  // Turns alternate, so each Berth turn has a bare neighbour that ran under the same conditions.
  const pairedDiff = median(turns.berth.map((t, i) => t.total - turns.bare[i]!.ms));

  const startRows: Row[] = [
    statsRow('bare SDK: query() -> result', column(start.bare, 'ms')),
    statsRow('Berth: create, stream, message -> status_idle', column(start.berth, 'total')),
    statsRow(`${PART}POST /v1/sessions -> 200`, column(start.berth, 'create')),
    statsRow(`${PART}GET events/stream -> headers`, column(start.berth, 'stream')),
    ...turnParts(start.berth.map((s) => s.turn)),
    statsRow(CPU_BARE, column(start.bare, 'cpuMs')),
    statsRow(CPU_BERTH, column(start.berth, 'cpu')),
  ];
  const turnRows: Row[] = [
    statsRow('bare SDK: push message -> result', column(turns.bare, 'ms')),
    statsRow('Berth: POST user.message -> status_idle on SSE', column(turns.berth, 'total')),
    ...turnParts(turns.berth),
    statsRow(CPU_BARE, column(turns.bare, 'cpuMs')),
    statsRow(CPU_BERTH, column(turns.berth, 'cpu')),
  ];
  const turnPass = turnDiff <= TURN_TARGET_MS;
  const startPass = startRatio <= START_TARGET_RATIO;
  const targetHeader: Row = ['target', 'measured', ''];
  const targetRows: Row[] = [
    [
      `per-turn overhead <= ${TURN_TARGET_MS} ms (median)`,
      `${signedMs(turnDiff)} ms (${ratio(turnBerth / turnBare)}); paired turns: ${signedMs(pairedDiff)} ms`,
      turnPass ? 'pass' : 'MISS',
    ],
    [`session start <= ${START_TARGET_RATIO}x bare (median)`, ratio(startRatio), startPass ? 'pass' : 'MISS'],
  ];

  const startTitle = `Session start (${iterations} of each, interleaved, after 1 warm-up each)`;
  const turnTitle = `Per turn (${ROUNDS} x ${TURNS} turns of each, alternating, first turns excluded)`;
  const text = [
    machineLine(machine),
    '',
    startTitle,
    textTable(HEADER, startRows),
    '',
    turnTitle,
    textTable(HEADER, turnRows),
    '',
    textTable(targetHeader, targetRows),
  ].join('\n');

  const markdown = [
    '## Core: session start and per-turn overhead',
    '',
    `Measured on ${machineLine(machine)}. Source: \`bench/core.ts\`.`,
    '',
    'The baseline gets the isolation Berth applies: `settingSources: []`, the same subprocess environment',
    '(its own `CLAUDE_CONFIG_DIR` and `HOME`, auto memory off) and a fresh cwd per session.',
    '',
    'The Berth server runs in the benchmark process, so the rows marked ↳ split its time at the moments',
    "the server emitted the session's events: HTTP in, the SDK turn (subprocess included), SSE out; the",
    'POST\'s answer overlaps them. "CPU of this process" is the Node process\'s own CPU time',
    "(`process.cpuUsage()`, the subprocess's not included). The scripted model and the client run in this",
    'process for both kinds, but only Berth has an HTTP client and server; in a CPU profile the client',
    "(fetch, SSE parsing) was about half of Berth's extra CPU.",
    '',
    `### ${startTitle}`,
    '',
    markdownTable(HEADER, startRows),
    '',
    `### ${turnTitle}`,
    '',
    markdownTable(HEADER, turnRows),
    '',
    '### Targets',
    '',
    markdownTable(targetHeader, targetRows),
  ].join('\n');

  return {
    text,
    markdown,
    raw: {
      machine,
      targets: { turnOverheadMs: TURN_TARGET_MS, startRatio: START_TARGET_RATIO },
      start: { ...start, ratio: startRatio },
      turns: { ...turns, differenceMs: turnDiff, pairedDifferenceMs: pairedDiff },
    },
    missed: [...(turnPass ? [] : ['per-turn overhead']), ...(startPass ? [] : ['session start ratio'])],
  };
}
