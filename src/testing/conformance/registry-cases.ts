/**
 * The contract every {@link SessionRegistry} keeps, as conformance cases: run them with `runConformance`,
 * `runRegistryConformance` under vitest, or `berth conformance STORE_URL`.
 */
import assert from 'node:assert/strict';
import { ZERO_USAGE } from '../../session/events.js';
import type { ManagedSessionFields, SessionRecord, SessionRegistry } from '../../stores/types.js';
import { assertMatches, assertRejectsWithCode, assertSame, firedSignal } from './assertions.js';
import type { ConformanceCase, ConformanceContext } from './runner.js';

/** A session record of tenant `acme` with the given id. */
export function record(id: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    tenant: 'acme',
    title: null,
    metadata: {},
    pattern: 'long-running',
    agent: {},
    status: 'idle',
    sdkSessionId: `sdk-${id}`,
    started: false,
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
    usage: { ...ZERO_USAGE },
    turns: 0,
    ...overrides,
  };
}

/** A session of the default test tenant. */
const acme = (id: string) => ({ tenant: 'acme', id });

function registryCase(
  name: string,
  run: (ctx: ConformanceContext<SessionRegistry>) => Promise<void>,
): ConformanceCase<SessionRegistry> {
  return { suite: 'SessionRegistry', name, run };
}

/** `work` with `Date.now` returning `ms`; the real clock is back when it settles. */
async function withClockAt(ms: number, work: () => Promise<void>): Promise<void> {
  const realNow = Date.now;
  Date.now = () => ms;
  try {
    await work();
  } finally {
    Date.now = realNow;
  }
}

/** The `SessionRegistry` suite, in order. */
export const registryConformanceCases: readonly ConformanceCase<SessionRegistry>[] = [
  registryCase('returns what create stored, JSON columns included', async ({ instance: registry }) => {
    const full = record('s1', {
      title: 'Ünïcode title 🚀',
      metadata: { team: 'payments', note: 'it\'s "quoted"' },
      pattern: 'hybrid',
      agent: {
        model: 'claude-sonnet-4-5',
        system_prompt: 'Be brief.',
        allowed_tools: ['Bash', 'Read'],
        disallowed_tools: ['WebFetch'],
        permission_mode: 'acceptEdits',
        max_turns: 7,
      },
      status: 'requires_action',
      started: true,
      usage: {
        input_tokens: 10,
        output_tokens: 20,
        cache_creation_input_tokens: 3,
        cache_read_input_tokens: 4,
        cost_usd: 0.0125,
      },
      turns: 3,
    });
    await registry.create(full);
    assertSame(await registry.get(acme('s1')), full, 'get after create');
    assert.equal(await registry.get(acme('missing')), undefined, 'get of an id never created');
  }),

  registryCase(
    "refuses an id the tenant already has, and keeps tenants' ids apart",
    async ({ instance: registry }) => {
      await registry.create(record('s1', { title: 'first' }));
      await assertRejectsWithCode(
        registry.create(record('s1', { title: 'second' })),
        'session_exists',
        'create of an id the tenant has',
      );
      assert.equal((await registry.get(acme('s1')))?.title, 'first', 'the title after a refused create');
      await registry.create(record('s1', { tenant: 'other', title: 'theirs' }));
      assert.equal(
        (await registry.get({ tenant: 'other', id: 's1' }))?.title,
        'theirs',
        "another tenant's record with the same id",
      );
      await registry.delete({ tenant: 'other', id: 's1' });
      assert.equal(
        (await registry.get(acme('s1')))?.title,
        'first',
        "the first tenant's record after the other's is deleted",
      );
    },
  ),

  registryCase(
    "lists a tenant's sessions newest first, ties by id, in pages that neither skip nor repeat",
    async ({ instance: registry }) => {
      const t = 1_700_000_000_000;
      const records = [
        record('a', { createdAt: t }),
        record('b', { createdAt: t + 5 }),
        record('c', { createdAt: t + 5 }),
        record('d', { createdAt: t + 5 }),
        record('e', { createdAt: t + 9 }),
        record('f', { createdAt: t - 1 }),
        record('other-tenant', { tenant: 'globex', createdAt: t + 7 }),
      ];
      for (const r of records) await registry.create(r);

      const seen: string[] = [];
      const pages: number[] = [];
      let cursor: string | undefined;
      do {
        const page = await registry.list('acme', { limit: 2, cursor });
        seen.push(...page.data.map((r) => r.id));
        pages.push(page.data.length);
        cursor = page.next ?? undefined;
        assert.ok(pages.length <= 10, 'list keeps returning a next cursor');
      } while (cursor);
      assertSame(seen, ['e', 'd', 'c', 'b', 'a', 'f'], 'the ids over all pages of 2');
      assertSame(pages, [2, 2, 2], 'the page sizes');

      const all = await registry.list('acme', { limit: 100 });
      assert.equal(all.next, null, 'next of a page that holds everything');
      assertSame(
        all.data.map((r) => r.id),
        seen,
        'the ids in one page of 100',
      );
      assertSame(
        (await registry.list('globex', { limit: 10 })).data.map((r) => r.id),
        ['other-tenant'],
        "another tenant's list",
      );
      assertSame(
        await registry.list('nobody', { limit: 10 }),
        { data: [], next: null },
        'the list of a tenant without sessions',
      );
    },
  ),

  registryCase(
    'keeps its place when records are added or removed between pages',
    async ({ instance: registry }) => {
      for (const [i, id] of ['a', 'b', 'c', 'd'].entries())
        await registry.create(record(id, { createdAt: 1000 + i }));
      const first = await registry.list('acme', { limit: 2 });
      assertSame(
        first.data.map((r) => r.id),
        ['d', 'c'],
        'the first page',
      );
      assert.ok(first.next, 'the first page has a next cursor');
      await registry.delete(acme('c'));
      await registry.create(record('newest', { createdAt: 5000 }));
      const second = await registry.list('acme', { limit: 2, cursor: first.next });
      assertSame(
        second.data.map((r) => r.id),
        ['b', 'a'],
        'the second page, after deleting c and creating a newer record',
      );
      assert.equal(second.next, null, 'next of the last page');
    },
  ),

  registryCase(
    'rejects a cursor it did not produce and a limit that is not a positive integer',
    async ({ instance: registry }) => {
      await registry.create(record('a'));
      const valid = (await registry.list('acme', { limit: 1 })).next;
      assert.equal(valid, null, 'next of a page that holds everything');
      const forged = Buffer.from('1700000000000:a').toString('base64url');
      assertSame(
        (await registry.list('acme', { limit: 1, cursor: forged })).data,
        [],
        'a well-formed cursor past the last record',
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
          registry.list('acme', { limit: 1, cursor }),
          'invalid_request',
          `list with cursor ${JSON.stringify(cursor)}`,
        );
      }
      for (const limit of [0, -1, 1.5, Number.NaN]) {
        await assertRejectsWithCode(
          registry.list('acme', { limit }),
          'invalid_request',
          `list with limit ${limit}`,
        );
      }
    },
  ),

  registryCase(
    'update merges the patch, keeps identity fields and sets updatedAt to now',
    async ({ instance: registry }) => {
      await registry.create(record('s1', { title: 'old', metadata: { a: '1' } }));
      await withClockAt(1_800_000_000_000, async () => {
        await registry.update(acme('s1'), {
          status: 'running',
          started: true,
          turns: 2,
          title: undefined,
          usage: { ...ZERO_USAGE, output_tokens: 5 },
          ...({ id: 'hijack', tenant: 'evil', createdAt: 1 } as object),
        });
        assertSame(
          await registry.get(acme('s1')),
          record('s1', {
            title: 'old',
            metadata: { a: '1' },
            status: 'running',
            started: true,
            turns: 2,
            usage: { ...ZERO_USAGE, output_tokens: 5 },
            updatedAt: 1_800_000_000_000,
          }),
          'the record after an update (title undefined keeps it; id, tenant and createdAt stay)',
        );
        assert.equal(
          await registry.get(acme('hijack')),
          undefined,
          'a record under the id the patch tried to set',
        );
        await registry.update(acme('s1'), { title: null, metadata: { b: '2' } });
        assertMatches(
          await registry.get(acme('s1')),
          { title: null, metadata: { b: '2' }, status: 'running' },
          'the record after a second update',
        );
      });
    },
  ),

  registryCase(
    'stores the Managed Agents fields whole: update replaces them, a patch without them keeps them',
    async ({ instance: registry }) => {
      const managed: ManagedSessionFields = {
        agent: { id: 'agent_011', version: 3 },
        environment_id: 'env_011',
        archived_at: null,
        budget: { max_list_cost_cents: 2500 },
        overrides: { model: 'claude-sonnet-4-5', system: 'Be brief.', tools: [{ type: 'bash' }] },
      };
      const withFields = record('m1', { managed });
      await registry.create(withFields);
      assertSame(await registry.get(acme('m1')), withFields, 'get of a record with managed fields');
      assertSame(
        (await registry.list('acme', { limit: 10 })).data,
        [withFields],
        'list of a record with managed fields',
      );

      const replaced: ManagedSessionFields = {
        agent: null,
        environment_id: 'env_022',
        archived_at: 1_800_000_000_000,
        budget: null,
      };
      await registry.update(acme('m1'), { managed: replaced });
      const afterReplace = await registry.get(acme('m1'));
      assertSame(afterReplace?.managed, replaced, 'managed after an update that sets it (no field kept)');
      await registry.update(acme('m1'), { status: 'running' });
      const afterOther = await registry.get(acme('m1'));
      assert.equal(afterOther?.status, 'running', 'status after an update without managed');
      assertSame(afterOther.managed, replaced, 'managed after an update without it');

      await registry.create(record('plain', { createdAt: 1_600_000_000_000 }));
      await registry.update(acme('plain'), { turns: 1 });
      const plain = await registry.get(acme('plain'));
      assert.ok(plain, 'get of a record without managed fields');
      assert.equal(plain.managed, undefined, 'managed of a record created without it');
      const listed = (await registry.list('acme', { limit: 10 })).data;
      assertSame(
        listed.map((r) => r.id),
        ['m1', 'plain'],
        'the ids listed',
      );
      assert.equal(listed[1]?.managed, undefined, 'managed of a listed record created without it');
    },
  ),

  registryCase('update and delete of an unknown id are no-ops', async ({ instance: registry }) => {
    await registry.update(acme('missing'), { status: 'running' });
    await registry.delete(acme('missing'));
    assert.equal(
      await registry.get(acme('missing')),
      undefined,
      'get after update and delete of an unknown id',
    );
  }),

  registryCase('delete removes the record and frees its id', async ({ instance: registry }) => {
    await registry.create(record('s1'));
    await registry.delete(acme('s1'));
    assert.equal(await registry.get(acme('s1')), undefined, 'get after delete');
    assertSame((await registry.list('acme', { limit: 10 })).data, [], 'list after delete');
    await registry.create(record('s1', { title: 'again' }));
    assert.equal((await registry.get(acme('s1')))?.title, 'again', 'the title of the id created again');
  }),

  registryCase(
    'a call whose signal has fired rejects with aborted and changes nothing',
    async ({ instance: registry }) => {
      await registry.create(record('s1', { title: 'before' }));
      const signal = firedSignal();
      await assertRejectsWithCode(registry.create(record('s2'), { signal }), 'aborted', 'create');
      await assertRejectsWithCode(
        registry.update(acme('s1'), { title: 'after' }, { signal }),
        'aborted',
        'update',
      );
      await assertRejectsWithCode(registry.delete(acme('s1'), { signal }), 'aborted', 'delete');
      await assertRejectsWithCode(registry.get(acme('s1'), { signal }), 'aborted', 'get');
      await assertRejectsWithCode(registry.list('acme', { limit: 10, signal }), 'aborted', 'list');
      assertMatches(
        await registry.get(acme('s1')),
        { title: 'before' },
        'the record after the aborted calls',
      );
      assert.equal(await registry.get(acme('s2')), undefined, 'the record an aborted create named');
    },
  ),
];
