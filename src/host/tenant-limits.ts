/**
 * Per-tenant limits (`--tenant-limits`), so that one tenant's load cannot take a whole host:
 * - `live`: subprocess trees the tenant's sessions and tasks hold at once on this host;
 * - `streams`: event streams (SSE) the tenant keeps open on this host;
 * - `sessions`: sessions the tenant has stored (in the registry, so on every host);
 * - `usd`: the tenant's cost budget in USD (a decimal), held against the model proxy's metering.
 * The spec is `TENANT:key=N,key=N;...`, with `*` for every tenant not named, e.g.
 * `alpha:sessions=100,live=4,streams=20,usd=50;*:live=8`. A tenant's own entry wins over `*`, key by key.
 * Over a limit the request is refused with `429 quota_exceeded`, naming the limit, and nothing is stored;
 * over its budget, with `429 budget_exceeded`.
 */
import { BerthError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';

export interface TenantLimits {
  /** Infinity when unlimited. */
  live: number;
  /** Infinity when unlimited. */
  streams: number;
  /** Stored sessions; Infinity when unlimited. */
  sessions: number;
  /** The cost budget in USD; Infinity when unlimited. */
  usd: number;
}

const KEYS = ['live', 'streams', 'sessions', 'usd'] as const;
type LimitKey = (typeof KEYS)[number];

export class TenantLimitsTable {
  private constructor(
    private readonly entries: ReadonlyMap<string, Partial<TenantLimits>>,
    /** What a tenant has spent on the model, in USD (the model proxy's meter); unset, budgets are not held. */
    private readonly spentUsd?: (tenant: string) => number,
  ) {}

  /** No limits. */
  static none(): TenantLimitsTable {
    return new TenantLimitsTable(new Map());
  }

  /** Parses a `--tenant-limits` spec; throws `invalid_config` naming what is wrong. */
  static parse(spec: string): TenantLimitsTable {
    const entries = new Map<string, Partial<TenantLimits>>();
    for (const part of spec.split(';').map((p) => p.trim())) {
      if (part === '') continue;
      const colon = part.indexOf(':');
      const tenant = colon < 0 ? '' : part.slice(0, colon);
      if (tenant !== '*' && !ID_PATTERN.test(tenant)) {
        throw new BerthError(
          'invalid_config',
          `--tenant-limits: ${JSON.stringify(part.slice(0, 60))} is not TENANT:key=N,... (TENANT is a tenant id or *)`,
        );
      }
      if (entries.has(tenant)) {
        throw new BerthError('invalid_config', `--tenant-limits: tenant ${tenant} is given twice`);
      }
      const limits: Partial<TenantLimits> = {};
      for (const pair of part.slice(colon + 1).split(',')) {
        const [key = '', value = ''] = pair.split('=').map((s) => s.trim());
        if (!(KEYS as readonly string[]).includes(key)) {
          throw new BerthError(
            'invalid_config',
            `--tenant-limits: ${JSON.stringify(key)} is not one of ${KEYS.join(', ')}`,
          );
        }
        if (key === 'usd' ? !/^\d{1,9}(\.\d{1,6})?$/.test(value) : !/^\d{1,9}$/.test(value)) {
          throw new BerthError(
            'invalid_config',
            `--tenant-limits: ${tenant}:${key}=${value} is not ${key === 'usd' ? 'an amount in USD (e.g. 50 or 0.5)' : 'a whole number'}`,
          );
        }
        limits[key as LimitKey] = Number(value);
      }
      entries.set(tenant, limits);
    }
    return new TenantLimitsTable(entries);
  }

  /** The tenant's limits: its own entry, then `*`, else unlimited. */
  limitsFor(tenant: string): TenantLimits {
    const own = this.entries.get(tenant) ?? {};
    const all = this.entries.get('*') ?? {};
    const limit = (key: LimitKey): number => own[key] ?? all[key] ?? Infinity;
    return { live: limit('live'), streams: limit('streams'), sessions: limit('sessions'), usd: limit('usd') };
  }

  /** The same limits, with the tenants' model spend to hold their `usd` budgets against. */
  withSpend(spentUsd: (tenant: string) => number): TenantLimitsTable {
    return new TenantLimitsTable(this.entries, spentUsd);
  }

  /**
   * Refuses a new turn of a tenant whose spend has reached its `usd` budget (`budget_exceeded`). A table
   * without spend ({@link withSpend}) refuses nothing.
   */
  assertBudget(tenant: string): void {
    const budget = this.limitsFor(tenant).usd;
    if (!this.spentUsd || !Number.isFinite(budget)) return;
    const spent = this.spentUsd(tenant);
    if (spent < budget) return;
    throw new BerthError(
      'budget_exceeded',
      `Tenant ${tenant} has spent $${spent.toFixed(4)} of its model budget of $${budget} (--tenant-limits usd=${budget}); no new turn runs until the budget is raised`,
    );
  }
}

/** The refusal when a tenant is at a limit. */
export function quotaExceeded(tenant: string, key: LimitKey, limit: number, what: string): BerthError {
  if (key === 'sessions') {
    // Stored sessions do not end on their own: there is no point in trying again later.
    return new BerthError(
      'quota_exceeded',
      `Tenant ${tenant} has ${limit} stored ${what}, its limit (--tenant-limits sessions=${limit}); delete one first`,
    );
  }
  return new BerthError(
    'quota_exceeded',
    `Tenant ${tenant} is at its limit of ${limit} ${what} on this host (--tenant-limits ${key}=${limit}); try again when one has ended`,
    { retryAfterSeconds: 5 },
  );
}
