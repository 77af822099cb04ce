/**
 * The contract every {@link SessionRegistry} keeps, as vitest cases. Run it from an adapter's tests with a
 * factory that returns a registry over fresh, isolated state.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isBerthError } from '../errors.js';
import { ZERO_USAGE } from '../session/events.js';
import type { SessionRecord, SessionRegistry } from '../stores/types.js';

export interface RegistryUnderTest {
  registry: SessionRegistry;
  cleanup?: () => Promise<void>;
}

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

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** A session of the default test tenant. */
const acme = (id: string) => ({ tenant: 'acme', id });

export function runRegistryConformance(name: string, factory: () => Promise<RegistryUnderTest>): void {
  describe(`${name}: SessionRegistry conformance`, () => {
    let registry: SessionRegistry;
    let cleanup: (() => Promise<void>) | undefined;
    beforeEach(async () => {
      ({ registry, cleanup } = await factory());
    });
    afterEach(async () => {
      vi.restoreAllMocks();
      await cleanup?.();
    });

    it('returns what create stored, JSON columns included', async () => {
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
      expect(await registry.get(acme('s1'))).toEqual(full);
      expect(await registry.get(acme('missing'))).toBeUndefined();
    });

    it("refuses an id the tenant already has, and keeps tenants' ids apart", async () => {
      await registry.create(record('s1', { title: 'first' }));
      const err = await rejection(registry.create(record('s1', { title: 'second' })));
      expect(isBerthError(err, 'session_exists')).toBe(true);
      expect((await registry.get(acme('s1')))!.title).toBe('first');
      await registry.create(record('s1', { tenant: 'other', title: 'theirs' }));
      expect((await registry.get({ tenant: 'other', id: 's1' }))!.title).toBe('theirs');
      await registry.delete({ tenant: 'other', id: 's1' });
      expect((await registry.get(acme('s1')))!.title).toBe('first');
    });

    it("lists a tenant's sessions newest first, ties by id, in pages that neither skip nor repeat", async () => {
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
      } while (cursor);
      expect(seen).toEqual(['e', 'd', 'c', 'b', 'a', 'f']);
      expect(pages).toEqual([2, 2, 2]);

      const all = await registry.list('acme', { limit: 100 });
      expect(all.next).toBeNull();
      expect(all.data.map((r) => r.id)).toEqual(seen);
      expect((await registry.list('globex', { limit: 10 })).data.map((r) => r.id)).toEqual(['other-tenant']);
      expect(await registry.list('nobody', { limit: 10 })).toEqual({ data: [], next: null });
    });

    it('keeps its place when records are added or removed between pages', async () => {
      for (const [i, id] of ['a', 'b', 'c', 'd'].entries())
        await registry.create(record(id, { createdAt: 1000 + i }));
      const first = await registry.list('acme', { limit: 2 });
      expect(first.data.map((r) => r.id)).toEqual(['d', 'c']);
      await registry.delete(acme('c'));
      await registry.create(record('newest', { createdAt: 5000 }));
      const second = await registry.list('acme', { limit: 2, cursor: first.next! });
      expect(second.data.map((r) => r.id)).toEqual(['b', 'a']);
      expect(second.next).toBeNull();
    });

    it('rejects a cursor it did not produce and a limit that is not a positive integer', async () => {
      await registry.create(record('a'));
      const valid = (await registry.list('acme', { limit: 1 })).next;
      expect(valid).toBeNull();
      const forged = Buffer.from('1700000000000:a').toString('base64url');
      expect((await registry.list('acme', { limit: 1, cursor: forged })).data).toEqual([]);
      for (const cursor of [
        '',
        'not base64!',
        'a',
        Buffer.from('nope').toString('base64url'),
        `${forged}=`,
        Buffer.from(':a').toString('base64url'),
      ]) {
        const err = await rejection(registry.list('acme', { limit: 1, cursor }));
        expect(isBerthError(err, 'invalid_request'), cursor).toBe(true);
      }
      for (const limit of [0, -1, 1.5, Number.NaN]) {
        expect(isBerthError(await rejection(registry.list('acme', { limit })), 'invalid_request')).toBe(true);
      }
    });

    it('update merges the patch, keeps identity fields and sets updatedAt to now', async () => {
      await registry.create(record('s1', { title: 'old', metadata: { a: '1' } }));
      vi.spyOn(Date, 'now').mockReturnValue(1_800_000_000_000);
      await registry.update(acme('s1'), {
        status: 'running',
        started: true,
        turns: 2,
        title: undefined,
        usage: { ...ZERO_USAGE, output_tokens: 5 },
        ...({ id: 'hijack', tenant: 'evil', createdAt: 1 } as object),
      });
      expect(await registry.get(acme('s1'))).toEqual(
        record('s1', {
          title: 'old',
          metadata: { a: '1' },
          status: 'running',
          started: true,
          turns: 2,
          usage: { ...ZERO_USAGE, output_tokens: 5 },
          updatedAt: 1_800_000_000_000,
        }),
      );
      expect(await registry.get(acme('hijack'))).toBeUndefined();
      await registry.update(acme('s1'), { title: null, metadata: { b: '2' } });
      expect(await registry.get(acme('s1'))).toMatchObject({
        title: null,
        metadata: { b: '2' },
        status: 'running',
      });
    });

    it('update and delete of an unknown id are no-ops', async () => {
      await registry.update(acme('missing'), { status: 'running' });
      await registry.delete(acme('missing'));
      expect(await registry.get(acme('missing'))).toBeUndefined();
    });

    it('delete removes the record and frees its id', async () => {
      await registry.create(record('s1'));
      await registry.delete(acme('s1'));
      expect(await registry.get(acme('s1'))).toBeUndefined();
      expect((await registry.list('acme', { limit: 10 })).data).toEqual([]);
      await registry.create(record('s1', { title: 'again' }));
      expect((await registry.get(acme('s1')))!.title).toBe('again');
    });
  });
}
