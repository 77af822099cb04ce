/**
 * The durable mirror under a lost lease, on PostgreSQL and Redis: a host that spooled writes for a
 * session and was then paused past its lease (another host took the session over) ships nothing into the
 * session. Its rows are refused by the store, kept beside the session as superseded writes (each once,
 * even when shipped twice), removed from its spool, and the host is told that the lease is lost; the new
 * holder's events, record and transcript are untouched.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DurableMirror } from '../src/stores/durable-mirror.js';
import { openStores } from '../src/stores/open-stores.js';
import { sessionKey, type Fence } from '../src/stores/types.js';
import { event, record } from '../src/testing/conformance/index.js';
import { postgresBackend, redisBackend } from './helpers/backends.js';
import { eventually } from './helpers/wait.js';

const backends = [postgresBackend(), redisBackend()];
afterAll(async () => {
  for (const b of backends) await b.close();
});

describe.each(backends)('a fenced-off host: $name', (backend) => {
  it('ships nothing into the session; its rows are kept aside once and it hears the lease is lost', async () => {
    const store = await backend.create();
    const stores = await openStores(store.url);
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-fence-'));
    const coordination = stores.coordination!;
    const ref = { tenant: 'acme', id: 'fenced-1' };
    const key = sessionKey(ref);
    const sdk = '0b5e7a62-7f1e-4b8e-9a53-1f0c2f6d0a11';
    const lost: string[] = [];
    let fence: Fence | undefined;
    const open = (): DurableMirror =>
      new DurableMirror({
        backend: stores.transcriptStore,
        eventLog: stores.eventLog,
        registry: stores.registry,
        spoolPath: path.join(dir, 'spool.db'),
        minBackoffMs: 10,
        fenceFor: () => fence,
        superseded: { coordination, hostId: 'host-a', onLost: (lease) => lost.push(lease) },
      });
    let mirror = open();
    try {
      await stores.registry.create({ ...record(ref.id), tenant: ref.tenant, sdkSessionId: sdk });
      const a = await coordination.acquire(key, 'host-a', 300);
      expect(a).toMatchObject({ acquired: true, lease: { token: 1 } });
      fence = { lease: key, token: 1 };
      // While host A holds the lease, its writes land.
      await mirror.eventLog.append(key, [event(1), event(2)]);
      await mirror.registry.update(ref, { title: 'by A' });
      await mirror.append({ projectKey: ref.tenant, sessionId: sdk }, [{ type: 'user', uuid: 'a-1' }]);
      await mirror.drain();
      expect((await stores.eventLog.list(key, { after: 0, limit: 10 })).map((e) => e.seq)).toEqual([1, 2]);

      // A is paused past its lease; B takes the session over and writes under token 2.
      await new Promise((r) => setTimeout(r, 400));
      const b = await coordination.acquire(key, 'host-b', 10_000);
      expect(b).toMatchObject({ acquired: true, lease: { token: 2 } });
      const byB = { fence: { lease: key, token: 2 } };
      await stores.eventLog.append(
        key,
        [
          {
            id: 'sevt_b',
            seq: 3,
            created_at: new Date().toISOString(),
            type: 'session.error',
            error: { type: 'host_restarted', message: 'by B' },
          },
        ],
        byB,
      );
      await stores.registry.update(ref, { title: 'by B' }, byB);

      // A wakes and writes what its stale turn produced: refused, kept aside, A told.
      await mirror.close();
      mirror = open();
      await mirror.eventLog.append(key, [event(3), event(4)]);
      await mirror.registry.update(ref, { title: 'by A, late' });
      await mirror.append({ projectKey: ref.tenant, sessionId: sdk }, [{ type: 'user', uuid: 'a-2' }]);
      await mirror.drain();
      expect(mirror.backlog).toBe(0);
      await eventually(() => lost.length > 0, 'A to hear that the lease is lost');
      expect(new Set(lost)).toEqual(new Set([key]));

      const events = await stores.eventLog.list(key, { after: 0, limit: 10 });
      expect(events.map((e) => [e.seq, e.type])).toEqual([
        [1, event(1).type],
        [2, event(2).type],
        [3, 'session.error'],
      ]);
      expect((await stores.registry.get(ref))?.title).toBe('by B');
      const transcript = await stores.transcriptStore.load({ projectKey: ref.tenant, sessionId: sdk });
      expect(transcript?.map((e) => e.uuid)).toEqual(['a-1']);

      const kept = await coordination.superseded(key);
      expect(kept.map((w) => w.kind).sort()).toEqual(['events', 'registry', 'transcript']);
      expect(kept.every((w) => w.hostId === 'host-a' && w.token === 1)).toBe(true);
      expect(kept.find((w) => w.kind === 'events')?.payload).toEqual([event(3), event(4)]);
      expect(kept.find((w) => w.kind === 'transcript')?.payload).toEqual([{ type: 'user', uuid: 'a-2' }]);
      // Keeping a row twice (a crash between keeping it and deleting it from the spool) stores it once.
      const again = kept.find((w) => w.kind === 'events')!;
      await coordination.keepSuperseded(again);
      expect(await coordination.superseded(key)).toHaveLength(3);
    } finally {
      await mirror.close();
      await stores.destroy?.();
      await stores.close();
      await store.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
