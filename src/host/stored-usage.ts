/**
 * What a tenant's stored sessions add up to, read from the registry (so every host's sessions, not only
 * this host's): how many there are (`--tenant-limits sessions`), and what they cost (the spend a `usd`
 * budget starts from when a host starts).
 */
import type { SessionRegistry } from '../stores/types.js';
import { addUsd } from '../usd.js';

/** Records read per registry call. */
const PAGE = 200;

/** How many sessions the tenant has stored, counting no further than `upTo`. */
export async function countStoredSessions(
  registry: SessionRegistry,
  tenant: string,
  upTo: number,
): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await registry.list(tenant, { limit: PAGE, cursor });
    count += page.data.length;
    cursor = page.next ?? undefined;
  } while (cursor !== undefined && count < upTo);
  return count;
}

/** The cost in USD that the tenant's stored sessions have recorded (`usage.cost_usd`). */
export async function storedSpendUsd(registry: SessionRegistry, tenant: string): Promise<number> {
  let spent = 0;
  let cursor: string | undefined;
  do {
    const page = await registry.list(tenant, { limit: PAGE, cursor });
    for (const record of page.data) spent = addUsd(spent, record.usage?.cost_usd ?? 0);
    cursor = page.next ?? undefined;
  } while (cursor !== undefined);
  return spent;
}

/**
 * Seeds the spend of every tenant with a `usd` budget from its stored sessions, so that a budget holds
 * across a restart of the host. `tenants` are the tenants the host serves (its API keys' tenants).
 */
export async function seedStoredSpend(options: {
  registry: SessionRegistry;
  tenants: Iterable<string>;
  budgetUsd: (tenant: string) => number;
  seed: (tenant: string, usd: number) => void;
}): Promise<void> {
  for (const tenant of new Set(options.tenants)) {
    if (!Number.isFinite(options.budgetUsd(tenant))) continue;
    options.seed(tenant, await storedSpendUsd(options.registry, tenant));
  }
}
