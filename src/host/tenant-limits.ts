/**
 * Per-tenant limits (`--tenant-limits`), so that one tenant's load cannot take a whole host:
 * - `live`: subprocess trees the tenant's sessions and tasks hold at once on this host;
 * - `streams`: event streams (SSE) the tenant keeps open on this host.
 * The spec is `TENANT:key=N,key=N;...`, with `*` for every tenant not named, e.g.
 * `alpha:live=4,streams=20;*:live=8`. A tenant's own entry wins over `*`, key by key. Over a limit the
 * request is refused with `429 quota_exceeded`, naming the limit, and nothing is stored.
 */
import { BerthError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';

export interface TenantLimits {
  /** Infinity when unlimited. */
  live: number;
  /** Infinity when unlimited. */
  streams: number;
}

const KEYS = ['live', 'streams'] as const;
type LimitKey = (typeof KEYS)[number];

/** Keys the issue names that are not enforced yet: refused, never accepted and ignored. */
const NOT_YET: Readonly<Record<string, string>> = {
  sessions: 'a limit on stored sessions is not supported yet',
  usd: 'a cost budget is not supported yet',
};

export class TenantLimitsTable {
  private constructor(private readonly entries: ReadonlyMap<string, Partial<TenantLimits>>) {}

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
        if (NOT_YET[key]) throw new BerthError('invalid_config', `--tenant-limits: ${key}: ${NOT_YET[key]}`);
        if (!(KEYS as readonly string[]).includes(key)) {
          throw new BerthError(
            'invalid_config',
            `--tenant-limits: ${JSON.stringify(key)} is not one of ${KEYS.join(', ')}`,
          );
        }
        if (!/^\d{1,9}$/.test(value)) {
          throw new BerthError(
            'invalid_config',
            `--tenant-limits: ${tenant}:${key}=${value} is not a whole number`,
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
    return { live: own.live ?? all.live ?? Infinity, streams: own.streams ?? all.streams ?? Infinity };
  }
}

/** The refusal when a tenant is at a limit. */
export function quotaExceeded(tenant: string, key: LimitKey, limit: number, what: string): BerthError {
  return new BerthError(
    'quota_exceeded',
    `Tenant ${tenant} is at its limit of ${limit} ${what} on this host (--tenant-limits ${key}=${limit}); try again when one has ended`,
    { retryAfterSeconds: 5 },
  );
}
