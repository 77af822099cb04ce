/**
 * The sandbox's cost: the same work on two Berth servers in this process, one with `--sandbox bwrap` (the
 * default: bubblewrap namespaces, a uid per tenant when root, a cgroup per tree, a socat relay to the model
 * proxy's Unix socket) and one with `--sandbox none`, both against one scripted model and both without a
 * warm pool (cold against cold: what the sandbox adds to a start, not what a spare saves). Each measurement
 * alternates bwrap and none, the first of the pair switching every round, so that drift hits both.
 *
 * (a) Session start: `POST /v1/sessions`, open its SSE stream, post the first `user.message`, until
 *     `session.status_idle` arrives; the session is deleted and its processes gone before the next start.
 * (b) Per-turn overhead: one held-open session on each server, taking turns one at a time, their first
 *     turn (start-up) excluded.
 * (c) Task overhead: `POST /v1/tasks?wait=true` with a short prompt until the final record arrives (the
 *     task's directories are gone by then).
 * Once, with both turn sessions live and idle: the memory of each one's processes (VmRSS and PSS of every
 * process whose environment names its server's data dir), split by program, so that the sandbox's own
 * processes (bwrap, the PID namespace's init, the socat relay) show apart from the CLI.
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseServeConfig } from '../src/config.js';
import { startBerth, type BerthServer } from '../src/server.js';
import type { TaskRecord } from '../src/tasks/task.js';
import { startMockModel } from '../src/testing/index.js';
import { BerthSession, type BerthTurn } from './core.js';
import {
  alternate,
  api,
  assertNoSubprocessesUnder,
  describeMachine,
  machineLine,
  markdownTable,
  median,
  ms,
  now,
  ratio,
  signedMs,
  statsRow,
  stopwatch,
  textTable,
  withTimeout,
  type Machine,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
} from './lib.js';

export const sandbox: Suite = { name: 'sandbox', run };

const START_ITERATIONS = 8;
/** Measured turns per session; each session runs one more (its first, which includes start-up). */
const TURNS = 20;
/** Measured tasks on each server (fewer when `--iterations` is lower), after one warm-up each. */
const TASK_ITERATIONS = 6;
/** Targets (issue 10): sandboxed against `--sandbox none`, medians. */
const START_TARGET_RATIO = 1.15;
const TURN_TARGET_MS = 2;
/** Hang bounds, far above the ~1 s a cold start takes on 2 cores. */
const START_TIMEOUT_MS = 60_000;
const TURN_TIMEOUT_MS = 30_000;
const TASK_TIMEOUT_MS = 60_000;
/** The subprocesses of one measurement must be gone before the next starts (the kill grace is 3 s). */
const EXIT_GRACE_MS = 10_000;
/** After the last turn, before memory is read: the CLIs finish what follows a turn. */
const MEMORY_SETTLE_MS = 1000;
/** Programs of a sandboxed tree that are the sandbox's, not the agent's (see src/sandbox/bwrap.ts). */
const SANDBOX_PROGRAMS = new Set(['bwrap', 'socat', 'sh', 'prlimit', 'setpriv']);

type Mode = 'bwrap' | 'none';

interface Context {
  root: string;
  servers: Record<Mode, BerthServer>;
  dataDirs: Record<Mode, string>;
  log: (line: string) => void;
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? START_ITERATIONS;
  const machine = describeMachine();
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-sandbox-'));
  const model = await startMockModel();
  const started: BerthServer[] = [];
  let failure: unknown;
  let report: SuiteReport | undefined;
  try {
    const dataDirs: Record<Mode, string> = { bwrap: path.join(root, 'bwrap'), none: path.join(root, 'none') };
    const start = async (mode: Mode): Promise<BerthServer> => {
      const args = ['--port', '0', '--data-dir', dataDirs[mode], '--model-endpoint', model.url];
      // No spares on either: a sandboxed host ignores the pool, and a parked spare would skip the start.
      args.push('--warm-pool', '0', '--sandbox', mode);
      const berth = await startBerth(parseServeConfig(args, { PATH: process.env.PATH }), {
        telemetry: makeTelemetry(),
      });
      started.push(berth);
      return berth;
    };
    const ctx: Context = {
      root,
      servers: { bwrap: await start('bwrap'), none: await start('none') },
      dataDirs,
      log: options.log,
    };
    const starts = await measureStarts(ctx, iterations);
    const turns = await measureTurns(ctx);
    const tasks = await measureTasks(ctx, Math.min(TASK_ITERATIONS, iterations));
    report = buildReport(machine, iterations, starts, turns, tasks);
  } catch (err) {
    failure = err;
  } finally {
    for (const berth of started) await berth.close().catch((err: unknown) => (failure ??= err));
    await model.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
  }
  if (failure !== undefined || !report) throw failure;
  return report;
}

/** Runs `measure` on the bwrap server and on the none server, in the order `alternate` picks. */
async function both<T>(round: number, measure: (mode: Mode) => Promise<T>): Promise<Record<Mode, T>> {
  const [bwrap, none] = await alternate(
    round,
    () => measure('bwrap'),
    () => measure('none'),
  );
  return { bwrap, none };
}

// ---- (a) session start --------------------------------------------------------------------------------

/** One session start, in ms: `total` and its parts, which add up to it. */
interface Start {
  total: number;
  /** `POST /v1/sessions` -> 200. */
  create: number;
  /** `GET .../events/stream` -> response headers. */
  stream: number;
  /** The first turn, split at the session's events (see {@link BerthTurn}). */
  turn: BerthTurn;
}

type PerMode<T> = Record<Mode, T[]>;

async function measureStarts(ctx: Context, iterations: number): Promise<PerMode<Start>> {
  const results: PerMode<Start> = { bwrap: [], none: [] };
  const startOnce = async (mode: Mode): Promise<Start> => {
    const watch = stopwatch();
    const session = await BerthSession.create(ctx.servers[mode]);
    const created = watch().ms;
    let start: Start;
    try {
      await session.openStream();
      const streaming = watch().ms;
      const turn = await session.turn('hello', START_TIMEOUT_MS);
      start = { total: streaming + turn.total, create: created, stream: streaming - created, turn };
    } finally {
      await session.delete();
    }
    // Nothing of this start may still run while the next one is timed.
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
    return start;
  };
  for (let i = 0; i <= iterations; i++) {
    const { bwrap, none } = await both(i, startOnce);
    const label = i === 0 ? 'warm-up' : `${i}/${iterations}`;
    ctx.log(`  start ${label}: bwrap ${ms(bwrap.total)} ms, none ${ms(none.total)} ms`);
    if (i === 0) continue;
    results.bwrap.push(bwrap);
    results.none.push(none);
  }
  return results;
}

// ---- (b) per-turn overhead, and the memory of a live tree ---------------------------------------------

interface TurnResults {
  turns: PerMode<BerthTurn>;
  memory: Record<Mode, ProcessMemory[]>;
}

async function measureTurns(ctx: Context): Promise<TurnResults> {
  const turns: PerMode<BerthTurn> = { bwrap: [], none: [] };
  const sessions: Partial<Record<Mode, BerthSession>> = {};
  try {
    for (const mode of ['bwrap', 'none'] as const) {
      const session = await BerthSession.create(ctx.servers[mode]);
      sessions[mode] = session;
      await session.openStream();
    }
    const { bwrap, none } = sessions as Record<Mode, BerthSession>;
    for (let i = 0; i <= TURNS; i++) {
      const timeout = i === 0 ? START_TIMEOUT_MS : TURN_TIMEOUT_MS;
      const pair = await both(i, (mode) => (mode === 'bwrap' ? bwrap : none).turn(`turn ${i}`, timeout));
      if (i === 0) continue; // includes the start-up
      turns.bwrap.push(pair.bwrap);
      turns.none.push(pair.none);
    }
    ctx.log(
      `  turns: bwrap ${ms(median(turns.bwrap.map((t) => t.total)))} ms, ` +
        `none ${ms(median(turns.none.map((t) => t.total)))} ms (medians)`,
    );
    await sleep(MEMORY_SETTLE_MS);
    const memory = { bwrap: await treeMemory(ctx.dataDirs.bwrap), none: await treeMemory(ctx.dataDirs.none) };
    return { turns, memory };
  } finally {
    for (const session of Object.values(sessions)) await session.delete();
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
  }
}

interface ProcessMemory {
  pid: number;
  /** `Name:` of /proc/PID/status (the program, 15 characters at most). */
  name: string;
  /** VmRSS: every resident page, shared ones (libraries) counted in full in each process. */
  rssKiB: number;
  /** Pss (smaps_rollup): shared pages divided among the processes that map them. */
  pssKiB: number;
}

/** The live processes whose `CLAUDE_CONFIG_DIR` lies under `dataDir`, with their memory. */
async function treeMemory(dataDir: string): Promise<ProcessMemory[]> {
  const found: ProcessMemory[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0');
      if (!env.some((v) => v.startsWith('CLAUDE_CONFIG_DIR=') && v.includes(dataDir))) continue;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue; // a zombie holds no memory
      const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
      found.push({
        pid,
        name: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?',
        rssKiB: kib(status, 'VmRSS'),
        pssKiB: kib(rollup, 'Pss'),
      });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

const kib = (text: string, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);

// ---- (c) tasks ----------------------------------------------------------------------------------------

async function measureTasks(ctx: Context, iterations: number): Promise<PerMode<number>> {
  const results: PerMode<number> = { bwrap: [], none: [] };
  const taskOnce = async (mode: Mode): Promise<number> => {
    const started = now();
    const record = (await withTimeout(
      api(ctx.servers[mode].url, 'POST', '/v1/tasks?wait=true', { prompt: 'a short task' }),
      TASK_TIMEOUT_MS,
      `a task on the ${mode} server`,
    )) as TaskRecord;
    const total = now() - started;
    // A task that failed must not pass for a fast one.
    if (record.status !== 'succeeded' || record.warm_start) {
      throw new Error(`a ${mode} task ended ${record.status} (warm_start ${record.warm_start})`);
    }
    await assertNoSubprocessesUnder(ctx.root, EXIT_GRACE_MS);
    return total;
  };
  for (let i = 0; i <= iterations; i++) {
    const { bwrap, none } = await both(i, taskOnce);
    const label = i === 0 ? 'warm-up' : `${i}/${iterations}`;
    ctx.log(`  task ${label}: bwrap ${ms(bwrap)} ms, none ${ms(none)} ms`);
    if (i === 0) continue;
    results.bwrap.push(bwrap);
    results.none.push(none);
  }
  return results;
}

// ---- the report ---------------------------------------------------------------------------------------

const HEADER: Row = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
/** Rows that split the row above them. */
const PART = '↳ ';
const KIB_PER_MIB = 1024;

/** The keys of T whose values are numbers. */
type NumberKey<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];

/** One field of every record. */
function column<T>(records: readonly T[], key: NumberKey<T>): number[] {
  return records.map((r) => r[key] as number);
}

/** Where a turn's time goes, at the moments the server emitted the session's events. */
function turnParts(turns: readonly BerthTurn[]): Row[] {
  return [
    statsRow(`${PART}POST sent -> status_running emitted`, column(turns, 'toRunning')),
    statsRow(`${PART}status_running -> status_idle emitted (SDK)`, column(turns, 'sdkTurn')),
    statsRow(`${PART}status_idle emitted -> received on SSE`, column(turns, 'sseDelivery')),
  ];
}

function startRows(mode: Mode, starts: readonly Start[]): Row[] {
  return [
    statsRow(`--sandbox ${mode}: create, stream, message -> status_idle`, column(starts, 'total')),
    statsRow(`${PART}POST /v1/sessions -> 200`, column(starts, 'create')),
    statsRow(`${PART}GET events/stream -> headers`, column(starts, 'stream')),
    ...turnParts(starts.map((s) => s.turn)),
  ];
}

/** One row per program of a tree, then the sandbox's own programs and the whole tree. */
function memoryRows(memory: Record<Mode, ProcessMemory[]>): Row[] {
  const sum = (ps: readonly ProcessMemory[]): Row => [
    String(ps.length),
    (ps.reduce((a, p) => a + p.rssKiB, 0) / KIB_PER_MIB).toFixed(1),
    (ps.reduce((a, p) => a + p.pssKiB, 0) / KIB_PER_MIB).toFixed(1),
  ];
  const names = [...new Set(memory.bwrap.map((p) => p.name))].sort();
  return [
    ...names.map((name): Row => [`bwrap tree: ${name}`, ...sum(memory.bwrap.filter((p) => p.name === name))]),
    [
      `bwrap tree: the sandbox's own (${[...SANDBOX_PROGRAMS].filter((n) => names.includes(n)).join(', ')})`,
      ...sum(memory.bwrap.filter((p) => SANDBOX_PROGRAMS.has(p.name))),
    ],
    ['bwrap tree: all', ...sum(memory.bwrap)],
    ['none tree: all', ...sum(memory.none)],
  ];
}

function buildReport(
  machine: Machine,
  iterations: number,
  starts: PerMode<Start>,
  turns: TurnResults,
  tasks: PerMode<number>,
): SuiteReport {
  const medianOf = <T>(xs: Record<Mode, T[]>, pick: (x: T) => number): Record<Mode, number> => ({
    bwrap: median(xs.bwrap.map(pick)),
    none: median(xs.none.map(pick)),
  });
  const start = medianOf(starts, (s) => s.total);
  const turn = medianOf(turns.turns, (t) => t.total);
  const task = medianOf(tasks, (t) => t);
  const startRatio = start.bwrap / start.none;
  const turnDiff = turn.bwrap - turn.none;
  // Turns alternate, so each sandboxed turn has an unconfined neighbour that ran under the same load.
  const pairedDiff = median(turns.turns.bwrap.map((t, i) => t.total - turns.turns.none[i]!.total));
  const startPass = startRatio <= START_TARGET_RATIO;
  const turnPass = turnDiff <= TURN_TARGET_MS;

  const summaryHeader: Row = [
    'median',
    '--sandbox none ms',
    '--sandbox bwrap ms',
    'bwrap - none',
    'bwrap / none',
  ];
  const summaryRow = (label: string, m: Record<Mode, number>): Row => [
    label,
    ms(m.none),
    ms(m.bwrap),
    signedMs(m.bwrap - m.none),
    ratio(m.bwrap / m.none),
  ];
  const summaryRows = [
    summaryRow('session start', start),
    summaryRow('per turn', turn),
    summaryRow('task, POST ?wait=true -> final record', task),
  ];
  const startTableRows = [...startRows('none', starts.none), ...startRows('bwrap', starts.bwrap)];
  const turnRows: Row[] = (['none', 'bwrap'] as const).flatMap((mode) => [
    statsRow(
      `--sandbox ${mode}: POST user.message -> status_idle on SSE`,
      column(turns.turns[mode], 'total'),
    ),
    ...turnParts(turns.turns[mode]),
  ]);
  const taskRows: Row[] = (['none', 'bwrap'] as const).map((mode) =>
    statsRow(`--sandbox ${mode}: POST /v1/tasks?wait=true -> final record`, tasks[mode]),
  );
  const memoryHeader: Row = ['processes of one idle session', 'count', 'RSS MiB', 'PSS MiB'];
  const memoryTable = memoryRows(turns.memory);
  const targetHeader: Row = ['target', 'measured', ''];
  const targetRows: Row[] = [
    [
      `session start <= ${START_TARGET_RATIO}x --sandbox none (median)`,
      `${ratio(startRatio)} (${ms(start.bwrap)} vs ${ms(start.none)} ms)`,
      startPass ? 'pass' : 'MISS',
    ],
    [
      `per-turn overhead <= +${TURN_TARGET_MS} ms (median)`,
      `${signedMs(turnDiff)} ms (${ms(turn.bwrap)} vs ${ms(turn.none)} ms); paired turns: ${signedMs(pairedDiff)} ms`,
      turnPass ? 'pass' : 'MISS',
    ],
  ];

  const taskCount = tasks.bwrap.length;
  const startTitle = `Session start (${iterations} on each, alternating, after 1 warm-up each)`;
  const turnTitle = `Per turn (${TURNS} turns of one held-open session on each server, alternating, first turns excluded)`;
  const taskTitle = `Task (${taskCount} on each, alternating, after 1 warm-up each)`;
  const memoryTitle = 'Memory of a live session (once, both sessions idle after their turns)';
  const sections: [string, Row, Row[]][] = [
    ['bwrap against none', summaryHeader, summaryRows],
    [startTitle, HEADER, startTableRows],
    [turnTitle, HEADER, turnRows],
    [taskTitle, HEADER, taskRows],
    [memoryTitle, memoryHeader, memoryTable],
  ];
  const text = [
    machineLine(machine),
    ...sections.flatMap(([title, header, rows]) => ['', title, textTable(header, rows)]),
    '',
    textTable(targetHeader, targetRows),
  ].join('\n');

  const markdown = [
    "## Sandbox: bubblewrap's cost against `--sandbox none`",
    '',
    `Measured on ${machineLine(machine)}. Source: \`bench/sandbox.ts\`.`,
    '',
    'Two Berth servers in the benchmark process, against one scripted model: one with `--sandbox bwrap`',
    "(the default: each CLI in bubblewrap's mount, PID, IPC, UTS and network namespaces, as its tenant's",
    'uid when the server is root, in a cgroup of its own, reaching the model proxy through a socat relay',
    'to its Unix socket) and one with `--sandbox none`. Both run with `--warm-pool 0`: cold against',
    'cold, what the sandbox adds to a start (not what a spare saves). Each measurement alternates the two',
    'servers, the first of each pair switching every round. The rows marked ↳ split the time at the',
    "moments the server emitted the session's events. Memory is read once, from /proc, for every process",
    "whose environment names the server's data dir: RSS counts shared pages (libraries) in full in each",
    'process, PSS divides them among the processes that map them. Issue 10 states no target for tasks.',
    '',
    ...sections.flatMap(([title, header, rows]) => [`### ${title}`, '', markdownTable(header, rows), '']),
    '### Targets',
    '',
    markdownTable(targetHeader, targetRows),
  ].join('\n');

  return {
    text,
    markdown,
    raw: {
      machine,
      targets: { startRatio: START_TARGET_RATIO, turnOverheadMs: TURN_TARGET_MS },
      start: { ...starts, ratio: startRatio },
      turns: { ...turns.turns, differenceMs: turnDiff, pairedDifferenceMs: pairedDiff },
      tasks: { ...tasks, ratio: task.bwrap / task.none },
      memory: turns.memory,
    },
    missed: [
      ...(startPass ? [] : ['sandboxed session start ratio']),
      ...(turnPass ? [] : ['sandboxed per-turn overhead']),
    ],
  };
}
