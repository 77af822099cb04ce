/**
 * The PostgreSQL stores against the real server on 127.0.0.1:5432 (user `postgres`, trust auth, database
 * `test`). Every factory call works in a fresh, uniquely named schema that its cleanup drops, so this file
 * can run beside any other. An unreachable server fails the file; it never skips.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { describeError, isBerthError } from '../../src/errors.js';
import {
  migratePostgresSchema,
  openPostgresStores,
  POSTGRES_SCHEMA_VERSION,
  PostgresCatalog,
  PostgresEventLog,
  PostgresRegistry,
  PostgresSessionStore,
} from '../../src/stores/postgres/index.js';
import type { ManagedSessionFields } from '../../src/stores/types.js';
import { catalogEntry, runCatalogConformance } from '../../src/testing/catalog-conformance.js';
import { runEventLogConformance, event } from '../../src/testing/event-log-conformance.js';
import { record, runRegistryConformance } from '../../src/testing/registry-conformance.js';
import { runSessionStoreConformance } from '../../src/testing/session-store-conformance.js';

const TARGET = '127.0.0.1:5432';
const URL = `postgres://postgres@${TARGET}/test`;
/** Every schema this file makes starts so, which is how the last cleanup finds leftovers. */
const SCHEMA_PREFIX = 'berth_pgtest_';

function newPool(max: number, applicationName = 'berth-test'): pg.Pool {
  const pool = new pg.Pool({
    connectionString: URL,
    max,
    connectionTimeoutMillis: 10_000,
    application_name: applicationName,
  });
  // An idle connection the server ends (some tests end them) must not take the test process down.
  pool.on('error', () => {});
  return pool;
}

const admin = newPool(3);
try {
  await admin.query('SELECT 1');
} catch (err) {
  await admin.end();
  throw new Error(
    `PostgreSQL is not reachable at ${TARGET}: ${describeError(err) || String(err)} — start it with ` +
      '`pg_ctlcluster 15 main start` (or `service postgresql start`); the tests need user postgres with trust ' +
      'auth on 127.0.0.1 and a database named test (`createdb -h 127.0.0.1 -U postgres test`)',
    { cause: err },
  );
}

const made = new Set<string>();

function newSchemaName(): string {
  const schema = `${SCHEMA_PREFIX}${randomBytes(6).toString('hex')}`;
  made.add(schema);
  return schema;
}

async function dropSchema(schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  made.delete(schema);
}

/** `count` pools on one fresh schema (created on first use by the stores), and a cleanup that drops it. */
function freshState(count: number): { schema: string; pools: pg.Pool[]; cleanup: () => Promise<void> } {
  const schema = newSchemaName();
  const pools = Array.from({ length: count }, () => newPool(4));
  return {
    schema,
    pools,
    cleanup: async () => {
      await Promise.all(pools.map((pool) => pool.end()));
      await dropSchema(schema);
    },
  };
}

afterAll(async () => {
  // Whatever a failed cleanup left, and a check that nothing else did.
  for (const schema of [...made]) await dropSchema(schema);
  const left = await admin.query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`,
    [SCHEMA_PREFIX],
  );
  await admin.end();
  expect(left.rows.map((row) => row.nspname)).toEqual([]);
});

runSessionStoreConformance(
  'PostgresSessionStore',
  () => {
    const { schema, pools, cleanup } = freshState(1);
    return Promise.resolve({ store: new PostgresSessionStore({ pool: pools[0]!, schema }), cleanup });
  },
  {
    // Berth's own adapter has every optional method: one it lost fails its cases instead of skipping them.
    requireAll: true,
    // Separate pools on one schema, as separate Berth processes would have. Each store migrates the fresh
    // schema on its own pool, so every case also races three migrations.
    sharedFactory: () => {
      const { schema, pools, cleanup } = freshState(3);
      return Promise.resolve({
        stores: pools.map((pool) => new PostgresSessionStore({ pool, schema })),
        cleanup,
      });
    },
  },
);

runRegistryConformance('PostgresRegistry', () => {
  const { schema, pools, cleanup } = freshState(1);
  return Promise.resolve({ registry: new PostgresRegistry({ pool: pools[0]!, schema }), cleanup });
});

runEventLogConformance('PostgresEventLog', () => {
  const { schema, pools, cleanup } = freshState(1);
  return Promise.resolve({ log: new PostgresEventLog({ pool: pools[0]!, schema }), cleanup });
});

runCatalogConformance('PostgresCatalog', () => {
  const { schema, pools, cleanup } = freshState(1);
  return Promise.resolve({ catalog: new PostgresCatalog({ pool: pools[0]!, schema }), cleanup });
});

const entry = (n: number, extra: Record<string, unknown> = {}): SessionStoreEntry => ({
  type: n % 2 ? 'assistant' : 'user',
  uuid: `uuid-${n}`,
  timestamp: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
  cwd: '/workspace',
  message: { role: n % 2 ? 'assistant' : 'user', content: `line ${n}` },
  ...extra,
});

function isCode(code: Parameters<typeof isBerthError>[1]) {
  return (err: unknown) => isBerthError(err, code);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('PostgreSQL stores', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  function state(count = 1) {
    const fresh = freshState(count);
    cleanups.push(fresh.cleanup);
    return fresh;
  }
  const key: SessionKey = { projectKey: 'project', sessionId: 'session-1' };

  describe('schema', () => {
    it('is created on first use and migrated once, even by several pools at the same moment', async () => {
      const { schema, pools } = state(4);
      await Promise.all(pools.map((pool) => migratePostgresSchema(pool, schema)));
      await Promise.all(pools.map((pool) => migratePostgresSchema(pool, schema)));
      const versions = await admin.query<{ version: number }>(
        `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
      );
      expect(versions.rows.map((row) => row.version)).toEqual(
        Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1),
      );
      const tables = await admin.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
        [schema],
      );
      expect(tables.rows.map((row) => row.table_name)).toEqual([
        'catalog',
        'events',
        'hosts',
        'leases',
        'schema_migrations',
        'sessions',
        'superseded',
        'transcript_entries',
        'transcript_keys',
      ]);
      // A store on a pool that has not migrated yet finds the schema ready and works.
      const store = new PostgresSessionStore({ pool: pools[0]!, schema });
      await store.append(key, [entry(1)]);
      expect(await store.load(key)).toEqual([entry(1)]);
    });

    it('adds the catalog to a schema written before it existed, keeping what the schema holds', async () => {
      const { schema, pools } = state(2);
      await new PostgresRegistry({ pool: pools[0]!, schema }).create(record('s1'));
      // A version-2 schema: the catalog's migration and the later ones undone by hand.
      await admin.query(`DROP TABLE "${schema}".catalog`);
      await admin.query(`ALTER TABLE "${schema}".sessions DROP COLUMN managed`);
      await admin.query(`DELETE FROM "${schema}".schema_migrations WHERE version > 2`);
      // Another pool, whose stores have not checked this schema yet.
      const catalog = new PostgresCatalog({ pool: pools[1]!, schema });
      await catalog.create(catalogEntry('agent_1'));
      expect(await catalog.get({ tenant: 'acme', kind: 'agent', id: 'agent_1' })).toMatchObject({
        revision: 1,
      });
      expect(
        await new PostgresRegistry({ pool: pools[1]!, schema }).get({ tenant: 'acme', id: 's1' }),
      ).toEqual(record('s1'));
      const versions = await admin.query<{ version: number }>(
        `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
      );
      expect(versions.rows.map((row) => row.version)).toEqual([1, 2, 3, 4]);
    });

    it('adds the managed column to a schema written before it existed, keeping its records', async () => {
      const { schema, pools } = state(2);
      await new PostgresRegistry({ pool: pools[0]!, schema }).create(record('s1', { title: 'old' }));
      // A version-3 schema: the managed column's migration undone by hand.
      await admin.query(`ALTER TABLE "${schema}".sessions DROP COLUMN managed`);
      await admin.query(`DELETE FROM "${schema}".schema_migrations WHERE version = 4`);
      // Another pool, whose stores have not checked this schema yet.
      const registry = new PostgresRegistry({ pool: pools[1]!, schema });
      const ref = { tenant: 'acme', id: 's1' };
      const read = await registry.get(ref);
      expect(read).toEqual(record('s1', { title: 'old' }));
      expect(read).not.toHaveProperty('managed');
      expect((await registry.list('acme', { limit: 10 })).data).toEqual([read]);
      const versions = await admin.query<{ version: number }>(
        `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
      );
      expect(versions.rows.map((row) => row.version)).toEqual([1, 2, 3, 4]);
      const managed: ManagedSessionFields = {
        agent: { id: 'agent_1', version: 1 },
        environment_id: 'env_1',
        archived_at: null,
        budget: null,
      };
      await registry.update(ref, { managed });
      expect((await registry.get(ref))?.managed).toEqual(managed);
    });

    it('refuses a schema written by a newer Berth', async () => {
      const { schema, pools } = state(2);
      await migratePostgresSchema(pools[0]!, schema);
      await admin.query(`INSERT INTO "${schema}".schema_migrations (version) VALUES ($1)`, [
        POSTGRES_SCHEMA_VERSION + 1,
      ]);
      const err = await rejection(
        new PostgresRegistry({ pool: pools[1]!, schema }).get({ tenant: 'a', id: 'b' }),
      );
      expect(isBerthError(err, 'store_unavailable')).toBe(true);
      expect(String(err)).toMatch(/newer/);
    });

    it('refuses a schema name that is not a plain identifier', () => {
      const pool = newPool(1);
      cleanups.push(() => pool.end());
      for (const schema of ['', 'a-b', 'a"b', '1abc', 'x'.repeat(64), 'berth; DROP TABLE x']) {
        let error: unknown;
        try {
          new PostgresSessionStore({ pool, schema });
        } catch (err) {
          error = err;
        }
        expect(isBerthError(error, 'invalid_config'), schema).toBe(true);
      }
    });
  });

  describe('PostgresSessionStore', () => {
    it('enforces uuid uniqueness in the schema, not only in the store', async () => {
      const { schema, pools } = state();
      const store = new PostgresSessionStore({ pool: pools[0]!, schema });
      await store.append(key, [entry(1)]);
      const { rows } = await admin.query<{ id: string }>(`SELECT id FROM "${schema}".transcript_keys`);
      const insert = `INSERT INTO "${schema}".transcript_entries (key_id, uuid, entry) VALUES ($1, $2, $3)`;
      const err = await rejection(admin.query(insert, [rows[0]!.id, 'uuid-1', '{}']));
      expect((err as { code?: string }).code).toBe('23505');
      await admin.query(insert, [rows[0]!.id, null, '{"type":"a"}']);
      await admin.query(insert, [rows[0]!.id, null, '{"type":"a"}']);
      expect(await store.load(key)).toEqual([entry(1), { type: 'a' }, { type: 'a' }]);
    });

    it('loads a transcript in one query', async () => {
      const { schema, pools } = state();
      const pool = pools[0]!;
      const store = new PostgresSessionStore({ pool, schema });
      await store.append(key, [entry(1), entry(2)]);
      const query = vi.spyOn(pool, 'query');
      expect(await store.load(key)).toEqual([entry(1), entry(2)]);
      expect(query).toHaveBeenCalledTimes(1);
    });

    it('stamps strictly increasing mtimes per session, even within one millisecond', async () => {
      const { schema, pools } = state();
      const store = new PostgresSessionStore({ pool: pools[0]!, schema });
      vi.spyOn(Date, 'now').mockReturnValue(1_750_000_000_000);
      const seen: number[] = [];
      for (let i = 0; i < 10; i++) {
        await store.append(key, [entry(i)]);
        const [listed] = await store.listSessions(key.projectKey);
        const [summary] = await store.listSessionSummaries(key.projectKey);
        expect(summary!.mtime).toBe(listed!.mtime);
        seen.push(listed!.mtime);
      }
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => 1_750_000_000_000 + i));
      // A replay that stores nothing must not make the session look newer.
      await store.append(key, [entry(3)]);
      expect((await store.listSessions(key.projectKey))[0]!.mtime).toBe(seen.at(-1));
    });

    it('keeps the summary right when writers take turns, replay, and delete under each other', async () => {
      const { schema, pools } = state(2);
      const [a, b] = pools.map((pool) => new PostgresSessionStore({ pool, schema })) as [
        PostgresSessionStore,
        PostgresSessionStore,
      ];
      const expectConsistent = async () => {
        const loaded = (await a.load(key)) ?? [];
        const summaries = await b.listSessionSummaries(key.projectKey);
        expect(summaries.map((s) => s.data)).toEqual(
          loaded.length ? [foldSessionSummary(undefined, key, loaded).data] : [],
        );
        return loaded;
      };
      await a.append(key, [entry(0), { type: 'custom-title', customTitle: 'first' }]);
      await a.append(key, [entry(1)]); // a now remembers the summary it wrote
      await b.append(key, [entry(2), { type: 'custom-title', customTitle: 'second' }]);
      await a.append(key, [entry(3)]); // a's memory is stale: b wrote in between
      await expectConsistent();
      // A batch mixing stored and new entries stores and folds only the new ones.
      await a.append(key, [entry(3), entry(4), entry(1), entry(5)]);
      expect((await expectConsistent()).map((e) => e.uuid ?? e.type)).toEqual([
        'uuid-0',
        'custom-title',
        'uuid-1',
        'uuid-2',
        'custom-title',
        'uuid-3',
        'uuid-4',
        'uuid-5',
      ]);
      // b deletes the session; a, remembering the old one, must start the new one from scratch.
      await b.delete(key);
      await a.append(key, [entry(6, { cwd: '/elsewhere' })]);
      expect(await expectConsistent()).toEqual([entry(6, { cwd: '/elsewhere' })]);
      expect((await b.listSessionSummaries(key.projectKey))[0]!.data).toMatchObject({ cwd: '/elsewhere' });
    });

    it('maps a connection killed mid-append to store_unavailable, then recovers', async () => {
      const marker = `berth-test-${randomBytes(4).toString('hex')}`;
      const { schema } = state(0);
      const pool = newPool(2, marker);
      cleanups.push(() => pool.end());
      const store = new PostgresSessionStore({ pool, schema });
      await store.append(key, [entry(1)]);
      await store.append(key, [entry(2)]);
      const locker = await admin.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(`SELECT 1 FROM "${schema}".transcript_keys FOR UPDATE`);
        const pending = rejection(store.append(key, [entry(3)]));
        await expect
          .poll(
            async () =>
              (
                await admin.query<{ n: number }>(
                  `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
                  [marker],
                )
              ).rows[0]!.n,
            { timeout: 10_000 },
          )
          .toBe(1);
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
          [marker],
        );
        const err = await pending;
        expect(isBerthError(err, 'store_unavailable')).toBe(true);
        expect(String(err)).toMatch(/postgres append failed/);
      } finally {
        await locker.query('ROLLBACK');
        locker.release();
      }
      await store.append(key, [entry(3)]);
      expect(await store.load(key)).toEqual([entry(1), entry(2), entry(3)]);
    });
  });

  describe('PostgresCatalog', () => {
    it('lets exactly one of many replaces from one revision through, across pools', async () => {
      const { schema, pools } = state(3);
      const catalogs = pools.map((pool) => new PostgresCatalog({ pool, schema }));
      const ref = { tenant: 'acme', kind: 'agent', id: 'agent_1' } as const;
      await catalogs[0]!.create(catalogEntry('agent_1'));
      const settled = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => catalogs[i % 3]!.replace(ref, { writer: i }, 1)),
      );
      const won = settled.filter((result) => result.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const result of settled) {
        if (result.status === 'rejected') expect(isCode('revision_conflict')(result.reason)).toBe(true);
      }
      expect(await catalogs[2]!.get(ref)).toEqual((won[0] as PromiseFulfilledResult<unknown>).value);
    });
  });

  describe('failures', () => {
    it('rejects every call with store_unavailable on an ended pool, never throwing synchronously', async () => {
      const { schema } = state(0);
      const pool = newPool(1);
      await pool.end();
      const store = new PostgresSessionStore({ pool, schema });
      const registry = new PostgresRegistry({ pool, schema });
      const log = new PostgresEventLog({ pool, schema });
      const catalog = new PostgresCatalog({ pool, schema });
      const ref = { tenant: 'acme', id: 's1' };
      const agent = { tenant: 'acme', kind: 'agent', id: 'agent_1' } as const;
      const calls = [
        () => store.append(key, [entry(1)]),
        () => store.append({ ...key, subpath: 'subagents/a' }, [entry(1)]),
        () => store.load(key),
        () => store.listSessions(key.projectKey),
        () => store.listSessionSummaries(key.projectKey),
        () => store.delete(key),
        () => store.listSubkeys(key),
        () => registry.create(record('s1')),
        () => registry.get(ref),
        () => registry.list('acme', { limit: 5 }),
        () => registry.update(ref, { status: 'running' }),
        () => registry.delete(ref),
        () => log.append('s1', [event(1)]),
        () => log.list('s1', { after: 0, limit: 5 }),
        () => log.lastSeq('s1'),
        () => log.deleteSession('s1'),
        () => catalog.create(catalogEntry('agent_1')),
        () => catalog.get(agent),
        () => catalog.replace(agent, {}, 1),
        () => catalog.list('acme', 'agent', { limit: 5 }),
        () => catalog.delete(agent),
      ];
      for (const call of calls) {
        let promise: Promise<unknown> | undefined;
        expect(() => (promise = call())).not.toThrow();
        await expect(promise).rejects.toSatisfy(isCode('store_unavailable'));
      }
    });

    it('rejects with store_unavailable when the server cannot be reached', async () => {
      const port = await closedPort();
      const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/test`, max: 1 });
      pool.on('error', () => {});
      cleanups.push(() => pool.end());
      const store = new PostgresSessionStore({ pool, schema: 'berth' });
      const err = await rejection(store.load(key));
      expect(isBerthError(err, 'store_unavailable')).toBe(true);
      expect(String(err)).toMatch(/ECONNREFUSED/);
    });

    it('refuses text PostgreSQL cannot hold with invalid_request', async () => {
      const { schema, pools } = state();
      const registry = new PostgresRegistry({ pool: pools[0]!, schema });
      await expect(registry.create(record('s1', { title: 'nul \u0000 inside' }))).rejects.toSatisfy(
        isCode('invalid_request'),
      );
      // Inside JSON it is an escape, which json columns keep.
      const metadata = { note: 'nul \u0000 inside' };
      await registry.create(record('s2', { metadata }));
      expect((await registry.get({ tenant: 'acme', id: 's2' }))!.metadata).toEqual(metadata);
    });
  });

  describe('openPostgresStores', () => {
    it('opens shared stores in the named schema, and close is idempotent', async () => {
      const schema = newSchemaName();
      cleanups.push(() => dropSchema(schema));
      const stores = await openPostgresStores(`${URL}?schema=${schema}`);
      cleanups.push(() => stores.close());
      expect(stores.shared).toBe(true);
      expect(stores.schema).toBe(schema);
      // Created up front, before any write.
      const found = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(found.rowCount).toBe(1);

      await stores.transcriptStore.append(key, [entry(1)]);
      expect(await stores.transcriptStore.load(key)).toEqual([entry(1)]);
      await stores.registry.create(record('s1'));
      expect(await stores.registry.get({ tenant: 'acme', id: 's1' })).toEqual(record('s1'));
      await stores.eventLog.append('acme/s1', [event(1)]);
      expect(await stores.eventLog.lastSeq('acme/s1')).toBe(1);
      await stores.catalog.create(catalogEntry('agent_1'));
      expect(await stores.catalog.get({ tenant: 'acme', kind: 'agent', id: 'agent_1' })).toMatchObject({
        revision: 1,
      });

      const first = stores.close();
      expect(stores.close()).toBe(first);
      await first;
      await expect(stores.registry.get({ tenant: 'acme', id: 's1' })).rejects.toSatisfy(
        isCode('store_unavailable'),
      );
    });

    it('reports an unreachable server as invalid_config naming host:port and the cause, not the password', async () => {
      const port = await closedPort();
      const err = await rejection(
        openPostgresStores(`postgres://postgres:hunter2secret@127.0.0.1:${port}/test`),
      );
      expect(isBerthError(err, 'invalid_config')).toBe(true);
      const message = (err as Error).message;
      expect(message).toContain(`127.0.0.1:${port}`);
      expect(message).toMatch(/ECONNREFUSED/);
      expect(message).not.toContain('hunter2secret');
      expect(JSON.stringify(err)).not.toContain('hunter2secret');
    });

    it('reports refused credentials as invalid_config', async () => {
      const err = await rejection(openPostgresStores(`postgres://no_such_role:pw@${TARGET}/test`));
      expect(isBerthError(err, 'invalid_config')).toBe(true);
      expect((err as Error).message).toContain(TARGET);
      expect((err as Error).message).toMatch(/no_such_role/);
    });

    it('reports malformed URLs and bad schema names as invalid_config without the password', async () => {
      for (const [url, pattern] of [
        ['postgres://user:hunter2secret@127.0.0.1:notaport/db', /not a valid URL/],
        ['postgres://user:hunter2secret@127.0.0.1:5432/test?schema=bad-name', /schema name/],
        ['postgres://user:hunter2secret@127.0.0.1:5432/test?schema=x%22y', /schema name/],
        ['mysql://user:hunter2secret@127.0.0.1:3306/db', /not a PostgreSQL URL/],
        ['postgres://user@127.0.0.1:5432/test?password=hunter2secret&schema=a.b', /schema name/],
      ] as const) {
        const err = await rejection(openPostgresStores(url));
        expect(isBerthError(err, 'invalid_config'), url).toBe(true);
        expect((err as Error).message, url).toMatch(pattern);
        expect((err as Error).message, url).not.toContain('hunter2secret');
      }
    });
  });
});

/** A local port that nothing listens on (just released by the OS). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}
