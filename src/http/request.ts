/**
 * Reading a request, shared by every route group (sessions, tasks, groups): the JSON body, a zod parse
 * whose failure is `invalid_request` naming each bad field, and the `Last-Event-ID` of a stream.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { BerthError, describeError } from '../errors.js';
import { describeZodError } from './schemas.js';

/** The body as JSON; `invalid_json` when it is empty or not JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') throw new BerthError('invalid_json', 'The request body is empty; it must be JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BerthError('invalid_json', `The request body is not valid JSON: ${describeError(err)}`);
  }
}

/** `value` parsed by `schema`; `invalid_request` naming `what` (`request body`, `query`, ...) when it fails. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new BerthError('invalid_request', `Invalid ${what}: ${describeZodError(result.error)}`);
  }
  return result.data;
}

/**
 * Where a stream resumes: the `Last-Event-ID` header when the client sent one (a reconnect), else
 * `after` (the `?after=` query).
 */
export function resumeAfter(c: Context, after: number | undefined): number | undefined {
  const header = c.req.header('last-event-id');
  if (header === undefined) return after;
  if (!/^\d{1,15}$/.test(header)) {
    throw new BerthError('invalid_request', 'Last-Event-ID must be an event sequence number');
  }
  return Number(header);
}

/**
 * Refuses `bypassPermissions` when agents would run as root: the CLI refuses it then (measured: it exits at start-up), and a
 * 400 here beats a session, task or group that can never run a turn. `subject` starts the message.
 */
export function refuseBypassAsRoot(permissionMode: string | undefined, subject: string): void {
  if (permissionMode === 'bypassPermissions' && process.getuid?.() === 0) {
    throw new BerthError('invalid_request', `${subject} is refused when agents run as root`);
  }
}
