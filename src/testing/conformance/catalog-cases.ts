/**
 * The contract every {@link Catalog} keeps, as conformance cases: run them with `runConformance`,
 * `runCatalogConformance` under vitest, or `berth conformance STORE_URL`.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isBerthError } from '../../errors.js';
import type {
  Catalog,
  CatalogEntry,
  CatalogKind,
  CatalogRef,
  NewCatalogEntry,
} from '../../stores/catalog.js';
import { assertMatches, assertRejectsWithCode, assertSame, firedSignal } from './assertions.js';
import type { ConformanceCase, ConformanceContext } from './runner.js';

/** The createdAt of {@link catalogEntry} unless given. */
const T = 1_700_000_000_000;

/** A new agent of tenant `acme` with the given id, created at {@link T}. */
export function catalogEntry(id: string, overrides: Partial<NewCatalogEntry> = {}): NewCatalogEntry {
  return { tenant: 'acme', kind: 'agent', id, createdAt: T, doc: { id, name: `agent ${id}` }, ...overrides };
}

/** An entry of tenant `acme`, an agent unless `kind` says otherwise. */
const acme = (id: string, kind: CatalogKind = 'agent'): CatalogRef => ({ tenant: 'acme', kind, id });

function catalogCase(
  name: string,
  run: (ctx: ConformanceContext<Catalog>) => Promise<void>,
): ConformanceCase<Catalog> {
  return { suite: 'Catalog', name, run };
}

/** Asserts that the store set `updatedAt` from its clock during the call that ran from `before` to `after`. */
function assertStamped(entry: CatalogEntry | undefined, before: number, after: number, what: string): void {
  const at = entry?.updatedAt ?? Number.NaN;
  assert.ok(at >= before && at <= after, `${what}: updatedAt ${at} is not between ${before} and ${after}`);
}

/** Every id of every page of `kind`, following the cursor; also the page sizes. */
async function listAll(
  catalog: Catalog,
  kind: CatalogKind,
  options: { limit: number; idPrefix?: string },
): Promise<{ ids: string[]; sizes: number[] }> {
  const ids: string[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await catalog.list('acme', kind, { ...options, cursor });
    ids.push(...page.data.map((entry) => entry.id));
    sizes.push(page.data.length);
    cursor = page.next ?? undefined;
    assert.ok(sizes.length <= 20, 'list keeps returning a next cursor');
  } while (cursor);
  return { ids, sizes };
}

/** The `Catalog` suite, in order. */
export const catalogConformanceCases: readonly ConformanceCase<Catalog>[] = [
  catalogCase(
    'create stores an entry at revision 1, and get returns it as created',
    async ({ instance: catalog }) => {
      const doc = {
        name: 'Ünïcode 🚀',
        quote: 'it\'s "quoted"',
        nul: 'a\u0000b',
        nested: { list: [1, 'two', null, { deep: true }], empty: {}, ratio: 0.125 },
      };
      const before = Date.now();
      const created = await catalog.create(catalogEntry('agent_1', { doc }));
      const after = Date.now();
      assertMatches(
        created,
        { tenant: 'acme', kind: 'agent', id: 'agent_1', revision: 1, createdAt: T, doc },
        'what create returned',
      );
      assertStamped(created, before, after, 'what create returned');
      assertSame(await catalog.get(acme('agent_1')), created, 'get after create');
      assert.equal(await catalog.get(acme('missing')), undefined, 'get of an id never created');
    },
  ),

  catalogCase(
    'create of an id the tenant has fails with resource_exists and keeps the first entry',
    async ({ instance: catalog }) => {
      const first = await catalog.create(catalogEntry('agent_1', { doc: { v: 'first' } }));
      await assertRejectsWithCode(
        catalog.create(catalogEntry('agent_1', { createdAt: T + 1, doc: { v: 'second' } })),
        'resource_exists',
        'create of an id the tenant has',
      );
      assertSame(await catalog.get(acme('agent_1')), first, 'the entry after a refused create');
      assertSame(
        (await catalog.list('acme', 'agent', { limit: 10 })).data,
        [first],
        'the list after a refused create',
      );
    },
  ),

  catalogCase(
    'keeps tenants apart: one id in two tenants is two entries, each listed only in its own',
    async ({ instance: catalog }) => {
      const ours = await catalog.create(catalogEntry('agent_1', { doc: { owner: 'acme' } }));
      const theirs = await catalog.create(
        catalogEntry('agent_1', { tenant: 'globex', doc: { owner: 'globex' } }),
      );
      const globex: CatalogRef = { tenant: 'globex', kind: 'agent', id: 'agent_1' };
      assertSame(await catalog.get(globex), theirs, "the other tenant's entry");
      await catalog.replace(globex, { owner: 'globex', v: 2 }, 1);
      assertSame(
        await catalog.get(acme('agent_1')),
        ours,
        "the first tenant's entry after the other's replace",
      );
      assertSame(
        (await catalog.list('acme', 'agent', { limit: 10 })).data,
        [ours],
        "the first tenant's list",
      );
      assertSame(
        (await catalog.list('globex', 'agent', { limit: 10 })).data.map((entry) => [
          entry.id,
          entry.revision,
        ]),
        [['agent_1', 2]],
        "the other tenant's list",
      );
      await catalog.delete(globex);
      assertSame(
        await catalog.get(acme('agent_1')),
        ours,
        "the first tenant's entry after the other's delete",
      );
      assertSame(
        await catalog.list('nobody', 'agent', { limit: 10 }),
        { data: [], next: null },
        'the list of a tenant without entries',
      );
    },
  ),

  catalogCase(
    'replace stores the whole doc at the next revision, keeps createdAt and moves updatedAt',
    async ({ instance: catalog }) => {
      const created = await catalog.create(catalogEntry('agent_1', { doc: { a: 1, b: 2 } }));
      // So that the store's clock has moved on, and updatedAt must differ.
      await sleep(5);
      const before = Date.now();
      const replaced = await catalog.replace(acme('agent_1'), { b: 3 }, 1);
      const after = Date.now();
      assertSame(
        replaced && { ...replaced, updatedAt: 0 },
        { ...created, revision: 2, doc: { b: 3 }, updatedAt: 0 },
        'what replace returned (the doc replaced, not merged)',
      );
      assertStamped(replaced, before, after, 'what replace returned');
      assert.ok(replaced!.updatedAt > created.updatedAt, 'updatedAt moved on');
      assertSame(await catalog.get(acme('agent_1')), replaced, 'get after replace');
      const third = await catalog.replace(acme('agent_1'), { c: 4 }, 2);
      assertMatches(third, { revision: 3, createdAt: T, doc: { c: 4 } }, 'a second replace');
      assertSame(await catalog.get(acme('agent_1')), third, 'get after the second replace');
    },
  ),

  catalogCase(
    'replace from a revision that is not the stored one fails with revision_conflict and changes nothing',
    async ({ instance: catalog }) => {
      await catalog.create(catalogEntry('agent_1', { doc: { v: 1 } }));
      const current = await catalog.replace(acme('agent_1'), { v: 2 }, 1);
      assertMatches(current, { revision: 2 }, 'the first replace');
      await assertRejectsWithCode(
        catalog.replace(acme('agent_1'), { v: 'stale' }, 1),
        'revision_conflict',
        'replace from a revision that has been replaced',
      );
      await assertRejectsWithCode(
        catalog.replace(acme('agent_1'), { v: 'ahead' }, 3),
        'revision_conflict',
        'replace from a revision that does not exist yet',
      );
      assertSame(await catalog.get(acme('agent_1')), current, 'the entry after the refused replaces');
    },
  ),

  catalogCase(
    'replace of an entry that does not exist returns undefined and creates nothing',
    async ({ instance: catalog }) => {
      assert.equal(await catalog.replace(acme('missing'), { v: 1 }, 1), undefined, 'replace of a missing id');
      assert.equal(await catalog.get(acme('missing')), undefined, 'get after replacing a missing id');
      await catalog.create(catalogEntry('agent_1'));
      await catalog.delete(acme('agent_1'));
      assert.equal(await catalog.replace(acme('agent_1'), { v: 1 }, 1), undefined, 'replace of a deleted id');
      assert.equal(await catalog.get(acme('agent_1')), undefined, 'get after replacing a deleted id');
      assertSame(
        await catalog.list('acme', 'agent', { limit: 10 }),
        { data: [], next: null },
        'the list after replacing missing ids',
      );
    },
  ),

  catalogCase(
    'of 8 replaces in flight together from one revision exactly one succeeds',
    async ({ instance: catalog }) => {
      await catalog.create(catalogEntry('agent_1', { doc: { writer: 'none' } }));
      const settled = await Promise.allSettled(
        Array.from({ length: 8 }, (_, writer) => catalog.replace(acme('agent_1'), { writer }, 1)),
      );
      const won = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      assert.equal(won.length, 1, `replaces that succeeded: ${won.length}`);
      for (const result of settled) {
        if (result.status === 'rejected') {
          assert.ok(
            isBerthError(result.reason, 'revision_conflict'),
            `a losing replace rejected with ${String(result.reason)}; expected a BerthError revision_conflict`,
          );
        }
      }
      assertMatches(won[0], { revision: 2 }, 'the replace that succeeded');
      assertSame(await catalog.get(acme('agent_1')), won[0], "the entry holds the winner's doc");
    },
  ),

  catalogCase(
    'lists newest first, ties by id, in pages of 10 through 25 entries without repeats or gaps',
    async ({ instance: catalog }) => {
      const created = new Map<string, CatalogEntry>();
      // Groups of three share a createdAt, so that ties are broken by id; made out of order.
      for (let n = 0; n < 25; n++) {
        const i = (n * 7) % 25;
        const id = `agent_${String(i).padStart(2, '0')}`;
        created.set(id, await catalog.create(catalogEntry(id, { createdAt: T + Math.floor(i / 3) })));
      }
      await catalog.create(catalogEntry('agent_99', { tenant: 'globex', createdAt: T + 5 }));
      await catalog.create(catalogEntry('env_1', { kind: 'environment', createdAt: T + 5 }));
      const expected = [...created.values()]
        .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .map((entry) => entry.id);

      const { ids, sizes } = await listAll(catalog, 'agent', { limit: 10 });
      assertSame(ids, expected, 'the ids over all pages of 10');
      assertSame(sizes, [10, 10, 5], 'the page sizes');
      const all = await catalog.list('acme', 'agent', { limit: 100 });
      assert.equal(all.next, null, 'next of a page that holds everything');
      assertSame(
        all.data,
        expected.map((id) => created.get(id)),
        'the entries in one page of 100',
      );
    },
  ),

  catalogCase('idPrefix keeps only the ids that start with it', async ({ instance: catalog }) => {
    const version = (id: string, createdAt: number) =>
      catalog.create(catalogEntry(id, { kind: 'agent_version', createdAt }));
    // Other agents' versions between these, and ids that start like them: `agent_1@` is not `agent_10@`.
    for (let v = 1; v <= 12; v++) {
      await version(`agent_1@${v}`, T + 2 * v);
      if (v <= 3) await version(`agent_10@${v}`, T + 2 * v + 1);
      if (v <= 2) await version(`agent_2@${v}`, T + 2 * v + 1);
    }
    await catalog.create(
      catalogEntry('agent_1@1', { tenant: 'globex', kind: 'agent_version', createdAt: T + 100 }),
    );
    await catalog.create(catalogEntry('agent_1@99', { kind: 'agent', createdAt: T + 100 }));

    const { ids, sizes } = await listAll(catalog, 'agent_version', { limit: 5, idPrefix: 'agent_1@' });
    assertSame(
      ids,
      Array.from({ length: 12 }, (_, i) => `agent_1@${12 - i}`),
      "agent_1's versions over pages of 5",
    );
    assertSame(sizes, [5, 5, 2], 'the page sizes');
    assertSame(
      (await catalog.list('acme', 'agent_version', { limit: 10, idPrefix: 'agent_10@' })).data.map(
        (e) => e.id,
      ),
      ['agent_10@3', 'agent_10@2', 'agent_10@1'],
      "agent_10's versions",
    );
    assertSame(
      await catalog.list('acme', 'agent_version', { limit: 10, idPrefix: 'agent_3@' }),
      { data: [], next: null },
      'the versions of an agent without any',
    );
    assertSame(
      (await catalog.list('acme', 'agent_version', { limit: 100, idPrefix: '' })).data.length,
      17,
      'the versions with an empty idPrefix',
    );
  }),

  catalogCase('keeps kinds apart: one id under two kinds is two entries', async ({ instance: catalog }) => {
    const kinds: CatalogKind[] = ['agent', 'agent_version', 'environment'];
    for (const kind of kinds) await catalog.create(catalogEntry('shared_id', { kind, doc: { kind } }));
    await catalog.replace(acme('shared_id', 'agent'), { kind: 'agent', v: 2 }, 1);
    await catalog.delete(acme('shared_id', 'environment'));
    assertMatches(
      await catalog.get(acme('shared_id', 'agent')),
      { revision: 2, doc: { kind: 'agent', v: 2 } },
      'the agent after its replace',
    );
    assertMatches(
      await catalog.get(acme('shared_id', 'agent_version')),
      { kind: 'agent_version', revision: 1, doc: { kind: 'agent_version' } },
      "the agent version after the agent's replace and the environment's delete",
    );
    assert.equal(await catalog.get(acme('shared_id', 'environment')), undefined, 'the deleted environment');
    for (const kind of kinds) {
      assertSame(
        (await catalog.list('acme', kind, { limit: 10 })).data.map((entry) => [entry.kind, entry.id]),
        kind === 'environment' ? [] : [[kind, 'shared_id']],
        `the list of ${kind}`,
      );
    }
  }),

  catalogCase(
    'delete removes the entry and frees its id; delete of a missing entry is a no-op',
    async ({ instance: catalog }) => {
      await catalog.create(catalogEntry('agent_1', { doc: { v: 'old' } }));
      await catalog.delete(acme('agent_1'));
      assert.equal(await catalog.get(acme('agent_1')), undefined, 'get after delete');
      assertSame((await catalog.list('acme', 'agent', { limit: 10 })).data, [], 'list after delete');
      await catalog.delete(acme('agent_1'));
      await catalog.delete(acme('never_created'));
      const again = await catalog.create(catalogEntry('agent_1', { createdAt: T + 9, doc: { v: 'new' } }));
      assertMatches(again, { revision: 1, createdAt: T + 9, doc: { v: 'new' } }, 'the id created again');
      assertSame(
        (await catalog.list('acme', 'agent', { limit: 10 })).data,
        [again],
        'list after creating again',
      );
    },
  ),

  catalogCase(
    'rejects a cursor it did not produce and a limit that is not a positive integer',
    async ({ instance: catalog }) => {
      await catalog.create(catalogEntry('a'));
      assert.equal((await catalog.list('acme', 'agent', { limit: 1 })).next, null, 'next of the only page');
      const forged = Buffer.from(`${T}:a`).toString('base64url');
      assertSame(
        (await catalog.list('acme', 'agent', { limit: 1, cursor: forged })).data,
        [],
        'a well-formed cursor past the last entry',
      );
      for (const cursor of [
        '',
        'not base64!',
        'a',
        Buffer.from('nope').toString('base64url'),
        `${forged}=`,
        Buffer.from(':a').toString('base64url'),
      ]) {
        await assertRejectsWithCode(
          catalog.list('acme', 'agent', { limit: 1, cursor }),
          'invalid_request',
          `list with cursor ${JSON.stringify(cursor)}`,
        );
      }
      for (const limit of [0, -1, 1.5, Number.NaN]) {
        await assertRejectsWithCode(
          catalog.list('acme', 'agent', { limit }),
          'invalid_request',
          `list with limit ${limit}`,
        );
      }
    },
  ),

  catalogCase(
    'a call whose signal has fired rejects with aborted and changes nothing',
    async ({ instance: catalog }) => {
      const before = await catalog.create(catalogEntry('agent_1', { doc: { v: 'before' } }));
      const signal = firedSignal();
      await assertRejectsWithCode(catalog.create(catalogEntry('agent_2'), { signal }), 'aborted', 'create');
      await assertRejectsWithCode(
        catalog.replace(acme('agent_1'), { v: 'after' }, 1, { signal }),
        'aborted',
        'replace',
      );
      await assertRejectsWithCode(catalog.delete(acme('agent_1'), { signal }), 'aborted', 'delete');
      await assertRejectsWithCode(catalog.get(acme('agent_1'), { signal }), 'aborted', 'get');
      await assertRejectsWithCode(catalog.list('acme', 'agent', { limit: 10, signal }), 'aborted', 'list');
      assertSame(await catalog.get(acme('agent_1')), before, 'the entry after the aborted calls');
      assert.equal(await catalog.get(acme('agent_2')), undefined, 'the entry an aborted create named');
    },
  ),
];
