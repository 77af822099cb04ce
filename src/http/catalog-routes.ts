/**
 * Managed Agents' agents (versioned) and environments, kept in the store's catalog (`Stores.catalog`).
 *
 * An agent is a head entry (kind `agent`, its latest version) and one immutable entry per version (kind
 * `agent_version`, id `<agent>@<version, zero-padded>`). An update that changes something writes the next
 * version first, then moves the head by compare-and-set: two updates at once cannot both win (the loser
 * gets `revision_conflict`), and a version that exists is never rewritten. A session pins the version it
 * was created with.
 */
import type { Context, Hono } from 'hono';
import { BerthError, isBerthError } from '../errors.js';
import { newAgentId, newEnvironmentId } from '../ids.js';
import type { Catalog, CatalogEntry, CatalogKind } from '../stores/catalog.js';
import type { Env, RouteGroup } from './route-group.js';
import {
  checkAgentExtras,
  checkMcpToolsets,
  normalizeEnvironmentConfig,
  normalizeMcpServers,
  normalizeModel,
  normalizeTools,
  type HostAbilities,
} from './managed-config.js';
import {
  agentCreateSchema,
  agentUpdateSchema,
  environmentCreateSchema,
  environmentUpdateSchema,
  listQuery,
  retrieveAgentQuery,
} from './managed-schemas.js';
import { parse, readJson } from './request.js';

/** A catalog id in a path: what the catalog's ids may be, so a bad one is a 400 `invalid_id`, not a lookup. */
export const CATALOG_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** The id of an agent's version entry; zero-padded so that versions sort as numbers. */
export function versionId(agentId: string, version: number): string {
  return `${agentId}@${String(version).padStart(9, '0')}`;
}

function pathId(c: Context, name: string): string {
  const id = c.req.param(name) ?? '';
  if (!CATALOG_ID.test(id)) {
    throw new BerthError(
      'invalid_id',
      `${JSON.stringify(id.slice(0, 80))} is not an id: ids match ${CATALOG_ID.source}`,
    );
  }
  return id;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Applies a metadata patch: a null value removes its key. */
function patchMetadata(
  current: Record<string, string>,
  patch: Record<string, string | null> | null | undefined,
): Record<string, string> {
  if (patch === undefined) return current;
  if (patch === null) return {};
  const next = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  if (Object.keys(next).length > 16) throw new BerthError('invalid_request', 'metadata: at most 16 keys');
  return next;
}

/** Reads one page of a kind, filtered; a page may hold fewer than `limit` and still have a next one. */
async function listPage(
  catalog: Catalog,
  tenant: string,
  kind: CatalogKind,
  query: Record<string, string | undefined>,
  keep: (doc: Record<string, unknown>) => boolean,
  idPrefix?: string,
): Promise<{ data: Record<string, unknown>[]; next_page: string | null }> {
  const q = parse(listQuery, query, 'query');
  const includeArchived = q.include_archived === 'true';
  const gte = q['created_at[gte]'] ? Date.parse(q['created_at[gte]']) : -Infinity;
  const lte = q['created_at[lte]'] ? Date.parse(q['created_at[lte]']) : Infinity;
  const page = await catalog.list(tenant, kind, { limit: q.limit ?? 20, cursor: q.page, idPrefix });
  const data = page.data
    .filter((e) => e.createdAt >= gte && e.createdAt <= lte)
    .map((e) => e.doc)
    .filter(
      (doc) => (includeArchived || doc.archived_at === null || doc.archived_at === undefined) && keep(doc),
    );
  return { data, next_page: page.next };
}

export interface CatalogRoutesOptions {
  catalog: Catalog;
  network: HostAbilities;
}

export function agentRoutes({ catalog }: CatalogRoutesOptions): RouteGroup {
  const head = async (tenant: string, id: string): Promise<CatalogEntry> => {
    const entry = await catalog.get({ tenant, kind: 'agent', id });
    if (!entry) throw new BerthError('agent_not_found', `No agent ${JSON.stringify(id)}`);
    return entry;
  };

  /**
   * The next version's entry exists already. Either another update published it (the head moved on:
   * `revision_conflict`), or an update wrote it and failed before moving the head (the head is where it
   * was): that entry was never published, and this update takes its place.
   */
  const reclaimVersion = async (
    tenant: string,
    id: string,
    version: number,
    doc: Record<string, unknown>,
    headRevision: number,
  ): Promise<void> => {
    const moved = (await head(tenant, id)).revision !== headRevision;
    const ref = { tenant, kind: 'agent_version' as const, id: versionId(id, version) };
    const orphan = moved ? undefined : await catalog.get(ref);
    if (!orphan || !(await catalog.replace(ref, doc, orphan.revision))) {
      throw new BerthError('revision_conflict', `Agent ${id} was updated meanwhile: read it again`);
    }
  };

  return {
    prefix: '/v1/agents',
    register(app: Hono<Env>) {
      app.post('/v1/agents', async (c) => {
        const input = parse(agentCreateSchema, await readJson(c), 'request body');
        checkAgentExtras(input);
        const mcpServers = normalizeMcpServers(input.mcp_servers);
        const tools = normalizeTools(input.tools ?? []);
        checkMcpToolsets(tools, mcpServers);
        const now = Date.now();
        const id = newAgentId();
        const doc = {
          id,
          type: 'agent',
          name: input.name,
          description: input.description ?? null,
          model: normalizeModel(input.model),
          system: input.system ?? null,
          tools,
          mcp_servers: mcpServers,
          skills: [],
          multiagent: null,
          execution_identity: null,
          metadata: input.metadata ?? {},
          version: 1,
          created_at: iso(now),
          updated_at: iso(now),
          archived_at: null,
        };
        const tenant = c.get('tenant');
        // The version first: a head always points at a version that exists.
        await catalog.create({ tenant, kind: 'agent_version', id: versionId(id, 1), createdAt: now, doc });
        await catalog.create({ tenant, kind: 'agent', id, createdAt: now, doc });
        return c.json(doc, 200);
      });

      app.get('/v1/agents', async (c) =>
        c.json(await listPage(catalog, c.get('tenant'), 'agent', c.req.query(), () => true)),
      );

      app.get('/v1/agents/:agent_id', async (c) => {
        const id = pathId(c, 'agent_id');
        const q = parse(retrieveAgentQuery, c.req.query(), 'query');
        const current = await head(c.get('tenant'), id);
        if (q.version === undefined) return c.json(current.doc);
        // A version above the head's was never published (see the update below).
        const entry =
          q.version <= (current.doc.version as number)
            ? await catalog.get({
                tenant: c.get('tenant'),
                kind: 'agent_version',
                id: versionId(id, q.version),
              })
            : undefined;
        if (!entry) throw new BerthError('agent_not_found', `Agent ${id} has no version ${q.version}`);
        return c.json(entry.doc);
      });

      app.get('/v1/agents/:agent_id/versions', async (c) => {
        const id = pathId(c, 'agent_id');
        const latest = (await head(c.get('tenant'), id)).doc.version as number;
        const query = { ...c.req.query(), include_archived: 'true' };
        const published = (doc: Record<string, unknown>) => (doc.version as number) <= latest;
        return c.json(await listPage(catalog, c.get('tenant'), 'agent_version', query, published, `${id}@`));
      });

      app.post('/v1/agents/:agent_id', async (c) => {
        const id = pathId(c, 'agent_id');
        const input = parse(agentUpdateSchema, await readJson(c), 'request body');
        checkAgentExtras(input);
        const tenant = c.get('tenant');
        const current = await head(tenant, id);
        const doc = current.doc;
        if (doc.archived_at !== null) throw new BerthError('agent_archived', `Agent ${id} is archived`);
        if (input.version !== undefined && input.version !== doc.version) {
          throw new BerthError(
            'revision_conflict',
            `Agent ${id} is at version ${String(doc.version)}, not ${input.version}: read it again`,
            // The same request names the same old version: sending it again cannot help.
            { retryable: false },
          );
        }
        const next: Record<string, unknown> = {
          ...doc,
          ...(input.name !== undefined && { name: input.name }),
          ...(input.description !== undefined && { description: input.description }),
          ...(input.model !== undefined && { model: normalizeModel(input.model) }),
          ...(input.system !== undefined && { system: input.system }),
          ...(input.tools !== undefined && { tools: normalizeTools(input.tools ?? []) }),
          ...(input.mcp_servers !== undefined && { mcp_servers: normalizeMcpServers(input.mcp_servers) }),
          metadata: patchMetadata(doc.metadata as Record<string, string>, input.metadata),
        };
        checkMcpToolsets(
          next.tools as Record<string, unknown>[],
          next.mcp_servers as Record<string, unknown>[],
        );
        const changed = ['name', 'description', 'model', 'system', 'tools', 'mcp_servers', 'metadata'].some(
          (k) => JSON.stringify(next[k]) !== JSON.stringify(doc[k]),
        );
        if (!changed) return c.json(doc);
        const now = Date.now();
        const version = (doc.version as number) + 1;
        Object.assign(next, { version, updated_at: iso(now) });
        try {
          await catalog.create({
            tenant,
            kind: 'agent_version',
            id: versionId(id, version),
            createdAt: now,
            doc: next,
          });
        } catch (err) {
          if (!isBerthError(err, 'resource_exists')) throw err;
          await reclaimVersion(tenant, id, version, next, current.revision);
        }
        const replaced = await catalog.replace({ tenant, kind: 'agent', id }, next, current.revision);
        if (!replaced) throw new BerthError('agent_not_found', `No agent ${JSON.stringify(id)}`);
        return c.json(next);
      });

      app.post('/v1/agents/:agent_id/archive', async (c) => {
        const id = pathId(c, 'agent_id');
        const tenant = c.get('tenant');
        const current = await head(tenant, id);
        if (current.doc.archived_at !== null) return c.json(current.doc);
        const next = { ...current.doc, archived_at: iso(Date.now()) };
        await catalog.replace({ tenant, kind: 'agent', id }, next, current.revision);
        return c.json(next);
      });
    },
  };
}

export function environmentRoutes({ catalog, network }: CatalogRoutesOptions): RouteGroup {
  const get = async (tenant: string, id: string): Promise<CatalogEntry> => {
    const entry = await catalog.get({ tenant, kind: 'environment', id });
    if (!entry) throw new BerthError('environment_not_found', `No environment ${JSON.stringify(id)}`);
    return entry;
  };

  return {
    prefix: '/v1/environments',
    register(app: Hono<Env>) {
      app.post('/v1/environments', async (c) => {
        const input = parse(environmentCreateSchema, await readJson(c), 'request body');
        const now = Date.now();
        const id = newEnvironmentId();
        const doc = {
          id,
          type: 'environment',
          name: input.name,
          description: input.description ?? null,
          config: normalizeEnvironmentConfig(input.config, network),
          metadata: input.metadata ?? {},
          scope: input.scope ?? 'organization',
          created_at: iso(now),
          updated_at: iso(now),
          archived_at: null,
        };
        await catalog.create({ tenant: c.get('tenant'), kind: 'environment', id, createdAt: now, doc });
        return c.json(doc, 200);
      });

      app.get('/v1/environments', async (c) =>
        c.json(await listPage(catalog, c.get('tenant'), 'environment', c.req.query(), () => true)),
      );

      app.get('/v1/environments/:environment_id', async (c) => {
        const id = pathId(c, 'environment_id');
        return c.json((await get(c.get('tenant'), id)).doc);
      });

      app.post('/v1/environments/:environment_id', async (c) => {
        const id = pathId(c, 'environment_id');
        const input = parse(environmentUpdateSchema, await readJson(c), 'request body');
        const tenant = c.get('tenant');
        const current = await get(tenant, id);
        const doc = current.doc;
        if (doc.archived_at !== null)
          throw new BerthError('environment_archived', `Environment ${id} is archived`);
        const next = {
          ...doc,
          ...(input.name !== undefined && input.name !== null && { name: input.name }),
          ...(input.description !== undefined && { description: input.description }),
          ...(input.config !== undefined &&
            input.config !== null && { config: normalizeEnvironmentConfig(input.config, network) }),
          ...(input.scope !== undefined && input.scope !== null && { scope: input.scope }),
          metadata: patchMetadata(doc.metadata as Record<string, string>, input.metadata),
          updated_at: iso(Date.now()),
        };
        const replaced = await catalog.replace({ tenant, kind: 'environment', id }, next, current.revision);
        if (!replaced) throw new BerthError('environment_not_found', `No environment ${JSON.stringify(id)}`);
        return c.json(next);
      });

      app.post('/v1/environments/:environment_id/archive', async (c) => {
        const id = pathId(c, 'environment_id');
        const tenant = c.get('tenant');
        const current = await get(tenant, id);
        if (current.doc.archived_at !== null) return c.json(current.doc);
        const next = { ...current.doc, archived_at: iso(Date.now()) };
        await catalog.replace({ tenant, kind: 'environment', id }, next, current.revision);
        return c.json(next);
      });

      app.delete('/v1/environments/:environment_id', async (c) => {
        const id = pathId(c, 'environment_id');
        const tenant = c.get('tenant');
        await get(tenant, id);
        // Sessions made in it keep what they were made with: their pattern and network are in their record.
        await catalog.delete({ tenant, kind: 'environment', id });
        return c.json({ id, type: 'environment_deleted' });
      });
    },
  };
}

/** An agent version as a session pins it; versions never change, so hosts may keep them. */
export class AgentVersions {
  private readonly cache = new Map<string, Record<string, unknown>>();

  constructor(private readonly catalog: Catalog) {}

  async get(tenant: string, id: string, version: number): Promise<Record<string, unknown> | undefined> {
    const key = `${tenant}/${versionId(id, version)}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const entry = await this.catalog.get({ tenant, kind: 'agent_version', id: versionId(id, version) });
    if (!entry) return undefined;
    if (this.cache.size >= 1000) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry.doc);
    return entry.doc;
  }
}
