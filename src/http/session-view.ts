/**
 * A session as the API shows it: Managed Agents' session object. Berth's finer status (`suspended`,
 * `requires_action`), its pattern and turn count are under `berth`, its one addition.
 */
import type { SessionRecord, SessionStatus } from '../stores/types.js';
import type { AgentVersions } from './catalog-routes.js';

/** Managed Agents' session statuses; a suspended session, or one waiting on a confirmation, is idle. */
export type ApiSessionStatus = 'idle' | 'running' | 'rescheduling' | 'terminated';

export function apiSessionStatus(status: SessionStatus): ApiSessionStatus {
  if (status === 'running' || status === 'terminated') return status;
  return 'idle';
}

/** Dollars as Managed Agents' monetary amount: whole cents, as a string. */
export function listCost(usd: number): { amount: string; currency: 'USD' } {
  return { amount: String(Math.max(0, Math.round(usd * 100))), currency: 'USD' };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The agent a session runs, as pinned at its creation, its overrides applied. */
async function sessionAgent(
  record: SessionRecord,
  versions: AgentVersions,
): Promise<Record<string, unknown> | null> {
  const ref = record.managed?.agent;
  if (!ref) return null;
  const doc = await versions.get(record.tenant, ref.id, ref.version);
  if (!doc) return { type: 'agent', id: ref.id, version: ref.version };
  const { created_at: _c, updated_at: _u, archived_at: _a, metadata: _m, ...agent } = doc;
  return { ...agent, ...record.managed?.overrides };
}

export async function sessionView(
  record: SessionRecord,
  versions: AgentVersions,
): Promise<Record<string, unknown>> {
  const managed = record.managed;
  const usage = record.usage;
  return {
    id: record.id,
    type: 'session',
    status: apiSessionStatus(record.status),
    title: record.title,
    metadata: record.metadata,
    agent: await sessionAgent(record, versions),
    environment_id: managed?.environment_id ?? null,
    archived_at: iso(managed?.archived_at ?? null),
    budget: managed?.budget
      ? {
          type: 'limit',
          max_list_cost: { amount: String(managed.budget.max_list_cost_cents), currency: 'USD' },
        }
      : null,
    usage: {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      cache_creation: { ephemeral_5m_input_tokens: usage.cache_creation_input_tokens },
      list_cost: listCost(usage.cost_usd),
    },
    stats: { duration_seconds: Math.max(0, Math.round((record.updatedAt - record.createdAt) / 1000)) },
    resources: [],
    outcome_evaluations: [],
    vault_ids: [],
    created_at: iso(record.createdAt),
    updated_at: iso(record.updatedAt),
    berth: { status: record.status, pattern: record.pattern, turns: record.turns, cost_usd: usage.cost_usd },
  };
}
