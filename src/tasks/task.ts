/**
 * One ephemeral task while it lives on this host: its record, its state and its events. The runner
 * (`task-runner.ts`) drives it; the API reads it.
 */
import { randomBytes } from 'node:crypto';
import { BerthError } from '../errors.js';
import { newEventId } from '../ids.js';
import type { NewEvent, Usage } from '../session/events.js';
import type { AgentNetwork } from '../stores/types.js';

/**
 * - `queued`: admitted; its directory is being made and its process started.
 * - `running`: its process runs the prompt.
 * - `succeeded`: the agent finished and said so; artifacts are stored.
 * - `failed`: it could not start, the agent ended with an error, a limit was exceeded, or the host
 *   shut down under it.
 * - `timed_out`: it ran past `timeout_ms`; its whole process tree was killed.
 * The last three are final: the sandbox is gone and the record is in the blob store.
 */
export type TaskStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'timed_out';

export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'timed_out']);

const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  queued: ['running', 'failed'],
  running: ['succeeded', 'failed', 'timed_out'],
  succeeded: [],
  failed: [],
  timed_out: [],
};

/** The agent settings a task runs with (a subset of a session's). */
export interface TaskAgent {
  model?: string | undefined;
  system_prompt?: string | undefined;
  allowed_tools?: string[] | undefined;
  disallowed_tools?: string[] | undefined;
  permission_mode?: 'default' | 'acceptEdits' | 'bypassPermissions' | 'plan' | 'dontAsk' | undefined;
  network?: AgentNetwork | undefined;
}

export interface TaskArtifact {
  /** Relative to the task's working directory, `/`-separated. */
  path: string;
  bytes: number;
  sha256: string;
}

export interface TaskError {
  type: string;
  message: string;
}

/** What `GET /v1/tasks/:id` returns, and what `task.json` holds. */
export interface TaskRecord {
  id: string;
  type: 'task';
  status: TaskStatus;
  prompt: string;
  agent: TaskAgent;
  timeout_ms: number;
  max_turns: number | null;
  /** The agent's final text (for a failed task, what it said last, if anything). */
  result: string | null;
  usage: Usage | null;
  cost_usd: number | null;
  /** From the process start to the end of the task. */
  duration_ms: number | null;
  num_turns: number | null;
  error: TaskError | null;
  /** In the order they are stored: an artifact's index here is its blob key. */
  artifacts: TaskArtifact[];
  created_at: string;
  finished_at: string | null;
  /** Whether the task ran in a prewarmed spare process. */
  warm_start: boolean;
}

/** Task events: the agent's (as sessions have them) and the task's own. */
export type TaskNewEvent =
  | Exclude<NewEvent, { type: `session.${string}` } | { type: `user.${string}` }>
  | { type: 'task.status_queued' }
  | { type: 'task.status_running'; warm_start: boolean }
  | { type: 'task.status_succeeded' | 'task.status_failed' | 'task.status_timed_out'; task: TaskRecord }
  | { type: 'task.error'; error: TaskError };

export type TaskEvent = TaskNewEvent & { id: string; seq: number; created_at: string };

/** The task's own events (`task.*`), as opposed to its agent's. */
export type TaskOwnEvent = Extract<TaskEvent, { type: `task.${string}` }>;

/** Events kept per task; past this only status events and errors are kept (the rest are counted). */
export const MAX_TASK_EVENTS = 10_000;

export const TASK_ID_PATTERN = /^task_[A-Za-z0-9_-]{1,64}$/;

export function newTaskId(): string {
  return `task_${randomBytes(15).toString('base64url')}`;
}

/** A task's record as it is admitted: queued, with nothing run or measured yet. */
export function newTaskRecord(
  task: Pick<TaskRecord, 'id' | 'prompt' | 'agent' | 'timeout_ms' | 'max_turns' | 'warm_start'>,
  createdAt = new Date().toISOString(),
): TaskRecord {
  return {
    id: task.id,
    type: 'task',
    status: 'queued',
    prompt: task.prompt,
    agent: task.agent,
    timeout_ms: task.timeout_ms,
    max_turns: task.max_turns,
    result: null,
    usage: null,
    cost_usd: null,
    duration_ms: null,
    num_turns: null,
    error: null,
    artifacts: [],
    created_at: createdAt,
    finished_at: null,
    warm_start: task.warm_start,
  };
}

export type TaskListener = (event: TaskEvent) => void;

export class Task {
  private current: TaskRecord;
  private readonly log: TaskEvent[] = [];
  private readonly listeners = new Set<TaskListener>();
  private dropped = 0;
  private settle!: (record: TaskRecord) => void;
  /** Resolves with the final record once the task is over and its sandbox destroyed. */
  readonly done: Promise<TaskRecord>;

  constructor(
    readonly tenant: string,
    record: TaskRecord,
  ) {
    this.current = record;
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  get id(): string {
    return this.current.id;
  }

  get record(): TaskRecord {
    return { ...this.current, artifacts: [...this.current.artifacts] };
  }

  get status(): TaskStatus {
    return this.current.status;
  }

  get isFinal(): boolean {
    return FINAL_STATUSES.has(this.current.status);
  }

  /** Events emitted so far, oldest first. */
  events(after = 0): TaskEvent[] {
    return this.log.filter((e) => e.seq > after);
  }

  /** The `seq` of the latest event (0 before any). */
  get lastSeq(): number {
    return this.log.at(-1)?.seq ?? 0;
  }

  /** Agent events not kept because the task went over {@link MAX_TASK_EVENTS}. */
  get droppedEvents(): number {
    return this.dropped;
  }

  /** Changes fields that are not the status (usage, result, ...). */
  update(patch: Partial<Omit<TaskRecord, 'status' | 'id'>>): void {
    this.current = { ...this.current, ...patch };
  }

  /**
   * Moves to `status` (throws on a transition the state machine does not allow) and emits its status
   * event. A final status also settles {@link done}.
   */
  transition(status: TaskStatus, patch: Partial<Omit<TaskRecord, 'status' | 'id'>> = {}): void {
    const from = this.current.status;
    if (!TRANSITIONS[from].includes(status)) {
      throw new BerthError('internal', `task ${this.id}: illegal transition ${from} -> ${status}`);
    }
    this.current = { ...this.current, ...patch, status };
    switch (status) {
      case 'queued':
        this.emit({ type: 'task.status_queued' });
        break;
      case 'running':
        this.emit({ type: 'task.status_running', warm_start: this.current.warm_start });
        break;
      default:
        this.emit({ type: `task.status_${status}`, task: this.record });
        this.settle(this.record);
    }
  }

  /** Stores and publishes `event`; returns it as stored, or undefined when it was dropped. */
  emit(event: TaskNewEvent): TaskEvent | undefined {
    const keep = event.type.startsWith('task.') || this.log.length < MAX_TASK_EVENTS;
    if (!keep) {
      this.dropped += 1;
      return undefined;
    }
    const stored: TaskEvent = {
      ...event,
      id: newEventId(),
      seq: this.lastSeq + 1,
      created_at: new Date().toISOString(),
    };
    this.log.push(stored);
    for (const listener of this.listeners) {
      try {
        listener(stored);
      } catch {
        // A failing subscriber (a closed socket) must not stop the task or the other subscribers.
      }
    }
    return stored;
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: TaskListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
