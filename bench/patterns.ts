/**
 * The patterns benchmark: the ephemeral and multi-agent hosting patterns against the bare Agent SDK doing
 * the same work, in one run, the real `claude` CLI against the scripted model.
 *
 * (1) Ephemeral task overhead: `POST /v1/tasks?wait=true` until the final record arrives, minus the
 *     model's own time, on a Berth server without a warm pool (cold) and on one whose pool holds a task
 *     spare (warm; the suite waits for the spare before each start and checks `warm_start: true` in the
 *     record); against a bare one-shot `query()` to its `result`. The model's own time is the wall time
 *     some request to the scripted model was in flight, seen by a pass-through proxy in front of it (one
 *     proxy per kind, so that no kind's requests are counted in another's time). Two tasks: a text
 *     reply, and one Bash call that turns an input file into an artifact. The six kinds are interleaved,
 *     their order rotating by iteration.
 * (2) A group of 8 agents on one host: `POST /v1/groups`, then one `user.message` to each agent in one
 *     request, until every agent's first turn has ended (`session.status_idle` on the group's stream);
 *     and the same with one `group.rounds {rounds: 1}` (the agents take their turns one after another),
 *     until `group.rounds_finished`. Against 8 bare streaming-input `query()` started at once to their
 *     first `result`, and 8 started one after another (the rounds' baseline). Memory with all 8 live:
 *     the RSS of each agent's subprocess tree plus this process's (which hosts the Berth server), against
 *     the 8 bare subprocess trees. Then the group is deleted and no process of it may be left.
 *
 * The baselines get the isolation Berth applies (core.ts's): `settingSources: []`, the subprocess
 * environment of `buildAgentEnv` (its own `CLAUDE_CONFIG_DIR` and `HOME`, auto memory off) and a cwd of
 * its own.
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  prewarm,
  query,
  type Options,
  type SDKUserMessage,
  type SpareProcess,
} from '@anthropic-ai/claude-agent-sdk';
import { parseServeConfig } from '../src/config.js';
import { describeError } from '../src/errors.js';
import type { HostInfo } from '../src/host/session-host.js';
import { treeRssBytes } from '../src/sandbox/process-tree.js';
import { startBerth, type BerthServer } from '../src/server.js';
import { buildAgentEnv } from '../src/session/environment.js';
import { InputQueue } from '../src/session/input-queue.js';
import type { TaskRecord } from '../src/tasks/task.js';
import { startMockModel, type MockModel, type Scenario } from '../src/testing/index.js';
import {
  api,
  SseReader,
  assertNoSubprocessesUnder,
  describeMachine,
  machineLine,
  markdownTable,
  median,
  ms,
  now,
  percentile,
  processesWithEnv,
  ratio,
  textTable,
  withTimeout,
  type Machine,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
  statsRow,
  signedMs,
  eventually,
  untilResult,
  hostInfo,
} from './lib.js';

export const patterns: Suite = { name: 'patterns', run };

// ---- sizes, bounds and targets ------------------------------------------------------------------------

/** Measured tasks of each kind (after one warm-up each), unless `--iterations` says otherwise. */
const TASK_ITERATIONS = 7;
/** Targets (issue 5, the benchmark): a task's overhead, median, without and with a warm spare. */
const COLD_TARGET_MS = 1000;
const WARM_TARGET_MS = 300;

/** Agents in the group, and measurements of each group kind (fewer when `--iterations` is lower). */
const GROUP_AGENTS = 8;
const GROUP_ITERATIONS = 2;
/** A bare spare rests this long after `prewarm()` resolved before it is claimed, as a parked one would. */
const SPARE_REST_MS = 200;
/** After the last first turn, before memory is sampled: the CLIs finish what follows a turn. */
const MEMORY_SETTLE_MS = 1000;

/** Hang bounds, far above what each step takes on 2 busy cores. */
const TASK_TIMEOUT_MS = 60_000;
const GROUP_TIMEOUT_MS = 120_000;
const SETTLE_TIMEOUT_MS = 30_000;
/** The subprocesses of one measurement must be gone before the next starts (the kill grace is 3 s). */
const EXIT_GRACE_MS = 10_000;

const TENANT = 'default';
const MB = 1e6;
/** /proc/PID/stat counts RSS in pages; process-tree.ts's treeRssBytes assumes the same size. */
const PAGE_BYTES = 4096;

/** The Bash task's input file and the artifact its one tool call makes of it. */
const INPUT_TEXT = 'hello harbour, these are the task input words\n';
const REPORT_TEXT = 'The report is ready.';
const REPORT_SCENARIO: Scenario = {
  name: 'report',
  match: { userText: 'make the report' },
  steps: [
    { toolUse: { name: 'Bash', input: { command: 'tr a-z A-Z < input.txt > report.txt' } } },
    { text: REPORT_TEXT },
  ],
};

/** What one task kind asks, of Berth (`body`) and of the bare SDK (the rest), and how its result is checked. */
interface TaskShape {
  name: 'text' | 'bash';
  title: string;
  prompt: string;
  /** Tools the agent may use without asking. */
  tools: string[];
  files: Array<{ path: string; content: string }>;
  /** Model requests a run makes: one per reply step. */
  mainRequests: number;
}

const TEXT_TASK: TaskShape = {
  name: 'text',
  title: 'text reply (1 model request)',
  prompt: 'just say hi',
  tools: [],
  files: [],
  mainRequests: 1,
};

const BASH_TASK: TaskShape = {
  name: 'bash',
  title: 'one Bash call writing an artifact (2 model requests)',
  prompt: 'please make the report',
  tools: ['Bash'],
  files: [{ path: 'input.txt', content: INPUT_TEXT }],
  mainRequests: 2,
};

const SHAPES: readonly TaskShape[] = [TEXT_TASK, BASH_TASK];

// ---- the model proxy ----------------------------------------------------------------------------------

/** One request through the proxy, `now()` times. */
interface Span {
  start: number;
  end: number;
  /**
   * A `POST /v1/messages` (the agent loop's requests and the side ones, such as the title, which the CLI
   * sends alongside the first). The CLI's start-up connectivity check (`HEAD /api/hello`, ~1 ms) is not
   * the model's time.
   */
  messages: boolean;
}

/** What the model did within one measured run. */
interface ModelWindow {
  /** Messages requests that overlapped the run. */
  requests: number;
  /** The wall time at least one of them was in flight (their union), clipped to the run. */
  inFlight: number;
  /** The first request's arrival and the last response's end; NaN without requests. */
  firstStart: number;
  lastEnd: number;
}

/**
 * A pass-through in front of the scripted model that records when each request was in flight: from its
 * arrival here to the end of the response written back. The model's own time includes this hop, the
 * same for every kind.
 */
class ModelProxy {
  private readonly spans: Span[] = [];
  private open = 0;

  private readonly server: http.Server;

  private constructor(private readonly target: string) {
    this.server = http.createServer((req, res) => this.forward(req, res));
  }

  static async start(target: string): Promise<ModelProxy> {
    const proxy = new ModelProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Responses still being written. */
  get inFlight(): number {
    return this.open;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const start = now();
    this.open += 1;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.open -= 1;
      const messages = req.method === 'POST' && (req.url ?? '').startsWith('/v1/messages');
      this.spans.push({ start, end: now(), messages });
    };
    res.once('close', finish);
    const up = http.request(
      `${this.target}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.once('error', () => res.destroy());
    req.pipe(up);
  }

  window(from: number, to: number): ModelWindow {
    const spans = this.spans
      .filter((s) => s.messages && s.end > from && s.start < to)
      .map((s) => ({ start: Math.max(s.start, from), end: Math.min(s.end, to) }))
      .sort((a, b) => a.start - b.start);
    let inFlight = 0;
    let covered = -Infinity;
    for (const s of spans) {
      if (s.end <= covered) continue;
      inFlight += s.end - Math.max(s.start, covered);
      covered = s.end;
    }
    return {
      requests: spans.length,
      inFlight,
      firstStart: spans[0]?.start ?? NaN,
      lastEnd: spans.length > 0 ? Math.max(...spans.map((s) => s.end)) : NaN,
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---- the run ------------------------------------------------------------------------------------------

interface Context {
  root: string;
  model: MockModel;
  log: (line: string) => void;
  /** Servers and proxies still open; closed whatever happens. */
  servers: Set<BerthServer>;
  proxies: Set<ModelProxy>;
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? TASK_ITERATIONS;
  const groupIterations = Math.min(iterations, GROUP_ITERATIONS);
  const machine = describeMachine();
  const loadBefore = os.loadavg()[0]!;
  const idleRss = process.memoryUsage().rss;
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-patterns-'));
  const model = await startMockModel({ scenarios: [REPORT_SCENARIO] });
  const ctx: Context = { root, model, log: options.log, servers: new Set(), proxies: new Set() };
  let failure: unknown;
  let report: SuiteReport | undefined;
  try {
    options.log('  (1) ephemeral task overhead');
    const tasks = await measureTasks(ctx, iterations);
    options.log(`  (2) a group of ${GROUP_AGENTS} agents`);
    const groups = await measureGroups(ctx, groupIterations);
    report = buildReport(
      { machine, load: [loadBefore, os.loadavg()[0]!], iterations, groupIterations, idleRss },
      tasks,
      groups,
    );
  } catch (err) {
    failure = err;
  } finally {
    for (const berth of ctx.servers) await berth.close().catch((err: unknown) => (failure ??= err));
    for (const proxy of ctx.proxies) await proxy.close().catch((err: unknown) => (failure ??= err));
    await model.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
  }
  if (failure !== undefined || !report) {
    throw failure instanceof Error ? failure : new Error(describeError(failure));
  }
  return report;
}

async function startProxy(ctx: Context): Promise<ModelProxy> {
  const proxy = await ModelProxy.start(ctx.model.url);
  ctx.proxies.add(proxy);
  return proxy;
}

async function startServer(
  ctx: Context,
  dataDir: string,
  modelEndpoint: string,
  args: readonly string[],
): Promise<BerthServer> {
  // Unconfined like the bare SDK it is compared with; the sandbox's own cost is the `sandbox` suite.
  const config = parseServeConfig(
    ['--port', '0', '--data-dir', dataDir, '--model-endpoint', modelEndpoint, '--sandbox', 'none', ...args],
    { PATH: process.env.PATH },
  );
  const berth = await startBerth(config, { telemetry: makeTelemetry() });
  ctx.servers.add(berth);
  return berth;
}

async function stopServer(ctx: Context, berth: BerthServer): Promise<void> {
  ctx.servers.delete(berth);
  await berth.close();
}

/** The subprocess environment a baseline agent runs with: core.ts's, in directories of its own. */
async function bareEnv(modelEndpoint: string, dir: string): Promise<Record<string, string>> {
  const configDir = path.join(dir, 'claude-config');
  const home = path.join(dir, 'home');
  await Promise.all([configDir, home].map((d) => mkdir(d, { recursive: true })));
  return buildAgentEnv({
    modelEndpoint,
    apiKey: 'sk-berth-bench',
    configDir,
    home,
    path: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
  });
}

// ---- (1) ephemeral task overhead ----------------------------------------------------------------------

/** One task, in ms, from the client's start to its end (the `result`, or the final record received). */
interface TaskRun {
  total: number;
  /** The model's own time: see {@link ModelWindow.inFlight}. */
  model: number;
  /** `total - model`. */
  overhead: number;
  /** Start -> the first model request arrived: process start (or claim) and the CLI's start-up. */
  toFirstRequest: number;
  /** First request -> last response, minus the model's time: tool calls and the CLI between requests. */
  between: number;
  /** The last response written -> the end: the CLI's result, and for Berth the sandbox's end and the record. */
  afterLast: number;
  requests: number;
  /** Berth only: the same run split at the task's own events. */
  berth?: BerthTaskParts;
}

/**
 * A Berth task's time split at its stored events (their `processed_at`: this process's clock, to the
 * millisecond, as the server runs here).
 */
interface BerthTaskParts {
  /** POST sent -> `task.status_running`: admission, the sandbox's directories, the input files. */
  toRunning: number;
  /** `task.status_running` -> the first model request: the subprocess start (or the claim), the CLI's start-up. */
  runningToFirstRequest: number;
  /** The last model reply -> the final status: the result, the tree killed, artifacts, sandbox removed, record stored. */
  lastReplyToFinal: number;
  /** The final status -> the record received by the client. */
  finalToClient: number;
  /** The record's `duration_ms` (`task.status_running` -> the end, on the server). */
  durationMs: number;
}

type TaskKind = 'bare' | 'claim' | 'cold' | 'warm';
const TASK_KINDS: readonly TaskKind[] = ['bare', 'claim', 'cold', 'warm'];

type TaskResults = Record<TaskShape['name'], Record<TaskKind, TaskRun[]>> & {
  /** `warm_pool` of the warm server at the end. */
  pool: HostInfo['warm_pool'];
};

function taskRun(proxy: ModelProxy, shape: TaskShape, start: number, end: number): TaskRun {
  const w = proxy.window(start, end);
  // A run that made fewer requests than its steps did not do the task; more would be another run's.
  if (w.requests < shape.mainRequests) {
    throw new Error(`a ${shape.name} task made ${w.requests} model request(s), not ${shape.mainRequests}`);
  }
  const total = end - start;
  return {
    total,
    model: w.inFlight,
    overhead: total - w.inFlight,
    toFirstRequest: w.firstStart - start,
    between: w.lastEnd - w.firstStart - w.inFlight,
    afterLast: end - w.lastEnd,
    requests: w.requests,
  };
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

async function measureTasks(ctx: Context, iterations: number): Promise<TaskResults> {
  const dir = path.join(ctx.root, 'tasks');
  const bareDir = path.join(dir, 'bare');
  const coldDir = path.join(dir, 'berth-cold');
  const warmDir = path.join(dir, 'berth-warm');
  const proxies = {
    bare: await startProxy(ctx),
    claim: await startProxy(ctx),
    cold: await startProxy(ctx),
    warm: await startProxy(ctx),
  } satisfies Record<TaskKind, ModelProxy>;
  const cold = await startServer(ctx, coldDir, proxies.cold.url, ['--warm-pool', '0']);
  // The default pool size. Its first spare is the default tenant's; the priming task below finds no task
  // spare, and the pool gives that unasked-for spare up for a task spare (WarmPool.take), as on any host
  // that serves tasks: from then on every claimed spare is replaced by a task spare.
  const warm = await startServer(ctx, warmDir, proxies.warm.url, ['--warm-pool', '1']);

  const poolReady = async (): Promise<boolean> => {
    const pool = (await hostInfo(warm.url)).warm_pool;
    if (pool.parked !== 1 || pool.starting !== 0) return false;
    // The parked spare is the one process left under the warm server's data dir.
    return (await processesWithEnv('CLAUDE_CONFIG_DIR', warmDir)).length <= 1;
  };
  /** Nothing of an earlier measurement still runs anywhere, and the warm server's spare is parked. */
  const settle = async (): Promise<void> => {
    await assertNoSubprocessesUnder(bareDir, EXIT_GRACE_MS);
    await assertNoSubprocessesUnder(coldDir, EXIT_GRACE_MS);
    await eventually(
      poolReady,
      'a parked spare and nothing else under the warm Berth server',
      SETTLE_TIMEOUT_MS,
    );
    await eventually(
      () => Object.values(proxies).every((p) => p.inFlight === 0),
      'no model request in flight',
      SETTLE_TIMEOUT_MS,
    );
  };

  const berthTask = async (kind: 'cold' | 'warm', shape: TaskShape): Promise<TaskRun> => {
    const server = kind === 'cold' ? cold : warm;
    const claimedBefore = (await hostInfo(server.url)).warm_pool.claimed;
    const body = {
      prompt: shape.prompt,
      ...(shape.tools.length > 0 && { agent: { allowed_tools: shape.tools } }),
      ...(shape.files.length > 0 && { files: shape.files }),
    };
    const start = now();
    const record = (await withTimeout(
      api(server.url, 'POST', '/v1/tasks?wait=true', body),
      TASK_TIMEOUT_MS,
      `a ${kind} Berth task`,
    )) as TaskRecord;
    const end = now();
    checkRecord(record, shape, kind === 'warm');
    if (kind === 'warm' && (await hostInfo(server.url)).warm_pool.claimed !== claimedBefore + 1) {
      throw new Error('the warm task did not claim the parked spare');
    }
    const timed = taskRun(proxies[kind], shape, start, end);
    const events = await taskEventTimes(server.url, record.id);
    const lastReply = end - timed.afterLast;
    const firstRequest = start + timed.toFirstRequest;
    return {
      ...timed,
      berth: {
        toRunning: events.running - start,
        runningToFirstRequest: firstRequest - events.running,
        lastReplyToFinal: events.final - lastReply,
        finalToClient: end - events.final,
        durationMs: record.duration_ms ?? NaN,
      },
    };
  };

  let bareRuns = 0;
  /** The bare SDK: a one-shot `query()`, or (`claim`) `prewarm()` untimed and then `spare.claim()`. */
  const bareTask = async (kind: 'bare' | 'claim', shape: TaskShape): Promise<TaskRun> => {
    const own = path.join(bareDir, `${kind}-${shape.name}-${bareRuns++}`);
    const cwd = path.join(own, 'work');
    const options = async (): Promise<Options> => ({
      env: await bareEnv(proxies[kind].url, own),
      settingSources: [],
      // A task keeps no transcript (task-runner.ts), so the baseline writes none either.
      persistSession: false,
      ...(shape.tools.length > 0 && { allowedTools: shape.tools }),
    });
    let spare: SpareProcess | undefined;
    let claimed: Promise<unknown> | undefined;
    if (kind === 'claim') {
      // As a parked Berth spare: its own config dir and home, started and settled before the clock starts.
      spare = await withTimeout(prewarm({ options: await options() }), TASK_TIMEOUT_MS, 'a bare prewarm()');
      claimed = spare.claimed.then(
        () => undefined,
        (err: unknown) => err,
      );
      await sleep(SPARE_REST_MS);
    }
    // The same work as a task's sandbox: a fresh cwd with the input files (and, cold, a config dir and home).
    const start = now();
    const made = spare ? undefined : await options();
    await mkdir(cwd, { recursive: true });
    for (const f of shape.files) await writeFile(path.join(cwd, f.path), f.content);
    const q = spare
      ? spare.claim({ prompt: shape.prompt, options: { cwd } })
      : query({ prompt: shape.prompt, options: { ...made, cwd } });
    let end: number;
    try {
      await untilResult(q[Symbol.asyncIterator](), `a bare ${shape.name} ${kind}`, TASK_TIMEOUT_MS);
      end = now();
    } finally {
      q.close();
    }
    const refused = await claimed;
    if (refused !== undefined) throw new Error(`the bare claim was refused: ${describeError(refused)}`);
    if (shape.name === 'bash') {
      const report = await readFile(path.join(cwd, 'report.txt'), 'utf8');
      if (report !== INPUT_TEXT.toUpperCase()) throw new Error('the bare Bash task wrote the wrong report');
    }
    await assertNoSubprocessesUnder(own, EXIT_GRACE_MS);
    await rm(own, { recursive: true, force: true });
    return taskRun(proxies[kind], shape, start, end);
  };

  const results: TaskResults = {
    text: { bare: [], claim: [], cold: [], warm: [] },
    bash: { bare: [], claim: [], cold: [], warm: [] },
    pool: (await hostInfo(warm.url)).warm_pool,
  };
  try {
    // The default tenant's spare must be parked for the priming task to trade it for a task spare.
    await eventually(poolReady, 'the first spare parked', SETTLE_TIMEOUT_MS);
    const priming = (await api(warm.url, 'POST', '/v1/tasks?wait=true', { prompt: 'prime' })) as TaskRecord;
    if (priming.status !== 'succeeded') throw new Error(`the priming task ${priming.status}`);
    const kinds = SHAPES.flatMap((shape) => TASK_KINDS.map((kind) => ({ shape, kind })));
    for (let i = 0; i <= iterations; i++) {
      const label = i === 0 ? 'warm-up' : `${i}/${iterations}`;
      const order = kinds.map((_, k) => kinds[(i + k) % kinds.length]!);
      const measured: string[] = [];
      for (const { shape, kind } of order) {
        await settle();
        const r =
          kind === 'bare' || kind === 'claim' ? await bareTask(kind, shape) : await berthTask(kind, shape);
        measured.push(`${shape.name} ${kind} ${ms(r.overhead)}`);
        if (i > 0) results[shape.name][kind].push(r);
      }
      ctx.log(`    tasks ${label} (overhead ms): ${measured.join(', ')}`);
    }
    results.pool = (await hostInfo(warm.url)).warm_pool;
  } finally {
    await stopServer(ctx, warm);
    await stopServer(ctx, cold);
  }
  await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
  return results;
}

/** When the task's `task.status_running` and final status were emitted, on this process's `now()` clock. */
async function taskEventTimes(url: string, id: string): Promise<{ running: number; final: number }> {
  const res = await fetch(`${url}/v1/tasks/${id}/events/stream`, {
    headers: { accept: 'text/event-stream' },
  });
  if (res.status !== 200) throw new Error(`GET the events of task ${id}: ${res.status}`);
  const body = await res.text();
  // Date.now() and now() read together: the offset between the two clocks at this moment.
  const offset = now() - Date.now();
  const times = new Map<string, number>();
  for (const frame of body.split('\n\n')) {
    const data = frame
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trim())
      .join('\n');
    if (data === '') continue;
    const event = JSON.parse(data) as { type: string; processed_at: string };
    times.set(event.type, Date.parse(event.processed_at) + offset);
  }
  const running = times.get('task.status_running');
  const final = times.get('task.status_succeeded');
  if (running === undefined || final === undefined) throw new Error(`task ${id}: no running or final event`);
  return { running, final };
}

/** A task that failed, started the wrong way or did not do its work must not pass for a fast one. */
function checkRecord(record: TaskRecord, shape: TaskShape, warm: boolean): void {
  if (record.status !== 'succeeded') {
    throw new Error(`a Berth ${shape.name} task ${record.status}: ${JSON.stringify(record.error)}`);
  }
  if (record.warm_start !== warm) {
    throw new Error(`a Berth ${shape.name} task had warm_start ${record.warm_start}, expected ${warm}`);
  }
  if (shape.name === 'bash') {
    const report = record.artifacts.find((a) => a.path === 'report.txt');
    if (record.result !== REPORT_TEXT || report?.sha256 !== sha256(INPUT_TEXT.toUpperCase())) {
      throw new Error(`the Bash task did not write its report: ${JSON.stringify(record.artifacts)}`);
    }
  }
}

// ---- (2) a group of 8 agents --------------------------------------------------------------------------

interface Memory {
  /** RSS of each agent's subprocess tree. */
  trees: number[];
  /** This process's RSS: the Berth server (or the 8 bare `query()` objects), the client, the model. */
  process: number;
}

interface GroupStart {
  /** Client: `POST /v1/groups` sent -> every agent's first turn over (its event parsed from the stream). */
  total: number;
  /** `POST /v1/groups` -> 201. */
  create: number;
  /** `POST /v1/groups` sent -> the first agent's turn over. */
  firstDone: number;
  /** Each agent, in the server: `session.status_running` -> `session.status_idle` emitted. */
  agentTurns: number[];
  /** `DELETE /v1/groups/:id` -> its response (every agent's subprocess ended). */
  deleteMs: number;
  memory: Memory;
}

interface BareGroupStart {
  /** The first `query()` made -> the last first `result`. */
  total: number;
  /** Each `query()`'s message pushed -> its `result`. */
  agentTurns: number[];
  memory: Memory;
}

type GroupKind = 'bare' | 'bareSequential' | 'messages' | 'rounds';
const GROUP_KINDS: readonly GroupKind[] = ['bare', 'messages', 'bareSequential', 'rounds'];

interface GroupResults {
  bare: BareGroupStart[];
  bareSequential: BareGroupStart[];
  messages: GroupStart[];
  rounds: GroupStart[];
}

const agentNames = Array.from({ length: GROUP_AGENTS }, (_, i) => `agent${i}`);

/** RSS of every live process whose `CLAUDE_CONFIG_DIR` lies under `dir`: one bare agent's tree. */
async function rssUnder(dir: string): Promise<number> {
  let bytes = 0;
  for (const line of await processesWithEnv('CLAUDE_CONFIG_DIR', `${dir}${path.sep}`)) {
    try {
      const stat = await readFile(`/proc/${Number.parseInt(line, 10)}/stat`, 'utf8');
      // Field 24 (rss), counted from the state (field 3) after the command's closing parenthesis.
      bytes += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[21]) * PAGE_BYTES;
    } catch {
      // gone meanwhile
    }
  }
  return bytes;
}

async function measureGroups(ctx: Context, iterations: number): Promise<GroupResults> {
  const dir = path.join(ctx.root, 'groups');
  const berthDir = path.join(dir, 'berth');
  const bareDir = path.join(dir, 'bare');
  // Cold against cold: group agents never claim a spare (their sessions carry the bus), so no pool.
  const berth = await startServer(ctx, berthDir, ctx.model.url, ['--warm-pool', '0']);
  const results: GroupResults = { bare: [], bareSequential: [], messages: [], rounds: [] };
  let bareRuns = 0;
  try {
    for (let i = 0; i < iterations; i++) {
      const order = GROUP_KINDS.map((_, k) => GROUP_KINDS[(i + k) % GROUP_KINDS.length]!);
      const measured: string[] = [];
      for (const kind of order) {
        await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
        if (kind === 'bare' || kind === 'bareSequential') {
          const own = path.join(bareDir, String(bareRuns++));
          const r = await bareGroup(ctx, own, kind === 'bare');
          results[kind].push(r);
          measured.push(`${kind} ${ms(r.total)}`);
        } else {
          const r = await berthGroup(berth, berthDir, kind);
          results[kind].push(r);
          measured.push(`${kind} ${ms(r.total)}`);
        }
      }
      ctx.log(
        `    group ${i + 1}/${iterations} (all ${GROUP_AGENTS} first turns, ms): ${measured.join(', ')}`,
      );
    }
  } finally {
    await stopServer(ctx, berth);
  }
  await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
  return results;
}

async function berthGroup(
  berth: BerthServer,
  dataDir: string,
  kind: 'messages' | 'rounds',
): Promise<GroupStart> {
  const start = now();
  const group = (await api(berth.url, 'POST', '/v1/groups', {
    agents: agentNames.map((name) => ({ name })),
    shared_dir: true,
  })) as { id: string; agents: Array<{ name: string; session_id: string }> };
  const create = now() - start;
  let stream: SseReader | undefined;
  const unsubscribes: Array<() => void> = [];
  let deleted = false;
  try {
    // Every agent's turn as the server sees it; the sessions exist from the 201 on, idle.
    const running = new Map<string, number>();
    const idle = new Map<string, number>();
    for (const agent of group.agents) {
      const session = await berth.host.get(TENANT, agent.session_id);
      unsubscribes.push(
        session.events.subscribe((e) => {
          if (e.type === 'session.status_running' && !running.has(agent.name)) running.set(agent.name, now());
          if (e.type === 'session.status_idle' && !idle.has(agent.name)) idle.set(agent.name, now());
        }),
      );
    }
    stream = await SseReader.open(`${berth.url}/v1/groups/${group.id}/events/stream?after=0`);
    const events =
      kind === 'messages'
        ? agentNames.map((agent) => ({ type: 'user.message', agent, content: `hello ${agent}` }))
        : [{ type: 'group.rounds', rounds: 1, content: 'hello {{agent}}' }];
    await api(berth.url, 'POST', `/v1/groups/${group.id}/events`, { events });

    const done = new Set<string>();
    let firstDone = NaN;
    let total = NaN;
    const deadline = now() + GROUP_TIMEOUT_MS;
    while (Number.isNaN(total)) {
      const e = await stream.next(
        (x) => x.type === 'session.status_idle' || x.type === 'group.rounds_finished',
        deadline - now(),
      );
      if (e.type === 'session.status_idle') {
        // A turn that failed must not pass for a fast one.
        const reason = e.data.stop_reason as { type?: string } | undefined;
        if (reason?.type !== 'end_turn') {
          throw new Error(`agent ${String(e.data.agent)}'s turn ended with ${JSON.stringify(reason)}`);
        }
        done.add(String(e.data.agent));
        if (done.size === 1) firstDone = e.at - start;
        if (kind === 'messages' && done.size === GROUP_AGENTS) total = e.at - start;
      } else {
        const finished = e.data as { completed?: number; stop_reason?: string };
        if (finished.completed !== 1 || finished.stop_reason !== 'done' || done.size !== GROUP_AGENTS) {
          throw new Error(`the round ended with ${JSON.stringify(finished)}, ${done.size} turns over`);
        }
        total = e.at - start;
      }
    }

    await sleep(MEMORY_SETTLE_MS);
    const trees: number[] = [];
    for (const agent of group.agents) {
      const tree = (await berth.host.get(TENANT, agent.session_id)).processInfo?.tree;
      if (!tree) throw new Error(`agent ${agent.name} has no subprocess`);
      trees.push(await treeRssBytes(tree));
    }
    const memory = { trees, process: process.memoryUsage().rss };

    const t = now();
    await api(berth.url, 'DELETE', `/v1/groups/${group.id}`);
    const deleteMs = now() - t;
    deleted = true;
    await assertNoSubprocessesUnder(dataDir, EXIT_GRACE_MS);
    return {
      total,
      create,
      firstDone,
      agentTurns: agentNames.map((name) => idle.get(name)! - running.get(name)!),
      deleteMs,
      memory,
    };
  } finally {
    stream?.close();
    for (const unsubscribe of unsubscribes) unsubscribe();
    if (!deleted) await api(berth.url, 'DELETE', `/v1/groups/${group.id}`).catch(() => undefined);
  }
}

/** 8 bare streaming-input `query()`, each with its own directories, started at once or one by one. */
async function bareGroup(ctx: Context, dir: string, atOnce: boolean): Promise<BareGroupStart> {
  const agents: Array<{ input: InputQueue<SDKUserMessage>; close: () => void; dir: string }> = [];
  const agentTurns: number[] = [];
  const start = now();
  const startOne = async (name: string): Promise<void> => {
    const own = path.join(dir, name);
    const cwd = path.join(own, 'work');
    const env = await bareEnv(ctx.model.url, own);
    await mkdir(cwd, { recursive: true });
    const input = new InputQueue<SDKUserMessage>();
    const q = query({ prompt: input, options: { cwd, env, settingSources: [] } });
    agents.push({ input, close: () => q.close(), dir: own });
    const t = now();
    input.push({
      type: 'user',
      message: { role: 'user', content: `hello ${name}` },
      parent_tool_use_id: null,
    });
    await untilResult(q[Symbol.asyncIterator](), `a bare query() of ${name}`, GROUP_TIMEOUT_MS);
    agentTurns.push(now() - t);
  };
  try {
    if (atOnce) await Promise.all(agentNames.map(startOne));
    else for (const name of agentNames) await startOne(name);
    const total = now() - start;
    await sleep(MEMORY_SETTLE_MS);
    const trees: number[] = [];
    for (const agent of agents) trees.push(await rssUnder(agent.dir));
    if (trees.some((b) => b === 0)) throw new Error('a bare agent has no subprocess left to measure');
    return { total, agentTurns, memory: { trees, process: process.memoryUsage().rss } };
  } finally {
    for (const agent of agents) {
      agent.input.end();
      agent.close();
    }
    await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- the report ---------------------------------------------------------------------------------------

const HEADER: Row = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
/** Rows that split the row above them. */
const PART = '↳ ';

const mb = (bytes: number): string => (bytes / MB).toFixed(0);
const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const p90 = (values: readonly number[]): number => percentile(values, 90);

interface RunInfo {
  machine: Machine;
  load: [number, number];
  iterations: number;
  groupIterations: number;
  /** This process's RSS before the suite started anything. */
  idleRss: number;
}

const KIND_LABEL: Record<TaskKind, string> = {
  bare: 'bare SDK: query() -> result',
  claim: 'bare SDK: spare.claim() -> result (prewarm() untimed)',
  cold: 'Berth task, cold (--warm-pool 0): POST ?wait=true -> final record',
  warm: 'Berth task, warm (a task spare parked): the same',
};

function buildReport(info: RunInfo, tasks: TaskResults, groups: GroupResults): SuiteReport {
  const { machine, load, iterations, groupIterations } = info;
  const loadLine = `load average (1 min) ${load[0].toFixed(1)} at the start, ${load[1].toFixed(1)} at the end`;
  const mark = (pass: boolean): string => (pass ? 'pass' : 'MISS');
  const busy = load[0] > machine.cpus || load[1] > machine.cpus;

  // (1)
  const overheads = (shape: TaskShape, kind: TaskKind): number[] =>
    tasks[shape.name][kind].map((r) => r.overhead);
  const taskTables = SHAPES.map((shape) => {
    const rows: Row[] = [];
    for (const kind of TASK_KINDS) {
      const runs = tasks[shape.name][kind];
      const row = (label: string, pick: (r: TaskRun) => number): void =>
        void rows.push(statsRow(label, runs.map(pick)));
      const part = (label: string, pick: (p: BerthTaskParts) => number): void =>
        row(label, (r) => (r.berth ? pick(r.berth) : NaN));
      row(KIND_LABEL[kind], (r) => r.total);
      row(`${PART}the model's own time (requests in flight)`, (r) => r.model);
      row(`${PART}overhead: the rest`, (r) => r.overhead);
      if (kind === 'bare' || kind === 'claim') {
        row(
          `${PART}${PART}start -> first model request (${kind === 'bare' ? 'directories, input, CLI start-up' : 'input, claim'})`,
          (r) => r.toFirstRequest,
        );
      } else {
        part(
          `${PART}${PART}POST sent -> task.status_running (admission, sandbox, input)`,
          (p) => p.toRunning,
        );
        part(
          `${PART}${PART}status_running -> first model request (${kind === 'warm' ? 'claim' : 'spawn, CLI start-up'})`,
          (p) => p.runningToFirstRequest,
        );
      }
      if (shape.mainRequests > 1) {
        row(`${PART}${PART}between model requests (the Bash call, the CLI)`, (r) => r.between);
      }
      if (kind === 'bare' || kind === 'claim') {
        row(`${PART}${PART}last model reply -> result`, (r) => r.afterLast);
      } else {
        part(
          `${PART}${PART}last model reply -> final status (result, kill, artifacts, sandbox removed, record stored)`,
          (p) => p.lastReplyToFinal,
        );
        part(`${PART}${PART}final status -> record received`, (p) => p.finalToClient);
        part(`${PART}(the record's duration_ms)`, (p) => p.durationMs);
      }
    }
    return { shape, rows };
  });
  const taskRatioRows: Row[] = SHAPES.flatMap((shape) =>
    (
      [
        ['cold', 'bare', 'bare query()'],
        ['warm', 'bare', 'bare query()'],
        ['warm', 'claim', 'bare claim'],
      ] as const
    ).map(([kind, base, baseLabel]): Row => {
      const berth = overheads(shape, kind);
      const baseline = overheads(shape, base);
      return [
        `${shape.name}: Berth ${kind} / ${baseLabel}, overhead`,
        ratio(median(berth) / median(baseline)),
        ratio(p90(berth) / p90(baseline)),
        `${signedMs(median(berth) - median(baseline))} ms`,
      ];
    }),
  );
  const taskTargets = SHAPES.flatMap((shape) => {
    const coldMedian = median(overheads(shape, 'cold'));
    const warmMedian = median(overheads(shape, 'warm'));
    return [
      {
        name: `${shape.name} task cold overhead`,
        label: `${shape.name} task, cold: overhead < ${COLD_TARGET_MS} ms (median)`,
        value: coldMedian,
        pass: coldMedian < COLD_TARGET_MS,
        baselines: [['bare query()', median(overheads(shape, 'bare'))]] as Array<[string, number]>,
      },
      {
        name: `${shape.name} task warm overhead`,
        label: `${shape.name} task, warm: overhead < ${WARM_TARGET_MS} ms (median)`,
        value: warmMedian,
        pass: warmMedian < WARM_TARGET_MS,
        baselines: [
          ['bare claim', median(overheads(shape, 'claim'))],
          ['bare query()', median(overheads(shape, 'bare'))],
        ] as Array<[string, number]>,
      },
    ];
  });

  // (2)
  const totals = (kind: GroupKind): number[] => groups[kind].map((g) => g.total);
  const groupRows: Row[] = [
    statsRow(`bare SDK: ${GROUP_AGENTS} query() at once -> the last first result`, totals('bare')),
    statsRow(
      `${PART}each query(): message -> result`,
      groups.bare.flatMap((g) => g.agentTurns),
    ),
    statsRow(
      `Berth group, a user.message to each agent at once: POST /v1/groups -> the last status_idle`,
      totals('messages'),
    ),
    statsRow(
      `${PART}POST /v1/groups -> 201`,
      groups.messages.map((g) => g.create),
    ),
    statsRow(
      `${PART}POST /v1/groups -> the first status_idle`,
      groups.messages.map((g) => g.firstDone),
    ),
    statsRow(
      `${PART}each agent: status_running -> status_idle emitted`,
      groups.messages.flatMap((g) => g.agentTurns),
    ),
    statsRow(
      `bare SDK: ${GROUP_AGENTS} query() one after another -> the last result`,
      totals('bareSequential'),
    ),
    statsRow(
      `${PART}each query(): message -> result`,
      groups.bareSequential.flatMap((g) => g.agentTurns),
    ),
    statsRow(`Berth group, group.rounds 1: POST /v1/groups -> group.rounds_finished`, totals('rounds')),
    statsRow(
      `${PART}POST /v1/groups -> 201`,
      groups.rounds.map((g) => g.create),
    ),
    statsRow(
      `${PART}each agent: status_running -> status_idle emitted`,
      groups.rounds.flatMap((g) => g.agentTurns),
    ),
    statsRow(
      `DELETE /v1/groups/:id -> response (${GROUP_AGENTS} subprocesses ended)`,
      [...groups.messages, ...groups.rounds].map((g) => g.deleteMs),
    ),
  ];
  const groupRatioRows: Row[] = [
    [
      'messages at once / bare at once',
      ratio(median(totals('messages')) / median(totals('bare'))),
      `${signedMs(median(totals('messages')) - median(totals('bare')))} ms`,
    ],
    [
      'one round / bare one after another',
      ratio(median(totals('rounds')) / median(totals('bareSequential'))),
      `${signedMs(median(totals('rounds')) - median(totals('bareSequential')))} ms`,
    ],
    [
      'one round / bare at once',
      ratio(median(totals('rounds')) / median(totals('bare'))),
      `${signedMs(median(totals('rounds')) - median(totals('bare')))} ms`,
    ],
  ];

  const memOf = (list: ReadonlyArray<{ memory: Memory }>) => ({
    trees: median(list.map((g) => sum(g.memory.trees))),
    perAgent: median(list.flatMap((g) => g.memory.trees)),
    process: median(list.map((g) => g.memory.process)),
  });
  const bareMem = memOf([...groups.bare, ...groups.bareSequential]);
  const berthMem = memOf([...groups.messages, ...groups.rounds]);
  const memoryHeader: Row = [
    'all 8 live (medians)',
    `${GROUP_AGENTS} trees MB`,
    'per agent MB',
    'this process MB',
    'trees + process MB',
  ];
  const memoryRows: Row[] = [
    [
      'bare SDK: 8 query()',
      mb(bareMem.trees),
      mb(bareMem.perAgent),
      mb(bareMem.process),
      mb(bareMem.trees + bareMem.process),
    ],
    [
      'Berth group (the server in this process)',
      mb(berthMem.trees),
      mb(berthMem.perAgent),
      mb(berthMem.process),
      mb(berthMem.trees + berthMem.process),
    ],
    [
      'Berth / bare',
      ratio(berthMem.trees / bareMem.trees),
      ratio(berthMem.perAgent / bareMem.perAgent),
      ratio(berthMem.process / bareMem.process),
      ratio((berthMem.trees + berthMem.process) / (bareMem.trees + bareMem.process)),
    ],
    [
      'Berth (trees + process) / bare trees',
      '',
      '',
      '',
      ratio((berthMem.trees + berthMem.process) / bareMem.trees),
    ],
  ];

  const targetHeader: Row = ['target', 'measured', ''];
  const targetRows: Row[] = taskTargets.map((t) => [
    t.label,
    `${ms(t.value)} ms (${t.baselines.map(([label, value]) => `${label} ${ms(value)} ms: ${ratio(t.value / value)}`).join('; ')})`,
    mark(t.pass),
  ]);

  const taskTitle = (shape: TaskShape): string =>
    `Ephemeral task: ${shape.title} (${iterations} of each, interleaved, after 1 warm-up each)`;
  const groupTitle = `A group of ${GROUP_AGENTS} agents: start (${groupIterations} of each, interleaved)`;
  const memoryTitle = `A group of ${GROUP_AGENTS} agents: memory with all of them live`;

  // A warm target below what the SDK's own spare needs for the same task cannot be met by any host.
  const floorNotes = SHAPES.flatMap((shape) => {
    const floor = median(overheads(shape, 'claim'));
    return floor < WARM_TARGET_MS
      ? []
      : [
          '',
          `The bare SDK's own claim already has ${ms(floor)} ms of overhead for the ${shape.name} task, at or above the`,
          `warm target of ${WARM_TARGET_MS} ms: that target is out of reach of any host for this task on this machine.`,
        ];
  });
  const text = [
    machineLine(machine),
    loadLine,
    ...taskTables.flatMap(({ shape, rows }) => ['', taskTitle(shape), textTable(HEADER, rows)]),
    '',
    'Task overhead ratios',
    textTable(['', 'median', 'p90', 'difference (median)'], taskRatioRows),
    '',
    groupTitle,
    textTable(HEADER, groupRows),
    '',
    textTable(['', 'median', 'difference'], groupRatioRows),
    '',
    memoryTitle,
    textTable(memoryHeader, memoryRows),
    '',
    textTable(targetHeader, targetRows),
    ...floorNotes,
    '',
    `warm pool of the warm server: ${tasks.pool.claimed} claimed, ${tasks.pool.refused} refused, ${tasks.pool.lost} lost`,
  ].join('\n');

  const where = SHAPES.flatMap((shape) => {
    const m = (kind: TaskKind, pick: (r: TaskRun) => number): number =>
      median(tasks[shape.name][kind].map(pick));
    const compare = (kind: TaskKind, base: TaskKind, baseLabel: string): string =>
      `${shape.name} task, ${kind} against the ${baseLabel}: ${signedMs(m(kind, (r) => r.overhead) - m(base, (r) => r.overhead))} ms of overhead. ` +
      `Start to the first model request ${ms(m(kind, (r) => r.toFirstRequest))} against ${ms(m(base, (r) => r.toFirstRequest))} ms` +
      (shape.mainRequests > 1
        ? `; between the model requests ${ms(m(kind, (r) => r.between))} against ${ms(m(base, (r) => r.between))} ms`
        : '') +
      `; the last model reply to the end ${ms(m(kind, (r) => r.afterLast))} against ${ms(m(base, (r) => r.afterLast))} ms.`;
    return [compare('cold', 'bare', 'bare query()'), compare('warm', 'claim', 'bare claim')];
  });

  const markdown = [
    '## Patterns: ephemeral tasks and a group of 8 agents',
    '',
    `Measured on ${machineLine(machine)}; ${loadLine}${busy ? ` (above ${machine.cpus}: this suite's own subprocesses count too, and other work may have shared the CPUs)` : ''}.`,
    'Source: `bench/patterns.ts`. The Berth servers run in the benchmark process, with the real `claude`',
    'CLI and the scripted model.',
    '',
    '### Ephemeral task overhead',
    '',
    "Overhead is the time from the start to the end minus the model's own time: the wall time at least",
    'one request to the scripted model was in flight, seen by a pass-through proxy in front of it (one',
    "proxy per kind, so no kind's requests count in another's time; the proxy's hop counts as the",
    "model's, for every kind). Berth: `POST /v1/tasks?wait=true` until the final record arrives, which",
    'includes collecting the artifacts, removing the sandbox and storing the record. Cold is a server with',
    '`--warm-pool 0`; warm is a server with `--warm-pool 1` (the default) after one priming task, which',
    "turned its pool's default-tenant spare into a task spare: before every warm start the suite waits",
    'until `GET /v1/hosts/self` shows the spare parked and nothing else running, and checks',
    '`warm_start: true` in the record and `warm_pool.claimed` grown by one',
    `(${tasks.pool.claimed} claimed, ${tasks.pool.refused} refused over the run). The cold baseline is a one-shot \`query()\``,
    'with the isolation Berth applies (`settingSources: []`, `buildAgentEnv`) and, like a cold task, a',
    'fresh cwd, config dir and home with the input file written inside the timing, `persistSession: false`',
    '(a task keeps no transcript) and `allowedTools` for the Bash task (Berth allows it through',
    '`canUseTool`), timed to its `result`. The warm baseline is the SDK alone with a spare: `prewarm()`',
    `with the same options and a config dir and home of its own, untimed, ${SPARE_REST_MS} ms of rest, then the input file`,
    'written and `spare.claim({ prompt, options: { cwd } })` timed to its `result`. The eight kinds are',
    "interleaved, their order rotating. For Berth, the rows marked ↳ ↳ split the time at the task's own",
    'events (`processed_at`, the same clock: the server runs in this process); "the end" is the final record,',
    'which comes after the subprocess tree has been killed and found gone (a scan of /proc,',
    '`src/sandbox/process-tree.ts`), the artifacts collected, the sandbox removed and the record stored.',
    '',
    ...taskTables.flatMap(({ shape, rows }) => [
      `#### ${taskTitle(shape)}`,
      '',
      markdownTable(HEADER, rows),
      '',
    ]),
    markdownTable(['', 'median', 'p90', 'difference (median)'], taskRatioRows),
    '',
    'Where the time goes (medians; medians of parts need not add up):',
    ...where.map((w) => `- ${w}`),
    '',
    `### ${groupTitle}`,
    '',
    `One Berth server (\`--warm-pool 0\`: group agents never claim spares). \`POST /v1/groups\` with ${GROUP_AGENTS}`,
    'agents and a shared directory, its stream opened (replaying from the start), then either one',
    `request with a \`user.message\` for each agent, timed until the ${GROUP_AGENTS}th agent's \`session.status_idle\``,
    'arrives on the stream, or one `group.rounds {rounds: 1}` (the agents take their turns one after',
    'another), timed until `group.rounds_finished`. Every turn is checked to end with `end_turn`. The',
    `baselines: ${GROUP_AGENTS} streaming-input \`query()\`, each with its own cwd, config dir and home, started at once`,
    "(to the last first `result`) or one after another (the rounds' baseline). Each agent's subprocess",
    'starts with its first turn, on both sides.',
    '',
    markdownTable(HEADER, groupRows),
    '',
    markdownTable(['', 'median', 'difference'], groupRatioRows),
    '',
    `### ${memoryTitle}`,
    '',
    `Sampled ${MEMORY_SETTLE_MS} ms after the last first turn, with every agent's subprocess still live: for Berth`,
    "the RSS of each agent's subprocess tree (`treeRssBytes` of its session's tree), for the baseline of",
    "each bare agent's processes (found by their `CLAUDE_CONFIG_DIR`); and the RSS of this process, which",
    'hosts the Berth server (or the 8 bare `query()` objects), the client and the scripted model',
    `(${mb(info.idleRss)} MB before the suite started anything). Then the group is deleted and no process of it`,
    'may be left. MB = 10^6 bytes.',
    '',
    markdownTable(memoryHeader, memoryRows),
    '',
    '### Targets',
    '',
    markdownTable(targetHeader, targetRows),
    ...floorNotes,
  ].join('\n');

  return {
    text,
    markdown,
    raw: {
      machine,
      loadAverage: load,
      idleRss: info.idleRss,
      targets: { coldOverheadMs: COLD_TARGET_MS, warmOverheadMs: WARM_TARGET_MS },
      tasks,
      groups,
      memory: { bare: bareMem, berth: berthMem },
    },
    missed: taskTargets.filter((t) => !t.pass).map((t) => t.name),
  };
}
