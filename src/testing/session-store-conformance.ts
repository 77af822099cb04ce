/**
 * The conformance suite for transcript stores: the SDK's `SessionStore` contract plus the stricter one Berth
 * relies on (idempotent appends by `uuid`, summaries folded with the entries, no lost appends under
 * concurrency, large entries, long sessions, keys with any characters). Every Berth store runs it, and users
 * can run it on their own adapters:
 *
 * ```ts
 * import { runSessionStoreConformance } from 'berth/testing';
 * runSessionStoreConformance('my-store', async () => {
 *   const prefix = `test-${randomUUID()}`;
 *   return { store: new MyStore({ client, prefix }), cleanup: () => dropPrefix(client, prefix) };
 * });
 * ```
 */
import { randomUUID } from 'node:crypto';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { describe, expect, it } from 'vitest';

/** A store over fresh state that no other call of the factory sees, and how to remove that state. */
export interface SessionStoreUnderTest {
  store: SessionStore;
  cleanup?: () => Promise<void>;
}

/** Several stores over one shared state (still isolated from every other call), and its cleanup. */
export interface SharedSessionStoresUnderTest {
  stores: SessionStore[];
  cleanup?: () => Promise<void>;
}

/** Options of {@link runSessionStoreConformance}. */
export interface SessionStoreConformanceOptions {
  /**
   * Makes at least two store instances that see the same data, as several Berth processes would: separate
   * clients or connections on one database, table, bucket or key prefix. That data must be fresh for each
   * call, like the main factory's. Enables the cases where several instances append to one session at the
   * same time; without it those cases are skipped and say so.
   */
  sharedFactory?: () => Promise<SharedSessionStoresUnderTest>;
  /**
   * Time allowed to each of the heavy cases (10,000 entries, 1 MiB entries, concurrent appenders). Only a
   * hang should hit it.
   * @default 120000
   */
  slowCaseTimeoutMs?: number;
}

type OptionalMethod = 'listSessions' | 'listSessionSummaries' | 'delete' | 'listSubkeys';
type Case = (store: SessionStore) => Promise<void>;

const OPTIONAL_METHODS: readonly OptionalMethod[] = [
  'listSessions',
  'listSessionSummaries',
  'delete',
  'listSubkeys',
];

/**
 * Registers a vitest `describe` block named after `name` with one case per contract. Each case calls
 * `factory` for fresh, isolated state and calls its `cleanup` at the end, pass or fail. The factory is also
 * called once while the cases are collected, to learn which optional methods the store has: a case that
 * needs an absent method is registered as skipped, its title naming the method.
 */
export function runSessionStoreConformance(
  name: string,
  factory: () => Promise<SessionStoreUnderTest>,
  options: SessionStoreConformanceOptions = {},
): void {
  const slow = options.slowCaseTimeoutMs ?? 120_000;

  describe(`SessionStore conformance: ${name}`, async () => {
    const probe = await factory();
    const present = new Set(OPTIONAL_METHODS.filter((method) => typeof probe.store[method] === 'function'));
    await probe.cleanup?.();

    const run = (body: Case) => async () => {
      const { store, cleanup } = await factory();
      try {
        await body(store);
      } finally {
        await cleanup?.();
      }
    };
    /** A case that needs optional methods: skipped, and saying which method is absent, without them. */
    const needs = (methods: OptionalMethod[], title: string, body: Case) => {
      const absent = methods.filter((method) => !present.has(method));
      if (absent.length === 0) it(title, run(body));
      else
        it.skip(
          `${title} (skipped: ${absent.join(' and ')} ${absent.length > 1 ? 'are' : 'is'} absent)`,
          run(body),
        );
    };

    describe('SDK contract', () => {
      it(
        'load returns what append stored, deep-equal and in order',
        run(async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 5);
          await store.append(key, entries);
          expect(await store.load(key)).toEqual(entries);
        }),
      );

      it(
        'load of a key never written is null',
        run(async (store) => {
          expect(await store.load(newKey())).toBeNull();
          expect(await store.load({ ...newKey(), subpath: 'subagents/agent-none' })).toBeNull();
        }),
      );

      it(
        'successive appends are loaded in call order',
        run(async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 9);
          await store.append(key, entries.slice(0, 2));
          await store.append(key, entries.slice(2, 3));
          await store.append(key, entries.slice(3));
          expect(await store.load(key)).toEqual(entries);
        }),
      );

      it(
        'append([]) changes nothing',
        run(async (store) => {
          const key = newKey();
          await store.append(key, []);
          expect(await store.load(key)).toBeNull();
          const entries = transcript(key.sessionId, 2);
          await store.append(key, entries);
          await store.append(key, []);
          expect(await store.load(key)).toEqual(entries);
        }),
      );

      it(
        'entries round-trip JSON values of every kind',
        run(async (store) => {
          const key = newKey();
          const entry: SessionStoreEntry = {
            type: 'assistant',
            uuid: randomUUID(),
            timestamp: new Date(0).toISOString(),
            nested: { deep: [1, 2.5, -3e-7, 0, null, true, false, '', 'ü 🚀 "quoted" \\ \n\t\u0000'] },
            emptyObject: {},
            emptyArray: [],
            nothing: null,
            big: Number.MAX_SAFE_INTEGER,
          };
          await store.append(key, [entry]);
          expect(await store.load(key)).toEqual([entry]);
        }),
      );

      it(
        'a subpath key is independent of the main transcript and of other subpaths',
        run(async (store) => {
          const main = newKey();
          const sub1: SessionKey = { ...main, subpath: 'subagents/agent-1' };
          const sub2: SessionKey = { ...main, subpath: 'subagents/agent-2' };
          const mainEntries = transcript(main.sessionId, 2);
          const sub1Entries = transcript(main.sessionId, 3, { isSidechain: true });
          await store.append(sub1, sub1Entries);
          expect(await store.load(main)).toBeNull();
          await store.append(main, mainEntries);
          expect(await store.load(main)).toEqual(mainEntries);
          expect(await store.load(sub1)).toEqual(sub1Entries);
          expect(await store.load(sub2)).toBeNull();
        }),
      );

      it(
        'projectKeys are isolated',
        run(async (store) => {
          const a = newKey();
          const b: SessionKey = { projectKey: `${a.projectKey}-other`, sessionId: a.sessionId };
          const entries = transcript(a.sessionId, 2);
          await store.append(a, entries);
          expect(await store.load(b)).toBeNull();
          await store.append(b, entries.slice(0, 1));
          expect(await store.load(a)).toEqual(entries);
          expect(await store.load(b)).toEqual(entries.slice(0, 1));
        }),
      );

      needs(
        ['listSessions'],
        "listSessions lists the project's main sessions with epoch-ms mtimes",
        async (store) => {
          const project = newProject();
          const one = newKey(project);
          const two = newKey(project);
          const subOnly = newKey(project);
          const before = Date.now();
          await store.append(one, transcript(one.sessionId, 1));
          await store.append({ ...one, subpath: 'subagents/agent-1' }, transcript(one.sessionId, 1));
          await store.append(two, transcript(two.sessionId, 1));
          await store.append({ ...subOnly, subpath: 'subagents/agent-1' }, transcript(subOnly.sessionId, 1));
          await store.append(newKey(), transcript(randomUUID(), 1));
          const after = Date.now();

          const listed = await store.listSessions!(project);
          expect(listed.map((s) => s.sessionId).sort()).toEqual([one.sessionId, two.sessionId].sort());
          for (const { mtime } of listed) {
            expect(Number.isInteger(mtime)).toBe(true);
            // Wide bounds allow a backend's own clock; they still tell milliseconds from seconds.
            expect(mtime).toBeGreaterThan(before - DAY_MS);
            expect(mtime).toBeLessThan(after + DAY_MS);
          }
          expect(await store.listSessions!(newProject())).toEqual([]);
        },
      );

      needs(
        ['listSessions'],
        'listSessions mtime does not go back when a session is appended to',
        async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 2);
          await store.append(key, entries.slice(0, 1));
          const [first] = await store.listSessions!(key.projectKey);
          await store.append(key, entries.slice(1));
          const [second] = await store.listSessions!(key.projectKey);
          expect(second!.mtime).toBeGreaterThanOrEqual(first!.mtime);
        },
      );

      needs(['listSubkeys'], "listSubkeys lists the session's subpaths and nothing else", async (store) => {
        const main = newKey();
        const subpaths = ['subagents/agent-a', 'subagents/agent-b', 'subagents/nested/agent-c'];
        await store.append(main, transcript(main.sessionId, 1));
        for (const subpath of subpaths)
          await store.append({ ...main, subpath }, transcript(main.sessionId, 1));
        const sibling = newKey(main.projectKey);
        await store.append({ ...sibling, subpath: 'subagents/agent-z' }, transcript(sibling.sessionId, 1));

        expect([...(await store.listSubkeys!(main))].sort()).toEqual(subpaths);
        expect(await store.listSubkeys!(newKey(main.projectKey))).toEqual([]);
        expect(await store.listSubkeys!({ projectKey: newProject(), sessionId: main.sessionId })).toEqual([]);
      });

      needs(['delete'], 'delete of the main key removes it, its subpaths and nothing else', async (store) => {
        const main = newKey();
        const sub: SessionKey = { ...main, subpath: 'subagents/agent-1' };
        const other = newKey(main.projectKey);
        const otherEntries = transcript(other.sessionId, 2);
        await store.append(main, transcript(main.sessionId, 3));
        await store.append(sub, transcript(main.sessionId, 2));
        await store.append(other, otherEntries);

        await store.delete!(main);
        expect(await store.load(main)).toBeNull();
        expect(await store.load(sub)).toBeNull();
        expect(await store.load(other)).toEqual(otherEntries);
        if (store.listSubkeys) expect(await store.listSubkeys(main)).toEqual([]);
        if (store.listSessions) {
          expect((await store.listSessions(main.projectKey)).map((s) => s.sessionId)).toEqual([
            other.sessionId,
          ]);
        }
        if (store.listSessionSummaries) {
          const summaries = await store.listSessionSummaries(main.projectKey);
          expect(summaries.map((s) => s.sessionId)).toEqual([other.sessionId]);
        }
      });

      needs(['delete'], 'delete of a subpath key removes only that subpath', async (store) => {
        const main = newKey();
        const sub1: SessionKey = { ...main, subpath: 'subagents/agent-1' };
        const sub2: SessionKey = { ...main, subpath: 'subagents/agent-2' };
        const mainEntries = transcript(main.sessionId, 2);
        const sub2Entries = transcript(main.sessionId, 2);
        await store.append(main, mainEntries);
        await store.append(sub1, transcript(main.sessionId, 2));
        await store.append(sub2, sub2Entries);

        await store.delete!(sub1);
        expect(await store.load(sub1)).toBeNull();
        expect(await store.load(main)).toEqual(mainEntries);
        expect(await store.load(sub2)).toEqual(sub2Entries);
        if (store.listSubkeys) expect(await store.listSubkeys(main)).toEqual([sub2.subpath]);
        if (store.listSessionSummaries) {
          const summaries = await store.listSessionSummaries(main.projectKey);
          expect(summaries.map((s) => s.sessionId)).toEqual([main.sessionId]);
        }
      });

      needs(['delete'], 'delete of a key never written is a no-op', async (store) => {
        const key = newKey();
        const entries = transcript(key.sessionId, 1);
        await store.append(key, entries);
        await store.delete!(newKey(key.projectKey));
        await store.delete!({ ...key, subpath: 'subagents/agent-none' });
        expect(await store.load(key)).toEqual(entries);
      });
    });

    describe('session summaries', () => {
      needs(
        ['listSessionSummaries'],
        'equal a fold of all loaded entries, one per main session',
        async (store) => {
          const project = newProject();
          const one = newKey(project);
          const two = newKey(project);
          const entries = transcript(one.sessionId, 6, { title: 'First title', tag: 'urgent' });
          await store.append(one, entries.slice(0, 1));
          await store.append(one, entries.slice(1, 4));
          await store.append(one, entries.slice(4));
          await store.append(
            { ...one, subpath: 'subagents/agent-1' },
            transcript(one.sessionId, 2, { isSidechain: true }),
          );
          await store.append(two, transcript(two.sessionId, 2));
          await store.append(newKey(), transcript(randomUUID(), 1));

          const summaries = await store.listSessionSummaries!(project);
          expect(summaries.map((s) => s.sessionId).sort()).toEqual([one.sessionId, two.sessionId].sort());
          for (const key of [one, two]) {
            const summary = summaries.find((s) => s.sessionId === key.sessionId)!;
            const expected = foldSessionSummary(undefined, key, (await store.load(key))!);
            expect(summary.data).toEqual(expected.data);
            expect(Number.isInteger(summary.mtime)).toBe(true);
          }
          // Guards the test itself: the fold must have had something to fold.
          const first = summaries.find((s) => s.sessionId === one.sessionId)!;
          expect(first.data).toMatchObject({ customTitle: 'First title', tag: 'urgent', cwd: CWD });
        },
      );

      needs(
        ['listSessionSummaries', 'listSessions'],
        'are never older than listSessions says',
        async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 3);
          for (const entry of entries) {
            await store.append(key, [entry]);
            const [listed] = await store.listSessions!(key.projectKey);
            const [summary] = await store.listSessionSummaries!(key.projectKey);
            // The SDK treats a summary older than listSessions' mtime as stale and reloads the transcript.
            expect(summary!.mtime).toBeGreaterThanOrEqual(listed!.mtime);
          }
        },
      );
    });

    describe('idempotent appends (Berth)', () => {
      it(
        'an entry whose uuid is stored is skipped when a later batch repeats it',
        run(async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 4);
          await store.append(key, entries.slice(0, 2));
          await store.append(key, entries.slice(1));
          await store.append(key, entries);
          expect(await store.load(key)).toEqual(entries);
        }),
      );

      it(
        'an entry repeated within one batch is stored once',
        run(async (store) => {
          const key = newKey();
          const [a, b] = transcript(key.sessionId, 2) as [SessionStoreEntry, SessionStoreEntry];
          await store.append(key, [a, b, a, b, a]);
          expect(await store.load(key)).toEqual([a, b]);
        }),
      );

      it(
        'entries without a uuid are always appended',
        run(async (store) => {
          const key = newKey();
          const marker: SessionStoreEntry = {
            type: 'permission-mode',
            permissionMode: 'default',
            sessionId: key.sessionId,
          };
          await store.append(key, [marker, marker]);
          await store.append(key, [marker]);
          expect(await store.load(key)).toEqual([marker, marker, marker]);
        }),
      );

      it(
        'uuids are deduplicated per key, not across keys',
        run(async (store) => {
          const main = newKey();
          const entries = transcript(main.sessionId, 2);
          const keys: SessionKey[] = [
            main,
            { ...main, subpath: 'subagents/agent-1' },
            newKey(main.projectKey),
            { projectKey: newProject(), sessionId: main.sessionId },
          ];
          for (const key of keys) await store.append(key, entries);
          for (const key of keys) expect(await store.load(key)).toEqual(entries);
        }),
      );

      needs(['listSessionSummaries'], 'skipped duplicates are not folded into the summary', async (store) => {
        const key = newKey();
        const entries = transcript(key.sessionId, 3, { title: 'Only once' });
        await store.append(key, entries);
        await store.append(key, entries);
        const [summary] = await store.listSessionSummaries!(key.projectKey);
        expect(summary!.data).toEqual(foldSessionSummary(undefined, key, entries).data);
      });

      needs(['delete'], 'a deleted key can be written again from scratch', async (store) => {
        const key = newKey();
        const entries = transcript(key.sessionId, 3);
        await store.append(key, entries);
        await store.delete!(key);
        await store.append(key, entries.slice(1));
        expect(await store.load(key)).toEqual(entries.slice(1));
      });
    });

    describe('concurrency (Berth)', () => {
      it(
        'appends in flight together on one instance lose nothing',
        run(async (store) => {
          const key = newKey();
          const batches = Array.from({ length: 20 }, () => transcript(key.sessionId, 5));
          await Promise.all(batches.map((batch) => store.append(key, batch)));
          const loaded = (await store.load(key))!;
          expect(loaded).toHaveLength(100);
          for (const batch of batches) expectSubsequence(loaded, batch);
        }),
        slow,
      );

      const { sharedFactory } = options;
      const shared = (title: string, body: (stores: SessionStore[]) => Promise<void>) => {
        if (!sharedFactory) {
          it.skip(`${title} (skipped: no sharedFactory was given)`, () => {});
          return;
        }
        it(
          title,
          async () => {
            const { stores, cleanup } = await sharedFactory();
            try {
              expect(stores.length).toBeGreaterThanOrEqual(2);
              await body(stores);
            } finally {
              await cleanup?.();
            }
          },
          slow,
        );
      };

      shared(
        "several instances appending to one session lose nothing and keep each one's order",
        async (stores) => {
          const key = newKey();
          const perWriter = stores.map(() => transcript(key.sessionId, 60, { title: 'Shared' }));
          await Promise.all(
            stores.map(async (store, i) => {
              const entries = perWriter[i]!;
              for (let at = 0; at < entries.length; at += 3)
                await store.append(key, entries.slice(at, at + 3));
            }),
          );
          for (const store of stores) {
            const loaded = (await store.load(key))!;
            expect(loaded).toHaveLength(perWriter.reduce((sum, entries) => sum + entries.length, 0));
            for (const entries of perWriter) expectSubsequence(loaded, entries);
            if (store.listSessionSummaries) {
              const [summary] = await store.listSessionSummaries(key.projectKey);
              expect(summary!.data).toEqual(foldSessionSummary(undefined, key, loaded).data);
            }
          }
        },
      );

      shared('several instances replaying the same batch store it once', async (stores) => {
        const key = newKey();
        const entries = transcript(key.sessionId, 20);
        await Promise.all(
          stores.flatMap((store) => [store.append(key, entries), store.append(key, entries)]),
        );
        expect(await stores[0]!.load(key)).toEqual(entries);
      });
    });

    describe('sizes (Berth)', () => {
      it(
        'entries of 1 MiB and more round-trip',
        run(async (store) => {
          const key = newKey();
          const [before, after] = transcript(key.sessionId, 2) as [SessionStoreEntry, SessionStoreEntry];
          const big = (n: number): SessionStoreEntry => ({
            type: 'user',
            uuid: randomUUID(),
            sessionId: key.sessionId,
            message: {
              role: 'user',
              content: [{ type: 'tool_result', tool_use_id: `t${n}`, content: largeText(n) }],
            },
          });
          const entries = [before, big(MIB + 1), big(3 * MIB), after];
          await store.append(key, entries.slice(0, 2));
          await store.append(key, entries.slice(2));
          expect(await store.load(key)).toEqual(entries);
        }),
        slow,
      );

      it(
        'a session of 10,000 entries loads whole and in order',
        run(async (store) => {
          const key = newKey();
          const entries = transcript(key.sessionId, 10_000);
          for (let at = 0; at < entries.length; at += 100)
            await store.append(key, entries.slice(at, at + 100));
          const loaded = (await store.load(key))!;
          expect(loaded).toHaveLength(entries.length);
          expect(loaded.map((e) => e.uuid)).toEqual(entries.map((e) => e.uuid));
          expect(loaded).toEqual(entries);
        }),
        slow,
      );
    });

    describe('keys (Berth)', () => {
      it(
        "keys with unicode, spaces, 200+ characters and * % ' : {} / are stored and isolated",
        run(async (store) => {
          const odd = [
            'with spaces  and\ttabs',
            'ünïcødé-项目-🚀',
            'x'.repeat(240),
            `*%'":{}/\\_?#[]`,
            '%',
            '_',
            '*',
            'a/b',
          ];
          const keys: SessionKey[] = [];
          for (const projectKey of odd) for (const sessionId of odd) keys.push({ projectKey, sessionId });
          for (const sessionId of odd)
            keys.push({ projectKey: 'a', sessionId, subpath: `subagents/${sessionId}` });
          // Pairs that collide if a store joins the parts with '/' or matches prefixes or LIKE patterns.
          keys.push({ projectKey: 'a', sessionId: 'b/c' }, { projectKey: 'a', sessionId: 'b', subpath: 'c' });
          keys.push({ projectKey: 'a/b', sessionId: 'c/d' }, { projectKey: 'a', sessionId: 'b/c/d' });

          const written = keys.map((key) => ({ key, entries: transcript(key.sessionId, 2) }));
          for (const { key, entries } of written) await store.append(key, entries);
          for (const { key, entries } of written) expect(await store.load(key)).toEqual(entries);

          if (store.listSessions) {
            for (const projectKey of odd) {
              const listed = (await store.listSessions(projectKey)).map((s) => s.sessionId).sort();
              const expected = keys
                .filter((k) => k.projectKey === projectKey && !k.subpath)
                .map((k) => k.sessionId);
              expect(listed).toEqual(expected.sort());
            }
          }
          if (store.listSubkeys) {
            for (const sessionId of odd) {
              const expected = keys
                .filter((k) => k.projectKey === 'a' && k.sessionId === sessionId && k.subpath)
                .map((k) => k.subpath);
              expect([...(await store.listSubkeys({ projectKey: 'a', sessionId }))].sort()).toEqual(
                expected.sort(),
              );
            }
          }
          if (store.delete) {
            await store.delete({ projectKey: '%', sessionId: '%' });
            await store.delete({ projectKey: 'a', sessionId: 'b' });
            for (const { key, entries } of written) {
              const gone =
                (key.projectKey === '%' && key.sessionId === '%') ||
                (key.projectKey === 'a' && key.sessionId === 'b');
              expect(await store.load(key)).toEqual(gone ? null : entries);
            }
          }
        }),
        slow,
      );
    });
  });
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MIB = 1024 * 1024;
const CWD = '/workspace/conformance project';

function newProject(): string {
  return `conformance-${randomUUID()}`;
}

function newKey(projectKey = newProject()): SessionKey {
  return { projectKey, sessionId: randomUUID() };
}

/**
 * Transcript-like entries: a user prompt, then alternating assistant and user lines, each with a fresh
 * uuid and an ISO timestamp, so that `foldSessionSummary` has something to fold. `title` and `tag` add the
 * uuid-less metadata lines the CLI writes.
 */
function transcript(
  sessionId: string,
  count: number,
  extra: { title?: string; tag?: string; isSidechain?: boolean } = {},
): SessionStoreEntry[] {
  const start = Date.UTC(2025, 0, 1);
  const entries: SessionStoreEntry[] = [];
  let parentUuid: string | null = null;
  for (let i = 0; i < count; i++) {
    const uuid = randomUUID();
    const user = i % 2 === 0;
    entries.push({
      type: user ? 'user' : 'assistant',
      uuid,
      parentUuid,
      timestamp: new Date(start + i * 1000).toISOString(),
      sessionId,
      cwd: CWD,
      gitBranch: 'main',
      isSidechain: extra.isSidechain ?? false,
      message: user
        ? { role: 'user', content: `prompt number ${i}` }
        : { role: 'assistant', content: [{ type: 'text', text: `answer number ${i}` }] },
    });
    parentUuid = uuid;
  }
  if (extra.title !== undefined)
    entries.splice(1, 0, { type: 'custom-title', customTitle: extra.title, sessionId });
  if (extra.tag !== undefined) entries.push({ type: 'tag', tag: extra.tag, sessionId });
  return entries;
}

/** About `bytes` of UTF-8 text mixing 1-, 2-, 3- and 4-byte characters and JSON escapes. */
function largeText(bytes: number): string {
  const unit = 'abc "quoted" \\ é 项 🚀\n';
  return unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)));
}

/** The uuid-bearing entries of `part` appear in `whole` in the same order, maybe interleaved with others. */
function expectSubsequence(whole: SessionStoreEntry[], part: SessionStoreEntry[]): void {
  const positions = part
    .filter((entry) => entry.uuid !== undefined)
    .map((entry) => whole.findIndex((candidate) => candidate.uuid === entry.uuid));
  expect(positions.every((p) => p >= 0)).toBe(true);
  expect(positions).toEqual([...positions].sort((a, b) => a - b));
}
