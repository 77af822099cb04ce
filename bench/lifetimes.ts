/**
 * The lifetimes benchmark: what the host's lifetime management buys and costs, against the bare Agent SDK
 * (or the bare tools) doing the same work, all in one run, the real `claude` CLI against the scripted model.
 *
 * (1) Session start with a warm spare: a Berth server with `--warm-pool 1`; before each measured start the
 *     suite waits until `GET /v1/hosts/self` shows the spare parked, so every start claims one (checked on
 *     `warm_pool.claimed`). Create, stream, first message until `session.status_idle`; against a cold
 *     `query()` to its `result` (core.ts's baseline, the same isolation) and against the SDK's own
 *     `prewarm()` + `spare.claim()` to `result`, timed from the claim with the spare already parked. Two
 *     more kinds show where Berth's extra time goes: the bare claim doing what Berth's claim also does (a
 *     `sessionStore`, a replacement `prewarm()` started at the claim), and Berth on a host with room for
 *     one subprocess, where no replacement can start. The kinds are interleaved, their order rotating.
 * (2) Suspend and hydrate of a big session: a ~1,000-entry transcript (turns of parallel Bash tool calls)
 *     and a 10 MiB workspace of random files on PostgreSQL + an S3 blob store (s3rver). Suspend: a host
 *     with room for one subprocess suspends the idle session (LRU) when another session's message
 *     arrives; timed from that message to `session.status_suspended`. Against the floor of the same work:
 *     ending a bare subprocess's stdin until it exits, `tar -czf` of the files and one PutObject. Hydrate:
 *     a second host (new data dir, same store and bucket) gets the session's next message; timed until
 *     `session.status_idle` (workspace restore, subprocess start, resume, one turn), against a fresh
 *     session's first turn on that host.
 * (3) Host memory with 1,000 suspended sessions: a Berth server in a child process (`--expose-gc`), RSS and
 *     heap after a forced GC, empty against holding 1,000 sessions that the idle timeout suspended.
 * (4) `measureSessionRam` (what `berth plan` runs) and what `planSizing` makes of it on a 24 GiB host,
 *     against the hosting guide's 1 GiB default ceiling.
 *
 * The file is also the entry point of (3)'s child process (see {@link memoryChild} at the end).
 */
import { createLogger } from '../src/observe/logger.js';
import { makeTelemetry } from '../src/observe/telemetry.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import {
  prewarm,
  query,
  type Options,
  type SDKUserMessage,
  type SpareProcess,
} from '@anthropic-ai/claude-agent-sdk';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { parseServeConfig } from '../src/config.js';
import { describeError } from '../src/errors.js';
import { measureSessionRam, planSizing, type PlanResult, type SizingPlan } from '../src/host/plan.js';
import type { HostInfo } from '../src/host/session-host.js';
import { DEFAULT_SESSION_CEILING, GIB } from '../src/host/sizing.js';
import { startBerth, type BerthServer } from '../src/server.js';
import { buildAgentEnv } from '../src/session/environment.js';
import type { StoredEvent } from '../src/session/events.js';
import { InputQueue } from '../src/session/input-queue.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { startMockModel, type MockModel, type Scenario } from '../src/testing/index.js';
import { openBlobStore, type BlobStore } from '../src/workspace/open-blob-store.js';
import { restoreWorkspace, snapshotWorkspace } from '../src/workspace/snapshot.js';
import { postgresBackend, type TestStore } from '../test/helpers/backends.js';
import { startS3Server, type S3TestServer } from '../test/helpers/s3-server.js';
import {
  alternate,
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
  stopwatch,
  textTable,
  withTimeout,
  type Machine,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
  type Timing,
  statsRow,
  signedMs,
  eventually,
  untilResult,
  hostInfo,
  sessionBody,
  createSession,
  userMessage as apiMessage,
  type BenchAgent,
} from './lib.js';

export const lifetimes: Suite = { name: 'lifetimes', run };

// ---- sizes, bounds and targets ------------------------------------------------------------------------

/** Measured starts of each kind (after one warm-up each), unless `--iterations` says otherwise. */
const START_ITERATIONS = 8;
/** Targets (issue: the lifetimes benchmark): cold / Berth-warm at least this (medians)... */
const START_TARGET_VS_COLD = 3;
/** ...and Berth-warm / bare claim at most this. */
const START_TARGET_VS_CLAIM = 1.2;

/** The big session: at least this many transcript entries... */
const TRANSCRIPT_ENTRIES = 1000;
/** ...built by turns of two steps of this many parallel Bash calls, at most this many turns. */
const PARALLEL_TOOL_CALLS = 10;
const BUILD_MAX_TURNS = 60;
/** ...and a workspace of this many random (incompressible) files of this size: 10 MiB. */
const WORKSPACE_FILES = 40;
const WORKSPACE_FILE_BYTES = 256 * 1024;
/** Suspensions of the big session measured, and the standalone snapshot/restore/floor repetitions. */
const SUSPEND_ROUNDS = 4;
/** Hydrations, each on a new host, each paired with a fresh session's first turn there. */
const HYDRATE_ROUNDS = 4;
const HYDRATE_TARGET_MS = 1500;

const MEMORY_SESSIONS = 1000;
/** Of those, sessions that run one turn before they are suspended. */
const MEMORY_TURN_SESSIONS = 5;
/** Concurrent `POST /v1/sessions` while creating them. */
const CREATE_CONCURRENCY = 8;
/** Target: the host holding the suspended sessions uses at most this much more RSS than an empty one. */
const MEMORY_TARGET_BYTES = 50e6;
/** Memory samples per measurement (median), each after a forced GC when the child has `gc`. */
const MEMORY_SAMPLES = 5;

/** `berth plan`'s measurement, and the host the sizing is worked out for. */
const PLAN_TURNS = 5;
const PLAN_TOOL_CALLS = 2;
const PLAN_HOST_RAM = 24 * GIB;

/** Hang bounds, far above what each step takes on 2 busy cores. */
const START_TIMEOUT_MS = 60_000;
const TURN_TIMEOUT_MS = 60_000;
const SETTLE_TIMEOUT_MS = 30_000;
const MEMORY_PHASE_TIMEOUT_MS = 150_000;
/** The subprocesses of one measurement must be gone before the next starts (the kill grace is 3 s). */
const EXIT_GRACE_MS = 10_000;

const MB = 1e6;
const MIB = 1024 ** 2;

/** The tenant every session here runs under (no `--api-keys`). */
const TENANT = 'default';
/** (2)'s host: `(2 GiB - 1 GiB) / 1 GiB` = room for one subprocess. */
const ONE_SLOT = ['--host-ram', '2GiB', '--host-overhead', '1GiB', '--session-ram-ceiling', '1GiB'];

/** Each build turn: two rounds of parallel read-only Bash calls (the CLI runs them at once), then a reply. */
const BUILD_SCENARIO: Scenario = {
  name: 'build',
  match: { userText: 'build step' },
  steps: [
    {
      text: 'Let me look at the workspace.',
      toolUse: Array.from({ length: PARALLEL_TOOL_CALLS }, (_, i) => ({
        name: 'Bash',
        input: { command: `ls -la && wc -c data-${String(i).padStart(2, '0')}.bin` },
      })),
    },
    {
      text: 'And at the file sizes once more.',
      toolUse: Array.from({ length: PARALLEL_TOOL_CALLS }, (_, i) => ({
        name: 'Bash',
        input: { command: `du -k data-${String(i + PARALLEL_TOOL_CALLS).padStart(2, '0')}.bin && pwd` },
      })),
    },
    { text: 'Done with {{userText}}: every data file is where it should be.' },
  ],
};

interface Context {
  root: string;
  model: MockModel;
  log: (line: string) => void;
  /** Servers this process started that are still open; closed whatever happens. */
  servers: Set<BerthServer>;
}

// ---- the run ------------------------------------------------------------------------------------------

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? START_ITERATIONS;
  const machine = describeMachine();
  const loadBefore = os.loadavg()[0]!;
  const credentials = [process.env.AWS_ACCESS_KEY_ID, process.env.AWS_SECRET_ACCESS_KEY] as const;
  // The blob stores take credentials from the AWS SDK's provider chain; s3rver accepts these.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-lifetimes-'));
  const model = await startMockModel({ scenarios: [BUILD_SCENARIO] });
  const ctx: Context = { root, model, log: options.log, servers: new Set() };
  let s3: S3TestServer | undefined;
  const stores: TestStore[] = [];
  let failure: unknown;
  let report: SuiteReport | undefined;
  try {
    options.log('  (1) session start with a warm spare');
    const start = await measureWarmStart(ctx, iterations);
    s3 = await startS3Server();
    const bucket = `berth-bench-${randomUUID().slice(0, 8)}`;
    await s3.createBucket(bucket);
    const blobUrl = (prefix: string): string =>
      `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(s3!.endpoint)}&region=us-east-1&forcePathStyle=true`;
    options.log('  (2) suspend and hydrate');
    const big = await postgresBackend().create();
    stores.push(big);
    const lifecycle = await measureSuspendHydrate(ctx, s3, bucket, big.url, blobUrl('blobs'));
    options.log('  (3) host memory with suspended sessions');
    const many = await postgresBackend().create();
    stores.push(many);
    const memory = await withTimeout(
      measureMemory(ctx, many.url, blobUrl('memory-blobs')),
      MEMORY_PHASE_TIMEOUT_MS,
      'the memory measurement',
    );
    options.log('  (4) berth plan');
    const plan = await measurePlan(ctx);
    await s3.removeBucket(bucket);
    report = buildReport(
      { machine, load: [loadBefore, os.loadavg()[0]!], iterations },
      start,
      lifecycle,
      memory,
      plan,
    );
  } catch (err) {
    failure = err;
  } finally {
    for (const berth of ctx.servers) await berth.close().catch((err: unknown) => (failure ??= err));
    await model.close().catch((err: unknown) => (failure ??= err));
    for (const store of stores) await store.cleanup().catch((err: unknown) => (failure ??= err));
    await s3?.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
    restoreEnv('AWS_ACCESS_KEY_ID', credentials[0]);
    restoreEnv('AWS_SECRET_ACCESS_KEY', credentials[1]);
  }
  if (failure !== undefined || !report) {
    throw failure instanceof Error ? failure : new Error(describeError(failure));
  }
  return report;
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

async function startServer(ctx: Context, dataDir: string, args: readonly string[]): Promise<BerthServer> {
  // Unconfined like the bare SDK it is compared with; the sandbox's own cost is the `sandbox` suite.
  const config = parseServeConfig(
    ['--port', '0', '--data-dir', dataDir, '--model-endpoint', ctx.model.url, '--sandbox', 'none', ...args],
    { PATH: process.env.PATH },
  );
  const berth = await startBerth(config, { telemetry: makeTelemetry() });
  ctx.servers.add(berth);
  return berth;
}

async function stopServer(ctx: Context, berth: BerthServer, how: 'close' | 'drain' = 'close'): Promise<void> {
  ctx.servers.delete(berth);
  if (how === 'drain') {
    const drained = await berth.drain();
    if (drained.failed > 0) throw new Error(`a drain failed to suspend ${drained.failed} session(s)`);
  } else {
    await berth.close();
  }
}

const userMessage = (text: string): SDKUserMessage => ({
  type: 'user',
  message: { role: 'user', content: text },
  parent_tool_use_id: null,
});

// ---- Berth through its API ----------------------------------------------------------------------------

/** One turn through the API, timed at the client and at the session's own events (in this process). */
interface BerthTurn {
  /** POST user.message sent -> `session.status_idle` parsed from the SSE stream. */
  total: number;
  /** POST sent -> the server emitted `session.status_running`. */
  toRunning: number;
  /** `status_running` -> `status_idle` emitted: subprocess (claim, restore, spawn, resume) and the turn. */
  sdkTurn: number;
  /** `status_idle` emitted -> its SSE frame parsed. */
  sseDelivery: number;
}

/** A Berth session driven through the HTTP API, with its events also timestamped as the server emits them. */
class ApiSession {
  private sse: SseReader | undefined;
  private readonly emitted = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    readonly berth: BerthServer,
    readonly id: string,
  ) {}

  static async create(berth: BerthServer, spec: BenchAgent = {}): Promise<ApiSession> {
    const body = await sessionBody(berth.url, spec);
    const { id } = (await api(berth.url, 'POST', '/v1/sessions', body)) as { id: string };
    return new ApiSession(berth, id);
  }

  /** Opens the SSE stream (which loads the session on a host that has not seen it) and subscribes. */
  async open(): Promise<void> {
    this.sse = await SseReader.open(`${this.berth.url}/v1/sessions/${this.id}/events/stream`);
    const session = await this.berth.host.get(TENANT, this.id);
    this.unsubscribe = session.events.subscribe((e) => this.emitted.set(e.type, now()));
  }

  /** When the server emitted the latest event of `type` (this process's clock). */
  emittedAt(type: StoredEvent['type']): number | undefined {
    return this.emitted.get(type);
  }

  async next(type: StoredEvent['type'], timeoutMs = TURN_TIMEOUT_MS): Promise<{ at: number; data: object }> {
    if (!this.sse) throw new Error('open() first');
    return this.sse.next((e) => e.type === type, timeoutMs);
  }

  /** POSTs a user.message and returns when it was sent, without waiting for the turn. */
  async post(content: string): Promise<number> {
    this.emitted.clear();
    const sent = now();
    await api(this.berth.url, 'POST', `/v1/sessions/${this.id}/events`, {
      events: [apiMessage(content)],
    });
    return sent;
  }

  async turn(content: string, timeoutMs = TURN_TIMEOUT_MS): Promise<BerthTurn> {
    if (!this.sse) throw new Error('open() first');
    this.emitted.clear();
    const started = now();
    const posted = api(this.berth.url, 'POST', `/v1/sessions/${this.id}/events`, {
      events: [apiMessage(content)],
    });
    const idle = await this.sse.next((e) => e.type === 'session.status_idle', timeoutMs);
    await posted;
    // A turn that failed must not pass for a fast one.
    const reason = idle.data.stop_reason as { type?: string } | undefined;
    if (reason?.type !== 'end_turn') throw new Error(`a Berth turn ended with ${JSON.stringify(reason)}`);
    const running = this.emitted.get('session.status_running')!;
    const idleEmitted = this.emitted.get('session.status_idle')!;
    return {
      total: idle.at - started,
      toRunning: running - started,
      sdkTurn: idleEmitted - running,
      sseDelivery: idle.at - idleEmitted,
    };
  }

  close(): void {
    this.unsubscribe?.();
    this.sse?.close();
  }

  async delete(): Promise<void> {
    this.close();
    await api(this.berth.url, 'DELETE', `/v1/sessions/${this.id}`);
  }
}

// ---- (1) session start with a warm spare --------------------------------------------------------------

interface WarmBerthStart {
  total: number;
  /** `POST /v1/sessions` -> 200. */
  create: number;
  /** `GET .../events/stream` -> headers. */
  stream: number;
  turn: BerthTurn;
}

interface StartResults {
  berth: WarmBerthStart[];
  cold: Timing[];
  claim: Timing[];
  /**
   * The bare claim doing what Berth's claim does besides its API: the spare mirrors to a `sessionStore`
   * (SQLite, as the Berth server's), and a replacement `prewarm()` starts at the claim (the pool's refill).
   */
  claimLikeBerth: Timing[];
  /**
   * Berth on a host with room for one subprocess, a new server each time: the claimed spare fills the
   * host, so no replacement is started during the turn (the pool cannot refill there at all).
   */
  berthNoRefill: WarmBerthStart[];
  /** `warm_pool` of the Berth server at the end. */
  pool: HostInfo['warm_pool'];
}

type StartKind = 'berth' | 'cold' | 'claim' | 'claimLikeBerth' | 'berthNoRefill';
const START_KINDS: readonly StartKind[] = ['berth', 'cold', 'claim', 'claimLikeBerth', 'berthNoRefill'];

async function measureWarmStart(ctx: Context, iterations: number): Promise<StartResults> {
  const dir = path.join(ctx.root, 'warm');
  const berthDir = path.join(dir, 'berth');
  const bareDir = path.join(dir, 'bare');
  const bareHome = path.join(bareDir, 'home');
  const bareConfig = path.join(bareDir, 'claude-config');
  await Promise.all([mkdir(bareHome, { recursive: true }), mkdir(bareConfig, { recursive: true })]);
  const berth = await startServer(ctx, berthDir, ['--warm-pool', '1']);
  const bareStores = await openStores(`sqlite:${path.join(bareDir, 'transcripts.db')}`);
  const env = buildAgentEnv({
    modelEndpoint: ctx.model.url,
    apiKey: 'sk-berth-bench',
    configDir: bareConfig,
    home: bareHome,
    path: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
  });
  // What core.ts's baseline gets: the isolation Berth applies.
  const bareOptions: Options = { env, settingSources: [] };
  const bareCwd = async (name: string): Promise<string> => {
    const cwd = path.join(bareDir, 'workspaces', name);
    await mkdir(cwd, { recursive: true });
    return cwd;
  };

  /** Nothing of an earlier measurement still runs, and Berth's one spare is parked. */
  const settle = async (): Promise<void> => {
    await assertNoSubprocessesUnder(bareDir, EXIT_GRACE_MS);
    await eventually(
      async () => {
        const pool = (await hostInfo(berth.url)).warm_pool;
        if (pool.parked !== 1 || pool.starting !== 0) return false;
        // The parked spare is the one process left under the server's data dir.
        return (await processesWithEnv('CLAUDE_CONFIG_DIR', berthDir)).length <= 1;
      },
      'a parked spare and nothing else under the Berth server',
      SETTLE_TIMEOUT_MS,
    );
  };

  const berthStart = async (server: BerthServer): Promise<WarmBerthStart> => {
    const claimedBefore = (await hostInfo(server.url)).warm_pool.claimed;
    const watch = stopwatch();
    const session = await ApiSession.create(server);
    const created = watch().ms;
    try {
      await session.open();
      const streaming = watch().ms;
      const turn = await session.turn('hello', START_TIMEOUT_MS);
      const claimed = (await hostInfo(server.url)).warm_pool.claimed;
      if (claimed !== claimedBefore + 1) {
        throw new Error(
          `the Berth start did not claim the parked spare (claimed ${claimedBefore} -> ${claimed})`,
        );
      }
      return { total: streaming + turn.total, create: created, stream: streaming - created, turn };
    } finally {
      await session.delete();
    }
  };

  const berthStartNoRefill = async (i: number): Promise<WarmBerthStart> => {
    const serverDir = path.join(dir, `berth-one-slot-${i}`);
    const server = await startServer(ctx, serverDir, ['--warm-pool', '1', ...ONE_SLOT]);
    try {
      await eventually(
        async () => {
          const pool = (await hostInfo(server.url)).warm_pool;
          return pool.parked === 1 && pool.starting === 0;
        },
        'a parked spare on the one-slot server',
        SETTLE_TIMEOUT_MS,
      );
      const start = await berthStart(server);
      if ((await hostInfo(server.url)).warm_pool.prewarmed !== 1) {
        throw new Error('the one-slot server started a replacement spare');
      }
      return start;
    } finally {
      await stopServer(ctx, server);
      await assertNoSubprocessesUnder(serverDir, EXIT_GRACE_MS);
    }
  };

  const coldStart = async (i: number): Promise<Timing> => {
    const input = new InputQueue<SDKUserMessage>();
    const cwd = await bareCwd(`cold-${i}`);
    const watch = stopwatch();
    const q = query({ prompt: input, options: { ...bareOptions, cwd } });
    try {
      input.push(userMessage('hello'));
      await untilResult(q[Symbol.asyncIterator](), 'a cold query()', START_TIMEOUT_MS);
      return watch();
    } finally {
      input.end();
      q.close();
    }
  };

  const claimStart = async (i: number, likeBerth: boolean): Promise<Timing> => {
    const cwd = await bareCwd(`${likeBerth ? 'claim-like-berth' : 'claim'}-${i}`);
    const options: Options = likeBerth
      ? { ...bareOptions, sessionStore: bareStores.transcriptStore }
      : bareOptions;
    const spare = await withTimeout(prewarm({ options }), START_TIMEOUT_MS, 'a bare prewarm()');
    const claimed = spare.claimed.then(
      () => undefined,
      (err: unknown) => err,
    );
    const input = new InputQueue<SDKUserMessage>();
    let replacement: Promise<SpareProcess> | undefined;
    const watch = stopwatch();
    const q = spare.claim({ prompt: input, options: { cwd } });
    if (likeBerth) {
      // As WarmPool.take: the replacement starts on the next turn of the event loop.
      replacement = new Promise<void>((resolve) => setImmediate(resolve)).then(() => prewarm({ options }));
    }
    try {
      input.push(userMessage('hello'));
      await untilResult(q[Symbol.asyncIterator](), 'a bare claim', START_TIMEOUT_MS);
      const timing = watch();
      const refused = await claimed;
      if (refused !== undefined) throw new Error(`the bare claim was refused: ${describeError(refused)}`);
      return timing;
    } finally {
      input.end();
      q.close();
      if (replacement) {
        const other = await withTimeout(replacement, START_TIMEOUT_MS, 'a replacement prewarm()');
        other.close();
      }
    }
  };

  const results: StartResults = {
    berth: [],
    cold: [],
    claim: [],
    claimLikeBerth: [],
    berthNoRefill: [],
    pool: (await hostInfo(berth.url)).warm_pool,
  };
  try {
    for (let i = 0; i <= iterations; i++) {
      const label = i === 0 ? 'warm-up' : `${i}/${iterations}`;
      const order = START_KINDS.map((_, k) => START_KINDS[(i + k) % START_KINDS.length]!);
      const measured: Partial<Record<StartKind, number>> = {};
      for (const kind of order) {
        await settle();
        let took: number;
        if (kind === 'berth' || kind === 'berthNoRefill') {
          const b = kind === 'berth' ? await berthStart(berth) : await berthStartNoRefill(i);
          took = b.total;
          if (i > 0) results[kind].push(b);
        } else {
          const t = kind === 'cold' ? await coldStart(i) : await claimStart(i, kind === 'claimLikeBerth');
          took = t.ms;
          if (i > 0) results[kind].push(t);
        }
        measured[kind] = took;
      }
      ctx.log(
        `    start ${label}: berth ${ms(measured.berth!)} ms, cold ${ms(measured.cold!)} ms, ` +
          `claim ${ms(measured.claim!)} ms, claim like Berth ${ms(measured.claimLikeBerth!)} ms, ` +
          `berth without refill ${ms(measured.berthNoRefill!)} ms`,
      );
    }
    results.pool = (await hostInfo(berth.url)).warm_pool;
  } finally {
    await stopServer(ctx, berth);
    await bareStores.close();
  }
  await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
  return results;
}

// ---- (2) suspend and hydrate --------------------------------------------------------------------------

interface SuspendMeasurement {
  /** The other session's `user.message` emitted -> this one's `status_suspended` emitted (server side). */
  total: number;
  /** ...-> the session's subprocess gone from /proc. */
  processGone: number;
  /** POST sent -> `status_suspended` parsed from the SSE stream (client side). */
  client: number;
}

interface LifecycleResults {
  /** Transcript entries in the store, as `load` returned them, when the session was first suspended... */
  entriesAtSuspend: number;
  /** ...and when the first new host hydrated it. */
  entriesAtHydrate: number;
  buildTurns: number;
  buildMs: number;
  workspaceBytes: number;
  /** The size of the snapshot archive in the bucket. */
  snapshotBytes: number;
  suspend: SuspendMeasurement[];
  /** `snapshotWorkspace()` of the same files to the same bucket, alone. */
  snapshotAlone: number[];
  /** `tar -czf` of the same files, then one PutObject. */
  snapshotFloor: number[];
  /** A bare query()'s stdin ended after its turn -> its message stream ends (the subprocess exited). */
  bareEnd: number[];
  hydrate: BerthTurn[];
  /** GET events/stream -> headers on the new host, before the message: it loads the session record. */
  hydrateStream: number[];
  fresh: BerthTurn[];
  restoreAlone: number[];
  /** GetObject to a file, then `tar -xzf`. */
  restoreFloor: number[];
  /** The transcript store's own `load` of the transcript (median of 5). */
  loadMs: number;
}

const execFileAsync = promisify(execFile);

async function measureSuspendHydrate(
  ctx: Context,
  s3: S3TestServer,
  bucket: string,
  storeUrl: string,
  blobUrl: string,
): Promise<LifecycleResults> {
  const dir = path.join(ctx.root, 'lifecycle');
  const template = path.join(dir, 'template');
  await mkdir(template, { recursive: true });
  const files = Array.from({ length: WORKSPACE_FILES }, (_, i) => ({
    name: `data-${String(i).padStart(2, '0')}.bin`,
    data: randomBytes(WORKSPACE_FILE_BYTES),
  }));
  for (const f of files) await writeFile(path.join(template, f.name), f.data);
  const workspaceBytes = WORKSPACE_FILES * WORKSPACE_FILE_BYTES;

  const shared = ['--store', storeUrl, '--blob-store', blobUrl, '--warm-pool', '0', '--idle-timeout', '0'];
  let stores: Stores | undefined;
  let blob: BlobStore | undefined;
  try {
    stores = await openStores(storeUrl);
    blob = await openBlobStore(blobUrl, dir);
    const transcript = stores.transcriptStore;
    const registry = stores.registry;

    // The first host, with room for one subprocess: the big session A and the session B that evicts it.
    const first = await startServer(ctx, path.join(dir, 'host-0'), [...shared, ...ONE_SLOT]);
    const a = await ApiSession.create(first, { pattern: 'hybrid' });
    const b = await ApiSession.create(first, { pattern: 'hybrid' });
    const aSession = await first.host.get(TENANT, a.id);
    const sdkSessionId = aSession.snapshot.sdkSessionId;
    const key = { projectKey: TENANT, sessionId: sdkSessionId };
    const countEntries = async (): Promise<number> => (await transcript.load(key))?.length ?? 0;
    // The 10 MiB go straight onto the disk of the session's workspace, as an agent's files would be.
    const cwd = first.host.pathsFor({ tenant: TENANT, id: a.id }).cwd;
    await mkdir(cwd, { recursive: true });
    for (const f of files) await writeFile(path.join(cwd, f.name), f.data);

    let buildTurns = 0;
    const built = now();
    await a.open();
    await b.open();
    while ((await countEntries()) < TRANSCRIPT_ENTRIES) {
      if (buildTurns >= BUILD_MAX_TURNS)
        throw new Error(`${BUILD_MAX_TURNS} turns left fewer entries than wanted`);
      await a.turn(`build step ${buildTurns++}`);
    }
    const buildMs = now() - built;
    ctx.log(`    built ${buildTurns} turns in ${ms(buildMs)} ms`);

    const suspend: SuspendMeasurement[] = [];
    let entriesAtSuspend = 0;
    for (let round = 0; round < SUSPEND_ROUNDS; round++) {
      // A runs (resuming after the previous round's suspension, which suspends B in turn), then idles.
      if (round > 0) await a.turn(`resume check ${round}`);
      const pid = (await first.host.get(TENANT, a.id)).processInfo?.tree?.leaderPid;
      if (pid === undefined) throw new Error('the big session has no subprocess to suspend');
      const gone = watchExit(pid);
      let accepted = 0;
      const unsubscribe = (await first.host.get(TENANT, b.id)).events.subscribe((e) => {
        if (e.type === 'user.message') accepted = now();
      });
      const sent = await b.post(`evict ${round}`).finally(unsubscribe);
      const suspended = await a.next('session.status_suspended');
      const emitted = a.emittedAt('session.status_suspended')!;
      const reason = (suspended.data as { reason?: string }).reason;
      if (reason !== 'capacity') throw new Error(`the big session was suspended for ${reason}`);
      suspend.push({
        total: emitted - accepted,
        processGone: (await gone) - accepted,
        client: suspended.at - sent,
      });
      await b.next('session.status_idle');
      if (round === 0) entriesAtSuspend = await countEntries();
      ctx.log(`    suspend ${round + 1}/${SUSPEND_ROUNDS}: ${ms(suspend.at(-1)!.total)} ms`);
    }
    const current = (await blob.getBuffer(`workspaces/${TENANT}/${a.id}/current`))?.toString().trim();
    const archive = current && (await blob.openRead(`workspaces/${TENANT}/${a.id}/${current}.tar.gz`));
    if (!archive) throw new Error('the suspended session has no snapshot in the bucket');
    (archive.stream as Readable).destroy();
    const snapshotBytes = archive.size;
    a.close();
    await b.delete();
    await stopServer(ctx, first);
    await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);

    // The same work, alone: Berth's snapshot code, the floor, and a bare subprocess ending.
    const snapshotAlone: number[] = [];
    const snapshotFloor: number[] = [];
    const restoreAlone: number[] = [];
    const restoreFloor: number[] = [];
    const bareEnd: number[] = [];
    const scratch = path.join(dir, 'scratch');
    await mkdir(scratch, { recursive: true });
    for (let i = 0; i < SUSPEND_ROUNDS; i++) {
      const blobKey = `bench/alone-${i}.tar.gz`;
      let t = now();
      await snapshotWorkspace(template, blob, blobKey, { maxBytes: GIB, tmpDir: scratch });
      snapshotAlone.push(now() - t);
      const objectKey = `floor/workspace-${i}.tar.gz`;
      const tarball = path.join(scratch, `floor-${i}.tar.gz`);
      t = now();
      await execFileAsync('tar', ['-czf', tarball, '-C', template, '.']);
      const size = (await stat(tarball)).size;
      await s3.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: objectKey,
          Body: createReadStream(tarball),
          ContentLength: size,
        }),
      );
      snapshotFloor.push(now() - t);
      await rm(tarball);

      const into = path.join(scratch, `restore-${i}`);
      t = now();
      await restoreWorkspace(into, blob, blobKey, { tmpDir: scratch });
      restoreAlone.push(now() - t);
      const floorInto = path.join(scratch, `floor-restore-${i}`);
      t = now();
      const got = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey }));
      await pipeline(got.Body as Readable, createWriteStream(tarball));
      await mkdir(floorInto);
      await execFileAsync('tar', ['-xzf', tarball, '-C', floorInto]);
      restoreFloor.push(now() - t);
      await checkWorkspace(into, files.length, workspaceBytes);
      await checkWorkspace(floorInto, files.length, workspaceBytes);
      await Promise.all([into, floorInto, tarball].map((p) => rm(p, { recursive: true, force: true })));
      await blob.delete(blobKey);

      bareEnd.push(await bareSubprocessEnd(ctx, path.join(dir, 'bare'), i));
    }
    await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = now();
      await transcript.load(key);
      loads.push(now() - t);
    }

    // Each round: a new host (new data dir, same store and bucket) hydrates A and starts a fresh session.
    const hydrate: BerthTurn[] = [];
    const hydrateStream: number[] = [];
    const fresh: BerthTurn[] = [];
    let entriesAtHydrate = 0;
    for (let round = 0; round < HYDRATE_ROUNDS; round++) {
      const record = await registry.get({ tenant: TENANT, id: a.id });
      if (record?.status !== 'suspended')
        throw new Error(`the big session is ${record?.status}, not suspended`);
      if (round === 0) entriesAtHydrate = await countEntries();
      const host = await startServer(ctx, path.join(dir, `host-${round + 1}`), shared);
      const question = `hydrate check ${round}`;
      const resume = async (): Promise<void> => {
        const session = new ApiSession(host, a.id);
        const t = now();
        await session.open();
        hydrateStream.push(now() - t);
        try {
          hydrate.push(await session.turn(question));
        } finally {
          session.close();
        }
        // A resume that loaded nothing, or restored nothing, would be fast for the wrong reason.
        const request = ctx.model.requests.findLast((r) => r.isMain && r.userText === question);
        if (!JSON.stringify(request?.messages ?? []).includes('build step 0')) {
          throw new Error('the hydrated turn did not carry the earlier turns');
        }
        await checkWorkspace(
          host.host.pathsFor({ tenant: TENANT, id: a.id }).cwd,
          files.length,
          workspaceBytes,
        );
      };
      const startFresh = async (): Promise<void> => {
        const session = await ApiSession.create(host, { pattern: 'hybrid' });
        try {
          await session.open();
          fresh.push(await session.turn(`fresh check ${round}`));
        } finally {
          await session.delete();
        }
      };
      try {
        await alternate(round, resume, startFresh);
        if (round === HYDRATE_ROUNDS - 1) {
          await api(host.url, 'DELETE', `/v1/sessions/${a.id}`);
          await stopServer(ctx, host);
        } else {
          // Suspends A again (a new snapshot), so the next host hydrates a suspended session too.
          await stopServer(ctx, host, 'drain');
        }
      } finally {
        if (ctx.servers.has(host)) await stopServer(ctx, host);
      }
      await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
      ctx.log(
        `    hydrate ${round + 1}/${HYDRATE_ROUNDS}: ${ms(hydrate.at(-1)!.total)} ms, fresh ${ms(fresh.at(-1)!.total)} ms`,
      );
    }
    await rm(dir, { recursive: true, force: true });
    return {
      entriesAtSuspend,
      entriesAtHydrate,
      buildTurns,
      buildMs,
      workspaceBytes,
      snapshotBytes,
      suspend,
      snapshotAlone,
      snapshotFloor,
      bareEnd,
      hydrate,
      hydrateStream,
      fresh,
      restoreAlone,
      restoreFloor,
      loadMs: median(loads),
    };
  } finally {
    await blob?.close();
    await stores?.close();
  }
}

/** Resolves with the time (`now()`) the process left /proc or became a zombie, polling every 5 ms. */
async function watchExit(pid: number): Promise<number> {
  const deadline = now() + SETTLE_TIMEOUT_MS;
  while (now() < deadline) {
    try {
      const line = await readFile(`/proc/${pid}/stat`, 'utf8');
      if (line.slice(line.lastIndexOf(')') + 2).startsWith('Z')) return now();
    } catch {
      return now();
    }
    await sleep(5);
  }
  throw new Error(`process ${pid} did not exit within ${SETTLE_TIMEOUT_MS} ms`);
}

/** Throws unless `dir` holds `files` regular files of `bytes` in all (the restored workspace). */
async function checkWorkspace(dir: string, files: number, bytes: number): Promise<void> {
  let count = 0;
  let total = 0;
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.bin')) continue;
    count += 1;
    total += (await stat(path.join(dir, name))).size;
  }
  if (count !== files || total !== bytes) {
    throw new Error(`${dir} holds ${count} data files of ${total} bytes, not ${files} of ${bytes}`);
  }
}

/** A bare query() runs one turn; then its stdin is ended and its message stream read to the end, timed. */
async function bareSubprocessEnd(ctx: Context, dir: string, i: number): Promise<number> {
  const cwd = path.join(dir, 'workspaces', `end-${i}`);
  const home = path.join(dir, 'home');
  const configDir = path.join(dir, 'claude-config');
  await Promise.all([cwd, home, configDir].map((d) => mkdir(d, { recursive: true })));
  const env = buildAgentEnv({
    modelEndpoint: ctx.model.url,
    apiKey: 'sk-berth-bench',
    configDir,
    home,
    path: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
  });
  const input = new InputQueue<SDKUserMessage>();
  const q = query({ prompt: input, options: { cwd, env, settingSources: [] } });
  try {
    const messages = q[Symbol.asyncIterator]();
    input.push(userMessage('hello'));
    await untilResult(messages, 'a bare turn', START_TIMEOUT_MS);
    const t = now();
    input.end();
    for (;;) {
      const next = await withTimeout(messages.next(), EXIT_GRACE_MS, 'a bare subprocess ending');
      if (next.done) return now() - t;
    }
  } finally {
    q.close();
  }
}

// ---- (3) host memory with suspended sessions ----------------------------------------------------------

interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

interface MemoryResults {
  /** Whether the child had `gc()` (it was started with --expose-gc). */
  gc: boolean;
  empty: MemorySample;
  full: MemorySample;
  /** The host's own view when `full` was sampled. */
  info: HostInfo;
  createMs: number;
}

type ToChild = { type: 'sample' } | { type: 'stop' };
type FromChild =
  | { type: 'ready'; url: string; gc: boolean }
  | { type: 'sample'; memory: MemorySample }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

const MEMORY_CHILD_FLAG = '--lifetimes-memory-child';

/** Talks to the memory child over IPC, one request at a time. */
class ChildLink {
  private readonly inbox: FromChild[] = [];
  private wake: (() => void) | undefined;
  private exited = false;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromChild) => {
      this.inbox.push(m);
      this.wake?.();
    });
    child.once('exit', () => {
      this.exited = true;
      this.wake?.();
    });
  }

  async receive<T extends FromChild['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FromChild, { type: T }>> {
    const deadline = now() + timeoutMs;
    for (;;) {
      const index = this.inbox.findIndex((m) => m.type === type || m.type === 'error');
      if (index >= 0) {
        const m = this.inbox.splice(index, 1)[0]!;
        if (m.type === 'error') throw new Error(`the memory child failed: ${m.message}`);
        return m as Extract<FromChild, { type: T }>;
      }
      if (this.exited) throw new Error(`the memory child exited before sending ${type}`);
      const left = deadline - now();
      if (left <= 0) throw new Error(`the memory child sent no ${type} within ${timeoutMs} ms`);
      await withTimeout(
        new Promise<void>((resolve) => (this.wake = resolve)),
        left,
        `the memory child's ${type}`,
      )
        .catch(() => undefined)
        .finally(() => (this.wake = undefined));
    }
  }

  send(message: ToChild): void {
    this.child.send(message);
  }

  async sample(): Promise<MemorySample> {
    this.send({ type: 'sample' });
    return (await this.receive('sample', SETTLE_TIMEOUT_MS)).memory;
  }
}

async function measureMemory(ctx: Context, storeUrl: string, blobUrl: string): Promise<MemoryResults> {
  const dataDir = path.join(ctx.root, 'memory');
  const args = [
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--model-endpoint',
    ctx.model.url,
    '--store',
    storeUrl,
    '--blob-store',
    blobUrl,
    '--pattern',
    'hybrid',
    // Every quiet session is suspended one second after its last activity, a session that never ran too.
    '--idle-timeout',
    '1s',
    '--warm-pool',
    '0',
    // Unconfined like the other measurements; the sandbox's own cost is the `sandbox` suite.
    '--sandbox',
    'none',
  ];
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), MEMORY_CHILD_FLAG],
    {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: {
        PATH: process.env.PATH ?? '',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        BERTH_BENCH_CHILD_ARGS: JSON.stringify(args),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  const forward = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) ctx.log(`    [memory child] ${line}`);
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const link = new ChildLink(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const { url, gc } = await link.receive('ready', SETTLE_TIMEOUT_MS);

    // A warm-up session runs one turn and is deleted: the code paths of a turn are loaded, nothing is held.
    const warm = await createSessionAt(url);
    await turnAt(url, warm, 'warm up');
    await api(url, 'DELETE', `/v1/sessions/${warm}`);
    await eventually(
      async () => {
        const info = await hostInfo(url);
        return info.sessions.loaded === 0 && info.slots.used === 0;
      },
      'an empty host',
      SETTLE_TIMEOUT_MS,
    );
    await assertNoSubprocessesUnder(dataDir, EXIT_GRACE_MS);
    const empty = await link.sample();
    ctx.log(`    empty host: RSS ${mb(empty.rss)} MB, heap used ${mb(empty.heapUsed)} MB`);

    const created = now();
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CREATE_CONCURRENCY }, async () => {
        for (let i = next++; i < MEMORY_SESSIONS; i = next++) ids[i] = await createSessionAt(url);
      }),
    );
    const createMs = now() - created;
    for (const id of ids.slice(0, MEMORY_TURN_SESSIONS)) await turnAt(url, id, 'hello before a suspension');
    let info = await hostInfo(url);
    await eventually(
      async () => {
        info = await hostInfo(url);
        return info.sessions.suspended === MEMORY_SESSIONS && info.slots.used === 0;
      },
      `${MEMORY_SESSIONS} suspended sessions`,
      SETTLE_TIMEOUT_MS,
    );
    await assertNoSubprocessesUnder(dataDir, EXIT_GRACE_MS);
    const full = await link.sample();
    ctx.log(`    ${MEMORY_SESSIONS} suspended: RSS ${mb(full.rss)} MB, heap used ${mb(full.heapUsed)} MB`);
    link.send({ type: 'stop' });
    await link.receive('stopped', SETTLE_TIMEOUT_MS);
    await withTimeout(exited, EXIT_GRACE_MS, 'the memory child exiting');
    return { gc, empty, full, info, createMs };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

async function createSessionAt(url: string): Promise<string> {
  return createSession(url);
}

async function turnAt(url: string, id: string, content: string): Promise<void> {
  const sse = await SseReader.open(`${url}/v1/sessions/${id}/events/stream`);
  try {
    await api(url, 'POST', `/v1/sessions/${id}/events`, { events: [apiMessage(content)] });
    const idle = await sse.next((e) => e.type === 'session.status_idle', TURN_TIMEOUT_MS);
    const reason = idle.data.stop_reason as { type?: string } | undefined;
    if (reason?.type !== 'end_turn') throw new Error(`a turn ended with ${JSON.stringify(reason)}`);
  } finally {
    sse.close();
  }
}

/**
 * The memory child: a Berth server with the parent's flags, answering `sample` with its own memory (the
 * median of a few samples, each after a forced GC) and `stop` by closing the server and exiting. It exits
 * too when the parent goes away.
 */
async function memoryChild(): Promise<void> {
  const send = (m: FromChild): void => void process.send?.(m);
  const args = JSON.parse(process.env.BERTH_BENCH_CHILD_ARGS ?? '[]') as string[];
  const berth = await startBerth(parseServeConfig(args, { PATH: process.env.PATH }), {
    telemetry: makeTelemetry({ log: await createLogger({ format: 'json', level: 'warn' }) }),
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  const stop = async (): Promise<void> => {
    await berth.close();
    send({ type: 'stopped' });
    process.disconnect?.();
  };
  process.on('disconnect', () => void berth.close().finally(() => process.exit(0)));
  process.on('message', (m: ToChild) => {
    if (m.type === 'stop') {
      stop().catch((err: unknown) => send({ type: 'error', message: describeError(err) }));
      return;
    }
    void (async () => {
      const samples: MemorySample[] = [];
      for (let i = 0; i < MEMORY_SAMPLES; i++) {
        if (gc) {
          gc();
          // A second pass collects what the first one's finalizers released.
          await sleep(20);
          gc();
        }
        await sleep(gc ? 50 : 200);
        const u = process.memoryUsage();
        samples.push({
          rss: u.rss,
          heapUsed: u.heapUsed,
          heapTotal: u.heapTotal,
          external: u.external,
          arrayBuffers: u.arrayBuffers,
        });
      }
      const pick = (k: keyof MemorySample): number => median(samples.map((s) => s[k]));
      send({
        type: 'sample',
        memory: {
          rss: pick('rss'),
          heapUsed: pick('heapUsed'),
          heapTotal: pick('heapTotal'),
          external: pick('external'),
          arrayBuffers: pick('arrayBuffers'),
        },
      });
    })();
  });
  send({ type: 'ready', url: berth.url, gc: gc !== undefined });
}

// ---- (4) berth plan -----------------------------------------------------------------------------------

interface PlanResults {
  result: PlanResult;
  sizing: SizingPlan;
}

async function measurePlan(ctx: Context): Promise<PlanResults> {
  const result = await measureSessionRam({
    turns: PLAN_TURNS,
    toolCallsPerTurn: PLAN_TOOL_CALLS,
    tmpDir: ctx.root,
    agentPath: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    telemetry: makeTelemetry(),
  });
  return { result, sizing: planSizing(result.peakMaxBytes, { hostRamBytes: PLAN_HOST_RAM }) };
}

// ---- the report ---------------------------------------------------------------------------------------

const HEADER: Row = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
/** Rows that split the row above them. */
const PART = '↳ ';

const mb = (bytes: number): string => (bytes / MB).toFixed(1);
const mib = (bytes: number): string => `${Math.round(bytes / MIB)} MiB`;
const signedMb = (bytes: number): string => `${bytes >= 0 ? '+' : ''}${mb(bytes)}`;
const count = (value: number): string => value.toLocaleString('en-US');
const p90 = (values: readonly number[]): number => percentile(values, 90);

interface RunInfo {
  machine: Machine;
  load: [number, number];
  iterations: number;
}

function buildReport(
  info: RunInfo,
  start: StartResults,
  life: LifecycleResults,
  memory: MemoryResults,
  plan: PlanResults,
): SuiteReport {
  const { machine, load, iterations } = info;
  const loadLine = `load average (1 min) ${load[0].toFixed(1)} at the start, ${load[1].toFixed(1)} at the end`;

  // (1)
  const berthTotal = start.berth.map((b) => b.total);
  const cold = start.cold.map((t) => t.ms);
  const claim = start.claim.map((t) => t.ms);
  const likeBerth = start.claimLikeBerth.map((t) => t.ms);
  const noRefill = start.berthNoRefill.map((b) => b.total);
  const apiMs = median(start.berth.map((b) => b.total - b.turn.sdkTurn));
  const vsCold = median(cold) / median(berthTotal);
  const vsClaim = median(berthTotal) / median(claim);
  const startRows: Row[] = [
    statsRow('bare SDK: cold query() -> result', cold),
    statsRow('bare SDK: spare.claim() -> result (spare parked)', claim),
    statsRow('bare SDK: the same, with a sessionStore and a replacement prewarm()', likeBerth),
    statsRow('Berth --warm-pool 1: create, stream, message -> status_idle', berthTotal),
    statsRow(
      `${PART}POST /v1/sessions -> 200`,
      start.berth.map((b) => b.create),
    ),
    statsRow(
      `${PART}GET events/stream -> headers`,
      start.berth.map((b) => b.stream),
    ),
    statsRow(
      `${PART}POST sent -> status_running emitted`,
      start.berth.map((b) => b.turn.toRunning),
    ),
    statsRow(
      `${PART}status_running -> status_idle emitted (claim + turn)`,
      start.berth.map((b) => b.turn.sdkTurn),
    ),
    statsRow(
      `${PART}status_idle emitted -> received on SSE`,
      start.berth.map((b) => b.turn.sseDelivery),
    ),
    statsRow('Berth, one-slot host (no replacement spare started): the same', noRefill),
    statsRow(
      `${PART}status_running -> status_idle emitted (claim + turn)`,
      start.berthNoRefill.map((b) => b.turn.sdkTurn),
    ),
  ];
  const startRatioRows: Row[] = [
    ['cold query() / Berth warm', ratio(vsCold), ratio(p90(cold) / p90(berthTotal))],
    ['Berth warm / bare claim', ratio(vsClaim), ratio(p90(berthTotal) / p90(claim))],
    [
      'cold query() / bare claim (the SDK alone)',
      ratio(median(cold) / median(claim)),
      ratio(p90(cold) / p90(claim)),
    ],
    [
      'Berth warm / bare claim with a sessionStore and a replacement prewarm()',
      ratio(median(berthTotal) / median(likeBerth)),
      ratio(p90(berthTotal) / p90(likeBerth)),
    ],
    [
      'Berth, one-slot host (no replacement spare) / bare claim',
      ratio(median(noRefill) / median(claim)),
      ratio(p90(noRefill) / p90(claim)),
    ],
  ];

  // (2)
  const suspendTotal = life.suspend.map((s) => s.total);
  const floorParts = life.snapshotFloor.map((f, i) => f + life.bareEnd[i]!);
  const suspendRows: Row[] = [
    statsRow('Berth: message for another session accepted -> status_suspended emitted', suspendTotal),
    statsRow(
      `${PART}-> the subprocess gone (stdin closed, CLI exits)`,
      life.suspend.map((s) => s.processGone),
    ),
    statsRow(
      `${PART}subprocess gone -> status_suspended (flush, snapshot, registry)`,
      life.suspend.map((s) => s.total - s.processGone),
    ),
    statsRow(
      '(client: POST sent -> status_suspended received on SSE)',
      life.suspend.map((s) => s.client),
    ),
    statsRow("Berth's snapshotWorkspace() alone, same files, same bucket", life.snapshotAlone),
    statsRow('floor: tar -czf + PutObject', life.snapshotFloor),
    statsRow('bare SDK: end stdin of an idle query() -> its stream ends', life.bareEnd),
    statsRow('floor + bare SDK end (the baseline)', floorParts),
  ];
  const suspendRatio = median(suspendTotal) / median(floorParts);

  const hydrateTotal = life.hydrate.map((t) => t.total);
  const freshTotal = life.fresh.map((t) => t.total);
  const hydrateMedian = median(hydrateTotal);
  const hydrateRows: Row[] = [
    statsRow('Berth, new host: POST user.message -> status_idle (hydrated)', hydrateTotal),
    statsRow(
      `${PART}POST sent -> status_running emitted`,
      life.hydrate.map((t) => t.toRunning),
    ),
    statsRow(
      `${PART}status_running -> status_idle emitted (restore, spawn, resume, turn)`,
      life.hydrate.map((t) => t.sdkTurn),
    ),
    statsRow('(before it: GET events/stream -> headers, loads the record)', life.hydrateStream),
    statsRow("baseline: a fresh session's first turn on the same host", freshTotal),
    statsRow("Berth's restoreWorkspace() alone, same snapshot", life.restoreAlone),
    statsRow('floor: GetObject + tar -xzf', life.restoreFloor),
    [`transcript store load (${count(life.entriesAtHydrate)} entries)`, '5', ms(life.loadMs), '', ''],
  ];
  const hydrateDiff = hydrateMedian - median(freshTotal);

  // (3)
  const rssDiff = memory.full.rss - memory.empty.rss;
  const heapDiff = memory.full.heapUsed - memory.empty.heapUsed;
  const memoryHeader: Row = [
    'Berth server process',
    'sessions in memory',
    'RSS MB',
    'heap used MB',
    'external MB',
  ];
  const memoryRows: Row[] = [
    [
      'empty host (after one session ran and was deleted)',
      '0',
      mb(memory.empty.rss),
      mb(memory.empty.heapUsed),
      mb(memory.empty.external),
    ],
    [
      `${count(MEMORY_SESSIONS)} suspended sessions`,
      `${count(memory.info.sessions.loaded)} (${count(memory.info.sessions.suspended)} suspended)`,
      mb(memory.full.rss),
      mb(memory.full.heapUsed),
      mb(memory.full.external),
    ],
    [
      'difference',
      '',
      signedMb(rssDiff),
      signedMb(heapDiff),
      signedMb(memory.full.external - memory.empty.external),
    ],
    [
      'per session (KB)',
      '',
      (rssDiff / MEMORY_SESSIONS / 1e3).toFixed(1),
      (heapDiff / MEMORY_SESSIONS / 1e3).toFixed(1),
      '',
    ],
  ];

  // (4)
  const s = plan.sizing;
  const r = plan.result;
  const planHeader: Row = [
    '',
    'per-session ceiling',
    `agents on a ${Math.round(PLAN_HOST_RAM / GIB)} GiB host`,
  ];
  const planRows: Row[] = [
    [
      `the hosting guide's default (baseline)`,
      mib(DEFAULT_SESSION_CEILING),
      String(s.withDefaultCeiling.agentsPerHost),
    ],
    [
      `berth plan: measured peak ${mib(s.peakBytes)} + ${s.headroomPercent}%, rounded up`,
      mib(s.suggestedCeilingBytes),
      String(s.withSuggestedCeiling.agentsPerHost),
    ],
    [
      'ratio (measured / default)',
      ratio(s.suggestedCeilingBytes / DEFAULT_SESSION_CEILING),
      ratio(s.withSuggestedCeiling.agentsPerHost / s.withDefaultCeiling.agentsPerHost),
    ],
  ];
  const planDetail =
    `${r.turns} turns of ${r.toolCallsPerTurn} Bash calls, sampled every ${r.sampleIntervalMs} ms (${r.sessions[0]?.samples ?? 0} samples): ` +
    `peak ${mib(r.peakMaxBytes)}, after the first turn ${mib(r.afterFirstTurnMaxBytes)}, after the last ${mib(r.sessions[0]?.afterLastTurnBytes ?? 0)}; ` +
    `the measuring process peaked at ${mib(r.hostProcessPeakBytes)} RSS; ${(r.durationMs / 1000).toFixed(1)} s of turns`;

  // Targets
  const passCold = vsCold >= START_TARGET_VS_COLD;
  const passClaim = vsClaim <= START_TARGET_VS_CLAIM;
  const passHydrate = hydrateMedian < HYDRATE_TARGET_MS;
  const passMemory = rssDiff < MEMORY_TARGET_BYTES;
  const mark = (pass: boolean): string => (pass ? 'pass' : 'MISS');
  const targetHeader: Row = ['target', 'measured', ''];
  const targetRows: Row[] = [
    [
      `warm session start >= ${START_TARGET_VS_COLD}x faster than a cold query() (medians)`,
      ratio(vsCold),
      mark(passCold),
    ],
    [
      `warm session start <= ${START_TARGET_VS_CLAIM}x a bare prewarm + claim (medians)`,
      ratio(vsClaim),
      mark(passClaim),
    ],
    [
      `hydrate (${count(life.entriesAtHydrate)} entries, ${mib(life.workspaceBytes)}) < ${HYDRATE_TARGET_MS} ms incl. the subprocess (median)`,
      `${ms(hydrateMedian)} ms (fresh first turn ${ms(median(freshTotal))} ms, ${signedMs(hydrateDiff)} ms)`,
      mark(passHydrate),
    ],
    [
      `${count(MEMORY_SESSIONS)} suspended sessions < ${MEMORY_TARGET_BYTES / MB} MB above an empty host (RSS)`,
      `${signedMb(rssDiff)} MB (heap ${signedMb(heapDiff)} MB)`,
      mark(passMemory),
    ],
  ];

  const startTitle = `Session start with a warm spare (${iterations} of each, interleaved, after 1 warm-up each)`;
  const suspendTitle = `Suspend (${SUSPEND_ROUNDS} rounds)`;
  const hydrateTitle = `Hydrate on a new host (${HYDRATE_ROUNDS} rounds, each on a new host)`;
  const memoryTitle = `Host memory with ${count(MEMORY_SESSIONS)} suspended sessions`;
  const planTitle = 'Per-session RAM ceiling (berth plan) and capacity';
  const tables: Array<[string, Row, Row[], string[]]> = [
    [startTitle, HEADER, startRows, []],
    ['Session start ratios', ['', 'median', 'p90'], startRatioRows, []],
    [suspendTitle, HEADER, suspendRows, []],
    [hydrateTitle, HEADER, hydrateRows, []],
    [memoryTitle, memoryHeader, memoryRows, []],
    [planTitle, planHeader, planRows, [planDetail]],
    ['Targets', targetHeader, targetRows, []],
  ];
  const text = [
    machineLine(machine),
    loadLine,
    ...tables.flatMap(([title, header, rows, notes]) => ['', title, textTable(header, rows), ...notes]),
    '',
    `suspend / baseline: ${ratio(suspendRatio)}; spares claimed ${start.pool.claimed}, refused ${start.pool.refused}`,
  ].join('\n');

  const notes = {
    start: [
      `One Berth server with \`--warm-pool 1\` (its default). Before every measured start the suite waits`,
      'until `GET /v1/hosts/self` shows the spare parked and nothing else running, and after it checks that',
      '`warm_pool.claimed` grew by one: every Berth start here claimed a spare',
      `(${start.pool.claimed} claimed, ${start.pool.refused} refused over the run). The cold baseline is core.ts's: a`,
      'streaming-input `query()` with the isolation Berth applies (`settingSources: []`, its own',
      '`CLAUDE_CONFIG_DIR` and `HOME`, auto memory off, a fresh cwd). The claim baseline is the SDK alone:',
      '`prewarm()` with the same options, awaited untimed, then `spare.claim({ prompt, options: { cwd } })`',
      'timed to its `result`. Besides its API, a Berth claim does two things the bare claim does not: its',
      'spare mirrors the transcript to a `sessionStore`, and the pool starts the replacement spare (a new',
      'CLI process starting up) the moment the spare is claimed, so on 2 CPUs the claimed turn shares them',
      'with that start-up. The third baseline does both with the bare SDK (a SQLite `sessionStore` as the',
      'Berth server has, and a second `prewarm()` started on the next tick after the claim). The last row',
      'is Berth without the refill: a new server each time, with room for one subprocess (`--host-ram 2GiB',
      '--host-overhead 1GiB --session-ram-ceiling 1GiB`), so that the claimed spare fills it and no',
      'replacement starts. The five kinds are interleaved, their order rotating by iteration.',
    ],
    suspend: [
      `A session with ${count(life.entriesAtSuspend)} transcript entries in the store (${life.buildTurns} build turns of ${2 * PARALLEL_TOOL_CALLS} Bash calls,`,
      `${PARALLEL_TOOL_CALLS} at a time, ${(life.buildMs / 1000).toFixed(1)} s to build) and ${WORKSPACE_FILES} files of ${WORKSPACE_FILE_BYTES / 1024} KiB of random bytes (${mib(life.workspaceBytes)}, the`,
      `archive ${mib(life.snapshotBytes)}) in its workspace, on PostgreSQL (\`--store\`, a fresh schema) and s3rver`,
      '(`--blob-store s3://`, a fresh bucket), both on 127.0.0.1. The host has room for one subprocess',
      '(`--host-ram 2GiB --host-overhead 1GiB --session-ram-ceiling 1GiB`), so a message to a second session',
      'suspends the big one (least recently used). Timed in the server (this process) from the moment that',
      "message is accepted to the big session's `session.status_suspended`; the subprocess's exit is seen by",
      'polling /proc every 5 ms. Each round, the big session first runs one turn (it resumes) so that it',
      'holds a subprocess and unsaved work again. The baseline is the least the same work needs: ending a',
      "bare `query()`'s stdin after a turn until its stream ends, plus `tar -czf` of the same files and one",
      `PutObject of the archive (the two measured apart, ${SUSPEND_ROUNDS} times each, and added).`,
    ],
    hydrate: [
      'Each round starts a new Berth server (new data dir, the same store and bucket; `--warm-pool 0`, so',
      "the baseline starts cold too), opens the suspended session's SSE stream (which loads its record),",
      'and times its next message until `session.status_idle`: the workspace download and unpack, the',
      `subprocess start, the resume from ${count(life.entriesAtHydrate)} stored entries, one turn. The turn's request is checked`,
      'to carry the first build turn, and the restored workspace to hold every file. The baseline is a',
      "fresh session's first message on the same server; the order alternates by round. The server is then",
      'drained, which suspends the session again (a new snapshot) for the next round. Loading a suspended',
      'session starts its workspace download, so the restore overlaps the few milliseconds between the',
      'stream opening and the message; it is still inside the measured time.',
    ],
    memory: [
      'A Berth server in a child process (`node --expose-gc`; the sample is the median of',
      `${MEMORY_SAMPLES} \`process.memoryUsage()\` readings, each after two forced GCs${memory.gc ? '' : ' - this run had no gc(), so no GC was forced'}), PostgreSQL store, s3rver`,
      'blob store, `--pattern hybrid --idle-timeout 1s --warm-pool 0`. "Empty" is after one session ran a',
      `turn and was deleted. Then ${count(MEMORY_SESSIONS)} sessions are created through the API (${CREATE_CONCURRENCY} at a time, ${(memory.createMs / 1000).toFixed(1)} s), the first`,
      `${MEMORY_TURN_SESSIONS} run one turn each, and the idle timeout suspends all of them: each is a \`Session\` object in`,
      "the host's map in state `suspended` with its event stream (the last events kept in memory) and no",
      `subprocess (\`GET /v1/hosts/self\`: ${count(memory.info.sessions.loaded)} loaded, ${count(memory.info.sessions.suspended)} suspended, ${memory.info.slots.used} slots used). The ${count(MEMORY_SESSIONS - MEMORY_TURN_SESSIONS)} that`,
      'never ran had nothing to snapshot; the 5 that ran were snapshotted. RSS includes what the allocator',
      'kept from the burst of requests; "heap used" is the live JavaScript objects. MB = 10^6 bytes.',
    ],
    plan: [
      `\`measureSessionRam({ turns: ${PLAN_TURNS}, toolCallsPerTurn: ${PLAN_TOOL_CALLS} })\`, what \`berth plan\` runs: one session on a`,
      'throwaway host, each Bash call writing 64 KiB of random data, listing the workspace and printing',
      "part of the file, the RSS of the session's whole subprocess tree sampled meanwhile. `planSizing` on a",
      `${Math.round(PLAN_HOST_RAM / GIB)} GiB host with the default 1 GiB overhead. ${planDetail}.`,
    ],
  };

  const markdown = [
    '## Lifetimes: warm starts, suspend and hydrate, suspended sessions in memory, sizing',
    '',
    `Measured on ${machineLine(machine)}; ${loadLine}${load[0] > machine.cpus || load[1] > machine.cpus ? ` (above ${machine.cpus}: this suite's own subprocesses count too, and other work may have shared the CPUs)` : ''}.`,
    'Source: `bench/lifetimes.ts`. Every Berth server but the memory one runs in the benchmark process, with',
    'the real `claude` CLI and the scripted model; PostgreSQL and s3rver run on this machine (127.0.0.1).',
    '',
    `### ${startTitle}`,
    '',
    ...notes.start,
    '',
    markdownTable(HEADER, startRows),
    '',
    markdownTable(['', 'median', 'p90'], startRatioRows),
    '',
    `Where the time goes (medians): Berth's warm start is ${signedMs(median(berthTotal) - median(claim))} ms over the bare claim; the bare`,
    `claim with a \`sessionStore\` and a replacement \`prewarm()\` is ${signedMs(median(likeBerth) - median(claim))} ms over it; the API, from`,
    `\`POST /v1/sessions\` to the first message's \`status_running\` and from \`status_idle\` to the client, adds`,
    `${ms(apiMs)} ms; without the replacement spare starting, Berth's warm start is ${signedMs(median(noRefill) - median(claim))} ms over the bare claim.`,
    '',
    `### ${suspendTitle}`,
    '',
    ...notes.suspend,
    '',
    markdownTable(HEADER, suspendRows),
    '',
    `Suspend / baseline (medians): ${ratio(suspendRatio)}. Of the ${ms(median(suspendTotal))} ms, ${ms(median(life.suspend.map((x) => x.processGone)))} ms pass before the`,
    `subprocess is gone; the snapshot of the same files alone takes ${ms(median(life.snapshotAlone))} ms; the rest is the transcript`,
    'flush (the durable mirror drained to PostgreSQL), the event log and the registry.',
    '',
    `### ${hydrateTitle}`,
    '',
    ...notes.hydrate,
    '',
    markdownTable(HEADER, hydrateRows),
    '',
    `Hydrated / fresh (medians): ${ratio(hydrateMedian / median(freshTotal))} (${signedMs(hydrateDiff)} ms), of which the restore alone`,
    `(${ms(median(life.restoreAlone))} ms) and the store's load of the transcript (${ms(life.loadMs)} ms) explain`,
    `${ms(median(life.restoreAlone) + life.loadMs)} ms; the rest is the CLI resuming a long transcript (a bigger first request too).`,
    '',
    `### ${memoryTitle}`,
    '',
    ...notes.memory,
    '',
    markdownTable(memoryHeader, memoryRows),
    '',
    `### ${planTitle}`,
    '',
    ...notes.plan,
    '',
    markdownTable(planHeader, planRows),
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
      loadAverage: load,
      targets: {
        startVsCold: START_TARGET_VS_COLD,
        startVsClaim: START_TARGET_VS_CLAIM,
        hydrateMs: HYDRATE_TARGET_MS,
        memoryBytes: MEMORY_TARGET_BYTES,
      },
      start: { ...start, vsCold, vsClaim },
      lifecycle: { ...life, suspendRatio, hydrateDiffMs: hydrateDiff },
      memory: { ...memory, rssDiff, heapDiff },
      plan,
    },
    missed: [
      ...(passCold ? [] : ['warm start vs cold query()']),
      ...(passClaim ? [] : ['warm start vs bare claim']),
      ...(passHydrate ? [] : ['hydrate time']),
      ...(passMemory ? [] : ['memory of suspended sessions']),
    ],
  };
}

// ---- the memory child's entry point -------------------------------------------------------------------

// Run as `node --import tsx bench/lifetimes.ts --lifetimes-memory-child` by (3), never by bench/run.ts.
if (
  process.argv[2] === MEMORY_CHILD_FLAG &&
  process.argv[1] &&
  import.meta.url === pathToFileURL(process.argv[1]).href
) {
  memoryChild().catch((err: unknown) => {
    process.send?.({ type: 'error', message: describeError(err) } satisfies FromChild);
    process.exitCode = 1;
    process.disconnect?.();
  });
}
