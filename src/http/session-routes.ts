/**
 * Managed Agents' sessions and their events: create from an agent (pinned at a version, optionally with
 * overrides) in an environment, retrieve, update, list with its filters, archive, delete; events sent,
 * listed in pages and streamed. What a session runs with is resolved here, once, at creation
 * (managed-config.ts); the host then runs it like any other.
 */
import type { Context, Hono } from 'hono';
import { BerthError } from '../errors.js';
import type { SessionHost } from '../host/session-host.js';
import { newSessionId } from '../ids.js';
import type { Session, UserEvent } from '../session/session.js';
import type { Catalog } from '../stores/catalog.js';
import type { ManagedSessionFields, SessionRecord } from '../stores/types.js';
import type { Env, RouteGroup } from './route-group.js';
import { AgentVersions, CATALOG_ID, versionId } from './catalog-routes.js';
import { eventPage } from './event-pages.js';
import { eventView } from './event-view.js';
import { ClusterRouting } from './forward.js';
import {
  type HostAbilities,
  normalizeEnvironmentConfig,
  agentConfigOf,
  checkMcpReach,
  checkMcpToolsets,
  normalizeMcpServers,
  hostingOf,
  normalizeModel,
  normalizeTools,
} from './managed-config.js';
import {
  eventListQuery,
  sendEventsSchema,
  sessionCreateSchema,
  sessionListQuery,
  sessionUpdateSchema,
  toolConfirmationSchema,
  userInterruptSchema,
  userMessageSchema,
} from './managed-schemas.js';
import { parse, readJson, resumeAfter } from './request.js';
import { apiSessionStatus, sessionView } from './session-view.js';
import { streamSessionEvents } from './sse.js';

export interface SessionRoutesOptions {
  host: SessionHost;
  catalog: Catalog;
  /** What this host can enforce of an environment (networking, a memory limit). */
  network: HostAbilities;
  heartbeatMs: number;
  cluster?: ClusterRouting | undefined;
}

/** Event types of Managed Agents that clients may send but Berth does not take yet. */
const UNSUPPORTED_EVENTS = new Set([
  'user.custom_tool_result',
  'user.tool_result',
  'user.define_outcome',
  'system.message',
]);

/** A budget as the record keeps it: whole cents. */
function budgetOf(
  budget: { max_list_cost: { amount: string } } | null | undefined,
): ManagedSessionFields['budget'] {
  return budget ? { max_list_cost_cents: Number(budget.max_list_cost.amount) } : null;
}

/** The query as an object; a `name[]` parameter keeps every value. */
function queryOf(c: Context): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, values] of Object.entries(c.req.queries())) {
    out[key] = key.endsWith('[]') ? values : values[values.length - 1]!;
  }
  return out;
}

function list(value: string | string[] | undefined): string[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? value : [value];
}

function time(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Date.parse(value);
}

/** Client events as the session takes them; one bad event refuses the batch. */
export function parseSessionEvents(body: unknown): UserEvent[] {
  const { events } = parse(sendEventsSchema, body, 'request body');
  return events.map((raw, index): UserEvent => {
    const at = `events.${index}`;
    switch (raw.type) {
      case 'user.message':
        return parse(userMessageSchema, raw, at);
      case 'user.interrupt':
        parse(userInterruptSchema, raw, at);
        return { type: 'user.interrupt' };
      case 'user.tool_confirmation': {
        const e = parse(toolConfirmationSchema, raw, at);
        return {
          type: e.type,
          tool_use_id: e.tool_use_id,
          result: e.result,
          deny_message: e.deny_message ?? undefined,
        };
      }
      default:
        if (UNSUPPORTED_EVENTS.has(raw.type)) {
          throw new BerthError('unsupported', `${at}.type: ${raw.type} is not supported by Berth`);
        }
        throw new BerthError(
          'unknown_event_type',
          `${at}.type: unknown event type ${JSON.stringify(raw.type)}; clients send user.message, user.interrupt, user.tool_confirmation`,
        );
    }
  });
}

export function sessionRoutes(options: SessionRoutesOptions): RouteGroup {
  const { host, catalog, cluster } = options;
  const versions = new AgentVersions(catalog);
  const session = (c: Context<Env>): Promise<Session> => host.get(c.get('tenant'), c.req.param('id') ?? '');
  const view = (record: SessionRecord) => sessionView(record, versions);

  /** The agent (at its version, overrides applied) and environment a new session is made from. */
  async function resolve(tenant: string, input: ReturnType<typeof sessionCreateSchema.parse>) {
    const param = typeof input.agent === 'string' ? { type: 'agent' as const, id: input.agent } : input.agent;
    const head = CATALOG_ID.test(param.id)
      ? await catalog.get({ tenant, kind: 'agent', id: param.id })
      : undefined;
    if (!head) throw new BerthError('agent_not_found', `agent: no agent ${JSON.stringify(param.id)}`);
    if (head.doc.archived_at !== null)
      throw new BerthError('agent_archived', `agent: agent ${param.id} is archived`);
    const version = param.version ?? (head.doc.version as number);
    // A version above the head's was never published (an update that failed before moving the head).
    const published = version <= (head.doc.version as number);
    const pinned = published
      ? await catalog.get({ tenant, kind: 'agent_version', id: versionId(param.id, version) })
      : undefined;
    if (!pinned)
      throw new BerthError('agent_not_found', `agent: agent ${param.id} has no version ${version}`);
    let overrides: Record<string, unknown> | undefined;
    if (param.type === 'agent_with_overrides') {
      if (param.skills && param.skills.length > 0)
        throw new BerthError('unsupported', 'agent.skills: a skill is not supported by Berth');
      overrides = {
        ...(param.model !== undefined && { model: normalizeModel(param.model, 'agent.model') }),
        ...(param.system !== undefined && { system: param.system }),
        ...(param.tools !== undefined && { tools: normalizeTools(param.tools, 'agent.tools') }),
        ...(param.mcp_servers !== undefined && {
          mcp_servers: normalizeMcpServers(param.mcp_servers, 'agent.mcp_servers'),
        }),
      };
    }
    const effective = { ...pinned.doc, ...overrides };
    const mcpServers = effective.mcp_servers as Record<string, unknown>[] | undefined;
    // Checked on the agent as overridden: an override may drop a server the agent's toolset names.
    checkMcpToolsets(effective.tools as Record<string, unknown>[], mcpServers ?? [], 'agent.tools');
    checkMcpReach(mcpServers, options.network);
    const environment = CATALOG_ID.test(input.environment_id)
      ? await catalog.get({ tenant, kind: 'environment', id: input.environment_id })
      : undefined;
    if (!environment) {
      throw new BerthError(
        'environment_not_found',
        `environment_id: no environment ${JSON.stringify(input.environment_id)}`,
      );
    }
    if (environment.doc.archived_at !== null) {
      throw new BerthError(
        'environment_archived',
        `environment_id: environment ${input.environment_id} is archived`,
      );
    }
    // Checked again here: the environment may have been made on a host that confines agents differently.
    const config = normalizeEnvironmentConfig(environment.doc.config as never, options.network);
    const hosting = hostingOf(config);
    const agent = {
      ...agentConfigOf(effective),
      ...(hosting.network && { network: hosting.network }),
      ...hosting.limits,
    };
    return { agent, pattern: hosting.pattern, ref: { id: param.id, version }, overrides };
  }

  return {
    prefix: '/v1/sessions',
    register(app: Hono<Env>) {
      app.post('/v1/sessions', async (c) => {
        const body = await readJson(c);
        const input = parse(sessionCreateSchema, body, 'request body');
        if (input.resources?.length)
          throw new BerthError('unsupported', 'resources: session resources are not supported by Berth');
        if (input.vault_ids?.length)
          throw new BerthError('unsupported', 'vault_ids: vaults are not supported by Berth');
        const initial = input.initial_events?.length
          ? parseSessionEvents({ events: input.initial_events })
          : [];
        if (initial.some((e) => e.type !== 'user.message')) {
          throw new BerthError('invalid_request', 'initial_events: only user.message events start a session');
        }
        const tenant = c.get('tenant');
        if (cluster && !ClusterRouting.forwarded(c)) {
          // A new session starts where its id hashes to, so that it does not move at its first idle moment.
          input.id ??= newSessionId();
          const target = cluster.placeNew({ tenant, id: input.id });
          if (target)
            return cluster.forward(c, target, JSON.stringify({ ...(body as object), id: input.id }));
        }
        const resolved = await resolve(tenant, input);
        const managed: ManagedSessionFields = {
          agent: resolved.ref,
          environment_id: input.environment_id,
          archived_at: null,
          budget: budgetOf(input.budget),
          ...(resolved.overrides && { overrides: resolved.overrides }),
        };
        const created = await host.create(tenant, {
          ...(input.id !== undefined && { id: input.id }),
          ...(input.title !== undefined && input.title !== null && { title: input.title }),
          ...(input.metadata && { metadata: input.metadata }),
          ...(resolved.pattern && { pattern: resolved.pattern }),
          agent: resolved.agent,
          managed,
        });
        if (initial.length > 0) {
          try {
            created.send(initial);
          } catch (err) {
            // Refused (the tenant's budget, a full host): the request changes nothing, the session included.
            await host.delete(tenant, created.id).catch(() => undefined);
            throw err;
          }
        }
        return c.json(await view(created.snapshot), 200);
      });

      app.get('/v1/sessions', async (c) => {
        const q = parse(sessionListQuery, queryOf(c), 'query');
        if (q.order === 'asc')
          throw new BerthError('unsupported', 'order: sessions are listed newest first (desc) only');
        const statuses = list(q['statuses[]']);
        for (const s of statuses ?? []) {
          if (!['idle', 'running', 'rescheduling', 'terminated'].includes(s)) {
            throw new BerthError('invalid_request', `statuses: unknown status ${JSON.stringify(s)}`);
          }
        }
        const gt = time(q['created_at[gt]']) ?? -Infinity;
        const gte = time(q['created_at[gte]']) ?? -Infinity;
        const lt = time(q['created_at[lt]']) ?? Infinity;
        const lte = time(q['created_at[lte]']) ?? Infinity;
        const keep = (r: SessionRecord): boolean =>
          (q.include_archived === 'true' || !r.managed?.archived_at) &&
          (statuses === undefined || statuses.includes(apiSessionStatus(r.status))) &&
          (q.agent_id === undefined || r.managed?.agent?.id === q.agent_id) &&
          (q.agent_version === undefined || r.managed?.agent?.version === q.agent_version) &&
          r.createdAt > gt &&
          r.createdAt >= gte &&
          r.createdAt < lt &&
          r.createdAt <= lte;
        const page = await host.list(c.get('tenant'), { limit: q.limit ?? 20, cursor: q.page });
        const data = await Promise.all(page.data.filter(keep).map(view));
        return c.json({ data, next_page: page.next, prev_page: null });
      });

      app.get('/v1/sessions/:id', async (c) => c.json(await view((await session(c)).snapshot)));

      app.post('/v1/sessions/:id', async (c) => {
        const input = parse(sessionUpdateSchema, await readJson(c), 'request body');
        if (input.agent !== undefined)
          throw new BerthError('unsupported', "agent: changing a session's agent is not supported by Berth");
        if (input.vault_ids?.length)
          throw new BerthError('unsupported', 'vault_ids: vaults are not supported by Berth');
        const s = await session(c);
        const record = s.snapshot;
        const metadata = { ...record.metadata };
        for (const [key, value] of Object.entries(input.metadata ?? {})) {
          if (value === null) delete metadata[key];
          else metadata[key] = value;
        }
        if (input.metadata === null) for (const key of Object.keys(metadata)) delete metadata[key];
        if (Object.keys(metadata).length > 16)
          throw new BerthError('invalid_request', 'metadata: at most 16 keys');
        const managed = record.managed;
        if (input.budget !== undefined && !managed) {
          throw new BerthError(
            'invalid_request',
            `budget: session ${s.id} belongs to a group and has no budget`,
          );
        }
        await s.update({
          ...(input.title !== undefined && { title: input.title }),
          metadata,
          ...(managed &&
            input.budget !== undefined && { managed: { ...managed, budget: budgetOf(input.budget) } }),
        });
        return c.json(await view(s.snapshot));
      });

      app.post('/v1/sessions/:id/archive', async (c) => {
        const s = await session(c);
        const managed = s.snapshot.managed;
        if (!managed) {
          // A group's agent: it ends with its group (DELETE /v1/groups/:id).
          throw new BerthError(
            'invalid_request',
            `Session ${s.id} belongs to a group; it is not archived alone`,
          );
        }
        if (managed.archived_at === null)
          await s.update({ managed: { ...managed, archived_at: Date.now() } });
        // An archived session takes no more events: it ends like a terminated one, its history kept.
        await s.close('archived');
        return c.json(await view(s.snapshot));
      });

      app.delete('/v1/sessions/:id', async (c) => {
        const id = (await session(c)).id;
        await host.delete(c.get('tenant'), id);
        return c.json({ id, type: 'session_deleted' });
      });

      app.post('/v1/sessions/:id/events', async (c) => {
        const s = await session(c);
        const events = parseSessionEvents(await readJson(c));
        return c.json({ data: s.send(events).map(eventView) });
      });

      app.get('/v1/sessions/:id/events', async (c) => {
        const q = parse(eventListQuery, queryOf(c), 'query');
        const s = await session(c);
        const types = list(q['types[]']);
        const page = await eventPage(s.events, {
          limit: q.limit ?? 100,
          order: q.order ?? 'asc',
          page: q.page,
          types: types && new Set(types),
          createdAfter: time(q['created_at[gt]']),
          createdAtOrAfter: time(q['created_at[gte]']),
          createdBefore: time(q['created_at[lt]']),
          createdAtOrBefore: time(q['created_at[lte]']),
        });
        return c.json({ data: page.data.map(eventView), next_page: page.next });
      });

      app.get('/v1/sessions/:id/events/stream', async (c) => {
        const q = c.req.query();
        for (const key of Object.keys(q)) {
          if (key !== 'after' && key !== 'event_deltas[]') {
            throw new BerthError('invalid_request', `query: unknown parameter ${JSON.stringify(key)}`);
          }
        }
        if (c.req.queries('event_deltas[]')?.length) {
          throw new BerthError('unsupported', 'event_deltas: streaming deltas is not supported by Berth');
        }
        const after = q.after === undefined ? undefined : Number(q.after);
        if (after !== undefined && !(Number.isSafeInteger(after) && after >= 0)) {
          throw new BerthError('invalid_request', 'after: must be an event seq');
        }
        const s = await session(c);
        return streamSessionEvents(c, s, {
          after: resumeAfter(c, after),
          heartbeatMs: options.heartbeatMs,
          onClose: c.get('releaseStream'),
          closing: c.get('streamsClosing'),
        });
      });
    },
  };
}
