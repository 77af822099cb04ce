/**
 * The conformance cases for transcript stores: the SDK's `SessionStore` contract plus the stricter one Berth
 * relies on (idempotent appends by `uuid`, summaries folded with the entries, no lost appends under
 * concurrency, large entries, long sessions, keys with any characters). Every Berth store passes them; run
 * them on another adapter with `runConformance` (see `runner.ts`), `runSessionStoreConformance` under
 * vitest, or `berth conformance STORE_URL`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { assertAtLeast, assertBetween, assertMatches, assertSame } from './assertions.js';
import type { ConformanceCase, ConformanceContext } from './runner.js';

type Flags = Pick<ConformanceCase<SessionStore>, 'requires' | 'shared' | 'slow'>;

function storeCase(
  group: string,
  name: string,
  flags: Flags,
  run: (ctx: ConformanceContext<SessionStore>) => Promise<void>,
): ConformanceCase<SessionStore> {
  return { suite: 'SessionStore', group, name, ...flags, run };
}

const SDK = 'SDK contract';
const SUMMARIES = 'session summaries';
const IDEMPOTENT = 'idempotent appends (Berth)';
const CONCURRENCY = 'concurrency (Berth)';
const SIZES = 'sizes (Berth)';
const KEYS = 'keys (Berth)';

/** The `SessionStore` suite, in order. */
export const sessionStoreConformanceCases: readonly ConformanceCase<SessionStore>[] = [
  storeCase(
    SDK,
    'load returns what append stored, deep-equal and in order',
    {},
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 5);
      await store.append(key, entries);
      assertSame(await store.load(key), entries, 'load after one append');
    },
  ),

  storeCase(SDK, 'load of a key never written is null', {}, async ({ instance: store }) => {
    assert.equal(await store.load(newKey()), null, 'load of a main key never written');
    assert.equal(
      await store.load({ ...newKey(), subpath: 'subagents/agent-none' }),
      null,
      'load of a subpath key never written',
    );
  }),

  storeCase(SDK, 'successive appends are loaded in call order', {}, async ({ instance: store }) => {
    const key = newKey();
    const entries = transcript(key.sessionId, 9);
    await store.append(key, entries.slice(0, 2));
    await store.append(key, entries.slice(2, 3));
    await store.append(key, entries.slice(3));
    assertSame(await store.load(key), entries, 'load after three appends');
  }),

  storeCase(SDK, 'append([]) changes nothing', {}, async ({ instance: store }) => {
    const key = newKey();
    await store.append(key, []);
    assert.equal(await store.load(key), null, 'load after only append([])');
    const entries = transcript(key.sessionId, 2);
    await store.append(key, entries);
    await store.append(key, []);
    assertSame(await store.load(key), entries, 'load after append(entries), append([])');
  }),

  storeCase(SDK, 'entries round-trip JSON values of every kind', {}, async ({ instance: store }) => {
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
    assertSame(await store.load(key), [entry], 'load of an entry holding every JSON kind');
  }),

  storeCase(
    SDK,
    'a subpath key is independent of the main transcript and of other subpaths',
    {},
    async ({ instance: store }) => {
      const main = newKey();
      const sub1: SessionKey = { ...main, subpath: 'subagents/agent-1' };
      const sub2: SessionKey = { ...main, subpath: 'subagents/agent-2' };
      const mainEntries = transcript(main.sessionId, 2);
      const sub1Entries = transcript(main.sessionId, 3, { isSidechain: true });
      await store.append(sub1, sub1Entries);
      assert.equal(await store.load(main), null, 'the main key after appending only to a subpath');
      await store.append(main, mainEntries);
      assertSame(await store.load(main), mainEntries, 'the main key');
      assertSame(await store.load(sub1), sub1Entries, 'the subpath key');
      assert.equal(await store.load(sub2), null, 'another subpath never written');
    },
  ),

  storeCase(SDK, 'projectKeys are isolated', {}, async ({ instance: store }) => {
    const a = newKey();
    const b: SessionKey = { projectKey: `${a.projectKey}-other`, sessionId: a.sessionId };
    const entries = transcript(a.sessionId, 2);
    await store.append(a, entries);
    assert.equal(await store.load(b), null, 'the same sessionId in another project, never written');
    await store.append(b, entries.slice(0, 1));
    assertSame(await store.load(a), entries, 'the first project');
    assertSame(await store.load(b), entries.slice(0, 1), 'the other project');
  }),

  storeCase(
    SDK,
    "listSessions lists the project's main sessions with epoch-ms mtimes",
    { requires: ['listSessions'] },
    async ({ instance: store }) => {
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
      assertSame(
        listed.map((s) => s.sessionId).sort(),
        [one.sessionId, two.sessionId].sort(),
        'the sessionIds listed (main transcripts of this project only)',
      );
      for (const { sessionId, mtime } of listed) {
        assert.ok(Number.isInteger(mtime), `mtime of ${sessionId} is an integer, got ${mtime}`);
        // Wide bounds allow a backend's own clock; they still tell milliseconds from seconds.
        assertBetween(mtime, before - DAY_MS, after + DAY_MS, `mtime of ${sessionId}, in epoch ms`);
      }
      assertSame(await store.listSessions!(newProject()), [], 'listSessions of a project never written');
    },
  ),

  storeCase(
    SDK,
    'listSessions mtime does not go back when a session is appended to',
    { requires: ['listSessions'] },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 2);
      await store.append(key, entries.slice(0, 1));
      const [first] = await store.listSessions!(key.projectKey);
      await store.append(key, entries.slice(1));
      const [second] = await store.listSessions!(key.projectKey);
      assert.ok(first && second, 'listSessions lists the session after each append');
      assertAtLeast(second.mtime, first.mtime, 'mtime after the second append');
    },
  ),

  storeCase(
    SDK,
    "listSubkeys lists the session's subpaths and nothing else",
    { requires: ['listSubkeys'] },
    async ({ instance: store }) => {
      const main = newKey();
      const subpaths = ['subagents/agent-a', 'subagents/agent-b', 'subagents/nested/agent-c'];
      await store.append(main, transcript(main.sessionId, 1));
      for (const subpath of subpaths) await store.append({ ...main, subpath }, transcript(main.sessionId, 1));
      const sibling = newKey(main.projectKey);
      await store.append({ ...sibling, subpath: 'subagents/agent-z' }, transcript(sibling.sessionId, 1));

      assertSame([...(await store.listSubkeys!(main))].sort(), subpaths, "the session's subpaths");
      assertSame(
        await store.listSubkeys!(newKey(main.projectKey)),
        [],
        'listSubkeys of a session never written',
      );
      assertSame(
        await store.listSubkeys!({ projectKey: newProject(), sessionId: main.sessionId }),
        [],
        'listSubkeys of the same sessionId in another project',
      );
    },
  ),

  storeCase(
    SDK,
    'delete of the main key removes it, its subpaths and nothing else',
    { requires: ['delete'] },
    async ({ instance: store }) => {
      const main = newKey();
      const sub: SessionKey = { ...main, subpath: 'subagents/agent-1' };
      const other = newKey(main.projectKey);
      const otherEntries = transcript(other.sessionId, 2);
      await store.append(main, transcript(main.sessionId, 3));
      await store.append(sub, transcript(main.sessionId, 2));
      await store.append(other, otherEntries);

      await store.delete!(main);
      assert.equal(await store.load(main), null, 'the deleted main key');
      assert.equal(await store.load(sub), null, "the deleted session's subpath");
      assertSame(await store.load(other), otherEntries, 'another session of the project');
      if (store.listSubkeys) assertSame(await store.listSubkeys(main), [], 'listSubkeys after delete');
      if (store.listSessions) {
        assertSame(
          (await store.listSessions(main.projectKey)).map((s) => s.sessionId),
          [other.sessionId],
          'listSessions after delete',
        );
      }
      if (store.listSessionSummaries) {
        assertSame(
          (await store.listSessionSummaries(main.projectKey)).map((s) => s.sessionId),
          [other.sessionId],
          'listSessionSummaries after delete',
        );
      }
    },
  ),

  storeCase(
    SDK,
    'delete of a subpath key removes only that subpath',
    { requires: ['delete'] },
    async ({ instance: store }) => {
      const main = newKey();
      const sub1: SessionKey = { ...main, subpath: 'subagents/agent-1' };
      const sub2: SessionKey = { ...main, subpath: 'subagents/agent-2' };
      const mainEntries = transcript(main.sessionId, 2);
      const sub2Entries = transcript(main.sessionId, 2);
      await store.append(main, mainEntries);
      await store.append(sub1, transcript(main.sessionId, 2));
      await store.append(sub2, sub2Entries);

      await store.delete!(sub1);
      assert.equal(await store.load(sub1), null, 'the deleted subpath');
      assertSame(await store.load(main), mainEntries, 'the main transcript');
      assertSame(await store.load(sub2), sub2Entries, 'the other subpath');
      if (store.listSubkeys)
        assertSame(await store.listSubkeys(main), [sub2.subpath], 'listSubkeys after delete');
      if (store.listSessionSummaries) {
        assertSame(
          (await store.listSessionSummaries(main.projectKey)).map((s) => s.sessionId),
          [main.sessionId],
          'listSessionSummaries after deleting a subpath',
        );
      }
    },
  ),

  storeCase(
    SDK,
    'delete of a key never written is a no-op',
    { requires: ['delete'] },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 1);
      await store.append(key, entries);
      await store.delete!(newKey(key.projectKey));
      await store.delete!({ ...key, subpath: 'subagents/agent-none' });
      assertSame(await store.load(key), entries, 'the written key after deleting keys never written');
    },
  ),

  storeCase(
    SUMMARIES,
    'equal a fold of all loaded entries, one per main session',
    { requires: ['listSessionSummaries'] },
    async ({ instance: store }) => {
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
      assertSame(
        summaries.map((s) => s.sessionId).sort(),
        [one.sessionId, two.sessionId].sort(),
        'the sessionIds summarized (main transcripts of this project only)',
      );
      for (const key of [one, two]) {
        const summary = summaries.find((s) => s.sessionId === key.sessionId)!;
        const loaded = await store.load(key);
        assert.ok(loaded, `load of ${key.sessionId}`);
        assertSame(
          summary.data,
          foldSessionSummary(undefined, key, loaded).data,
          `the summary of ${key.sessionId} against a fold of its loaded entries`,
        );
        assert.ok(Number.isInteger(summary.mtime), `summary mtime is an integer, got ${summary.mtime}`);
      }
      // Guards the case itself: the fold must have had something to fold.
      const first = summaries.find((s) => s.sessionId === one.sessionId)!;
      assertMatches(
        first.data,
        { customTitle: 'First title', tag: 'urgent', cwd: CWD },
        'the folded summary',
      );
    },
  ),

  storeCase(
    SUMMARIES,
    'are never older than listSessions says',
    { requires: ['listSessionSummaries', 'listSessions'] },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 3);
      for (const [i, entry] of entries.entries()) {
        await store.append(key, [entry]);
        const [listed] = await store.listSessions!(key.projectKey);
        const [summary] = await store.listSessionSummaries!(key.projectKey);
        assert.ok(listed && summary, `the session is listed and summarized after append ${i + 1}`);
        // The SDK treats a summary older than listSessions' mtime as stale and reloads the transcript.
        assertAtLeast(
          summary.mtime,
          listed.mtime,
          `summary mtime after append ${i + 1}, against listSessions'`,
        );
      }
    },
  ),

  storeCase(
    IDEMPOTENT,
    'an entry whose uuid is stored is skipped when a later batch repeats it',
    {},
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 4);
      await store.append(key, entries.slice(0, 2));
      await store.append(key, entries.slice(1));
      await store.append(key, entries);
      assertSame(await store.load(key), entries, 'load after batches that repeat stored uuids');
    },
  ),

  storeCase(
    IDEMPOTENT,
    'an entry repeated within one batch is stored once',
    {},
    async ({ instance: store }) => {
      const key = newKey();
      const [a, b] = transcript(key.sessionId, 2) as [SessionStoreEntry, SessionStoreEntry];
      await store.append(key, [a, b, a, b, a]);
      assertSame(await store.load(key), [a, b], 'load after append([a, b, a, b, a])');
    },
  ),

  storeCase(IDEMPOTENT, 'entries without a uuid are always appended', {}, async ({ instance: store }) => {
    const key = newKey();
    const marker: SessionStoreEntry = {
      type: 'permission-mode',
      permissionMode: 'default',
      sessionId: key.sessionId,
    };
    await store.append(key, [marker, marker]);
    await store.append(key, [marker]);
    assertSame(await store.load(key), [marker, marker, marker], 'load after three uuid-less entries');
  }),

  storeCase(
    IDEMPOTENT,
    'uuids are deduplicated per key, not across keys',
    {},
    async ({ instance: store }) => {
      const main = newKey();
      const entries = transcript(main.sessionId, 2);
      const keys: SessionKey[] = [
        main,
        { ...main, subpath: 'subagents/agent-1' },
        newKey(main.projectKey),
        { projectKey: newProject(), sessionId: main.sessionId },
      ];
      for (const key of keys) await store.append(key, entries);
      for (const key of keys) {
        assertSame(await store.load(key), entries, `load of ${JSON.stringify(key)}, given the same uuids`);
      }
    },
  ),

  storeCase(
    IDEMPOTENT,
    'skipped duplicates are not folded into the summary',
    { requires: ['listSessionSummaries'] },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 3, { title: 'Only once' });
      await store.append(key, entries);
      await store.append(key, entries);
      const [summary] = await store.listSessionSummaries!(key.projectKey);
      assert.ok(summary, 'the session is summarized');
      assertSame(
        summary.data,
        foldSessionSummary(undefined, key, entries).data,
        'the summary after a replayed batch, against a fold of the batch once',
      );
    },
  ),

  storeCase(
    IDEMPOTENT,
    'a deleted key can be written again from scratch',
    { requires: ['delete'] },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 3);
      await store.append(key, entries);
      await store.delete!(key);
      await store.append(key, entries.slice(1));
      assertSame(
        await store.load(key),
        entries.slice(1),
        'load after delete and a new append of known uuids',
      );
    },
  ),

  storeCase(
    CONCURRENCY,
    'appends in flight together on one instance lose nothing',
    { slow: true },
    async ({ instance: store }) => {
      const key = newKey();
      const batches = Array.from({ length: 20 }, () => transcript(key.sessionId, 5));
      await Promise.all(batches.map((batch) => store.append(key, batch)));
      const loaded = await store.load(key);
      assert.ok(loaded, 'load after 20 concurrent appends');
      assert.equal(loaded.length, 100, 'entries loaded after 20 concurrent appends of 5');
      for (const [i, batch] of batches.entries()) assertSubsequence(loaded, batch, `batch ${i + 1}`);
    },
  ),

  storeCase(
    CONCURRENCY,
    "several instances appending to one session lose nothing and keep each one's order",
    { shared: true, slow: true },
    async ({ instances: stores }) => {
      const key = newKey();
      const perWriter = stores.map(() => transcript(key.sessionId, 60, { title: 'Shared' }));
      await Promise.all(
        stores.map(async (store, i) => {
          const entries = perWriter[i]!;
          for (let at = 0; at < entries.length; at += 3) await store.append(key, entries.slice(at, at + 3));
        }),
      );
      const total = perWriter.reduce((sum, entries) => sum + entries.length, 0);
      for (const [s, store] of stores.entries()) {
        const loaded = await store.load(key);
        assert.ok(loaded, `load through instance ${s + 1}`);
        assert.equal(loaded.length, total, `entries loaded through instance ${s + 1}`);
        for (const [w, entries] of perWriter.entries()) {
          assertSubsequence(loaded, entries, `writer ${w + 1}'s entries, loaded through instance ${s + 1}`);
        }
        if (store.listSessionSummaries) {
          const [summary] = await store.listSessionSummaries(key.projectKey);
          assert.ok(summary, `the session is summarized through instance ${s + 1}`);
          assertSame(
            summary.data,
            foldSessionSummary(undefined, key, loaded).data,
            `the summary through instance ${s + 1}, against a fold of the loaded entries`,
          );
        }
      }
    },
  ),

  storeCase(
    CONCURRENCY,
    'several instances replaying the same batch store it once',
    { shared: true, slow: true },
    async ({ instances: stores }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 20);
      await Promise.all(stores.flatMap((store) => [store.append(key, entries), store.append(key, entries)]));
      assertSame(await stores[0]!.load(key), entries, 'load after every instance appended the batch twice');
    },
  ),

  storeCase(SIZES, 'entries of 1 MiB and more round-trip', { slow: true }, async ({ instance: store }) => {
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
    assertSame(await store.load(key), entries, 'load of entries of 1 MiB and 3 MiB between small ones');
  }),

  storeCase(
    SIZES,
    'a session of 10,000 entries loads whole and in order',
    { slow: true },
    async ({ instance: store }) => {
      const key = newKey();
      const entries = transcript(key.sessionId, 10_000);
      for (let at = 0; at < entries.length; at += 100) await store.append(key, entries.slice(at, at + 100));
      const loaded = await store.load(key);
      assert.ok(loaded, 'load after 100 appends of 100 entries');
      assert.equal(loaded.length, entries.length, 'entries loaded');
      assertSame(
        loaded.map((e) => e.uuid),
        entries.map((e) => e.uuid),
        'the uuids loaded, in order',
      );
      assertSame(loaded, entries, 'the entries loaded');
    },
  ),

  storeCase(
    KEYS,
    "keys with unicode, spaces, 200+ characters and * % ' : {} / are stored and isolated",
    { slow: true },
    async ({ instance: store }) => {
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
      for (const { key, entries } of written)
        assertSame(await store.load(key), entries, `load of ${JSON.stringify(key)}`);

      if (store.listSessions) {
        for (const projectKey of odd) {
          const listed = (await store.listSessions(projectKey)).map((s) => s.sessionId).sort();
          const expected = keys
            .filter((k) => k.projectKey === projectKey && !k.subpath)
            .map((k) => k.sessionId);
          assertSame(listed, expected.sort(), `listSessions(${JSON.stringify(projectKey)})`);
        }
      }
      if (store.listSubkeys) {
        for (const sessionId of odd) {
          const expected = keys
            .filter((k) => k.projectKey === 'a' && k.sessionId === sessionId && k.subpath)
            .map((k) => k.subpath);
          assertSame(
            [...(await store.listSubkeys({ projectKey: 'a', sessionId }))].sort(),
            expected.sort(),
            `listSubkeys of project "a", session ${JSON.stringify(sessionId)}`,
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
          assertSame(
            await store.load(key),
            gone ? null : entries,
            `load of ${JSON.stringify(key)} after deleting {%, %} and {a, b}`,
          );
        }
      }
    },
  ),
];

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

/** The uuid-bearing entries of `part` appear in `whole` in the same order, maybe interleaved. */
function assertSubsequence(whole: SessionStoreEntry[], part: SessionStoreEntry[], what: string): void {
  const positions = part
    .filter((entry) => entry.uuid !== undefined)
    .map((entry) => whole.findIndex((candidate) => candidate.uuid === entry.uuid));
  const missing = positions.filter((p) => p < 0).length;
  assert.equal(missing, 0, `${what}: ${missing} of ${positions.length} entries are missing`);
  assertSame(
    positions,
    [...positions].sort((a, b) => a - b),
    `${what}: positions in the loaded transcript`,
  );
}
