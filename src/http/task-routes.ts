/**
 * The API of ephemeral tasks (see `src/tasks/`):
 * - `POST /v1/tasks[?wait=true]` creates one (202 with the record, or 200 with the final record);
 * - `GET /v1/tasks/:id` its record; `GET /v1/tasks/:id/artifacts/PATH` one artifact's bytes;
 * - `GET /v1/tasks/:id/events/stream` its events as SSE, from the start, ending with its final status.
 * Tasks are the caller's tenant's: another tenant's task is 404.
 */
import { Readable } from 'node:stream';
import type { Context, Hono } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { z } from 'zod';
import { BerthError, describeError } from '../errors.js';
import type { Task, TaskEvent } from '../tasks/task.js';
import type { TaskRunner } from '../tasks/task-runner.js';
import type { Env, RouteGroup } from './app.js';
import { agentSchema, describeZodError, streamQuery } from './schemas.js';

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

const createTaskQuery = z.strictObject({ wait: z.enum(['true', 'false']).optional() });

/** A client further behind than this is disconnected; it reconnects with Last-Event-ID. */
const MAX_BUFFERED_EVENTS = 10_000;

export function taskRoutes(options: TaskRoutesOptions): RouteGroup {
  const { tasks } = options;
  return {
    prefix: '/v1/tasks',
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_TASK_BODY_BYTES,
    register(app: Hono<Env>) {
      app.post('/v1/tasks', async (c) => {
        const q = parse(createTaskQuery, c.req.query(), 'query');
        const body = parse(createTaskSchema, await readJson(c), 'request body');
        if (body.agent?.permission_mode === 'bypassPermissions' && process.getuid?.() === 0) {
          // The CLI refuses it as root (FACTS.md): refused here rather than as a task that cannot run.
          throw new BerthError(
            'invalid_request',
            'agent.permission_mode bypassPermissions is refused when agents run as root',
          );
        }
        const task = await tasks.create(c.get('tenant'), {
          prompt: body.prompt,
          agent: body.agent,
          files: body.files,
          timeoutMs: body.timeout_ms,
          maxTurns: body.max_turns,
        });
        if (q.wait === 'true') return c.json(await task.done, 200);
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
        const lastEventId = c.req.header('last-event-id');
        let after = q.after ?? 0;
        if (lastEventId !== undefined) {
          if (!/^\d{1,15}$/.test(lastEventId)) {
            throw new BerthError('invalid_request', 'Last-Event-ID must be an event sequence number');
          }
          after = Number(lastEventId);
        }
        const tenant = c.get('tenant');
        const id = c.req.param('id');
        const live = tasks.liveTask(tenant, id);
        if (live) return streamLive(c, live, after, options.heartbeatMs);
        // Not running here: a finished task's stored events (or 404 before the stream starts).
        const events = await tasks.storedEvents(tenant, id);
        return streamSSE(c, async (stream) => {
          for (const event of events) if (event.seq > after) await send(stream, event);
        });
      });
    },
  };
}

/**
 * A running task's events: everything after `after`, then live ones, ending after its final status
 * event. The subscription starts before the replay, and events already replayed are skipped.
 */
function streamLive(c: Context, task: Task, after: number, heartbeatMs: number): Response {
  return streamSSE(c, async (stream) => {
    const buffered: TaskEvent[] = [];
    let wake: (() => void) | undefined;
    let overflow = false;
    let closed = false;
    const unsubscribe = task.subscribe((event) => {
      if (buffered.length >= MAX_BUFFERED_EVENTS) overflow = true;
      else buffered.push(event);
      wake?.();
    });
    const heartbeat = setInterval(() => {
      void stream.write(': heartbeat\n\n').catch(() => undefined);
    }, heartbeatMs);
    stream.onAbort(() => {
      closed = true;
      wake?.();
    });
    try {
      let sent = after;
      for (const event of task.events(after)) {
        await send(stream, event);
        sent = event.seq;
        if (isFinal(event)) return;
      }
      // Its final event was before `after`: nothing more will come.
      if (task.isFinal) return;
      while (!closed && !overflow) {
        const event = buffered.shift();
        if (!event) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (event.seq <= sent) continue;
        await send(stream, event);
        sent = event.seq;
        if (isFinal(event)) return;
      }
    } finally {
      clearInterval(heartbeat);
      unsubscribe();
    }
  });
}

function isFinal(event: TaskEvent): boolean {
  return (
    event.type === 'task.status_succeeded' ||
    event.type === 'task.status_failed' ||
    event.type === 'task.status_timed_out'
  );
}

function send(stream: SSEStreamingApi, event: TaskEvent): Promise<void> {
  return stream.writeSSE({ id: String(event.seq), event: event.type, data: JSON.stringify(event) });
}

async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') throw new BerthError('invalid_json', 'The request body is empty; it must be JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BerthError('invalid_json', `The request body is not valid JSON: ${describeError(err)}`);
  }
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new BerthError('invalid_request', `Invalid ${what}: ${describeZodError(result.error)}`);
  }
  return result.data;
}
