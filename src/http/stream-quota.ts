/**
 * Open event streams per tenant, for the tenants' `streams` limits (`--tenant-limits`): a stream counts
 * from the request that opens it until it ends, whoever ends it.
 */
import { quotaExceeded, type TenantLimitsTable } from '../host/tenant-limits.js';

export class StreamQuota {
  private readonly open = new Map<string, number>();

  constructor(private readonly limits: TenantLimitsTable) {}

  /** Counts one more open stream of `tenant`; throws `quota_exceeded` at its limit. The release is idempotent. */
  acquire(tenant: string): () => void {
    const limit = this.limits.limitsFor(tenant).streams;
    const count = this.open.get(tenant) ?? 0;
    if (count >= limit) throw quotaExceeded(tenant, 'streams', limit, 'open event stream(s)');
    this.open.set(tenant, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(tenant) ?? 1) - 1;
      if (left > 0) this.open.set(tenant, left);
      else this.open.delete(tenant);
    };
  }
}
