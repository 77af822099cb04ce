/**
 * The Redis stores against the live Redis on 127.0.0.1:6379: the three conformance suites, plus what only
 * Redis has (hash tags, TTLs, the store URL, connection failures). Every store gets a fresh key prefix
 * under this run's prefix and deletes its keys afterwards; the last check is that none are left.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { describeError, isBerthError } from '../../src/errors.js';
import { catalogBase, projectIndexKey, registryBase, transcriptKeys } from '../../src/stores/redis/keys.js';
import {
  encodeKeyPart,
  openRedisStores,
  parseRedisStoreUrl,
  RedisCatalog,
  RedisEventLog,
  RedisRegistry,
  RedisSessionStore,
} from '../../src/stores/redis/index.js';
import type { Stores } from '../../src/stores/types.js';
import { catalogEntry, runCatalogConformance } from '../../src/testing/catalog-conformance.js';
import { event, runEventLogConformance } from '../../src/testing/event-log-conformance.js';
import { record, runRegistryConformance } from '../../src/testing/registry-conformance.js';
import { runSessionStoreConformance } from '../../src/testing/session-store-conformance.js';

const HOST = '127.0.0.1';
const PORT = 6379;
/** Every key this file writes starts with it, so that the final check can find leftovers. */
const RUN_PREFIX = `berth-test-${randomUUID().slice(0, 8)}`;

function newClient(port = PORT): Redis {
  const redis = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    connectTimeout: 2000,
    retryStrategy: () => null,
  });
  // Failures reach the tests through the rejected commands; the event would only be printed.
  redis.on('error', () => {});
  return redis;
}

async function connect(): Promise<Redis> {
  const redis = newClient();
  let lastError: unknown;
  redis.on('error', (err: unknown) => (lastError = err));
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `Redis is not reachable at ${HOST}:${PORT}: ${describeError(lastError ?? err)} — start it with ` +
        '`redis-server --daemonize yes` (or `docker run -d -p 6379:6379 redis:7`); these tests need it',
      { cause: err },
    );
  }
  return redis;
}

// Fails the whole file, loudly, when there is no Redis: never a silent skip.
const admin = await connect();
/** The client of the single-client factories; the shared-state factory makes its own. */
const client = await connect();

afterAll(async () => {
  try {
    expect(await keysMatching(`${RUN_PREFIX}-*`)).toEqual([]);
  } finally {
    await Promise.all([admin.quit(), client.quit()]);
  }
});

let prefixes = 0;
function newPrefix(): string {
  return `${RUN_PREFIX}-${++prefixes}`;
}

async function keysMatching(pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

async function dropPrefix(prefix: string): Promise<void> {
  const keys = await keysMatching(`${prefix}:*`);
  for (let at = 0; at < keys.length; at += 500) await admin.unlink(...keys.slice(at, at + 500));
}

runSessionStoreConformance(
  'RedisSessionStore',
  () => {
    const prefix = newPrefix();
    return Promise.resolve({
      store: new RedisSessionStore({ redis: client, prefix }),
      cleanup: () => dropPrefix(prefix),
    });
  },
  {
    // Berth's own adapter has every optional method: one it lost fails its cases instead of skipping them.
    requireAll: true,
    // Separate connections on one prefix: what several Berth hosts sharing a Redis do.
    sharedFactory: async () => {
      const prefix = newPrefix();
      const clients = await Promise.all([connect(), connect(), connect()]);
      return {
        stores: clients.map((redis) => new RedisSessionStore({ redis, prefix })),
        cleanup: async () => {
          await Promise.all(clients.map((redis) => redis.quit()));
          await dropPrefix(prefix);
        },
      };
    },
  },
);

runRegistryConformance('RedisRegistry', () => {
  const prefix = newPrefix();
  return Promise.resolve({
    registry: new RedisRegistry({ redis: client, prefix }),
    cleanup: () => dropPrefix(prefix),
  });
});

runEventLogConformance('RedisEventLog', () => {
  const prefix = newPrefix();
  return Promise.resolve({
    log: new RedisEventLog({ redis: client, prefix }),
    cleanup: () => dropPrefix(prefix),
  });
});

runCatalogConformance('RedisCatalog', () => {
  const prefix = newPrefix();
  return Promise.resolve({
    catalog: new RedisCatalog({ redis: client, prefix }),
    cleanup: () => dropPrefix(prefix),
  });
});

/** Redis Cluster's CRC16 (XMODEM). */
function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The hash tag Redis Cluster hashes: between the first `{` and the next `}`, when not empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

function clusterSlot(key: string): number {
  return crc16(Buffer.from(hashTag(key) ?? key, 'utf8')) % 16384;
}

const entry = (n: number, extra: Record<string, unknown> = {}): SessionStoreEntry => ({
  type: n % 2 ? 'assistant' : 'user',
  uuid: `uuid-${n}-${randomUUID()}`,
  timestamp: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
  cwd: '/w',
  message: { role: n % 2 ? 'assistant' : 'user', content: `line ${n}` },
  ...extra,
});

describe('Redis stores on the live server', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  function prefixed(): string {
    const prefix = newPrefix();
    cleanups.push(() => dropPrefix(prefix));
    return prefix;
  }

  /** A TCP proxy to the live Redis that can be cut, as a crashed server or a lost network would. */
  async function proxy(): Promise<{ port: number; cut: () => Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((inbound) => {
      const outbound = net.connect(PORT, HOST);
      for (const socket of [inbound, outbound]) {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => sockets.delete(socket));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const { port } = server.address() as net.AddressInfo;
    const cut = async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    };
    cleanups.push(cut);
    return { port, cut };
  }

  describe('key scheme', () => {
    it('computes cluster slots like Redis does', () => {
      // Reference values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
      expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
      expect(clusterSlot('foo')).toBe(12182);
      expect(clusterSlot('{user1000}.following')).toBe(clusterSlot('{user1000}.followers'));
      expect(hashTag('foo{}{bar}')).toBeUndefined();
      expect(hashTag('foo{{bar}}zap')).toBe('{bar');
    });

    it('puts every key of one session in one slot, whatever characters its names hold', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix, ttlSeconds: 60 });
      const projectKey = `p {x} :*%'/ ü🚀 ${'x'.repeat(210)}`;
      const a: SessionKey = { projectKey, sessionId: 'a}{b:' };
      // Same text up to the first '}': an unencoded tag would put both sessions in one tag.
      const b: SessionKey = { projectKey, sessionId: 'a}{c:' };
      await store.append(a, [entry(1)]);
      await store.append({ ...a, subpath: 'subagents/{odd}:agent-1' }, [entry(2)]);
      await store.append({ ...a, subpath: 'subagents/agent-2' }, [entry(3)]);
      const afterA = await keysMatching(`${prefix}:*`);
      await store.append(b, [entry(4)]);
      await store.append({ ...b, subpath: 'subagents/agent-1' }, [entry(5)]);
      const all = await keysMatching(`${prefix}:*`);
      const ofB = all.filter((k) => !afterA.includes(k));

      for (const key of all) expect(hashTag(key), key).toBeDefined();
      // Session a: main, 2 subpaths, meta, subkeys; plus the project index in a slot of its own.
      expect(afterA).toHaveLength(2 + 2 * 2 + 2 + 1);
      const slotsA = new Set(afterA.map(clusterSlot));
      expect(slotsA.size).toBe(2);
      const tagsA = new Set(afterA.map(hashTag));
      const tagsB = new Set(ofB.map(hashTag));
      expect(tagsB.size).toBe(1);
      expect(new Set(ofB.map(clusterSlot)).size).toBe(1);
      expect([...tagsB].some((tag) => tagsA.has(tag))).toBe(false);
      for (const tag of [...tagsA, ...tagsB]) expect(tag).not.toMatch(/[{}]/);

      await store.delete(a);
      expect((await keysMatching(`${prefix}:*`)).sort()).toEqual(
        [...ofB, ...afterA.filter((k) => k.includes(':p:'))].sort(),
      );
    });

    it("puts a tenant's records and list in one slot, and each event log in one", async () => {
      const prefix = prefixed();
      const registry = new RedisRegistry({ redis: client, prefix });
      const log = new RedisEventLog({ redis: client, prefix });
      const tenant = 'te{n}ant: ü';
      await registry.create(record('s1', { tenant }));
      await registry.create(record('s}2', { tenant }));
      await log.append(`${tenant}/s1`, [event(1)]);
      const keys = await keysMatching(`${prefix}:*`);
      expect(keys).toHaveLength(4);
      const registryKeys = keys.filter((k) => k.includes(':r:'));
      expect(registryKeys).toHaveLength(3);
      expect(new Set(registryKeys.map(clusterSlot)).size).toBe(1);
      for (const key of keys) expect(hashTag(key), key).toBeDefined();
    });

    it('keeps managed as a JSON field of the record hash, absent while the record has none', async () => {
      const prefix = prefixed();
      const registry = new RedisRegistry({ redis: client, prefix });
      const key = `${registryBase(prefix, 'acme')}:s:s1`;
      await registry.create(record('s1'));
      expect(await client.hexists(key, 'managed')).toBe(0);
      await registry.update({ tenant: 'acme', id: 's1' }, { turns: 1 });
      expect(await client.hexists(key, 'managed')).toBe(0);
      const managed = { agent: null, environment_id: 'env_1', archived_at: null, budget: null };
      await registry.update({ tenant: 'acme', id: 's1' }, { managed });
      expect(JSON.parse((await client.hget(key, 'managed'))!)).toEqual(managed);
    });

    it("puts a tenant's catalog entries and lists of every kind in one slot", async () => {
      const prefix = prefixed();
      const catalog = new RedisCatalog({ redis: client, prefix });
      const tenant = 'te{n}ant: ü';
      await catalog.create(catalogEntry('agent_1', { tenant }));
      await catalog.create(catalogEntry('agent_1@1', { tenant, kind: 'agent_version' }));
      await catalog.create(catalogEntry('env_1', { tenant, kind: 'environment' }));
      // Same text up to the first '}': an unencoded tag would put both tenants in one tag.
      await catalog.create(catalogEntry('agent_1', { tenant: 'te{n}other' }));
      const keys = await keysMatching(`${prefix}:*`);
      const ours = keys.filter((k) => k.startsWith(catalogBase(prefix, tenant)));
      expect(ours.sort()).toEqual(
        [
          'agent:e:agent_1',
          'agent:list',
          'agent_version:e:agent_1@1',
          'agent_version:list',
          'environment:e:env_1',
          'environment:list',
        ].map((rest) => `${catalogBase(prefix, tenant)}:${rest}`),
      );
      expect(new Set(ours.map(clusterSlot)).size).toBe(1);
      expect(keys).toHaveLength(ours.length + 2);
      for (const key of keys) expect(hashTag(key), key).toBeDefined();
      expect(new Set(keys.map(hashTag)).size).toBe(2);
    });

    it('encodes key parts without braces or colons and without collisions', () => {
      const parts = [
        '',
        'a',
        'A',
        'a:b',
        'a%3Ab',
        '{}',
        '%7B%7D',
        'ü',
        '\ud800',
        '\udc00',
        '\ufffd',
        'a b',
        'a+b',
      ];
      const encoded = parts.map(encodeKeyPart);
      expect(new Set(encoded).size).toBe(parts.length);
      for (const e of encoded) expect(e).toMatch(/^[A-Za-z0-9_.%u-]*$/);
      expect(encodeKeyPart('2f1c-Ab_9.x')).toBe('2f1c-Ab_9.x');
    });
  });

  describe('RedisSessionStore', () => {
    const key: SessionKey = { projectKey: 'project', sessionId: 'session-1' };

    it('sets a TTL on every key of a session and refreshes it on each append', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix, ttlSeconds: 100 });
      await store.append(key, [entry(1)]);
      await store.append({ ...key, subpath: 'subagents/agent-1' }, [entry(2)]);
      const keys = await keysMatching(`${prefix}:*`);
      expect(keys).toHaveLength(7);
      for (const k of keys) {
        const ttl = await admin.ttl(k);
        if (k.includes(':p:')) expect(ttl, k).toBeGreaterThan(100);
        else expect(ttl, k).toBeGreaterThan(90);
        if (!k.includes(':p:')) expect(ttl, k).toBeLessThanOrEqual(100);
      }
      for (const k of keys) await admin.expire(k, 5);
      // A main append refreshes the subpath's keys too: the session expires as a whole.
      await store.append(key, [entry(3)]);
      for (const k of keys) expect(await admin.ttl(k), k).toBeGreaterThan(90);
    });

    it('expires an idle session', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix, ttlSeconds: 1 });
      await store.append(key, [entry(1)]);
      expect(await store.load(key)).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect(await store.load(key)).toBeNull();
      expect(await store.listSessions(key.projectKey)).toEqual([]);
    });

    it('keeps keys without a TTL when none is configured', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix });
      await store.append(key, [entry(1)]);
      await store.append({ ...key, subpath: 'subagents/agent-1' }, [entry(2)]);
      for (const k of await keysMatching(`${prefix}:*`)) expect(await admin.ttl(k), k).toBe(-1);
    });

    it('stamps strictly increasing server-clock mtimes, and a replay does not make a session newer', async () => {
      const store = new RedisSessionStore({ redis: client, prefix: prefixed() });
      const [seconds] = await admin.time();
      const seen: number[] = [];
      const entries = Array.from({ length: 20 }, (_, i) => entry(i));
      for (const e of entries) {
        await store.append(key, [e]);
        const [listed] = await store.listSessions(key.projectKey);
        const [summary] = await store.listSessionSummaries(key.projectKey);
        expect(summary!.mtime).toBe(listed!.mtime);
        seen.push(listed!.mtime);
      }
      expect(Math.abs(seen[0]! - Number(seconds) * 1000)).toBeLessThan(60_000);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
      await store.append(key, entries.slice(3, 5));
      expect((await store.listSessions(key.projectKey))[0]!.mtime).toBe(seen.at(-1));
    });

    it('repairs a summary whose fold was interrupted, on the next append from any host', async () => {
      const prefix = prefixed();
      const first = new RedisSessionStore({ redis: client, prefix });
      const entries = Array.from({ length: 9 }, (_, i) => entry(i, i === 4 ? { gitBranch: 'b' } : {}));
      await first.append(key, entries.slice(0, 3));
      await first.append(key, entries.slice(3, 6));
      // What a crash between the append script and the summary write leaves behind.
      const firstFold = foldSessionSummary(undefined, key, entries.slice(0, 3)).data;
      await admin.hset(transcriptKeys(prefix, key).meta, 'sumlen', '3', 'summary', JSON.stringify(firstFold));
      const second = new RedisSessionStore({ redis: client, prefix });
      await second.append(key, entries.slice(6));
      const loaded = (await second.load(key))!;
      expect(loaded).toEqual(entries);
      const [summary] = await second.listSessionSummaries(key.projectKey);
      expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
      // The first store's remembered summary is stale now; its next append must notice.
      await first.append(key, [entry(10, { customTitle: 'x', type: 'custom-title' })]);
      const [again] = await first.listSessionSummaries(key.projectKey);
      expect(again!.data).toEqual(foldSessionSummary(undefined, key, (await first.load(key))!).data);
    });

    it('keeps the summary equal to a fold of every stored entry while several hosts append', async () => {
      const prefix = prefixed();
      const clients = await Promise.all([connect(), connect(), connect()]);
      cleanups.push(() => Promise.all(clients.map((redis) => redis.quit())));
      const stores = clients.map((redis) => new RedisSessionStore({ redis, prefix }));
      // Every entry changes last-wins fields, so a fold that misses or reorders any tail shows.
      const batches = stores.map((_, w) =>
        Array.from({ length: 80 }, (_, b) => [
          entry(b, { gitBranch: `w${w}-b${b}` }),
          { type: 'custom-title', customTitle: `title w${w} b${b}`, sessionId: key.sessionId },
        ]),
      );
      for (let round = 0; round < 3; round++) {
        const roundKey = { ...key, sessionId: `${key.sessionId}-${round}` };
        await Promise.all(
          stores.map(async (store, w) => {
            for (const batch of batches[w]!) await store.append(roundKey, batch);
          }),
        );
        const loaded = (await stores[0]!.load(roundKey))!;
        expect(loaded).toHaveLength(3 * 80 * 2);
        for (const store of stores) {
          const summary = (await store.listSessionSummaries(key.projectKey)).find(
            (s) => s.sessionId === roundKey.sessionId,
          );
          expect(summary!.data).toEqual(foldSessionSummary(undefined, roundKey, loaded).data);
          const [listed] = (await store.listSessions(key.projectKey)).filter(
            (s) => s.sessionId === roundKey.sessionId,
          );
          expect(summary!.mtime).toBe(listed!.mtime);
        }
      }
    });

    it('folds entries another host stored but has not folded yet, instead of its own guess', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix });
      await store.append(key, [entry(0), entry(1)]);
      // Another host's append whose summary write has not landed (yet, or ever: it crashed).
      const foreign = { type: 'tag', tag: 'from another host', sessionId: key.sessionId, uuid: randomUUID() };
      const { entries, uuids } = transcriptKeys(prefix, key);
      await admin.rpush(entries, JSON.stringify(foreign));
      await admin.sadd(uuids, foreign.uuid);
      await store.append(key, [entry(2)]);
      const loaded = (await store.load(key))!;
      expect(loaded).toHaveLength(4);
      const [summary] = await store.listSessionSummaries(key.projectKey);
      expect(summary!.data).toMatchObject({ tag: 'from another host' });
      expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
    });

    it('continues the fold from where a host that won the summary race stopped', async () => {
      const prefix = prefixed();
      const keys = transcriptKeys(prefix, key);
      const first = new RedisSessionStore({ redis: client, prefix });
      await first.append(key, [entry(0)]);
      const foreign = { type: 'tag', tag: 'from another host', sessionId: key.sessionId, uuid: randomUUID() };
      await admin.rpush(keys.entries, JSON.stringify(foreign));
      await admin.sadd(keys.uuids, foreign.uuid);
      // The other host's summary write lands just before this store's: this store's compare-and-set fails.
      let raced = false;
      const racing = new Proxy(client, {
        get(target, property, receiver) {
          if (property !== 'evalsha') return Reflect.get(target, property, receiver) as unknown;
          return async (sha: string, numkeys: number, params: string[]) => {
            if (!raced && numkeys === 1 && params[0] === keys.meta) {
              raced = true;
              const upToForeign = (await admin.lrange(keys.entries, 0, 1)).map(
                (j) => JSON.parse(j) as SessionStoreEntry,
              );
              const data = foldSessionSummary(undefined, key, upToForeign).data;
              await admin.hset(keys.meta, 'sumlen', '2', 'summary', JSON.stringify(data));
            }
            return target.evalsha(sha, numkeys, params);
          };
        },
      });
      const second = new RedisSessionStore({ redis: racing, prefix });
      await second.append(key, [entry(2, { gitBranch: 'last' })]);
      expect(raced).toBe(true);
      const loaded = (await second.load(key))!;
      const [summary] = await second.listSessionSummaries(key.projectKey);
      expect(summary!.data).toMatchObject({ tag: 'from another host', gitBranch: 'last' });
      expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
    });

    it('never summarizes a session written again by another host from its old summary', async () => {
      const prefix = prefixed();
      const [one, other] = [
        new RedisSessionStore({ redis: client, prefix }),
        new RedisSessionStore({ redis: client, prefix }),
      ];
      const title = { type: 'custom-title', customTitle: 'old title', sessionId: key.sessionId };
      await one.append(key, [entry(0), title]);
      await other.delete(key);
      await other.append(key, [entry(10), entry(11)]);
      await one.append(key, [entry(12)]);
      const loaded = (await one.load(key))!;
      expect(loaded).toHaveLength(3);
      const [summary] = await one.listSessionSummaries(key.projectKey);
      expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
      expect(summary!.data).not.toHaveProperty('customTitle');
    });

    it('lists only sessions that exist, whatever the project index holds', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix });
      await store.append(key, [entry(1)]);
      await store.append({ projectKey: key.projectKey, sessionId: 'sub-only', subpath: 'subagents/a' }, [
        entry(2),
      ]);
      await admin.zadd(projectIndexKey(prefix, key.projectKey), Date.now(), 'deleted-elsewhere');
      expect((await store.listSessions(key.projectKey)).map((s) => s.sessionId)).toEqual([key.sessionId]);
      expect((await store.listSessionSummaries(key.projectKey)).map((s) => s.sessionId)).toEqual([
        key.sessionId,
      ]);
    });

    it('stores a batch larger than one Lua unpack, in order', async () => {
      const store = new RedisSessionStore({ redis: client, prefix: prefixed() });
      const entries = Array.from({ length: 20_000 }, (_, i) => ({ type: 'user', uuid: `u${i}`, n: i }));
      await store.append(key, entries);
      expect(await store.load(key)).toEqual(entries);
    });

    it('refuses a client with a keyPrefix and a prefix that would break hash tags', () => {
      const prefixedClient = new Redis({ lazyConnect: true, keyPrefix: 'x:' });
      const attempts = [
        () => new RedisSessionStore({ redis: prefixedClient }),
        () => new RedisRegistry({ redis: prefixedClient }),
        () => new RedisEventLog({ redis: prefixedClient }),
        () => new RedisSessionStore({ redis: client, prefix: 'a{b}' }),
        () => new RedisSessionStore({ redis: client, prefix: 'a*' }),
        () => new RedisSessionStore({ redis: client, prefix: '' }),
        () => new RedisSessionStore({ redis: client, ttlSeconds: 0 }),
        () => new RedisSessionStore({ redis: client, ttlSeconds: 1.5 }),
      ];
      for (const attempt of attempts) {
        let error: unknown;
        try {
          attempt();
        } catch (err) {
          error = err;
        }
        expect(isBerthError(error, 'invalid_config'), String(attempt)).toBe(true);
      }
      prefixedClient.disconnect();
    });
  });

  describe('RedisEventLog', () => {
    it('stores a batch larger than one Lua unpack, in seq order', async () => {
      const log = new RedisEventLog({ redis: client, prefix: prefixed() });
      const events = Array.from({ length: 3000 }, (_, i) => event(3000 - i));
      await log.append('t/s', events);
      expect((await log.list('t/s', { after: 0, limit: 5000 })).map((e) => e.seq)).toEqual(
        events.map((e) => e.seq).reverse(),
      );
      expect(await log.lastSeq('t/s')).toBe(3000);
    });
  });

  describe('failures', () => {
    async function expectUnavailable(calls: Array<() => Promise<unknown>>): Promise<void> {
      for (const call of calls) {
        let promise: Promise<unknown> | undefined;
        expect(() => (promise = call())).not.toThrow();
        await expect(promise, String(call)).rejects.toSatisfy((err: unknown) =>
          isBerthError(err, 'store_unavailable'),
        );
      }
    }

    it('reports a lost server as store_unavailable from every method, through the promise', async () => {
      const { port, cut } = await proxy();
      const redis = newClient(port);
      cleanups.push(() => Promise.resolve(redis.disconnect()));
      await redis.connect();
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis, prefix });
      const registry = new RedisRegistry({ redis, prefix });
      const log = new RedisEventLog({ redis, prefix });
      const catalog = new RedisCatalog({ redis, prefix });
      const agent = { tenant: 'acme', kind: 'agent', id: 'agent_1' } as const;
      const key: SessionKey = { projectKey: 'p', sessionId: 's' };
      await store.append(key, [entry(1)]);
      await cut();
      await expectUnavailable([
        () => store.append(key, [entry(2)]),
        () => store.load(key),
        () => store.listSessions('p'),
        () => store.listSessionSummaries('p'),
        () => store.delete(key),
        () => store.listSubkeys(key),
        () => registry.create(record('s1')),
        () => registry.get({ tenant: 'acme', id: 's1' }),
        () => registry.list('acme', { limit: 10 }),
        () => registry.update({ tenant: 'acme', id: 's1' }, { turns: 1 }),
        () => registry.delete({ tenant: 'acme', id: 's1' }),
        () => log.append('a/s', [event(1)]),
        () => log.list('a/s', { after: 0, limit: 10 }),
        () => log.lastSeq('a/s'),
        () => log.deleteSession('a/s'),
        () => catalog.create(catalogEntry('agent_1')),
        () => catalog.get(agent),
        () => catalog.replace(agent, {}, 1),
        () => catalog.list('acme', 'agent', { limit: 10 }),
        () => catalog.delete(agent),
      ]);
    });

    it('reports a server error reply as store_unavailable', async () => {
      const prefix = prefixed();
      const store = new RedisSessionStore({ redis: client, prefix });
      const key: SessionKey = { projectKey: 'p', sessionId: 's' };
      // A key of the wrong type makes Redis answer WRONGTYPE, as a corrupted or foreign key would.
      const { entries } = transcriptKeys(prefix, key);
      await admin.set(entries, 'not a list');
      const first = entry(1);
      await expectUnavailable([() => store.load(key), () => store.append(key, [first])]);
      // Nothing was half-written: the failed append did not record the uuid as stored.
      await admin.del(entries);
      await store.append(key, [first]);
      expect(await store.load(key)).toEqual([first]);
    });
  });

  describe('openRedisStores', () => {
    const opened: Stores[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((stores) => stores.close()));
    });

    async function openError(url: string, options?: { connectTimeoutMs?: number }): Promise<unknown> {
      try {
        opened.push(await openRedisStores(url, options));
      } catch (err) {
        return err;
      }
      throw new Error(`expected ${url} to be refused`);
    }

    it('parses a store URL into a complete config', () => {
      expect(parseRedisStoreUrl('redis://127.0.0.1')).toEqual({
        host: '127.0.0.1',
        port: 6379,
        db: 0,
        username: undefined,
        password: undefined,
        tls: false,
        prefix: 'berth',
        ttlSeconds: undefined,
        display: 'redis://127.0.0.1/0',
      });
      expect(parseRedisStoreUrl('rediss://us%40r:p%3Ass@[::1]:6380/3?prefix=acme:prod&ttl=30d')).toEqual({
        host: '::1',
        port: 6380,
        db: 3,
        username: 'us@r',
        password: 'p:ss',
        tls: true,
        prefix: 'acme:prod',
        ttlSeconds: 30 * 86_400,
        display: 'rediss://[::1]:6380/3',
      });
      expect(parseRedisStoreUrl('redis://h:1/?ttl=90m').ttlSeconds).toBe(5400);
    });

    it('refuses malformed URLs with invalid_config, never echoing the password', async () => {
      const urls = [
        'redis://',
        'redis://:s3cret@',
        'http://127.0.0.1:6379',
        'redis://127.0.0.1:notaport',
        'redis://:s3cret@127.0.0.1:6379/abc',
        'redis://:s3cret@127.0.0.1:6379/0?prefix=a{b}',
        'redis://:s3cret@127.0.0.1:6379/0?prefix=',
        'redis://:s3cret@127.0.0.1:6379/0?ttl=5',
        'redis://:s3cret@127.0.0.1:6379/0?ttl=0s',
        'redis://:s3cret@127.0.0.1:6379/0?tll=5s',
        'redis://:s3cret@127.0.0.1:6379/0?prefix=a&prefix=b',
        'not a url :s3cret@',
        'redis://u:s3cret%zz@127.0.0.1:6379',
      ];
      for (const url of urls) {
        const err = await openError(url);
        expect(isBerthError(err, 'invalid_config'), url).toBe(true);
        expect(String(err), url).not.toContain('s3cret');
      }
    });

    it('refuses an unreachable server, bad credentials and a bad database, naming host:port', async () => {
      const cases: Array<[string, RegExp]> = [
        ['redis://127.0.0.1:1', /127\.0\.0\.1:1\b.*ECONNREFUSED/],
        [`redis://nobody:s3cret@${HOST}:${PORT}`, /127\.0\.0\.1:6379.*WRONGPASS/],
        [`redis://${HOST}:${PORT}/99999`, /127\.0\.0\.1:6379.*DB index/],
      ];
      for (const [url, message] of cases) {
        const err = await openError(url);
        expect(isBerthError(err, 'invalid_config'), url).toBe(true);
        expect(String(err)).toMatch(message);
        expect(String(err)).not.toContain('s3cret');
      }
    });

    it('gives up on a server that accepts connections but never answers', async () => {
      const sockets: net.Socket[] = [];
      const silent = net.createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
      cleanups.push(async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      });
      const { port } = silent.address() as net.AddressInfo;
      const started = Date.now();
      const err = await openError(`redis://${HOST}:${port}`, { connectTimeoutMs: 300 });
      expect(isBerthError(err, 'invalid_config')).toBe(true);
      expect(String(err)).toContain(`${HOST}:${port}`);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it('opens shared stores on one connection; close is idempotent', async () => {
      const prefix = prefixed();
      const stores = await openRedisStores(`redis://${HOST}:${PORT}/0?prefix=${prefix}&ttl=1h`);
      expect(stores.shared).toBe(true);
      const key: SessionKey = { projectKey: 'p', sessionId: 's' };
      await stores.transcriptStore.append(key, [entry(1)]);
      await stores.registry.create(record('s1'));
      await stores.eventLog.append('acme/s1', [event(1)]);
      expect(await stores.transcriptStore.load(key)).toHaveLength(1);
      expect((await stores.registry.get({ tenant: 'acme', id: 's1' }))?.id).toBe('s1');
      expect(await stores.eventLog.lastSeq('acme/s1')).toBe(1);
      const ttl = await admin.ttl(transcriptKeys(prefix, key).entries);
      expect(ttl).toBeGreaterThan(3500);
      // The ttl is the transcripts': agents and environments stay until deleted.
      await stores.catalog.create(catalogEntry('agent_1'));
      expect(await admin.ttl(`${catalogBase(prefix, 'acme')}:agent:e:agent_1`)).toBe(-1);
      expect(await admin.ttl(`${catalogBase(prefix, 'acme')}:agent:list`)).toBe(-1);
      const closing = stores.close();
      expect(stores.close()).toBe(closing);
      await closing;
      await expect(stores.registry.get({ tenant: 'acme', id: 's1' })).rejects.toSatisfy((err: unknown) =>
        isBerthError(err, 'store_unavailable'),
      );
    });

    it('destroy removes every key under the prefix, catalog entries included', async () => {
      const prefix = prefixed();
      const stores = await openRedisStores(`redis://${HOST}:${PORT}/0?prefix=${prefix}`);
      opened.push(stores);
      await stores.registry.create(record('s1'));
      await stores.catalog.create(catalogEntry('agent_1'));
      await stores.catalog.create(catalogEntry('env_1', { kind: 'environment' }));
      expect(await keysMatching(`${prefix}:cat:*`)).toHaveLength(4);
      await stores.destroy!();
      expect(await keysMatching(`${prefix}:*`)).toEqual([]);
    });

    it('fails commands with store_unavailable while the server is away, after a bounded wait', async () => {
      const { port, cut } = await proxy();
      const prefix = prefixed();
      const stores = await openRedisStores(`redis://${HOST}:${port}?prefix=${prefix}`);
      opened.push(stores);
      const key: SessionKey = { projectKey: 'p', sessionId: 's' };
      await stores.transcriptStore.append(key, [entry(1)]);
      await cut();
      const started = Date.now();
      await expect(stores.transcriptStore.load(key)).rejects.toSatisfy((err: unknown) =>
        isBerthError(err, 'store_unavailable'),
      );
      expect(Date.now() - started).toBeLessThan(15_000);
    });
  });
});
