/**
 * A task's one agent subprocess: started with `query()`, or claimed from a warm spare (falling back to
 * `query()` in the task's own config dirs when the spare refuses), read up to its result, then killed at
 * once: a task keeps no transcript, so the CLI's own shutdown is not waited for.
 */
import { mkdir } from 'node:fs/promises';
import type { SDKMessage, SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import { describeError } from '../errors.js';
import type { CreateSpawner } from '../sandbox/plain-spawn.js';
import { AgentProcess } from '../session/agent-process.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { mapSdkMessage } from '../session/map-sdk-message.js';
import { buildQueryOptions } from '../session/sdk-options.js';
import type { SessionPaths } from '../session/session.js';
import type { ClaimableSpare } from '../session/spare-claim.js';
import type { Task, TaskError, TaskStatus } from './task.js';
import { taskQueryAgent, toolGate } from './task-agent.js';

/** What ended a task's process, before its artifacts are collected. */
export interface Outcome {
  status: Exclude<TaskStatus, 'queued' | 'running'>;
  error: TaskError | null;
  result: SDKResultMessage | undefined;
  lastText: string | null;
}

export interface TaskProcessRequest {
  task: Task;
  paths: SessionPaths;
  /** The subprocess environment for the task's own directories (a spare has its own). */
  env: Record<string, string>;
  spare: ClaimableSpare | undefined;
  runtime: AgentRuntime | undefined;
  createSpawner: CreateSpawner | undefined;
  killGraceMs: number;
  /** Aborted when the task is cut short (its time limit, the host shutting down): the tree is killed. */
  signal: AbortSignal;
  /** The process, as soon as it exists: the caller kills what is left of it when the task ends. */
  onStart: (proc: AgentProcess) => void;
  onError: (err: unknown) => void;
}

const FAILED_TO_START: Outcome = { status: 'failed', error: null, result: undefined, lastText: null };

export async function runTaskProcess(request: TaskProcessRequest): Promise<Outcome> {
  const { task, paths, spare, signal } = request;
  const agent = task.record.agent;
  const makeDirs = (): Promise<unknown> =>
    Promise.all([paths.configDir, paths.home].map((d) => mkdir(d, { recursive: true })));
  if (!spare) await makeDirs();
  if (signal.aborted) return FAILED_TO_START;
  const canUseTool = toolGate(agent);
  const proc = AgentProcess.start({
    runtime: request.runtime,
    createSpawner: request.createSpawner,
    owner: { tenant: task.tenant, id: task.id, allowedDomains: agent.network?.allowed_domains },
    killGraceMs: request.killGraceMs,
    prompt: { text: task.record.prompt },
    onError: request.onError,
    spare: spare && {
      spare,
      request: {
        cwd: paths.cwd,
        agent,
        canUseTool,
        onRunsAnyway: (reason) => request.onError(new Error(`task ${task.id}: ${reason}`)),
      },
    },
    // The spare refused the claim: the task starts cold, in config dirs of its own.
    beforeFallback: async () => {
      task.update({ warm_start: false });
      await makeDirs();
    },
    queryOptions: ({ spawn, abortController }) =>
      buildQueryOptions(taskQueryAgent(agent, task.record.max_turns), {
        cwd: paths.cwd,
        env: request.env,
        canUseTool,
        spawn,
        abortController,
      }),
  });
  request.onStart(proc);
  const stop = (): void => void proc.kill().catch(request.onError);
  signal.addEventListener('abort', stop, { once: true });
  try {
    return await consume(task, proc);
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/** Reads the process's messages up to its result, mapping them to the task's events. */
async function consume(task: Task, proc: AgentProcess): Promise<Outcome> {
  let result: SDKResultMessage | undefined;
  let lastText: string | null = null;
  let failure: unknown;
  // The CLI's tool_use_id -> the id of its `agent.tool_use` event: a result points at that event, the id
  // clients know the tool use by (as a session's do, tool-confirmations.ts).
  const toolUseEvents = new Map<string, string>();
  try {
    for await (const message of proc.messages()) {
      if (message.type === 'result') {
        result = message;
        // The prompt is answered and the sandbox is about to go: its processes get no grace period.
        // SIGKILL to the group at once saves the CLI's ~100 ms shutdown; the tree kill then only has to
        // find the stragglers (jobs that left the group).
        proc.killGroupNow();
        proc.kill(0).catch(() => undefined);
        break;
      }
      lastText = textOf(message) ?? lastText;
      for (const event of mapSdkMessage(message)) {
        if (event.type === 'session.error') {
          task.emit({ type: 'task.error', error: event.error });
        } else if (event.type === 'agent.tool_use') {
          const stored = task.emit(event);
          if (stored) toolUseEvents.set(event.tool_use_id, stored.id);
        } else if (event.type === 'agent.tool_result') {
          const eventId = toolUseEvents.get(event.tool_use_id);
          task.emit(eventId ? { ...event, tool_use_event_id: eventId } : event);
        } else if (!event.type.startsWith('session.')) {
          task.emit(event as Parameters<Task['emit']>[0]);
        }
      }
    }
  } catch (err) {
    failure = err;
  }
  // Over its memory (the kernel killed a process of the tree), even if the agent went on to a result.
  const limit = proc.limitHit();
  if (limit) return { status: 'failed', error: limit, result, lastText };
  if (result) return { ...fromResult(result), result, lastText };
  const tail = proc.stderrTail().trim().split('\n').slice(-3).join(' | ');
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

/** A run cut short ends as such, whatever its process said while it was being killed. */
export function cutShort(
  outcome: Outcome,
  stop: 'timed_out' | 'host_shutdown' | undefined,
  timeoutMs: number,
): Outcome {
  if (stop === 'timed_out') {
    const message = `The task ran longer than its limit of ${timeoutMs} ms; its processes were killed`;
    return { ...outcome, status: 'timed_out', error: { type: 'timed_out', message } };
  }
  if (stop === 'host_shutdown') {
    const message = 'The host shut down while the task ran; its processes were killed';
    return { ...outcome, status: 'failed', error: { type: 'host_shutdown', message } };
  }
  return outcome;
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
