/**
 * `/v1/groups`: multi-agent groups (see `GroupRegistry`). A group is tenant-scoped like a session:
 * another tenant's group is answered exactly like a missing one (404).
 *
 * Groups are Berth's addition to the Managed Agents API, made to read like it: a group's events are its
 * agents' session events as the API shows them (event-view.ts), tagged with the agent, plus the group's
 * own `group.*` events with the same `id`, `processed_at` and `seq`; the event list pages with an opaque
 * `page` cursor and `next_page`; sent events are answered 200 with `{data}`. Agents are configured with
 * Berth's own agent config (`agentSchema`), not Managed Agents' agents: a group makes its sessions itself.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { BerthError } from '../errors.js';
import type {
  GroupEvent,
  GroupEventBuffer,
  GroupInputEvent,
  TaggedSessionEvent,
} from '../groups/group-events.js';
import { MAX_ROUNDS, type Group } from '../groups/group.js';
import {
  GroupRegistry,
  MAX_GROUP_AGENTS,
  MIN_GROUP_AGENTS,
  type GroupRegistryOptions,
} from '../groups/group-registry.js';
import { ID_PATTERN } from '../ids.js';
import type { UserEvent } from '../session/session.js';
import type { Env, RouteGroup } from './route-group.js';
import { eventView } from './event-view.js';
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

export const roundsEvent = z.strictObject({
  type: z.literal('group.rounds'),
  rounds: z.number().int().min(1).max(MAX_ROUNDS),
  content: z
    .string()
    .max(100_000)
    .refine((s) => s.trim().length > 0, 'must not be empty')
    .optional(),
});

export const agentName = z.string().regex(ID_PATTERN, 'must be an agent name of this group');

/** The event types a client sends to a group. */
export const GROUP_EVENT_TYPES: readonly string[] = [...KNOWN_USER_EVENTS, 'group.rounds'];

/** How clients see a group's events is this module's: it is not an option. */
export interface GroupRoutesOptions extends Omit<GroupRegistryOptions, 'renderEvent'> {
  heartbeatMs: number;
}

function isTagged(event: GroupEvent): event is TaggedSessionEvent & GroupEvent {
  return 'session_id' in event;
}

/**
 * A group's event as clients see it. An agent's session event is shown as the API shows session events
 * (its `id` and `processed_at` are the session event's), numbered with the group's `seq` and tagged with
 * `agent`, `session_id` and `session_seq` (its `seq` in the session); a `group.*` event has its `id`,
 * `processed_at` and `seq` the same way.
 */
export function groupEventView(event: GroupEvent): Record<string, unknown> {
  if (isTagged(event)) {
    const { agent, session_id, session_seq, ...stored } = event;
    return { ...eventView(stored), agent, session_id, session_seq };
  }
  const { id, type, created_at, seq, ...fields } = event;
  return { id, type, processed_at: created_at, seq, ...fields };
}

/**
 * The `page` cursor of a group's event list: the group `seq` the page starts after, opaque to clients
 * as a session's is (event-pages.ts); `group:` keeps a session's cursor from passing for one.
 */
function encodePage(after: number): string {
  return Buffer.from(`group:${after}`, 'utf8').toString('base64url');
}

function decodePage(page: string): number {
  const match = /^group:(\d{1,15})$/.exec(Buffer.from(page, 'base64url').toString('utf8'));
  if (!match) throw new BerthError('invalid_request', 'page: not a cursor this server gave out');
  return Number(match[1]);
}

/**
 * One page of a group's events, oldest first, after the `page` cursor (from the start without one), and
 * the next page's cursor (null once the page reaches the latest event).
 *
 * The list is the group's in-memory buffer, which drops its oldest events past its bounds. A cursor
 * older than the buffer pages on from the oldest event still held, without an error, as `?after=` below
 * `oldest_seq` always did: a client sees the skip in the seqs (the page starts past its last seq + 1),
 * and finds the dropped events in the agents' sessions; the SSE stream says so with `group.replay_gap`.
 */
export function groupEventPage(
  events: GroupEventBuffer,
  q: { limit: number; page?: string | undefined },
): { data: GroupEvent[]; next: string | null } {
  const after = q.page === undefined ? 0 : decodePage(q.page);
  const data = events.list(after, q.limit).map((b) => b.event);
  const last = data.at(-1)?.seq ?? after;
  return { data, next: last < events.lastSeq ? encodePage(last) : null };
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
  const registry = new GroupRegistry({
    ...options,
    renderEvent: (event) => JSON.stringify(groupEventView(event)),
  });
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
        return c.json(groupView(created), 200);
      });

      app.get('/v1/groups', (c) =>
        c.json({ data: registry.list(c.get('tenant')).map(groupView), next_page: null }),
      );

      app.get('/v1/groups/:id', (c) => c.json(groupView(group(c))));

      app.delete('/v1/groups/:id', async (c) => {
        const id = group(c).id;
        await registry.delete(c.get('tenant'), id);
        return c.json({ id, type: 'group_deleted' });
      });

      // 200, as a session's events are answered: they are stored when this answers; the turns and rounds
      // they start run after it, as a session's turns do.
      app.post('/v1/groups/:id/events', async (c) => {
        const g = group(c);
        const events = parseGroupEvents(await readJson(c));
        return c.json({ data: g.send(events).map(groupEventView) });
      });

      app.get('/v1/groups/:id/events', (c) => {
        const q = parse(listEventsQuery, c.req.query(), 'query');
        const g = group(c);
        const page = groupEventPage(g.events, { limit: q.limit ?? 100, page: q.page });
        return c.json({
          data: page.data.map(groupEventView),
          next_page: page.next,
          // The first seq the buffer still holds: what came before is only in the agents' sessions.
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
          closing: c.get('streamsClosing'),
        });
      });
    },
  };
}
