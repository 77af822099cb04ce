/**
 * The S3 stores against a real S3-compatible server (s3rver on 127.0.0.1, see `test/helpers/s3-server.ts`):
 * the three conformance suites, then what is specific to S3: the object layout, compaction under a
 * concurrent writer and reader, order across instances, listings longer than one page, failures of the
 * backend, and `openS3Stores`.
 */
import { randomUUID } from 'node:crypto';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { isBerthError } from '../../src/errors.js';
import { S3Bucket } from '../../src/stores/s3/client.js';
import { mapLimit } from '../../src/stores/s3/common.js';
import { S3EventLog } from '../../src/stores/s3/event-log.js';
import { S3Registry } from '../../src/stores/s3/registry.js';
import { S3SessionStore } from '../../src/stores/s3/session-store.js';
import { openS3Stores, parseS3StoreUrl } from '../../src/stores/s3/index.js';
import { event, runEventLogConformance } from '../../src/testing/event-log-conformance.js';
import { record, runRegistryConformance } from '../../src/testing/registry-conformance.js';
import { runSessionStoreConformance } from '../../src/testing/session-store-conformance.js';
import { createS3Client, startS3Server } from '../helpers/s3-server.js';
import { closedPort, stubS3rverCredentials } from '../helpers/s3-stubs.js';

const server = await startS3Server();
afterAll(() => server.close());

/** A fresh bucket and how to remove it. */
async function freshBucket(): Promise<{ bucket: string; remove: () => Promise<void> }> {
  const bucket = `t-${randomUUID()}`;
  await server.createBucket(bucket);
  return { bucket, remove: () => server.removeBucket(bucket) };
}

/** One bucket for the cases that isolate themselves by prefix. */
const shared = await freshBucket();
afterAll(() => shared.remove());
const sharedBucket = new S3Bucket(server.client, shared.bucket);
const freshPrefix = () => `p-${randomUUID()}`;

runSessionStoreConformance(
  'S3SessionStore',
  async () => {
    const { bucket, remove } = await freshBucket();
    return { store: new S3SessionStore({ client: server.client, bucket, prefix: 'berth' }), cleanup: remove };
  },
  {
    // Berth's own adapter has every optional method: one it lost fails its cases instead of skipping them.
    requireAll: true,
    // Separate clients on one prefix, as separate Berth processes would have; compacting early so that
    // instances compact while others append and load.
    sharedFactory: async () => {
      const { bucket, remove } = await freshBucket();
      const clients = [server.newClient(), server.newClient(), server.newClient()];
      return {
        stores: clients.map(
          (client) => new S3SessionStore({ client, bucket, prefix: 'berth', compactAfterParts: 4 }),
        ),
        cleanup: async () => {
          for (const client of clients) client.destroy();
          await remove();
        },
      };
    },
  },
);

runRegistryConformance('S3Registry', () => {
  const prefix = freshPrefix();
  // A client of its own: one case mocks Date.now, and the AWS SDK then learns a clock offset from the
  // server's "request time too skewed" answer that would skew every later request of a shared client.
  const client = server.newClient();
  return Promise.resolve({
    registry: new S3Registry({ client, bucket: shared.bucket, prefix }),
    cleanup: async () => {
      client.destroy();
      await sharedBucket.deletePrefix(`${prefix}/`);
    },
  });
});

runEventLogConformance('S3EventLog', () => {
  const prefix = freshPrefix();
  return Promise.resolve({
    log: new S3EventLog({ client: server.client, bucket: shared.bucket, prefix }),
    cleanup: () => sharedBucket.deletePrefix(`${prefix}/`),
  });
});

/** Transcript-like entries with fresh uuids. */
function entries(sessionId: string, count: number, tag = ''): SessionStoreEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    type: i % 2 === 0 ? 'user' : 'assistant',
    uuid: randomUUID(),
    timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    sessionId,
    message: { role: i % 2 === 0 ? 'user' : 'assistant', content: `${tag} line ${i}` },
  }));
}

const newKey = (): SessionKey => ({ projectKey: `project-${randomUUID()}`, sessionId: randomUUID() });

/** The object names of a key's directory in a store with prefix `prefix` (plain keys only). */
async function keyObjects(prefix: string, key: SessionKey): Promise<string[]> {
  const dir = `${prefix}/transcripts/${key.projectKey}~/${key.sessionId}~/@/`;
  return (await sharedBucket.list(dir)).map((object) => object.key.slice(dir.length));
}

describe('S3SessionStore on s3rver', () => {
  const clients: S3Client[] = [];
  const client = () => {
    const made = server.newClient();
    clients.push(made);
    return made;
  };
  afterEach(() => {
    for (const made of clients.splice(0)) made.destroy();
  });

  it('writes one part per append under a readable key, and prunes summary versions', async () => {
    const prefix = freshPrefix();
    const store = new S3SessionStore({ client: server.client, bucket: shared.bucket, prefix });
    const key = newKey();
    const all = entries(key.sessionId, 6);
    await store.append(key, all.slice(0, 2));
    await store.append(key, all.slice(2, 3));
    await store.append(key, all.slice(3));
    const names = await keyObjects(prefix, key);
    expect(names).toHaveLength(3);
    for (const name of names) expect(name).toMatch(/^p\d{12}-[0-9a-z]{10}\d{10}$/);
    expect(names.map((name) => Number(name.slice(1, 13)))).toEqual([1, 2, 3]);
    // A replay stores nothing.
    await store.append(key, all);
    expect(await keyObjects(prefix, key)).toHaveLength(3);
    expect(await store.load(key)).toEqual(all);
    const more = entries(key.sessionId, 10);
    for (const entry of more) await store.append(key, [entry]);
    const summaries = await sharedBucket.list(`${prefix}/summaries/${key.projectKey}~/${key.sessionId}~/`);
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.length).toBeLessThanOrEqual(4);
    expect(summaries.at(-1)!.key).toMatch(/\/v000000000013-\d{15}-[0-9a-z]{10}\d{10}$/);
  });

  it('compacts a long transcript into a few segments and loads it whole, in order', async () => {
    const prefix = freshPrefix();
    const store = new S3SessionStore({
      client: server.client,
      bucket: shared.bucket,
      prefix,
      compactAfterParts: 4,
    });
    const key = newKey();
    const all = entries(key.sessionId, 200);
    for (let at = 0; at < all.length; at += 2) await store.append(key, all.slice(at, at + 2));
    const names = await keyObjects(prefix, key);
    const segments = names.filter((name) => name.startsWith('c'));
    const parts = names.filter((name) => name.startsWith('p'));
    expect(segments.length).toBeGreaterThan(0);
    // 100 appends: at most compactAfterParts loose parts, and O(log n) segments.
    expect(parts.length).toBeLessThanOrEqual(4);
    expect(segments.length).toBeLessThanOrEqual(6);
    expect(await store.load(key)).toEqual(all);
    // Another instance (another process) reads the same.
    expect(await new S3SessionStore({ client: client(), bucket: shared.bucket, prefix }).load(key)).toEqual(
      all,
    );

    await store.compact(key);
    expect(await keyObjects(prefix, key)).toHaveLength(1);
    expect(await store.load(key)).toEqual(all);
    const [summary] = await store.listSessionSummaries(key.projectKey);
    expect(summary!.data).toEqual(foldSessionSummary(undefined, key, all).data);
  });

  it('loads a prefix of the transcript while another instance appends and compacts', async () => {
    const prefix = freshPrefix();
    const key = newKey();
    const writer = new S3SessionStore({
      client: client(),
      bucket: shared.bucket,
      prefix,
      compactAfterParts: 2,
    });
    const reader = new S3SessionStore({ client: client(), bucket: shared.bucket, prefix });
    const all = entries(key.sessionId, 150);
    let completed = 0;
    let done = false;
    const writing = (async () => {
      for (let at = 0; at < all.length; at += 3) {
        await writer.append(key, all.slice(at, at + 3));
        completed = at + 3;
      }
      done = true;
    })();
    let loads = 0;
    while (!done) {
      const floor = completed;
      const loaded = (await reader.load(key)) ?? [];
      expect(loaded.length).toBeGreaterThanOrEqual(floor);
      expect(loaded).toEqual(all.slice(0, loaded.length));
      loads++;
    }
    await writing;
    expect(loads).toBeGreaterThan(1);
    expect(await reader.load(key)).toEqual(all);
  });

  it('keeps every entry and each writer order when two instances append and compact at once', async () => {
    const prefix = freshPrefix();
    const key = newKey();
    const stores = [client(), client()].map(
      (made) => new S3SessionStore({ client: made, bucket: shared.bucket, prefix, compactAfterParts: 3 }),
    );
    const perWriter = stores.map((_, i) => entries(key.sessionId, 90, `writer ${i}`));
    const reader = new S3SessionStore({ client: client(), bucket: shared.bucket, prefix });
    let writing = true;
    const reading = (async () => {
      while (writing) {
        const loaded = (await reader.load(key)) ?? [];
        expect(new Set(loaded.map((entry) => entry.uuid)).size).toBe(loaded.length);
      }
    })();
    await Promise.all(
      stores.map(async (store, i) => {
        const mine = perWriter[i]!;
        for (let at = 0; at < mine.length; at += 3) await store.append(key, mine.slice(at, at + 3));
      }),
    );
    writing = false;
    await reading;
    const loaded = (await reader.load(key))!;
    expect(loaded).toHaveLength(180);
    for (const mine of perWriter) {
      const positions = mine.map((entry) => loaded.findIndex((other) => other.uuid === entry.uuid));
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
    const [summary] = await reader.listSessionSummaries(key.projectKey);
    expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
  });

  it('orders appends by when they happened across instances, not by writer', async () => {
    const prefix = freshPrefix();
    const key = newKey();
    const [a, b] = [client(), client()].map(
      (made) => new S3SessionStore({ client: made, bucket: shared.bucket, prefix }),
    );
    const all = entries(key.sessionId, 8);
    // A session moving between hosts and back: each host's view of the key is stale when it appends.
    await a!.append(key, all.slice(0, 2));
    await b!.append(key, all.slice(2, 4));
    await a!.append(key, all.slice(4, 6));
    await b!.append(key, all.slice(6));
    expect(await a!.load(key)).toEqual(all);
    // A fresh instance deduplicates against what others stored.
    const c = new S3SessionStore({ client: client(), bucket: shared.bucket, prefix });
    const more = entries(key.sessionId, 2);
    await c.append(key, [...all, ...more]);
    expect(await b!.load(key)).toEqual([...all, ...more]);
  });

  it('leaves out an object that is not complete JSON (a write in flight)', async () => {
    const prefix = freshPrefix();
    const store = new S3SessionStore({ client: server.client, bucket: shared.bucket, prefix });
    const key = newKey();
    const all = entries(key.sessionId, 2);
    await store.append(key, all);
    const dir = `${prefix}/transcripts/${key.projectKey}~/${key.sessionId}~/@/`;
    await server.client.send(
      new PutObjectCommand({
        Bucket: shared.bucket,
        Key: `${dir}p000000000009-zzzzzzzzzz0000000000`,
        Body: '{"v":1,"m":1,"e":[',
      }),
    );
    expect(await store.load(key)).toEqual(all);
  });

  it('reports an unreachable server as store_unavailable', async () => {
    const port = await closedPort();
    const offline = createS3Client(`http://127.0.0.1:${port}`, { maxAttempts: 1 });
    clients.push(offline);
    const options = { client: offline, bucket: 'nowhere', prefix: 'x' };
    const store = new S3SessionStore(options);
    const key = newKey();
    const calls: Array<() => Promise<unknown>> = [
      () => store.append(key, entries(key.sessionId, 1)),
      () => store.load(key),
      () => store.listSessions(key.projectKey),
      () => store.listSessionSummaries(key.projectKey),
      () => store.delete(key),
      () => store.listSubkeys(key),
      () => new S3Registry(options).get({ tenant: 'acme', id: 's1' }),
      () => new S3Registry(options).create(record('s1')),
      () => new S3Registry(options).list('acme', { limit: 5 }),
      () => new S3EventLog(options).append('acme/s1', [event(1)]),
      () => new S3EventLog(options).lastSeq('acme/s1'),
    ];
    for (const call of calls) {
      await expect(call()).rejects.toSatisfy(
        (err: unknown) =>
          isBerthError(err, 'store_unavailable') && /127\.0\.0\.1|ECONNREFUSED|nowhere/.test(String(err)),
      );
    }
  });
});

describe('S3 registry and event log on s3rver', () => {
  it('accepts at most one of several instances creating the same id at once, and never overwrites', async () => {
    const prefix = freshPrefix();
    const clients = [server.newClient(), server.newClient(), server.newClient()];
    try {
      const registries = clients.map(
        (made) => new S3Registry({ client: made, bucket: shared.bucket, prefix }),
      );
      for (let round = 0; round < 5; round++) {
        const id = `race-${round}`;
        const results = await Promise.allSettled(
          registries.map((registry, i) => registry.create(record(id, { title: `creator ${i}` }))),
        );
        const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
        expect(won.length).toBeLessThanOrEqual(1);
        for (const result of results) {
          if (result.status === 'rejected') expect(isBerthError(result.reason, 'session_exists')).toBe(true);
        }
        const stored = await registries[0]!.get({ tenant: 'acme', id });
        if (won.length === 1) expect(stored!.title).toBe(`creator ${won[0]}`);
        else expect(stored).toBeUndefined();
        // Claims are gone either way: the id can be created now.
        if (!stored) await registries[0]!.create(record(id));
        await expect(registries[1]!.create(record(id))).rejects.toSatisfy((err: unknown) =>
          isBerthError(err, 'session_exists'),
        );
      }
    } finally {
      for (const made of clients) made.destroy();
    }
  });

  it('lists more than one page of records and of events', async () => {
    const prefix = freshPrefix();
    const registry = new S3Registry({ client: server.client, bucket: shared.bucket, prefix });
    const log = new S3EventLog({ client: server.client, bucket: shared.bucket, prefix });
    // Written as objects directly: the point is listings past ListObjectsV2's 1000-key page.
    const bucket = new S3Bucket(server.client, shared.bucket);
    await mapLimit(
      Array.from({ length: 1005 }, (_, i) => i + 1),
      32,
      (seq) => {
        const padded = String(seq).padStart(16, '0');
        const name = `b${padded}-${padded}-aaaaaaaaaa0000000000`;
        return bucket.put(`${prefix}/events/acme%2Fs1~/${name}`, JSON.stringify([event(seq)]));
      },
    );
    expect(await log.lastSeq('acme/s1')).toBe(1005);
    expect((await log.list('acme/s1', { after: 998, limit: 4 })).map((e) => e.seq)).toEqual([
      999, 1000, 1001, 1002,
    ]);
    const listed = await bucket.list(`${prefix}/events/`);
    expect(listed).toHaveLength(1005);
    expect(listed.map((object) => object.key)).toEqual(listed.map((object) => object.key).sort());
    await registry.create(record('one'));
    expect((await registry.list('acme', { limit: 10 })).data.map((r) => r.id)).toEqual(['one']);
  });

  it('keeps odd tenants and session keys apart', async () => {
    const prefix = freshPrefix();
    const registry = new S3Registry({ client: server.client, bucket: shared.bucket, prefix });
    const log = new S3EventLog({ client: server.client, bucket: shared.bucket, prefix });
    const odd = ['a', 'a/b', 'a%2Fb', 'ünï 🚀', 'x'.repeat(250), '', '~', '.', '..'];
    for (const [i, tenant] of odd.entries()) {
      await registry.create(record(`id-${i}`, { tenant, title: tenant }));
      await log.append(`${tenant}/s`, [event(i + 1, tenant)]);
    }
    for (const [i, tenant] of odd.entries()) {
      const page = await registry.list(tenant, { limit: 10 });
      expect(page.data.map((r) => [r.tenant, r.id])).toEqual([[tenant, `id-${i}`]]);
      expect(await log.list(`${tenant}/s`, { after: 0, limit: 10 })).toEqual([event(i + 1, tenant)]);
    }
  });
});

describe('openS3Stores', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('parses a complete URL', () => {
    expect(
      parseS3StoreUrl(
        `s3://my-bucket/berth/prod/?endpoint=${encodeURIComponent('http://127.0.0.1:9000/')}&region=eu-west-1&forcePathStyle=true`,
      ),
    ).toEqual({
      bucket: 'my-bucket',
      prefix: 'berth/prod',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true,
    });
    expect(parseS3StoreUrl('s3://my-bucket')).toEqual({
      bucket: 'my-bucket',
      prefix: '',
      endpoint: undefined,
      region: undefined,
      forcePathStyle: false,
    });
  });

  it('rejects a bad URL with invalid_config that names the fault', async () => {
    const bad: Array<[string, RegExp]> = [
      ['s3:/bucket', /expected s3:\/\//],
      ['s3://', /bucket name/],
      ['s3://Upper-Case', /bucket name/],
      ['s3://ab', /bucket name/],
      ['s3://bucket/a//b', /prefix/],
      ['s3://bucket/a/../b', /prefix/],
      ['s3://bucket/p?endpoint=ftp://host', /http/],
      ['s3://bucket/p?endpoint=not%20a%20url', /not a URL/],
      ['s3://bucket/p?endpoint=http://user:secret@host', /credentials/],
      ['s3://bucket/p?region=Bad_Region', /region/],
      ['s3://bucket/p?forcePathStyle=yes', /forcePathStyle/],
      ['s3://bucket/p?acl=public', /unknown parameter "acl"/],
      ['s3://bucket/p?region=a&region=b', /twice/],
      ['s3://bucket/p#frag', /expected/],
    ];
    for (const [url, message] of bad) {
      const err = await openS3Stores(url).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBerthError(err, 'invalid_config'), url).toBe(true);
      expect(String(err), url).toMatch(message);
      expect(String(err)).not.toContain('secret');
    }
  });

  it('rejects an unreachable endpoint and a missing bucket with invalid_config naming both', async () => {
    stubS3rverCredentials();
    const port = await closedPort();
    const unreachable = `s3://some-bucket/p?endpoint=http://127.0.0.1:${port}&forcePathStyle=true`;
    const err = await openS3Stores(unreachable).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    expect(String(err)).toContain(`http://127.0.0.1:${port}`);
    expect(String(err)).toContain('some-bucket');

    const missing = `s3://no-such-bucket/p?endpoint=${server.endpoint}&forcePathStyle=true`;
    await expect(openS3Stores(missing)).rejects.toSatisfy(
      (e: unknown) => isBerthError(e, 'invalid_config') && /no-such-bucket.*does not exist/.test(String(e)),
    );
  });

  it('opens shared stores on a reachable bucket, and closes idempotently', async () => {
    stubS3rverCredentials();
    const { bucket, remove } = await freshBucket();
    try {
      const stores = await openS3Stores(
        `s3://${bucket}/berth?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
      );
      expect(stores.shared).toBe(true);
      const key = newKey();
      const all = entries(key.sessionId, 3);
      await stores.transcriptStore.append(key, all);
      expect(await stores.transcriptStore.load(key)).toEqual(all);
      await stores.registry.create(record('s1'));
      expect((await stores.registry.get({ tenant: 'acme', id: 's1' }))!.id).toBe('s1');
      await stores.eventLog.append('acme/s1', [event(1)]);
      expect(await stores.eventLog.lastSeq('acme/s1')).toBe(1);
      const objects = await new S3Bucket(server.client, bucket).list('');
      expect(objects.every((object) => object.key.startsWith('berth/'))).toBe(true);
      const first = stores.close();
      expect(stores.close()).toBe(first);
      await first;
    } finally {
      await remove();
    }
  });
});
