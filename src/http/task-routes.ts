/**
 * The API of ephemeral tasks (see `src/tasks/`):
 * - `POST /v1/tasks[?wait=true]` creates one (202 with the record, or 200 with the final record);
 * - `GET /v1/tasks/:id` its record; `GET /v1/tasks/:id/artifacts/PATH` one artifact's bytes;
 * - `GET /v1/tasks/:id/events/stream` its events as SSE, from the start, ending with its final status.
 * Tasks are the caller's tenant's: another tenant's task is 404.
 *
 * Tasks are Berth's addition to the Managed Agents API, made to read like it: the agent's events are
 * shown as the API shows a session's (event-view.ts), the task's own `task.*` events with the same `id`,
 * `processed_at` and `seq`. Events are stored as the task emitted them; the view is applied when sent.
 */
import { Readable } from 'node:stream';
import type { Hono } from 'hono';
import { z } from 'zod';
import { BerthError } from '../errors.js';
import type { Task, TaskEvent, TaskOwnEvent } from '../tasks/task.js';
import type { TaskRunner } from '../tasks/task-runner.js';
import type { Env, RouteGroup } from './route-group.js';
import { eventView } from './event-view.js';
import { parse, readJson, refuseBypassAsRoot, resumeAfter } from './request.js';
import { agentSchema, streamQuery } from './schemas.js';
import { streamEvents, type EventSource } from './sse.js';

export interface TaskRoutesOptions {
  tasks: TaskRunner;
  heartbeatMs: number;
  /** Input files come in the JSON body (base64 inflates them by a third). @default 48 MiB */
  maxBodyBytes?: number;
}

/** Room for 32 MiB of input files, base64-encoded, and the rest of the body. */
export const DEFAULT_TASK_BODY_BYTES = 48 * 1024 * 1024;

const taskFileSchema = z.strictObject({
  path: z.string().max(4096),
  content: z.string(),
  encoding: z.enum(['utf8', 'base64']).optional(),
});

export const createTaskSchema = z.strictObject({
  prompt: z.string().min(1).max(1_000_000),
  agent: agentSchema.omit({ max_turns: true }).optional(),
  files: z.array(taskFileSchema).max(10_000).optional(),
  timeout_ms: z.number().int().min(1).optional(),
  max_turns: z.number().int().min(1).max(10_000).optional(),
});

export const createTaskQuery = z.strictObject({ wait: z.enum(['true', 'false']).optional() });

export function taskRoutes(options: TaskRoutesOptions): RouteGroup {
  const { tasks } = options;
  return {
    prefix: '/v1/tasks',
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_TASK_BODY_BYTES,
    register(app: Hono<Env>) {
      app.post('/v1/tasks', async (c) => {
        const q = parse(createTaskQuery, c.req.query(), 'query');
        const body = parse(createTaskSchema, await readJson(c), 'request body');
        refuseBypassAsRoot(body.agent?.permission_mode, 'agent.permission_mode bypassPermissions');
        const task = await tasks.create(c.get('tenant'), {
          prompt: body.prompt,
          agent: body.agent,
          files: body.files,
          timeoutMs: body.timeout_ms,
          maxTurns: body.max_turns,
        });
        if (q.wait === 'true') return c.json(await task.done, 200);
        // 202 Accepted, not the 200 of the Managed Agents routes: the task is admitted and runs later
        // (its record says `queued`), where a session's create or a sent event is done when answered.
        return c.json(task.record, 202);
      });

      app.get('/v1/tasks/:id', async (c) => c.json(await tasks.get(c.get('tenant'), c.req.param('id'))));

      app.get('/v1/tasks/:id/artifacts/*', async (c) => {
        // The raw path, percent-decoded once as a whole (so `a%2Fb` is `a/b`); it is only ever compared
        // with the task's artifact list.
        const raw = new URL(c.req.url).pathname.match(/^\/v1\/tasks\/[^/]+\/artifacts\/(.*)$/)?.[1] ?? '';
        let artifactPath: string;
        try {
          artifactPath = decodeURIComponent(raw);
        } catch {
          throw new BerthError('invalid_path', 'The artifact path is not valid percent-encoding');
        }
        const opened = await tasks.openArtifact(c.get('tenant'), c.req.param('id'), artifactPath);
        const stream = opened.stream instanceof Readable ? opened.stream : Readable.from(opened.stream);
        return c.body(Readable.toWeb(stream) as ReadableStream, 200, {
          'content-type': 'application/octet-stream',
          'content-length': String(opened.size),
          etag: `"${opened.artifact.sha256}"`,
        });
      });

      app.get('/v1/tasks/:id/events/stream', async (c) => {
        const q = parse(streamQuery, c.req.query(), 'query');
        const after = resumeAfter(c, q.after) ?? 0;
        const tenant = c.get('tenant');
        const id = c.req.param('id');
        const live = tasks.liveTask(tenant, id);
        // Not running here: a finished task's stored events (or 404 before the stream starts).
        const source = live ? liveEvents(live) : storedEvents(await tasks.storedEvents(tenant, id));
        return streamEvents(c, source, {
          after,
          heartbeatMs: options.heartbeatMs,
          onClose: c.get('releaseStream'),
          closing: c.get('streamsClosing'),
        });
      });
    },
  };
}

/** A running task's events; its stream ends after the final status event. */
function liveEvents(task: Task): EventSource<TaskEvent> {
  return {
    subscribe: (listener) => task.subscribe(listener),
    list: (after) => task.events(after),
    get lastSeq() {
      return task.lastSeq;
    },
    get ended() {
      return task.isFinal;
    },
    isFinal,
    data: (event) => JSON.stringify(taskEventView(event)),
  };
}

/** A finished task's events, as stored when it ended. */
function storedEvents(events: readonly TaskEvent[]): EventSource<TaskEvent> {
  return {
    subscribe: () => () => undefined,
    list: (after) => events.filter((e) => e.seq > after),
    lastSeq: events.at(-1)?.seq ?? 0,
    ended: true,
    isFinal,
    data: (event) => JSON.stringify(taskEventView(event)),
  };
}

function isTaskOwn(event: TaskEvent): event is TaskOwnEvent {
  return event.type.startsWith('task.');
}

/**
 * A task's event as clients see it: the agent's as the API shows a session's events, the task's own
 * with `id`, `processed_at` and `seq` first and their fields as stored.
 */
export function taskEventView(event: TaskEvent): Record<string, unknown> {
  if (!isTaskOwn(event)) return eventView(event);
  const { id, type, created_at, seq, ...fields } = event;
  return { id, type, processed_at: created_at, seq, ...fields };
}

function isFinal(event: TaskEvent): boolean {
  return (
    event.type === 'task.status_succeeded' ||
    event.type === 'task.status_failed' ||
    event.type === 'task.status_timed_out'
  );
}
