import { describe, expect, it } from 'vitest';
import { BerthError } from '../errors.js';
import type { Coordination, HostEntry, Lease } from '../stores/coordination.js';
import { HostDirectory } from './host-directory.js';

const entry = (id: string): HostEntry => ({
  id,
  url: `http://${id}`,
  state: 'ready',
  capacity: 8,
  slotsFree: 8,
  lastHeartbeatAt: 0,
  expiresAt: 0,
});

/** A registry in memory that counts its reads and can be made to fail. */
class FakeCoordination implements Pick<Coordination, 'hosts' | 'lease'> {
  list: HostEntry[] = [entry('a'), entry('b')];
  leasesByKey = new Map<string, Lease>();
  reads = 0;
  down = false;

  async hosts(): Promise<HostEntry[]> {
    this.reads++;
    await new Promise((r) => setTimeout(r, 5));
    if (this.down) throw new BerthError('store_unavailable', 'the store is down');
    return [...this.list];
  }

  lease(key: string): Promise<Lease | undefined> {
    if (this.down) return Promise.reject(new BerthError('store_unavailable', 'the store is down'));
    return Promise.resolve(this.leasesByKey.get(key));
  }
}

const lease = (key: string, hostId: string, live: boolean): Lease => ({
  key,
  hostId,
  token: 1,
  expiresAt: 0,
  live,
});

describe('HostDirectory', () => {
  it('reads once for callers at the same moment, then answers from its cache', async () => {
    const coordination = new FakeCoordination();
    const directory = new HostDirectory({ coordination });
    const lists = await Promise.all([directory.hosts(), directory.hosts(), directory.refresh()]);
    expect(lists.map((l) => l.map((h) => h.id))).toEqual([
      ['a', 'b'],
      ['a', 'b'],
      ['a', 'b'],
    ]);
    expect(coordination.reads).toBe(1);
    coordination.list = [entry('c')];
    expect((await directory.hosts()).map((h) => h.id)).toEqual(['a', 'b']);
    expect(coordination.reads).toBe(1);
    expect((await directory.fresh(0)).map((h) => h.id)).toEqual(['c']);
    expect((await directory.fresh(60_000)).map((h) => h.id)).toEqual(['c']);
    expect(coordination.reads).toBe(2);
  });

  it('reads again every refresh interval until closed', async () => {
    const coordination = new FakeCoordination();
    const directory = new HostDirectory({ coordination, refreshMs: 20 });
    directory.start();
    await new Promise((r) => setTimeout(r, 150));
    directory.close();
    const reads = coordination.reads;
    expect(reads).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 60));
    expect(coordination.reads).toBe(reads);
  });

  it('keeps routing on the last list while the store is down, and logs the outage once', async () => {
    const coordination = new FakeCoordination();
    const errors: unknown[] = [];
    const directory = new HostDirectory({ coordination, refreshMs: 10, onError: (err) => errors.push(err) });
    await directory.refresh();
    coordination.down = true;
    directory.start();
    await new Promise((r) => setTimeout(r, 80));
    expect((await directory.hosts()).map((h) => h.id)).toEqual(['a', 'b']);
    await expect(directory.fresh(0)).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(errors).toHaveLength(1);
    directory.close();
  });

  it('fails the first request of a router that never read a list', async () => {
    const coordination = new FakeCoordination();
    coordination.down = true;
    await expect(new HostDirectory({ coordination }).hosts()).rejects.toMatchObject({
      code: 'store_unavailable',
    });
  });

  it('gives a deadline to a store that hangs', async () => {
    const coordination = new FakeCoordination();
    coordination.hosts = () => new Promise(() => undefined);
    const directory = new HostDirectory({ coordination, storeTimeoutMs: 30 });
    await expect(directory.refresh()).rejects.toMatchObject({ code: 'store_unavailable' });
  });

  it('names the lease holder only when its lease is live and it is a live host', async () => {
    const coordination = new FakeCoordination();
    const errors: unknown[] = [];
    const directory = new HostDirectory({ coordination, onError: (err) => errors.push(err) });
    const hosts = await directory.hosts();
    coordination.leasesByKey.set('t/live', lease('t/live', 'b', true));
    coordination.leasesByKey.set('t/expired', lease('t/expired', 'b', false));
    coordination.leasesByKey.set('t/gone', lease('t/gone', 'zz', true));
    expect((await directory.leaseHolder('t/live', hosts))?.id).toBe('b');
    expect(await directory.leaseHolder('t/expired', hosts)).toBeUndefined();
    expect(await directory.leaseHolder('t/gone', hosts)).toBeUndefined();
    expect(await directory.leaseHolder('t/none', hosts)).toBeUndefined();
    expect(errors).toEqual([]);
    coordination.down = true;
    expect(await directory.leaseHolder('t/live', hosts)).toBeUndefined();
    expect(errors).toHaveLength(1);
  });
});
