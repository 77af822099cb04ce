/**
 * Coordination on the live Redis at 127.0.0.1:6379: the shared conformance suite on bundles from
 * `openRedisStores` (so that the bundle's wiring is tested too), then what only Redis has (key slots, the
 * Cluster refusals, pruning of dead hosts, the reply of a refused script). Each bundle gets a fresh key
 * prefix and its keys are removed afterwards.
 */
import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../src/errors.js';
import {
  eventLogKey,
  hostsBase,
  leaseKey,
  registryBase,
  transcriptKeys,
} from '../../src/stores/redis/keys.js';
import {
  openRedisStores,
  RedisCoordination,
  RedisEventLog,
  RedisRegistry,
  RedisSessionStore,
} from '../../src/stores/redis/index.js';
import type { Stores } from '../../src/stores/types.js';
import { event } from '../../src/testing/conformance/event-log-cases.js';
import { runCoordinationConformance } from '../../src/testing/vitest.js';
import { redisBackend, REDIS_URL } from '../helpers/backends.js';

const backend = redisBackend();

/** A bundle over a fresh prefix; `cleanup` closes it and removes the prefix's keys. */
async function freshStores(): Promise<{ stores: Stores; prefix: string; cleanup: () => Promise<void> }> {
  const store = await backend.create();
  const stores = await openRedisStores(store.url);
  const prefix = new URL(store.url).searchParams.get('prefix')!;
  return {
    stores,
    prefix,
    cleanup: async () => {
      await stores.close();
      await store.cleanup();
    },
  };
}

runCoordinationConformance('Redis', freshStores, {
  // Separate connections on one prefix: what several Berth hosts sharing a Redis do.
  sharedFactory: async () => {
    const store = await backend.create();
    const stores = await Promise.all([1, 2, 3].map(() => openRedisStores(store.url)));
    return {
      stores,
      cleanup: async () => {
        await Promise.all(stores.map((s) => s.close()));
        await store.cleanup();
      },
    };
  },
});

/** Redis Cluster's CRC16 (XMODEM) of a key's hash tag, as in test/stores/redis.test.ts. */
function clusterSlot(key: string): number {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  const tag = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tag, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('Redis coordination on the live server', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function fresh(): Promise<{ stores: Stores; prefix: string; coord: RedisCoordination }> {
    const made = await freshStores();
    cleanups.push(made.cleanup);
    return { ...made, coord: made.stores.coordination as RedisCoordination };
  }
  /** A Cluster client that never connects: enough to see what the stores refuse before any command. */
  function clusterClient(): Cluster {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 6379 }], { lazyConnect: true });
    cleanups.push(() => Promise.resolve(cluster.disconnect()));
    return cluster;
  }

  it("puts a lease in its event log's slot, and not by accident", () => {
    const session = 'te{n}ant: ü/s}1';
    expect(clusterSlot(leaseKey('berth', session))).toBe(clusterSlot(eventLogKey('berth', session)));
    // The registry and the transcript are tagged otherwise, which is why their fences need standalone Redis.
    const slots = new Set([
      clusterSlot(leaseKey('berth', 'acme/s1')),
      clusterSlot(`${registryBase('berth', 'acme')}:s:s1`),
      clusterSlot(transcriptKeys('berth', { projectKey: 'acme', sessionId: 'sdk-1' }).entries),
    ]);
    expect(slots.size).toBe(3);
  });

  it('refuses a Cluster client, and fenced writes across slots on one, with invalid_config', async () => {
    const redis = clusterClient();
    const refused = (err: unknown) => isBerthError(err, 'invalid_config');
    expect(() => new RedisCoordination({ redis })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
    const fence = { lease: 'acme/s1', token: 1 };
    const registry = new RedisRegistry({ redis });
    await expect(registry.update({ tenant: 'acme', id: 's1' }, { turns: 1 }, { fence })).rejects.toSatisfy(
      refused,
    );
    const transcripts = new RedisSessionStore({ redis });
    const append = transcripts.append({ projectKey: 'acme', sessionId: 'sdk-1' }, [{ type: 'user' }], {
      fence,
    });
    await expect(append).rejects.toSatisfy(refused);
    // The event log shares the lease's slot only when the fence names the log's own session.
    const log = new RedisEventLog({ redis });
    const elsewhere = log.append('acme/s2', [event(1)], { fence });
    await expect(elsewhere).rejects.toSatisfy(refused);
  });

  it('stores leases and hosts under the prefix, with integer fields', async () => {
    const { prefix, coord } = await fresh();
    const admin = new Redis(REDIS_URL);
    cleanups.push(async () => void (await admin.quit()));
    await coord.acquire('acme/s1', 'a', 60_000);
    await coord.heartbeat(
      { id: 'h:{1}', url: 'http://h1', state: 'ready', capacity: 4, slotsFree: 2 },
      60_000,
    );
    const lease = await admin.hgetall(leaseKey(prefix, 'acme/s1'));
    expect(lease).toMatchObject({ host: 'a', token: '1' });
    expect(lease.expires).toMatch(/^\d{13}$/);
    const host = await admin.hgetall(`${hostsBase(prefix)}:host:h:{1}`);
    expect(host).toMatchObject({ url: 'http://h1', state: 'ready', capacity: '4', slotsFree: '2' });
    expect(host.beat).toMatch(/^\d{13}$/);
    expect(Number(host.expires) - Number(host.beat)).toBe(60_000);
  });

  it('prunes the entries of hosts dead for a day, and only those', async () => {
    const { prefix, coord } = await fresh();
    const admin = new Redis(REDIS_URL);
    cleanups.push(async () => void (await admin.quit()));
    const h = (id: string) => ({
      id,
      url: `http://${id}`,
      state: 'ready' as const,
      capacity: 1,
      slotsFree: 1,
    });
    for (const id of ['old', 'recent', 'live']) await coord.heartbeat(h(id), 60_000);
    const live = `${hostsBase(prefix)}:live`;
    const now = Date.now();
    await admin.zadd(live, now - 25 * 3600 * 1000, 'old', now - 3600 * 1000, 'recent');
    expect((await coord.hosts()).map((x) => x.id)).toEqual(['live']);
    expect(await admin.zrange(live, '0', '-1')).toEqual(['recent', 'live']);
    expect(await admin.exists(`${hostsBase(prefix)}:host:old`)).toBe(0);
    expect(await admin.exists(`${hostsBase(prefix)}:host:recent`)).toBe(1);
  });

  it('leaves no trace of a refused transcript append: no meta, uuid or summary', async () => {
    const { stores, coord } = await fresh();
    const transcripts = stores.transcriptStore as RedisSessionStore;
    await coord.acquire('acme/s1', 'a', 60_000);
    await coord.release('acme/s1', 'a', 1);
    await coord.acquire('acme/s1', 'b', 60_000);
    const fence = { lease: 'acme/s1', token: 1 };
    const key = { projectKey: 'acme', sessionId: 'sdk-1' };
    // A transcript that never existed stays absent: no meta, no uuid set, no summary.
    const line = { type: 'user', uuid: 'u1' };
    await expect(transcripts.append(key, [line], { fence })).rejects.toSatisfy((err: unknown) =>
      isBerthError(err, 'lease_lost'),
    );
    expect(await transcripts.listSessions('acme')).toEqual([]);
    expect(await transcripts.listSubkeys(key)).toEqual([]);
    // The uuid was not recorded either: the same line under the current token is stored.
    await transcripts.append(key, [line], { fence: { ...fence, token: 2 } });
    expect(await transcripts.load(key)).toEqual([line]);
  });
});
