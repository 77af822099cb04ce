/**
 * Request bodies and query strings of the API, as zod schemas. Unknown fields are rejected (`strict`):
 * a typo in a field name is an error the client should see, not a setting silently ignored.
 */
import { z } from 'zod';
import { USER_EVENT_TYPES } from '../session/events.js';

/**
 * The user content blocks the Messages API takes from a person. Extra fields (e.g. `cache_control`) pass
 * through; anything else is refused here rather than by the model API in the middle of a turn.
 */
const contentBlock = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text'), text: z.string().min(1) }),
  z.looseObject({ type: z.literal('image'), source: z.looseObject({ type: z.string() }) }),
  z.looseObject({ type: z.literal('document'), source: z.looseObject({ type: z.string() }) }),
]);

export const agentSchema = z.strictObject({
  model: z.string().min(1).max(200).optional(),
  system_prompt: z.string().max(100_000).optional(),
  allowed_tools: z.array(z.string().min(1).max(200)).max(200).optional(),
  disallowed_tools: z.array(z.string().min(1).max(200)).max(200).optional(),
  permission_mode: z.enum(['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk']).optional(),
  max_turns: z.number().int().min(1).max(10_000).optional(),
  network: z
    .strictObject({
      allowed_domains: z
        .array(
          z
            .string()
            .max(253)
            .regex(
              /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$/,
              'must be a lowercase host name (example.com) or *.example.com for its subdomains',
            ),
        )
        .max(100),
    })
    .optional(),
});

const userMessage = z.strictObject({
  type: z.literal('user.message'),
  content: z.union([
    z.string().refine((s) => s.trim().length > 0, 'must not be empty'),
    z.array(contentBlock).min(1, 'must hold at least one content block'),
  ]),
});

const userInterrupt = z.strictObject({ type: z.literal('user.interrupt') });

const toolConfirmation = z.strictObject({
  type: z.literal('user.tool_confirmation'),
  /** The id of the `agent.tool_use` event it answers. */
  tool_use_id: z.string().min(1).max(200),
  result: z.enum(['allow', 'deny']),
  deny_message: z.string().max(10_000).optional(),
});

export const userEventSchema = z.discriminatedUnion('type', [userMessage, userInterrupt, toolConfirmation]);

export const postEventsSchema = z.strictObject({
  events: z
    .array(z.looseObject({ type: z.string() }))
    .min(1)
    .max(100),
});

export const KNOWN_USER_EVENTS: ReadonlySet<string> = new Set(USER_EVENT_TYPES);

const seqParam = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A group's event list: `page` is the `next_page` of the page before (as for a session's events). */
export const listEventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  page: z.string().max(500).optional(),
});

export const streamQuery = z.strictObject({ after: seqParam.optional() });

/** A one-line account of what is wrong, naming each bad field. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'body'}: ${issue.message}`)
    .join('; ');
}
