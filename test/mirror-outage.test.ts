/**
 * The store goes down in the middle of a multi-turn session (a Redis of the test's own, killed and started
 * again with its data). The session keeps working, its stream says once that mirroring is delayed, and
 * when the store is back the backlog drains: the store then holds the subprocess's local transcript,
 * entry for entry.
 *
 * Then the same with a store that hangs instead of refusing (the Redis stopped with SIGSTOP): with a
 * `--store-timeout` the hang is reported like a refusal, and after SIGCONT every transcript entry and
 * every event is in the store exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { TestBerth } from './helpers/berth.js';
import { OwnRedis } from './helpers/redis-server.js';
import { expectSameTranscript, localTranscript } from './helpers/transcripts.js';

let redis: OwnRedis;
let berth: TestBerth;
let reader: Stores | undefined;

beforeAll(async () => {
  redis = await OwnRedis.start();
  berth = await TestBerth.start({ args: ['--store', `${redis.url}?prefix=outage`] });
});

afterAll(async () => {
  await berth?.dispose();
  await reader?.close();
  await redis?.close();
});

describe('a store outage', () => {
  it('loses nothing, and the client hears about it once', async () => {
    const id = await berth.createSession();
    const stream = berth.stream(id, { after: 0 });
    try {
      await berth.turn(id, 'a turn before the outage');
      await redis.down();
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

      await redis.up();
      // Stopping the host ends the subprocess (the SDK flushes what it holds) and drains the spool.
      await berth.stop();
      reader = await openStores(`${redis.url}?prefix=outage`);
      const { sdkSessionId, entries: local } = await localTranscript(berth.dataDir);
      const key = { projectKey: 'default', sessionId: sdkSessionId };
      let stored: SessionStoreEntry[] = [];
      for (let i = 0; i < 300; i++) {
        stored = (await reader.transcriptStore.load(key)) ?? [];
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
  let hung: OwnRedis | undefined;
  let host: TestBerth | undefined;
  let store: Stores | undefined;

  afterAll(async () => {
    hung?.resume();
    await host?.dispose();
    await store?.close();
    await hung?.close();
  });

  it('is reported as mirror_delayed, and afterwards holds every entry and event exactly once', async () => {
    hung = await OwnRedis.start();
    const url = `${hung.url}?prefix=hang`;
    host = await TestBerth.start({ args: ['--store', url, '--store-timeout', '1s'] });
    const id = await host.createSession();
    const stream = host.stream(id, { after: 0 });
    try {
      await host.turn(id, 'a turn before the hang');
      hung.pause();
      await host.turn(id, 'a turn while the store hangs');
      const notice = await stream.waitFor(
        (e) => e.type === 'session.error' && e.error.code === 'mirror_delayed',
        20_000,
      );
      expect(JSON.stringify(notice)).toMatch(/no answer within 1000 ms/);
      await host.turn(id, 'another turn while the store hangs');
      hung.resume();
      // Stopping the host ends the subprocess (the SDK flushes what it holds) and drains the spool.
      await host.stop();
    } finally {
      stream.close();
    }

    store = await openStores(url);
    const { sdkSessionId, entries: local } = await localTranscript(host.dataDir);
    expect(local.some((e) => JSON.stringify(e).includes('another turn while the store hangs'))).toBe(true);
    const stored =
      (await store.transcriptStore.load({ projectKey: 'default', sessionId: sdkSessionId })) ?? [];
    expectSameTranscript(stored, local);
    const events = await store.eventLog.list(`default/${id}`, { after: 0, limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'session.error')).toHaveLength(1);
    expect(events.some((e) => JSON.stringify(e).includes('another turn while the store hangs'))).toBe(true);
  });
});
