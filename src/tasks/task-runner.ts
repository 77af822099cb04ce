/**
 * Ephemeral tasks (the `ephemeral` pattern): each task gets a fresh sandbox (a working directory, a
 * config dir and a home of its own), its input files, ONE one-shot `query()` (or a claimed warm spare
 * when the task's agent config fits one), a time limit, and then its artifacts go to the blob store and
 * the sandbox is destroyed: every process of its tree killed and its directories removed, before the
 * task is reported final.
 *
 * On-disk layout (the host's `taskPaths`), removed when the task ends:
 *   tenants/<tenant>/tasks/<task id>/work/            the agent's cwd (inputs, then artifacts)
 *   tenants/<tenant>/tasks/<task id>/claude-config/   its CLAUDE_CONFIG_DIR (a cold start)
 *   tenants/<tenant>/tasks/<task id>/home/            its HOME (a cold start)
 *   tenants/_tasks/<uuid>/                            a claimed spare's config dir and home (a warm start)
 * Being under `tenants/`, every task process is found by the host's orphan sweep after a crash; the
 * directories a crash leaves are removed by {@link TaskRunner.sweep} at the next start.
 */
import { mkdir, rm } from 'node:fs/promises';
import { BerthError, describeError, isBerthError } from '../errors.js';
import type { CreateSpawner } from '../sandbox/plain-spawn.js';
import type { AgentProcess } from '../session/agent-process.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { resultUsage } from '../session/map-sdk-message.js';
import type { SessionPaths } from '../session/session.js';
import type { ClaimableSpare } from '../session/spare-claim.js';
import type { BlobStore } from '../workspace/blob-store.js';
import { DEFAULT_ARTIFACT_LIMITS, collectArtifacts, openFound, type ArtifactLimits } from './artifacts.js';
import {
  DEFAULT_INPUT_LIMITS,
  checkInputFiles,
  relativePathProblem,
  writeInputFiles,
  type InputLimits,
  type TaskFileInput,
} from './inputs.js';
import {
  FINAL_STATUSES,
  TASK_ID_PATTERN,
  Task,
  newTaskId,
  newTaskRecord,
  type TaskAgent,
  type TaskArtifact,
  type TaskEvent,
  type TaskRecord,
} from './task.js';
import { TaskStore } from './task-store.js';
import { assertNetworkEnforced } from '../sandbox/spawn-owner.js';
import { sweepTaskDirs } from './task-sweep.js';

import { fitsSpare } from './task-agent.js';
import { cutShort, runTaskProcess, type Outcome } from './task-process.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { roundUsd } from '../usd.js';

/** What the runner needs of the session host (see `SessionHost`). */
export interface TaskHost {
  taskPaths(tenant: string, taskId: string): SessionPaths & { root: string };
  agentEnvFor(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string>;
  acquireSlot(tenant: string): Promise<() => void>;
  takeTaskSpare(): ClaimableSpare | undefined;
}

export interface TaskRunnerOptions {
  host: TaskHost;
  blob: BlobStore;
  /** The host's data dir, whose `tenants/*\/tasks/` a crash may have left directories in. */
  dataDir: string;
  /** SIGTERM-to-SIGKILL grace when a task's process tree is killed. */
  killGraceMs: number;
  /** The Agent SDK. @default sdkRuntime */
  runtime?: AgentRuntime | undefined;
  /** Makes the spawner of each subprocess; the plain one by default. */
  createSpawner?: CreateSpawner | undefined;
  /** Whether agents' `network.allowed_domains` are enforced (a sandbox); refused when they are not. */
  enforcesNetwork?: boolean | undefined;
  /** Failures no client sees (a record that could not be written, a directory not removed). */
  onError?: (err: unknown) => void;
  /** Each task's lines (a child with `tenant` and `task_id`). @default silent */
  log?: Logger;
  /** @default DEFAULT_INPUT_LIMITS (100 files, 10 MiB each, 32 MiB in all) */
  inputLimits?: InputLimits;
  /** @default DEFAULT_ARTIFACT_LIMITS (1000 files, 256 MiB in all) */
  artifactLimits?: ArtifactLimits;
  /** @default 600_000 (10 minutes) */
  defaultTimeoutMs?: number;
  /** @default 3_600_000 (1 hour) */
  maxTimeoutMs?: number;
}

export interface CreateTaskInput {
  prompt: string;
  agent?: TaskAgent | undefined;
  files?: readonly TaskFileInput[] | undefined;
  timeoutMs?: number | undefined;
  maxTurns?: number | undefined;
}

export const DEFAULT_TASK_TIMEOUT_MS = 10 * 60_000;
export const MAX_TASK_TIMEOUT_MS = 60 * 60_000;

/** One task's run: what has to be killed and removed, and why it stopped early. */
interface Run {
  task: Task;
  paths: SessionPaths & { root: string };
  inputs: ReadonlyMap<string, string>;
  spare: ClaimableSpare | undefined;
  release: () => void;
  timeoutMs: number;
  /** The task's subprocess, once started. */
  proc: AgentProcess | undefined;
  /** Aborted when the run is cut short (see `stop`): its process tree is killed. */
  cutShort: AbortController;
  /** Set when the run is cut short: the time limit, or the host shutting down. */
  stop: 'timed_out' | 'host_shutdown' | undefined;
  startedAt: number;
  /** The initial record's write, which the final one must not overtake. */
  written: Promise<void>;
  /** The task's log lines, with `tenant` and `task_id`. */
  log: Logger;
}

export class TaskRunner {
  private readonly live = new Map<string, Run>();
  private readonly store: TaskStore;
  private readonly inputLimits: InputLimits;
  private readonly artifactLimits: ArtifactLimits;
  private readonly defaultTimeoutMs: number;
  private readonly maxTimeoutMs: number;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: TaskRunnerOptions) {
    this.store = new TaskStore(options.blob);
    this.inputLimits = options.inputLimits ?? DEFAULT_INPUT_LIMITS;
    this.artifactLimits = options.artifactLimits ?? DEFAULT_ARTIFACT_LIMITS;
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS;
    this.maxTimeoutMs = options.maxTimeoutMs ?? MAX_TASK_TIMEOUT_MS;
  }

  /** The longest `timeout_ms` accepted. */
  get timeoutLimitMs(): number {
    return this.maxTimeoutMs;
  }

  /** Tasks running on this host (for health and tests). */
  get running(): number {
    return this.live.size;
  }

  /**
   * Checks the input, admits the task (`host_full` / `host_draining` when it cannot run now), makes its
   * sandbox and writes its files, then starts it in the background. A refused task changed nothing.
   */
  async create(tenant: string, input: CreateTaskInput): Promise<Task> {
    if (this.closing) throw new BerthError('not_ready', 'This host is shutting down');
    const timeoutMs = input.timeoutMs ?? this.defaultTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > this.maxTimeoutMs) {
      throw new BerthError(
        'invalid_request',
        `timeout_ms ${timeoutMs}: a task may run for at most ${this.maxTimeoutMs} ms`,
      );
    }
    if (input.prompt.trim() === '') throw new BerthError('invalid_request', 'prompt: must not be empty');
    const files = checkInputFiles(input.files ?? [], this.inputLimits);
    const agent = input.agent ?? {};
    assertNetworkEnforced(agent, this.options.enforcesNetwork);
    const maxTurns = input.maxTurns;

    // The spare is taken before the slot: a full host would otherwise give up this very spare to make room.
    let spare = fitsSpare(agent, maxTurns) ? this.options.host.takeTaskSpare() : undefined;
    if (spare && !spare.dirs) {
      this.discardSpare(spare);
      spare = undefined;
    }
    let release: () => void;
    try {
      release = await this.options.host.acquireSlot(tenant);
    } catch (err) {
      if (spare) this.discardSpare(spare);
      throw err;
    }

    const id = newTaskId();
    const paths = this.options.host.taskPaths(tenant, id);
    try {
      await mkdir(paths.cwd, { recursive: true });
      await writeInputFiles(paths.cwd, files);
      // close() only ends the tasks it can see: one admitted while it started must not start after it.
      if (this.closing) throw new BerthError('not_ready', 'This host is shutting down');
    } catch (err) {
      release();
      if (spare) this.discardSpare(spare);
      await rm(paths.root, { recursive: true, force: true }).catch(this.report);
      if (isBerthError(err)) throw err;
      throw new BerthError('internal', `Could not write the task's input files: ${describeError(err)}`, {
        cause: err,
      });
    }

    const record = newTaskRecord({
      id,
      prompt: input.prompt,
      agent,
      timeout_ms: timeoutMs,
      max_turns: maxTurns ?? null,
      warm_start: spare !== undefined,
    });
    const task = new Task(tenant, record);
    task.emit({ type: 'task.status_queued' });
    const run: Run = {
      task,
      paths,
      inputs: new Map(files.map((f) => [f.path, f.sha256])),
      spare,
      release,
      timeoutMs,
      proc: undefined,
      cutShort: new AbortController(),
      stop: undefined,
      startedAt: Date.now(),
      // Not awaited: the process starts meanwhile. A crash before it lands leaves a record-less
      // directory, which the sweep still reports.
      written: this.store.putRecord(tenant, record).catch(this.report),
      log: (this.options.log ?? silentLogger()).child({ tenant, task_id: id }),
    };
    run.log.info({ timeout_ms: timeoutMs, inputs: files.length, warm: spare !== undefined }, 'task queued');
    this.live.set(liveKey(tenant, id), run);
    // After the current call stack (the HTTP handler) has answered: spawning is ~20 ms of synchronous work.
    setImmediate(() => {
      this.run(run).catch(this.report);
    });
    return task;
  }

  /** The tenant's task: live on this host, or its stored record. */
  async get(tenant: string, id: string): Promise<TaskRecord> {
    checkTaskId(id);
    const run = this.live.get(liveKey(tenant, id));
    if (run) return run.task.record;
    const record = await this.store.getRecord(tenant, id);
    if (!record) throw new BerthError('task_not_found', `No task ${JSON.stringify(id)}`);
    return record;
  }

  /** The live task, when it runs (or has just ended) on this host. */
  liveTask(tenant: string, id: string): Task | undefined {
    checkTaskId(id);
    return this.live.get(liveKey(tenant, id))?.task;
  }

  /** A finished task's events, as stored when it ended. */
  async storedEvents(tenant: string, id: string): Promise<TaskEvent[]> {
    checkTaskId(id);
    const events = await this.store.getEvents(tenant, id);
    if (events) return events;
    // A task stored without events (the write failed, or it was swept after a crash): its record says enough.
    const record = await this.get(tenant, id);
    return FINAL_STATUSES.has(record.status)
      ? [
          {
            type: `task.status_${record.status}` as 'task.status_failed',
            task: record,
            // The same on every read (a reconnecting client sees the same event): made from the task's id.
            id: `sevt_${record.id.slice('task_'.length)}`,
            seq: 1,
            created_at: record.finished_at ?? record.created_at,
          },
        ]
      : [];
  }

  /**
   * The bytes of one artifact. `artifactPath` is only compared with the task's artifact list: it never
   * names a file or a key.
   */
  async openArtifact(
    tenant: string,
    id: string,
    artifactPath: string,
  ): Promise<{ artifact: TaskArtifact; stream: NodeJS.ReadableStream; size: number }> {
    const problem = relativePathProblem(artifactPath);
    if (problem) {
      throw new BerthError(
        'invalid_path',
        `artifact path ${JSON.stringify(artifactPath.slice(0, 200))} ${problem}`,
      );
    }
    const record = await this.get(tenant, id);
    if (!FINAL_STATUSES.has(record.status)) {
      throw new BerthError(
        'artifact_not_found',
        `Task ${id} is ${record.status}: its artifacts are available once it has finished`,
      );
    }
    const index = record.artifacts.findIndex((a) => a.path === artifactPath);
    const artifact = record.artifacts[index];
    const opened = artifact ? await this.store.openArtifact(tenant, id, index) : undefined;
    if (!artifact || !opened) {
      throw new BerthError(
        'artifact_not_found',
        `Task ${id} has no artifact ${JSON.stringify(artifactPath)}`,
      );
    }
    return { artifact, stream: opened.stream, size: opened.size };
  }

  /**
   * Ends every running task (status `failed`, error `host_shutdown`): its process tree is killed, what it
   * wrote is still collected, its sandbox removed. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const runs = [...this.live.values()];
      for (const run of runs) this.stopRun(run, 'host_shutdown');
      await Promise.allSettled(runs.map((r) => r.task.done));
    })();
    return this.closing;
  }

  /**
   * Removes the task directories a crashed host left (their processes are the orphan sweep's) and marks
   * those tasks `failed` (`host_restarted`). Call once at start, before any task runs.
   */
  sweep(): Promise<number> {
    return sweepTaskDirs({
      dataDir: this.options.dataDir,
      host: this.options.host,
      store: this.store,
      report: this.report,
    });
  }

  private readonly report = (err: unknown): void => void this.options.onError?.(err);

  /** A task's failure: to its log (with `tenant` and `task_id`) when there is one, else to `onError`. */
  private reportFor(run: Run, err: unknown, what: string): void {
    if (this.options.log) run.log.error({ err }, what);
    else this.report(err);
  }

  private discardSpare(spare: ClaimableSpare): void {
    void this.endSpare(spare)
      .then(() => {
        spare.firstTurnEnded();
        return spare.dirs ? rm(spare.dirs.root, { recursive: true, force: true }) : undefined;
      })
      .catch(this.report);
  }

  /** Ends a spare's process tree; resolves when it is gone. */
  private endSpare(spare: ClaimableSpare): Promise<void> {
    try {
      spare.spare.close();
    } catch {
      // Already exited: the tree kill below is what matters.
    }
    return spare.spawner.kill(this.options.killGraceMs);
  }

  /** Cuts a run short: kills its process tree; the run then finishes as `timed_out` or `failed`. */
  private stopRun(run: Run, why: 'timed_out' | 'host_shutdown'): void {
    if (run.stop || run.task.isFinal) return;
    run.stop = why;
    run.cutShort.abort();
  }

  private async run(run: Run): Promise<void> {
    const limit = AbortSignal.timeout(run.timeoutMs);
    const onLimit = (): void => this.stopRun(run, 'timed_out');
    limit.addEventListener('abort', onLimit, { once: true });
    let outcome: Outcome;
    try {
      outcome = await this.execute(run);
    } catch (err) {
      outcome = {
        status: 'failed',
        error: { type: 'subprocess_failed', message: `The task could not run: ${describeError(err)}` },
        result: undefined,
        lastText: null,
      };
    } finally {
      limit.removeEventListener('abort', onLimit);
    }
    // The tree must be gone before its files are read: nothing may still be writing them. A spare the run
    // never got to claim (it was cut short first) is still running on its own.
    if (run.proc) await run.proc.kill().catch(this.report);
    else if (run.spare) await this.endSpare(run.spare).catch(this.report);
    // Only now may the pool start the spare's replacement: a CLI starting next to the task shares its CPUs.
    run.spare?.firstTurnEnded();
    try {
      await this.finish(run, cutShort(outcome, run.stop, run.timeoutMs));
    } catch (err) {
      // A bug, not a task failure; but the task must still end, or its waiters (and close()) never would.
      this.reportFor(run, err, 'the task could not be finished');
      run.release();
      if (!run.task.isFinal) {
        const error = { type: 'internal', message: `The task could not be finished: ${describeError(err)}` };
        run.task.transition('failed', { error, finished_at: new Date().toISOString() });
      }
    }
  }

  private async execute(run: Run): Promise<Outcome> {
    const { task } = run;
    if (run.stop) return { status: 'failed', error: null, result: undefined, lastText: null };
    run.startedAt = Date.now();
    task.transition('running');
    return runTaskProcess({
      task,
      paths: run.paths,
      env: this.options.host.agentEnvFor(run.paths),
      spare: run.spare,
      runtime: this.options.runtime,
      createSpawner: this.options.createSpawner,
      killGraceMs: this.options.killGraceMs,
      signal: run.cutShort.signal,
      onStart: (proc) => (run.proc = proc),
      onError: (err) => this.reportFor(run, err, 'task failure'),
    });
  }

  /** Collects and stores the artifacts, destroys the sandbox, stores the record; then reports it final. */
  private async finish(run: Run, outcome: Outcome): Promise<void> {
    const { task } = run;
    const tenant = task.tenant;
    let { status, error } = outcome;
    let artifacts: TaskArtifact[] = [];
    try {
      const collected = await collectArtifacts(run.paths.cwd, run.inputs, this.artifactLimits);
      if (collected.overLimit) {
        if (status === 'succeeded') status = 'failed';
        error = error
          ? { ...error, message: `${error.message}; ${collected.overLimit}` }
          : { type: 'artifact_limit_exceeded', message: collected.overLimit };
      }
      for (const found of collected.artifacts) {
        const handle = await openFound(found);
        if (!handle) continue;
        try {
          // The open descriptor, not the path: no rename or symlink swapped in since the walk is followed.
          await this.store.putArtifact(tenant, task.id, artifacts.length, `/proc/self/fd/${handle.fd}`);
        } finally {
          await handle.close();
        }
        artifacts.push({ path: found.path, bytes: found.bytes, sha256: found.sha256 });
      }
    } catch (err) {
      artifacts = [];
      await this.store.deleteArtifacts(tenant, task.id).catch(this.report);
      status = 'failed';
      error = {
        type: 'artifacts_failed',
        message: `The task's artifacts could not be stored: ${describeError(err)}`,
      };
    }

    // The sandbox goes before the task is reported final: a client that sees the result finds nothing left.
    const dirs = [run.paths.root, ...(run.spare?.dirs ? [run.spare.dirs.root] : [])];
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }).catch(this.report)));
    run.release();

    const result = outcome.result;
    const finishedAt = Date.now();
    const patch: Partial<TaskRecord> = {
      result: result?.subtype === 'success' ? result.result : outcome.lastText,
      usage: result ? resultUsage(result, roundUsd(result.total_cost_usd)) : null,
      cost_usd: result ? roundUsd(result.total_cost_usd) : null,
      num_turns: result ? result.num_turns : null,
      duration_ms: finishedAt - run.startedAt,
      error,
      artifacts,
      finished_at: new Date(finishedAt).toISOString(),
    };
    let stored = true;
    await run.written;
    try {
      await this.store.putRecord(tenant, { ...task.record, ...patch, status });
    } catch (err) {
      stored = false;
      this.reportFor(run, err, 'the final record could not be stored');
    }
    task.transition(status, patch);
    try {
      await this.store.putEvents(tenant, task.id, task.events());
    } catch (err) {
      this.reportFor(run, err, 'the events could not be stored');
    }
    run.log.info({ status, duration_ms: patch.duration_ms, cost_usd: patch.cost_usd }, 'task finished');
    // A record the store did not take stays readable here until the host stops.
    if (stored) this.live.delete(liveKey(tenant, task.id));
  }
}

function liveKey(tenant: string, id: string): string {
  return `${tenant}/${id}`;
}

function checkTaskId(id: string): void {
  if (!TASK_ID_PATTERN.test(id)) {
    throw new BerthError('invalid_id', `${JSON.stringify(id.slice(0, 80))} is not a task id (task_...)`);
  }
}
