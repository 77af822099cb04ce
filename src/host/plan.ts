/**
 * What one session costs in RAM, measured, and what that means for the sizing formula (see sizing.ts).
 *
 * {@link measureSessionRam} runs a representative scripted session: each turn makes Bash tool calls that
 * do real work (write a file, list the workspace, print part of the file) and then answers. It runs through
 * a real SessionHost with the real `claude` subprocess, on a throwaway data dir, against the built-in
 * scripted model (no tokens, no network), and samples the RSS of each session's whole subprocess tree
 * while the turns run. `berth plan` prints its result; benchmarks call it too.
 *
 * {@link planSizing} turns a measured peak into a suggested per-session ceiling and the formula's answers.
 *
 * Throwaway data dir layout (removed at the end): `<tmpDir>/berth-plan-XXXXXX/`, the usual data dir of
 * SessionHost (workspaces/, tenants/, berth.db).
 */
import type { Telemetry } from '../observe/telemetry.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseServeConfig } from '../config.js';
import { BerthError } from '../errors.js';
import type { StopReason } from '../session/events.js';
import type { Session } from '../session/session.js';
import type { Scenario } from '../testing/scenario.js';
import { openBerthCore, type BerthCore } from './open-core.js';
import { PlanSampler } from './plan-sampler.js';
import { DEFAULT_SESSION_CEILING, GIB, agentsPerHost } from './sizing.js';

const MIB = 1024 ** 2;

/** The most sessions one measurement runs at once: more would measure CPU contention, not memory. */
export const MAX_PLAN_SESSIONS = 8;

/**
 * What `berth plan` assumes the host needs for itself: Berth's Node process (its peak is part of every
 * {@link PlanResult}; ~100-200 MB with the embedded store), the stores' caches, and the container's own
 * processes and filesystem cache. Generous on purpose: running out costs an OOM kill.
 */
export const DEFAULT_HOST_OVERHEAD = GIB;

/** Headroom above the measured peak for the suggested ceiling, in percent. */
export const DEFAULT_HEADROOM_PERCENT = 25;

/** Suggested ceilings are rounded up to a multiple of this, so that they read as limits, not as samples. */
export const CEILING_STEP = 64 * MIB;

/** The tenant the measured sessions run under, in the throwaway data dir. */
const PLAN_TENANT = 'plan';

/** The words of each turn; the scripted scenario matches them. */
const TURN_TEXT = 'berth plan turn';

export interface MeasureSessionRamOptions {
  /** Turns each session runs. @default 10 */
  turns?: number;
  /** Bash tool calls in each turn, one after another, before the answer. @default 2 */
  toolCallsPerTurn?: number;
  /** Sessions run at the same time, at most {@link MAX_PLAN_SESSIONS}. @default 1 */
  sessions?: number;
  /** How often each session's tree RSS is sampled, in ms. @default 200 */
  sampleIntervalMs?: number;
  /** Bytes each tool call writes to a new file in the workspace. @default 65536 */
  toolFileBytes?: number;
  /** The longest one turn may take, in ms. @default 120000 */
  turnTimeoutMs?: number;
  /** Where the throwaway data dir is made. @default os.tmpdir() */
  tmpDir?: string;
  /** `PATH` for the agents' tools. @default '/usr/local/bin:/usr/bin:/bin' */
  agentPath?: string;
  /** Stops the measurement: everything it started is cleaned up, then it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Where the measured host's logs go. @default a log on stderr (as for `openBerthCore`) */
  telemetry?: Telemetry;
}

/** One session's numbers. Sizes are the summed RSS of the session's whole subprocess tree, in bytes. */
export interface SessionRamMeasurement {
  /** The highest sample. */
  peakBytes: number;
  /** Sampled right after the first turn ended. */
  afterFirstTurnBytes: number;
  /** Sampled right after the last turn ended. */
  afterLastTurnBytes: number;
  /** How many samples were taken. */
  samples: number;
  /** Tool calls that ran and returned without an error. */
  toolCallsOk: number;
}

export interface PlanResult {
  turns: number;
  toolCallsPerTurn: number;
  sampleIntervalMs: number;
  /** One entry per session, in the order they were created. */
  sessions: SessionRamMeasurement[];
  /** The highest peak of any session: what a ceiling must hold. */
  peakMaxBytes: number;
  peakMeanBytes: number;
  afterFirstTurnMaxBytes: number;
  afterFirstTurnMeanBytes: number;
  /** The RSS of the measuring process itself (Node, the embedded store, the scripted model) at its peak. */
  hostProcessPeakBytes: number;
  /** Wall time of the turns, from the first message to the last answer. */
  durationMs: number;
}

export interface SizingPlanOptions {
  hostRamBytes: number;
  /** @default {@link DEFAULT_HOST_OVERHEAD} */
  overheadBytes?: number;
  /** @default {@link DEFAULT_HEADROOM_PERCENT} */
  headroomPercent?: number;
}

/** The formula, worked out for one per-session ceiling. */
export interface SizingAnswer {
  sessionCeilingBytes: number;
  agentsPerHost: number;
}

export interface SizingPlan {
  hostRamBytes: number;
  overheadBytes: number;
  headroomPercent: number;
  /** The measured peak the suggestion starts from. */
  peakBytes: number;
  suggestedCeilingBytes: number;
  /** With the hosting guide's starting point, {@link DEFAULT_SESSION_CEILING}. */
  withDefaultCeiling: SizingAnswer;
  /** With {@link SizingPlan.suggestedCeilingBytes}. */
  withSuggestedCeiling: SizingAnswer;
}

/** `peakBytes` plus `headroomPercent`, rounded up to a multiple of {@link CEILING_STEP} (at least one step). */
export function suggestSessionCeiling(peakBytes: number, headroomPercent: number): number {
  if (!(peakBytes >= 0) || !(headroomPercent >= 0)) {
    throw new RangeError('the peak and the headroom must be non-negative numbers');
  }
  const wanted = peakBytes * (1 + headroomPercent / 100);
  return Math.max(1, Math.ceil(wanted / CEILING_STEP)) * CEILING_STEP;
}

/** The suggested ceiling for a measured peak and the formula's answers with it and with the default. */
export function planSizing(peakBytes: number, options: SizingPlanOptions): SizingPlan {
  const overheadBytes = options.overheadBytes ?? DEFAULT_HOST_OVERHEAD;
  const headroomPercent = options.headroomPercent ?? DEFAULT_HEADROOM_PERCENT;
  const suggestedCeilingBytes = suggestSessionCeiling(peakBytes, headroomPercent);
  const answer = (sessionCeilingBytes: number): SizingAnswer => ({
    sessionCeilingBytes,
    agentsPerHost: agentsPerHost({ hostRamBytes: options.hostRamBytes, overheadBytes, sessionCeilingBytes }),
  });
  return {
    hostRamBytes: options.hostRamBytes,
    overheadBytes,
    headroomPercent,
    peakBytes,
    suggestedCeilingBytes,
    withDefaultCeiling: answer(DEFAULT_SESSION_CEILING),
    withSuggestedCeiling: answer(suggestedCeilingBytes),
  };
}

interface CompiledOptions {
  turns: number;
  toolCallsPerTurn: number;
  sessions: number;
  sampleIntervalMs: number;
  toolFileBytes: number;
  turnTimeoutMs: number;
  tmpDir: string;
  agentPath: string;
}

function compileOptions(options: MeasureSessionRamOptions): CompiledOptions {
  const compiled: CompiledOptions = {
    turns: options.turns ?? 10,
    toolCallsPerTurn: options.toolCallsPerTurn ?? 2,
    sessions: options.sessions ?? 1,
    sampleIntervalMs: options.sampleIntervalMs ?? 200,
    toolFileBytes: options.toolFileBytes ?? 64 * 1024,
    turnTimeoutMs: options.turnTimeoutMs ?? 120_000,
    tmpDir: options.tmpDir ?? os.tmpdir(),
    agentPath: options.agentPath ?? '/usr/local/bin:/usr/bin:/bin',
  };
  const check = (ok: boolean, message: string): void => {
    if (!ok) throw new BerthError('invalid_config', message);
  };
  check(
    Number.isInteger(compiled.turns) && compiled.turns >= 1,
    'turns must be a whole number of at least 1',
  );
  check(
    Number.isInteger(compiled.toolCallsPerTurn) && compiled.toolCallsPerTurn >= 0,
    'toolCallsPerTurn must be a whole number of at least 0',
  );
  check(
    Number.isInteger(compiled.sessions) && compiled.sessions >= 1 && compiled.sessions <= MAX_PLAN_SESSIONS,
    `sessions must be a whole number from 1 to ${MAX_PLAN_SESSIONS}`,
  );
  check(compiled.sampleIntervalMs > 0, 'sampleIntervalMs must be more than 0');
  check(
    Number.isInteger(compiled.toolFileBytes) && compiled.toolFileBytes > 0,
    'toolFileBytes must be a whole number of at least 1',
  );
  check(compiled.turnTimeoutMs > 0, 'turnTimeoutMs must be more than 0');
  return compiled;
}

/**
 * The scripted turn: `toolCalls` Bash calls, then a text answer. Each call writes a new file of random
 * data (so every call does disk and CPU work and the workspace grows), lists the workspace and prints the
 * file's first 2 KiB, so each tool result carries a few KiB into the transcript, as real tool output does.
 */
export function planScenario(toolCalls: number, fileBytes: number): Scenario {
  const command = [
    'f="plan-$(date +%s%N).txt"',
    `head -c ${fileBytes} /dev/urandom | base64 | head -c ${fileBytes} > "$f"`,
    'ls -la',
    'wc -c "$f"',
    'head -c 2048 "$f"',
  ].join(' && ');
  return {
    name: 'berth-plan',
    match: { userText: TURN_TEXT },
    steps: [
      ...Array.from({ length: toolCalls }, () => ({
        toolUse: {
          name: 'Bash',
          input: { command, description: 'Write a data file and list the workspace' },
        },
      })),
      { text: 'Done: the files are written and listed.' },
    ],
  };
}

/**
 * Runs the scripted session(s) and samples their subprocess trees. Everything it starts (the data dir, the
 * scripted model, the store, every subprocess) is gone when it settles, whether it resolves or rejects.
 * @throws BerthError `invalid_config` for bad options; `subprocess_failed` when a turn does not end
 *   cleanly or a tool call fails (the measurement would not be representative); the signal's reason.
 */
export async function measureSessionRam(options: MeasureSessionRamOptions = {}): Promise<PlanResult> {
  const opts = compileOptions(options);
  options.signal?.throwIfAborted();
  // Aborted by the caller's signal, or by the first session that fails, so that the others stop waiting.
  const stop = new AbortController();
  const forward = (): void => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', forward, { once: true });

  const failures: unknown[] = [];
  const attempt = async (step: () => Promise<unknown>): Promise<void> => {
    try {
      await step();
    } catch (err) {
      failures.push(err);
    }
  };
  const dataDir = await mkdtemp(path.join(opts.tmpDir, 'berth-plan-'));
  let core: BerthCore | undefined;
  const sessions: Session[] = [];
  let sampler: PlanSampler | undefined;
  let result: PlanResult | undefined;
  try {
    // The throwaway host runs the measured sessions and nothing else: no warm spare (its subprocess would
    // compete for the CPU and is no session), and room for exactly these sessions, whatever this machine's
    // RAM. Given as environment so that the host's own defaults apply to everything else.
    const config = parseServeConfig(['--data-dir', dataDir, '--mock-model'], {
      PATH: opts.agentPath,
      BERTH_WARM_POOL: '0',
      BERTH_HOST_RAM: `${opts.sessions}GiB`,
      BERTH_HOST_OVERHEAD: '0',
      BERTH_SESSION_RAM_CEILING: '1GiB',
    });
    core = await openBerthCore(config, options.telemetry ? { telemetry: options.telemetry } : {});
    stop.signal.throwIfAborted();
    if (!core.mockModel) throw new Error('berth plan needs the built-in scripted model');
    core.mockModel.setScenarios([planScenario(opts.toolCallsPerTurn, opts.toolFileBytes)]);
    for (let i = 0; i < opts.sessions; i++) {
      sessions.push(
        await core.host.create(PLAN_TENANT, {
          pattern: 'ephemeral',
          title: `berth plan ${i + 1}`,
          // Allowed up front: nobody is there to confirm, and a confirmation would stall the turn.
          agent: { allowed_tools: ['Bash'] },
        }),
      );
    }
    sampler = new PlanSampler(sessions, opts.sampleIntervalMs);
    const started = performance.now();
    const drivers = sessions.map((session, index) =>
      driveSession(session, index, opts, sampler!, stop.signal).catch((err: unknown) => {
        stop.abort(err);
        throw err;
      }),
    );
    const settled = await Promise.allSettled(drivers);
    const durationMs = Math.round(performance.now() - started);
    // The caller's abort wins over the failures it caused; else the first failure is the cause.
    if (options.signal?.aborted) throw options.signal.reason;
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    await sampler.stop();
    const measured = settled.map((s) => (s as PromiseFulfilledResult<SessionRamMeasurement>).value);
    const peaks = measured.map((m) => m.peakBytes);
    const firsts = measured.map((m) => m.afterFirstTurnBytes);
    result = {
      turns: opts.turns,
      toolCallsPerTurn: opts.toolCallsPerTurn,
      sampleIntervalMs: opts.sampleIntervalMs,
      sessions: measured,
      peakMaxBytes: Math.max(...peaks),
      peakMeanBytes: Math.round(mean(peaks)),
      afterFirstTurnMaxBytes: Math.max(...firsts),
      afterFirstTurnMeanBytes: Math.round(mean(firsts)),
      hostProcessPeakBytes: sampler.hostPeakBytes,
      durationMs,
    };
  } finally {
    options.signal?.removeEventListener('abort', forward);
    // Every step runs even if one before it failed; the first failure of the measurement itself wins.
    if (sampler) await attempt(() => sampler!.stop());
    await Promise.all(sessions.map((s) => attempt(() => s.close('berth plan finished'))));
    if (core) await attempt(() => core!.close());
    await attempt(() => rm(dataDir, { recursive: true, force: true }));
  }
  if (failures.length > 0 || !result) throw failures[0];
  return result;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Runs one session's turns, checks each ended cleanly, and returns its numbers. */
async function driveSession(
  session: Session,
  index: number,
  opts: CompiledOptions,
  sampler: PlanSampler,
  signal: AbortSignal,
): Promise<SessionRamMeasurement> {
  const name = opts.sessions > 1 ? `session ${index + 1}, turn` : 'turn';
  let toolCallsOk = 0;
  let afterFirstTurnBytes = 0;
  let afterLastTurnBytes = 0;
  for (let turn = 1; turn <= opts.turns; turn++) {
    const outcome = await runTurn(
      session,
      `${TURN_TEXT} ${turn} of ${opts.turns}`,
      opts.turnTimeoutMs,
      signal,
    );
    if (outcome.stopReason.type !== 'end_turn') {
      const why = outcome.errors.length > 0 ? `: ${outcome.errors.join('; ')}` : '';
      throw new BerthError(
        'subprocess_failed',
        `${name} ${turn} ended with ${JSON.stringify(outcome.stopReason)}${why}`,
      );
    }
    if (outcome.toolCallsFailed > 0 || outcome.toolCallsOk !== opts.toolCallsPerTurn) {
      throw new BerthError(
        'subprocess_failed',
        `${name} ${turn}: ${outcome.toolCallsOk} of ${opts.toolCallsPerTurn} Bash tool calls ran cleanly` +
          ` (${outcome.toolCallsFailed} failed${outcome.firstToolError ? `: ${outcome.firstToolError}` : ''})`,
      );
    }
    toolCallsOk += outcome.toolCallsOk;
    const bytes = await sampler.sampleNow(index);
    if (turn === 1) afterFirstTurnBytes = bytes;
    afterLastTurnBytes = bytes;
  }
  const stats = sampler.stats[index]!;
  return {
    peakBytes: stats.peakBytes,
    afterFirstTurnBytes,
    afterLastTurnBytes,
    samples: stats.samples,
    toolCallsOk,
  };
}

interface TurnOutcome {
  stopReason: StopReason;
  toolCallsOk: number;
  toolCallsFailed: number;
  firstToolError: string | undefined;
  /** Messages of the turn's `session.error` events. */
  errors: string[];
}

/** Sends one message and waits for the turn's final `session.status_idle`. */
async function runTurn(
  session: Session,
  text: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<TurnOutcome> {
  signal.throwIfAborted();
  const outcome: Omit<TurnOutcome, 'stopReason'> = {
    toolCallsOk: 0,
    toolCallsFailed: 0,
    firstToolError: undefined,
    errors: [],
  };
  let unsubscribe = (): void => undefined;
  let onAbort = (): void => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const stopReason = await new Promise<StopReason>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new BerthError('subprocess_failed', `A turn took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
      // Passed on as given: the caller tells its own abort apart by the reason it chose.
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      unsubscribe = session.events.subscribe((event) => {
        if (event.type === 'agent.tool_result') {
          if (!event.is_error) outcome.toolCallsOk++;
          else {
            outcome.toolCallsFailed++;
            outcome.firstToolError ??= JSON.stringify(event.content).slice(0, 300);
          }
        } else if (event.type === 'session.error') {
          outcome.errors.push(event.error.message);
        } else if (event.type === 'session.status_idle') {
          // requires_action cannot be answered here (Bash is allowed up front): it ends the measurement.
          resolve(event.stop_reason);
        }
      });
      session.send([{ type: 'user.message', content: text }]);
    });
    return { stopReason, ...outcome };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
