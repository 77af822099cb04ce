/**
 * The store goes down in the middle of a multi-turn session, on Redis and on PostgreSQL. The session keeps
 * working, its stream says once that mirroring is delayed, and when the store is back the backlog drains:
 * the store then holds the subprocess's local transcript, entry for entry.
 *
 * Then the same with a store that hangs instead of refusing: with a `--store-timeout` the hang is reported
 * like a refusal, and once it answers again every transcript entry and every event is in the store exactly
 * once.
 *
 * Redis is a server of the test's own, killed and started again with its data (down), or stopped with
 * SIGSTOP (a hang). PostgreSQL is the shared one behind a TCP proxy the test controls: the proxy cuts every
 * connection and refuses new ones (down), or holds every byte (a hang); the test reads the store directly.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { POSTGRES_URL, postgresBackend } from './helpers/backends.js';
import { TestBerth } from './helpers/berth.js';
import { OwnRedis } from './helpers/redis-server.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { expectSameTranscript, localTranscript } from './helpers/transcripts.js';

/** A store whose outage the test controls. */
interface OutageStore {
  /** The `--store` URL the server uses. */
  serverUrl: string;
  /** A URL that reaches the store whatever the outage (the test's reads). */
  readerUrl: string;
  /** The store refuses: connections cut, new ones refused. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** The store hangs: connections stay open and nothing answers. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

const BACKENDS: Array<{ name: string; open: (label: string) => Promise<OutageStore> }> = [
  {
    name: 'redis',
    async open(label) {
      const redis = await OwnRedis.start();
      const url = `${redis.url}?prefix=${label}`;
      return {
        serverUrl: url,
        readerUrl: url,
        down: () => redis.down(),
        up: () => redis.up(),
        pause: () => redis.pause(),
        resume: () => redis.resume(),
        async close() {
          redis.resume();
          await redis.close();
        },
      };
    },
  },
  {
    name: 'postgres',
    async open() {
      const store = await postgresBackend().create();
      const target = new URL(POSTGRES_URL);
      const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
      const proxied = new URL(store.url);
      proxied.port = String(proxy.port);
      return {
        serverUrl: proxied.toString(),
        readerUrl: store.url,
        down: () => Promise.resolve(proxy.down()),
        up: () => Promise.resolve(proxy.up()),
        pause: () => proxy.pause(),
        resume: () => proxy.resume(),
        async close() {
          await proxy.close();
          await store.cleanup();
        },
      };
    },
  },
];

describe.each(BACKENDS)('on $name', ({ open }) => {
  const cleanups: Array<() => Promise<void>> = [];

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  /** Opens an outage store and a server on it; both end with the file's cleanups. */
  async function setUp(
    label: string,
    args: string[] = [],
  ): Promise<{ store: OutageStore; berth: TestBerth }> {
    const store = await open(label);
    cleanups.push(() => store.close());
    const berth = await TestBerth.start({ args: ['--store', store.serverUrl, ...args] });
    cleanups.push(() => berth.dispose());
    // Runs first: a test that failed while the store hung lets the server's last writes through.
    cleanups.push(() => Promise.resolve(store.resume()));
    return { store, berth };
  }

  async function reader(store: OutageStore): Promise<Stores> {
    const stores = await openStores(store.readerUrl);
    cleanups.push(() => stores.close());
    return stores;
  }

  describe('a store outage', () => {
    it('loses nothing, and the client hears about it once', async () => {
      const { store, berth } = await setUp('outage');
      const id = await berth.createSession();
      const stream = berth.stream(id, { after: 0 });
      try {
        await berth.turn(id, 'a turn before the outage');
        await store.down();
        await berth.turn(id, 'a turn during the outage');
        await berth.turn(id, 'another turn during the outage');
        await stream.waitFor((e) => e.type === 'session.error' && e.error.code === 'mirror_delayed');
        await berth.turn(id, 'a third turn during the outage');
        const notices = stream.events.filter(
          (e) => e.type === 'session.error' && e.error.code === 'mirror_delayed',
        );
        expect(notices).toHaveLength(1);
        // Managed Agents has no error type for a delayed mirror: Berth's cause is the code.
        expect(notices[0]).toMatchObject({ error: { type: 'unknown_error' } });

        await store.up();
        // Stopping the host ends the subprocess (the SDK flushes what it holds) and drains the spool.
        await berth.stop();
        const stores = await reader(store);
        const { sdkSessionId, entries: local } = await localTranscript(berth.dataDir);
        const key = { projectKey: 'default', sessionId: sdkSessionId };
        let stored: SessionStoreEntry[] = [];
        for (let i = 0; i < 300; i++) {
          stored = (await stores.transcriptStore.load(key)) ?? [];
          if (stored.length >= local.length) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(local.some((e) => JSON.stringify(e).includes('a third turn during the outage'))).toBe(true);
        expectSameTranscript(stored, local);
      } finally {
        stream.close();
      }
    });
  });

  describe('a store that hangs', () => {
    it('is reported as mirror_delayed, and afterwards holds every entry and event exactly once', async () => {
      const { store, berth: host } = await setUp('hang', ['--store-timeout', '1s']);
      const id = await host.createSession();
      const stream = host.stream(id, { after: 0 });
      try {
        await host.turn(id, 'a turn before the hang');
        store.pause();
        await host.turn(id, 'a turn while the store hangs');
        const notice = await stream.waitFor(
          (e) => e.type === 'session.error' && e.error.code === 'mirror_delayed',
          20_000,
        );
        expect(JSON.stringify(notice)).toMatch(/no answer within 1000 ms/);
        await host.turn(id, 'another turn while the store hangs');
        store.resume();
        // Stopping the host ends the subprocess (the SDK flushes what it holds) and drains the spool.
        await host.stop();
      } finally {
        stream.close();
      }

      const stores = await reader(store);
      const { sdkSessionId, entries: local } = await localTranscript(host.dataDir);
      expect(local.some((e) => JSON.stringify(e).includes('another turn while the store hangs'))).toBe(true);
      const stored =
        (await stores.transcriptStore.load({ projectKey: 'default', sessionId: sdkSessionId })) ?? [];
      expectSameTranscript(stored, local);
      const events = await stores.eventLog.list(`default/${id}`, { after: 0, limit: 10_000 });
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.type === 'session.error')).toHaveLength(1);
      expect(events.some((e) => JSON.stringify(e).includes('another turn while the store hangs'))).toBe(true);
    });
  });
});
