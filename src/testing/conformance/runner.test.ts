import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { describe, expect, it } from 'vitest';
import { openSqliteStores } from '../../stores/sqlite/index.js';
import type { EventLog } from '../../stores/types.js';
import { eventLogConformanceCases } from './event-log-cases.js';
import { runConformance } from './runner.js';
import type { ConformanceCase, ConformanceResult } from './runner.js';
import { sessionStoreConformanceCases } from './session-store-cases.js';

/** A store with only the required methods that appends every entry, repeated uuids included: a broken one. */
class StoreWithoutDedup implements SessionStore {
  private readonly entries = new Map<string, SessionStoreEntry[]>();

  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    if (entries.length > 0) {
      const id = JSON.stringify([key.projectKey, key.sessionId, key.subpath ?? '']);
      this.entries.set(id, [...(this.entries.get(id) ?? []), ...structuredClone(entries)]);
    }
    return Promise.resolve();
  }

  load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    const found = this.entries.get(JSON.stringify([key.projectKey, key.sessionId, key.subpath ?? '']));
    return Promise.resolve(found ? structuredClone(found) : null);
  }
}

function byName(results: ConformanceResult[]): Map<string, ConformanceResult> {
  return new Map(results.map((result) => [result.name, result]));
}

describe('runConformance', () => {
  it('reports a store that does not deduplicate uuids as failing those cases, with their messages', async () => {
    let made = 0;
    let cleaned = 0;
    const seen: ConformanceResult[] = [];
    const results = await runConformance(
      sessionStoreConformanceCases,
      () => {
        made++;
        return Promise.resolve({
          instance: new StoreWithoutDedup(),
          cleanup: () => Promise.resolve(void cleaned++),
        });
      },
      { onResult: (result) => seen.push(result) },
    );
    expect(results).toHaveLength(sessionStoreConformanceCases.length);
    expect(seen).toEqual(results);
    expect(results.every((r) => r.suite === 'SessionStore')).toBe(true);
    const named = byName(results);

    const repeated = named.get('an entry whose uuid is stored is skipped when a later batch repeats it')!;
    expect(repeated.status).toBe('fail');
    expect(repeated.error).toMatch(
      /^AssertionError: load after batches that repeat stored uuids: got 9 items, expected 4; first difference at \[2\]\./,
    );
    const inBatch = named.get('an entry repeated within one batch is stored once')!;
    expect(inBatch.status).toBe('fail');
    expect(inBatch.error).toMatch(/load after append\(\[a, b, a, b, a\]\): got 5 items, expected 2/);
    // Dedup is per key: this one holds without it.
    expect(named.get('uuids are deduplicated per key, not across keys')!.status).toBe('pass');

    // What the store does have passes; what it lacks is skipped, naming the absent methods.
    for (const name of [
      'load returns what append stored, deep-equal and in order',
      'entries without a uuid are always appended',
      'entries of 1 MiB and more round-trip',
      'a session of 10,000 entries loads whole and in order',
    ]) {
      expect(named.get(name), name).toMatchObject({ status: 'pass' });
    }
    expect(named.get("listSubkeys lists the session's subpaths and nothing else")).toMatchObject({
      status: 'skip',
      reason: 'listSubkeys is absent',
      ms: 0,
    });
    expect(named.get('are never older than listSessions says')).toMatchObject({
      status: 'skip',
      reason: 'listSessionSummaries and listSessions are absent',
    });
    expect(named.get('several instances replaying the same batch store it once')).toMatchObject({
      status: 'skip',
      reason: 'no sharedFactory was given',
    });
    // Every state made was removed, skipped cases' included; shared cases made none.
    expect(made).toBe(sessionStoreConformanceCases.filter((c) => !c.shared).length);
    expect(cleaned).toBe(made);
  }, 60_000);

  it('under requireAll, fails each case that needs a method the store lost, naming it, and no case skips', async () => {
    // Berth's SQLite store without its delete: what a refactor that dropped the method would leave.
    const withoutDelete = (store: SessionStore): SessionStore => ({
      append: (key, entries) => store.append(key, entries),
      load: (key) => store.load(key),
      listSessions: (projectKey) => store.listSessions!(projectKey),
      listSessionSummaries: (projectKey) => store.listSessionSummaries!(projectKey),
      listSubkeys: (key) => store.listSubkeys!(key),
    });
    const needing = sessionStoreConformanceCases.filter((kase) => kase.requires?.length);
    const results = await runConformance(
      needing,
      () => {
        const stores = openSqliteStores(':memory:');
        return Promise.resolve({
          instance: withoutDelete(stores.sessionStore),
          cleanup: () => stores.close(),
        });
      },
      { requireAll: true },
    );
    const deleting = needing.filter((kase) => kase.requires!.includes('delete')).map((kase) => kase.name);
    expect(deleting.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === 'fail').map((r) => r.name)).toEqual(deleting);
    for (const result of results.filter((r) => r.status === 'fail')) {
      expect(result.error).toBe('delete is absent, and every optional method is required here (requireAll)');
    }
    expect(results.filter((r) => r.status === 'skip')).toEqual([]);

    // Without requireAll the same store passes with those cases skipped, as a third-party adapter may.
    const lenient = await runConformance(needing, () => {
      const stores = openSqliteStores(':memory:');
      return Promise.resolve({ instance: withoutDelete(stores.sessionStore), cleanup: () => stores.close() });
    });
    expect(lenient.filter((r) => r.status === 'skip').map((r) => [r.name, r.reason])).toEqual(
      deleting.map((name) => [name, 'delete is absent']),
    );
    expect(lenient.filter((r) => r.status === 'fail')).toEqual([]);

    // A shared case needs the method on every instance, not only the first.
    const stores = openSqliteStores(':memory:');
    const shared: ConformanceCase<SessionStore> = {
      suite: 'SessionStore',
      name: 'deletes from any instance',
      requires: ['delete'],
      shared: true,
      run: () => Promise.resolve(),
    };
    const [sharedResult] = await runConformance([shared], () => Promise.reject(new Error('unused')), {
      requireAll: true,
      sharedFactory: () =>
        Promise.resolve({
          instances: [stores.sessionStore, withoutDelete(stores.sessionStore)],
          cleanup: () => stores.close(),
        }),
    });
    expect(sharedResult).toMatchObject({
      status: 'fail',
      error: expect.stringMatching(/^delete is absent,/),
    });
  }, 60_000);

  it('passes a correct store, shared cases included', async () => {
    const opened: Array<{ close(): Promise<void> }> = [];
    const results = await runConformance(
      sessionStoreConformanceCases,
      () => {
        const stores = openSqliteStores(':memory:');
        return Promise.resolve({ instance: stores.sessionStore, cleanup: () => stores.close() });
      },
      {
        requireAll: true,
        // One in-memory database seen through one store three times: enough to exercise the runner.
        sharedFactory: () => {
          const stores = openSqliteStores(':memory:');
          opened.push(stores);
          return Promise.resolve({
            instances: [stores.sessionStore, stores.sessionStore, stores.sessionStore],
            cleanup: () => stores.close(),
          });
        },
      },
    );
    expect(results.filter((r) => r.status !== 'pass')).toEqual([]);
    expect(opened).toHaveLength(2);
  }, 60_000);

  it('fails a case that times out, or whose state cannot be made or removed, and still cleans up', async () => {
    const hang: ConformanceCase<EventLog> = {
      suite: 'EventLog',
      name: 'hangs',
      run: () => new Promise(() => {}),
    };
    const fine: ConformanceCase<EventLog> = { ...eventLogConformanceCases[0]!, name: 'fine' };
    const cleanups: string[] = [];
    const factory = (cleanupFails: boolean) => () => {
      const stores = openSqliteStores(':memory:');
      return Promise.resolve({
        instance: stores.eventLog,
        cleanup: async () => {
          await stores.close();
          cleanups.push(cleanupFails ? 'failed' : 'ok');
          if (cleanupFails) throw new Error('cannot drop it');
        },
      });
    };
    // The deadline bounds a hang; the real case after it must get room on a loaded machine, so it is long.
    const [timedOut, passed] = await runConformance([hang, fine], factory(false), { timeoutMs: 2_000 });
    expect(timedOut).toMatchObject({ status: 'fail', error: 'the case timed out after 2000 ms' });
    expect(passed).toMatchObject({ status: 'pass' });
    expect(cleanups).toEqual(['ok', 'ok']);

    const [cleanupFailed] = await runConformance([fine], factory(true));
    expect(cleanupFailed).toMatchObject({ status: 'fail', error: 'its cleanup failed: cannot drop it' });

    let lateCleanup: () => void = () => {};
    const cleanedLate = new Promise<void>((resolve) => (lateCleanup = resolve));
    const [slowState] = await runConformance(
      [fine],
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const stores = openSqliteStores(':memory:');
        return { instance: stores.eventLog, cleanup: () => stores.close().then(lateCleanup) };
      },
      { timeoutMs: 50 },
    );
    expect(slowState).toMatchObject({
      status: 'fail',
      error: 'could not make its state: making its state timed out after 50 ms',
    });
    // The state the factory made after the timeout is removed all the same.
    await cleanedLate;

    const [noState] = await runConformance([fine], () => Promise.reject(new Error('connection refused')));
    expect(noState).toMatchObject({
      status: 'fail',
      ms: 0,
      error: 'could not make its state: connection refused',
    });
  });

  it('stops when its signal aborts, after removing the state of the case in flight', async () => {
    const controller = new AbortController();
    let cleaned = 0;
    const hang: ConformanceCase<EventLog> = {
      suite: 'EventLog',
      name: 'hangs',
      run: () => {
        setTimeout(() => controller.abort(new Error('interrupted')), 20);
        return new Promise(() => {});
      },
    };
    const seen: ConformanceResult[] = [];
    const run = runConformance(
      [hang, hang],
      () => {
        const stores = openSqliteStores(':memory:');
        return Promise.resolve({
          instance: stores.eventLog,
          cleanup: () => stores.close().then(() => void cleaned++),
        });
      },
      { signal: controller.signal, onResult: (result) => seen.push(result) },
    );
    await expect(run).rejects.toThrow('interrupted');
    expect(seen).toEqual([
      expect.objectContaining({ status: 'fail', error: 'the case was stopped: interrupted' }),
    ]);
    expect(cleaned).toBe(1);
  });
});
