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
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  query,
  type CanUseTool,
  type Options,
  type Query,
  type SDKMessage,
  type SDKResultMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError, isBerthError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';
import { createPlainSpawner, type SpawnedTree } from '../sandbox/plain-spawn.js';
import { mapSdkMessage, resultUsage } from '../session/map-sdk-message.js';
import type { SessionPaths } from '../session/session.js';
import { claimSpare, type ClaimableSpare } from '../session/spare-claim.js';
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
  type TaskError,
  type TaskEvent,
  type TaskRecord,
  type TaskStatus,
} from './task.js';
import { TaskStore } from './task-store.js';

/** What the runner needs of the session host (see `SessionHost`). */
export interface TaskHost {
  taskPaths(tenant: string, taskId: string): SessionPaths & { root: string };
  agentEnvFor(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string>;
  acquireSlot(): Promise<() => void>;
  takeTaskSpare(): ClaimableSpare | undefined;
}

export interface TaskRunnerOptions {
  host: TaskHost;
  blob: BlobStore;
  /** The host's data dir, whose `tenants/*\/tasks/` a crash may have left directories in. */
  dataDir: string;
  /** SIGTERM-to-SIGKILL grace when a task's process tree is killed. */
  killGraceMs: number;
  /** Makes the spawner of each subprocess; the plain one by default. */
  createSpawner?: () => SpawnedTree;
  /** Failures no client sees (a record that could not be written, a directory not removed). */
  onError?: (err: unknown) => void;
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

/** Agent keys a claimed spare can carry (model and permission mode go in the claim). */
const CLAIMABLE_AGENT_KEYS: ReadonlySet<string> = new Set(['model', 'permission_mode', 'allowed_tools']);

/** What ended a task's process, before its artifacts are collected. */
interface Outcome {
  status: Exclude<TaskStatus, 'queued' | 'running'>;
  error: TaskError | null;
  result: SDKResultMessage | undefined;
  lastText: string | null;
}

/** One task's run: what has to be killed and removed, and why it stopped early. */
interface Run {
  task: Task;
  paths: SessionPaths & { root: string };
  inputs: ReadonlyMap<string, string>;
  spare: ClaimableSpare | undefined;
  release: () => void;
  timeoutMs: number;
  spawners: SpawnedTree[];
  query: Query | undefined;
  /** Set when the run is cut short: the time limit, or the host shutting down. */
  stop: 'timed_out' | 'host_shutdown' | undefined;
  startedAt: number;
  /** The initial record's write, which the final one must not overtake. */
  written: Promise<void>;
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
    const maxTurns = input.maxTurns;

    // The spare is taken before the slot: a full host would otherwise give up this very spare to make room.
    let spare = fitsSpare(agent, maxTurns) ? this.options.host.takeTaskSpare() : undefined;
    if (spare && !spare.dirs) {
      this.discardSpare(spare);
      spare = undefined;
    }
    let release: () => void;
    try {
      release = await this.options.host.acquireSlot();
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
      spawners: [],
      query: undefined,
      stop: undefined,
      startedAt: Date.now(),
      // Not awaited: the process starts meanwhile. A crash before it lands leaves a record-less
      // directory, which the sweep still reports.
      written: this.store.putRecord(tenant, record).catch(this.report),
    };
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
            id: 'evt_final',
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
  async sweep(): Promise<number> {
    const tenantsDir = path.join(path.resolve(this.options.dataDir), 'tenants');
    let swept = 0;
    for (const tenant of await readdir(tenantsDir).catch(() => [] as string[])) {
      if (!ID_PATTERN.test(tenant)) continue;
      const tasksDir = path.dirname(this.options.host.taskPaths(tenant, 'task_x').root);
      for (const id of await readdir(tasksDir).catch(() => [] as string[])) {
        if (!TASK_ID_PATTERN.test(id)) continue;
        swept += 1;
        try {
          const stored = await this.store.getRecord(tenant, id).catch(() => undefined);
          if (!stored || !FINAL_STATUSES.has(stored.status)) {
            const now = new Date().toISOString();
            // Without a stored record (the crash came before its first write) only the id is known.
            const known =
              stored ??
              newTaskRecord(
                { id, prompt: '', agent: {}, timeout_ms: 0, max_turns: null, warm_start: false },
                now,
              );
            await this.store.putRecord(tenant, {
              ...known,
              status: 'failed',
              error: {
                type: 'host_restarted',
                message: 'The host running this task stopped before it finished.',
              },
              finished_at: now,
            });
          }
        } catch (err) {
          this.report(err);
        }
        await rm(this.options.host.taskPaths(tenant, id).root, { recursive: true, force: true }).catch(
          this.report,
        );
      }
    }
    return swept;
  }

  private readonly report = (err: unknown): void => {
    this.options.onError?.(err);
  };

  private discardSpare(spare: ClaimableSpare): void {
    try {
      spare.spare.close();
    } catch {
      // Already exited: the tree kill below is what matters.
    }
    void spare.spawner
      .kill(this.options.killGraceMs)
      .then(() => {
        spare.firstTurnEnded();
        return spare.dirs ? rm(spare.dirs.root, { recursive: true, force: true }) : undefined;
      })
      .catch(this.report);
  }

  /** Cuts a run short: kills its process tree; the run then finishes as `timed_out` or `failed`. */
  private stopRun(run: Run, why: 'timed_out' | 'host_shutdown'): void {
    if (run.stop || run.task.isFinal) return;
    run.stop = why;
    run.query?.close();
    for (const spawner of run.spawners) spawner.kill(this.options.killGraceMs).catch(this.report);
  }

  private async run(run: Run): Promise<void> {
    const timer = setTimeout(() => this.stopRun(run, 'timed_out'), run.timeoutMs);
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
      clearTimeout(timer);
    }
    // The tree must be gone before its files are read: nothing may still be writing them.
    await Promise.allSettled(run.spawners.map((s) => s.kill(this.options.killGraceMs)));
    // Only now may the pool start the spare's replacement: a CLI starting next to the task shares its CPUs.
    run.spare?.firstTurnEnded();
    try {
      await this.finish(run, this.stopped(run, outcome));
    } catch (err) {
      // A bug, not a task failure; but the task must still end, or its waiters (and close()) never would.
      this.report(err);
      run.release();
      if (!run.task.isFinal) {
        const error = { type: 'internal', message: `The task could not be finished: ${describeError(err)}` };
        run.task.transition('failed', { error, finished_at: new Date().toISOString() });
      }
    }
  }

  /** A run cut short ends as such, whatever its process said while it was being killed. */
  private stopped(run: Run, outcome: Outcome): Outcome {
    if (run.stop === 'timed_out') {
      return {
        ...outcome,
        status: 'timed_out',
        error: {
          type: 'timed_out',
          message: `The task ran longer than its limit of ${run.timeoutMs} ms; its processes were killed`,
        },
      };
    }
    if (run.stop === 'host_shutdown') {
      return {
        ...outcome,
        status: 'failed',
        error: {
          type: 'host_shutdown',
          message: 'The host shut down while the task ran; its processes were killed',
        },
      };
    }
    return outcome;
  }

  private async execute(run: Run): Promise<Outcome> {
    const { task } = run;
    if (run.stop) return { status: 'failed', error: null, result: undefined, lastText: null };
    run.startedAt = Date.now();
    task.transition('running');
    const spare = run.spare;
    if (spare) {
      const outcome = await this.runClaimed(run, spare);
      if (outcome) return outcome;
      // The spare refused the claim: the task starts cold, in config dirs of its own.
      task.update({ warm_start: false });
      if (run.stop) return { status: 'failed', error: null, result: undefined, lastText: null };
    }
    await Promise.all([run.paths.configDir, run.paths.home].map((d) => mkdir(d, { recursive: true })));
    return this.runQuery(run);
  }

  /** Runs the prompt in the claimed spare; undefined when the spare refused the claim. */
  private async runClaimed(run: Run, spare: ClaimableSpare): Promise<Outcome | undefined> {
    const agent = run.task.record.agent;
    run.spawners.push(spare.spawner);
    const claim = claimSpare(spare, {
      prompt: run.task.record.prompt,
      cwd: run.paths.cwd,
      agent,
      canUseTool: toolGate(agent),
      onRunsAnyway: (reason) => this.report(new Error(`task ${run.task.id}: ${reason}`)),
    });
    if (!claim) return undefined;
    run.query = claim.query;
    const outcome = await this.consume(run, claim.query, claim.claimed);
    if (outcome) return outcome;
    run.query = undefined;
    await spare.spawner.kill(this.options.killGraceMs).catch(this.report);
    return undefined;
  }

  private runQuery(run: Run): Promise<Outcome> {
    const { task, paths } = run;
    const agent = task.record.agent;
    const spawner = (this.options.createSpawner ?? createPlainSpawner)();
    run.spawners.push(spawner);
    // Bare tool names are allowed by the gate (as on a warm start); only rules the CLI must evaluate,
    // like `Bash(npm test:*)`, are given to it. `dontAsk` never asks the gate, so it gets them all.
    const rules = (agent.allowed_tools ?? []).filter(
      (t) => agent.permission_mode === 'dontAsk' || !isBareToolName(t),
    );
    const options: Options = {
      cwd: paths.cwd,
      env: this.options.host.agentEnvFor(paths),
      // The isolation levers, together: no settings files, no auto memory and a config dir (both in env)
      // of the task's own, and its own cwd. A task keeps no transcript.
      settingSources: [],
      persistSession: false,
      spawnClaudeCodeProcess: (o) => spawner.spawn(o),
      canUseTool: toolGate(agent),
      ...(agent.model !== undefined && { model: agent.model }),
      ...(agent.system_prompt !== undefined && { systemPrompt: agent.system_prompt }),
      ...(rules.length > 0 && { allowedTools: rules }),
      ...(agent.disallowed_tools !== undefined && { disallowedTools: agent.disallowed_tools }),
      ...(agent.permission_mode !== undefined && { permissionMode: agent.permission_mode }),
      ...(task.record.max_turns !== null && { maxTurns: task.record.max_turns }),
    };
    const q = query({ prompt: task.record.prompt, options });
    run.query = q;
    // Stopped while it was being started: the timer's kill found no process yet.
    if (run.stop) q.close();
    return this.consume(run, q, undefined).then((o) => o!);
  }

  /**
   * Reads the process's messages up to its result (then lets it go). Undefined when `claimed` says the
   * claim was refused: what the refused spare answers (a `not_claimed` error) is not the task's.
   */
  private async consume(
    run: Run,
    q: Query,
    claimed: Promise<boolean> | undefined,
  ): Promise<Outcome | undefined> {
    const { task } = run;
    let result: SDKResultMessage | undefined;
    let lastText: string | null = null;
    let failure: unknown;
    // Iterated by hand: leaving a `for await` waits for the CLI's own shutdown, which a task does not need.
    const messages = q[Symbol.asyncIterator]();
    try {
      for (let next = await messages.next(); !next.done; next = await messages.next()) {
        const message = next.value;
        if (claimed && !(await claimed)) {
          q.close();
          return undefined;
        }
        if (message.type === 'result') {
          result = message;
          // The prompt is answered and the sandbox is about to go: its processes get no grace period (a
          // task keeps no transcript to flush). SIGKILL to the group at once saves the CLI's ~100 ms
          // shutdown; the tree kill then only has to find the stragglers (jobs that left the group).
          const spawner = run.spawners.at(-1);
          killGroupNow(spawner?.tree?.leaderPid);
          q.close();
          spawner?.kill(0).catch(this.report);
          break;
        }
        lastText = textOf(message) ?? lastText;
        for (const event of mapSdkMessage(message)) {
          if (event.type === 'session.error') task.emit({ type: 'task.error', error: event.error });
          else if (!event.type.startsWith('session.')) task.emit(event as Parameters<Task['emit']>[0]);
        }
      }
    } catch (err) {
      if (claimed && !(await claimed)) {
        q.close();
        return undefined;
      }
      failure = err;
    }
    if (result) return { ...fromResult(result), result, lastText };
    const spawner = run.spawners.at(-1);
    const tail = spawner?.stderrTail().trim().split('\n').slice(-3).join(' | ') ?? '';
    const why = failure ? describeError(failure) : 'the subprocess exited';
    return {
      status: 'failed',
      error: {
        type: 'subprocess_exited',
        message: `The agent's subprocess ended before a result: ${why}${tail ? ` (${tail})` : ''}`,
      },
      result: undefined,
      lastText,
    };
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
      usage: result ? resultUsage(result, result.total_cost_usd) : null,
      cost_usd: result ? result.total_cost_usd : null,
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
      this.report(new Error(`task ${task.id}: its final record could not be stored: ${describeError(err)}`));
    }
    task.transition(status, patch);
    try {
      await this.store.putEvents(tenant, task.id, task.events());
    } catch (err) {
      this.report(new Error(`task ${task.id}: its events could not be stored: ${describeError(err)}`));
    }
    // A record the store did not take stays readable here until the host stops.
    if (stored) this.live.delete(liveKey(tenant, task.id));
  }
}

function killGroupNow(leaderPid: number | undefined): void {
  if (leaderPid === undefined || leaderPid <= 1) return;
  try {
    process.kill(-leaderPid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

function liveKey(tenant: string, id: string): string {
  return `${tenant}/${id}`;
}

function checkTaskId(id: string): void {
  if (!TASK_ID_PATTERN.test(id)) {
    throw new BerthError('invalid_request', `${JSON.stringify(id.slice(0, 80))} is not a task id (task_...)`);
  }
}

/** A tool name on its own (`Bash`), as opposed to a rule with a specifier (`Bash(npm test:*)`). */
function isBareToolName(tool: string): boolean {
  return !tool.includes('(');
}

/**
 * Whether a claimed spare runs this task exactly as `query()` would: a claim carries the cwd, model and
 * permission mode, and the tool gate carries bare allowed tool names; everything else (a system prompt,
 * disallowed tools, tool rules, a turn limit) is fixed when a spare is prewarmed.
 */
function fitsSpare(agent: TaskAgent, maxTurns: number | undefined): boolean {
  return (
    maxTurns === undefined &&
    // A spare is prewarmed without `allowDangerouslySkipPermissions`, and `dontAsk` bypasses the gate.
    agent.permission_mode !== 'bypassPermissions' &&
    agent.permission_mode !== 'dontAsk' &&
    Object.entries(agent).every(([k, v]) => v === undefined || CLAIMABLE_AGENT_KEYS.has(k)) &&
    (agent.allowed_tools ?? []).every(isBareToolName)
  );
}

/**
 * The task's `canUseTool`: nobody is there to confirm a tool use, so the tools named in `allowed_tools`
 * are allowed and every other one that asks is denied.
 */
function toolGate(agent: TaskAgent): CanUseTool {
  const allowed = new Set((agent.allowed_tools ?? []).filter(isBareToolName));
  return (toolName, input) =>
    Promise.resolve(
      allowed.has(toolName)
        ? { behavior: 'allow', updatedInput: input }
        : {
            behavior: 'deny',
            message: `${toolName} is not in this task's agent.allowed_tools, and a task has no one to confirm a tool use.`,
          },
    );
}

function fromResult(result: SDKResultMessage): Pick<Outcome, 'status' | 'error'> {
  if (result.subtype === 'success') {
    return result.is_error
      ? { status: 'failed', error: { type: 'agent_error', message: result.result.slice(0, 2000) } }
      : { status: 'succeeded', error: null };
  }
  const message = result.errors.join('; ').slice(0, 2000);
  if (result.subtype === 'error_max_turns') {
    return {
      status: 'failed',
      error: { type: 'max_turns', message: message || 'The task reached max_turns' },
    };
  }
  return { status: 'failed', error: { type: result.subtype, message: message || result.subtype } };
}

function textOf(message: SDKMessage): string | null {
  if (message.type !== 'assistant') return null;
  const content = message.message.content as unknown;
  if (!Array.isArray(content)) return typeof content === 'string' ? content : null;
  const text = content
    .filter((b): b is { type: 'text'; text: string } => (b as { type?: unknown }).type === 'text')
    .map((b) => b.text)
    .join('');
  return text === '' ? null : text;
}
