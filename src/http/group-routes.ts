/**
 * `/v1/groups`: multi-agent groups (see `GroupRegistry`). A group is tenant-scoped like a session:
 * another tenant's group is answered exactly like a missing one (404).
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { BerthError } from '../errors.js';
import type { GroupEvent, GroupInputEvent } from '../groups/group-events.js';
import { MAX_ROUNDS, type Group } from '../groups/group.js';
import {
  GroupRegistry,
  MAX_GROUP_AGENTS,
  MIN_GROUP_AGENTS,
  type GroupRegistryOptions,
} from '../groups/group-registry.js';
import { ID_PATTERN } from '../ids.js';
import type { UserEvent } from '../session/session.js';
import type { Env, RouteGroup } from './app.js';
import { streamGroupEvents } from './group-sse.js';
import { parse, readJson, refuseBypassAsRoot, resumeAfter } from './request.js';
import {
  KNOWN_USER_EVENTS,
  agentSchema,
  listEventsQuery,
  postEventsSchema,
  streamQuery,
  userEventSchema,
} from './schemas.js';

const groupAgentSchema = z.strictObject({
  name: z
    .string()
    .regex(ID_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ (letters, digits, _ and -, at most 64)'),
  ...agentSchema.shape,
});

export const createGroupSchema = z.strictObject({
  agents: z
    .array(groupAgentSchema)
    .min(MIN_GROUP_AGENTS, `a group has at least ${MIN_GROUP_AGENTS} agents`)
    .max(MAX_GROUP_AGENTS, `a group has at most ${MAX_GROUP_AGENTS} agents`)
    .superRefine((agents, ctx) => {
      const seen = new Set<string>();
      for (const [i, agent] of agents.entries()) {
        const key = agent.name.toLowerCase();
        if (seen.has(key)) {
          ctx.addIssue({
            code: 'custom',
            message: `duplicate agent name ${JSON.stringify(agent.name)} (names must differ beyond letter case)`,
            path: [i, 'name'],
          });
        }
        seen.add(key);
      }
    }),
  shared_dir: z.boolean().optional(),
  title: z.string().max(500).optional(),
});

const roundsEvent = z.strictObject({
  type: z.literal('group.rounds'),
  rounds: z.number().int().min(1).max(MAX_ROUNDS),
  content: z
    .string()
    .max(100_000)
    .refine((s) => s.trim().length > 0, 'must not be empty')
    .optional(),
});

const agentName = z.string().regex(ID_PATTERN, 'must be an agent name of this group');

/** The event types a client sends to a group. */
export const GROUP_EVENT_TYPES: readonly string[] = [...KNOWN_USER_EVENTS, 'group.rounds'];

export interface GroupRoutesOptions extends GroupRegistryOptions {
  heartbeatMs: number;
}

function parseGroupEvents(body: unknown): GroupInputEvent[] {
  const { events } = parse(postEventsSchema, body, 'request body');
  return events.map((raw, index): GroupInputEvent => {
    if (raw.type === 'group.rounds') {
      const event = parse(roundsEvent, raw, `events.${index}`);
      return { type: 'group.rounds', rounds: event.rounds, content: event.content };
    }
    if (!KNOWN_USER_EVENTS.has(raw.type)) {
      throw new BerthError(
        'unknown_event_type',
        `events.${index}.type: unknown event type ${JSON.stringify(raw.type)}; groups take ${GROUP_EVENT_TYPES.join(', ')}`,
      );
    }
    const { agent, ...rest } = raw as Record<string, unknown> & { type: string };
    const name = parse(agentName, agent, `events.${index}.agent`);
    const event: UserEvent = parse(userEventSchema, rest, `events.${index}`);
    return { ...event, agent: name };
  });
}

/** The public shape of a group. */
export function groupView(group: Group): Record<string, unknown> {
  return {
    id: group.id,
    type: 'group',
    status: group.status,
    title: group.title,
    agents: group.agents.map((a) => ({ name: a.name, session_id: a.session.id, status: a.session.status })),
    shared_dir_path: group.sharedDir,
    rounds: group.rounds,
    created_at: new Date(group.createdAt).toISOString(),
  };
}

/** The `/v1/groups` routes, with the registry behind them. */
export function groupRoutes(options: GroupRoutesOptions): RouteGroup & { registry: GroupRegistry } {
  const registry = new GroupRegistry(options);
  const group = (c: Context<Env>): Group => registry.get(c.get('tenant'), c.req.param('id') ?? '');
  return {
    prefix: '/v1/groups',
    registry,
    register(app: Hono<Env>): void {
      app.post('/v1/groups', async (c) => {
        const input = parse(createGroupSchema, await readJson(c), 'request body');
        for (const agent of input.agents) {
          refuseBypassAsRoot(
            agent.permission_mode,
            `agents: permission_mode bypassPermissions (agent ${agent.name})`,
          );
        }
        const created = await registry.create(c.get('tenant'), input);
        return c.json(groupView(created), 201);
      });

      app.get('/v1/groups', (c) => c.json({ data: registry.list(c.get('tenant')).map(groupView) }));

      app.get('/v1/groups/:id', (c) => c.json(groupView(group(c))));

      app.delete('/v1/groups/:id', async (c) => {
        const id = group(c).id;
        await registry.delete(c.get('tenant'), id);
        return c.json({ id, type: 'group_deleted' });
      });

      app.post('/v1/groups/:id/events', async (c) => {
        const g = group(c);
        const events = parseGroupEvents(await readJson(c));
        const stored: GroupEvent[] = g.send(events);
        return c.json({ data: stored }, 202);
      });

      app.get('/v1/groups/:id/events', (c) => {
        const q = parse(listEventsQuery, c.req.query(), 'query');
        const g = group(c);
        const limit = q.limit ?? 100;
        const data = g.events.list(q.after ?? 0, limit).map((b) => b.event);
        const last = data.at(-1);
        return c.json({
          data,
          next_after: data.length === limit && last ? last.seq : null,
          oldest_seq: g.events.oldestSeq,
        });
      });

      app.get('/v1/groups/:id/events/stream', (c) => {
        const q = parse(streamQuery, c.req.query(), 'query');
        const after = resumeAfter(c, q.after);
        const g = group(c);
        return streamGroupEvents(c, g, {
          after,
          heartbeatMs: options.heartbeatMs,
          onClose: c.get('releaseStream'),
        });
      });
    },
  };
}
