/**
 * Coordination on PostgreSQL against the real server on 127.0.0.1:5432 (user `postgres`, trust auth,
 * database `test`): the shared conformance suite, on the stores `openStores` returns (so through the
 * deadline wrappers, which must pass fences on) and on the bare adapters, plus what only PostgreSQL shows:
 * the lock that makes a fenced write and a takeover exclude each other, and the migration of a version 1
 * schema. Every case works in a fresh, uniquely named schema that its cleanup drops; the last check is that
 * none is left.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { describeError, isBerthError } from '../../src/errors.js';
import { openStores } from '../../src/stores/open-stores.js';
import { migratePostgresSchema, openPostgresStores } from '../../src/stores/postgres/index.js';
import type { Stores } from '../../src/stores/types.js';
import { event } from '../../src/testing/conformance/event-log-cases.js';
import { runCoordinationConformance } from '../../src/testing/coordination-conformance.js';

const URL = 'postgres://postgres@127.0.0.1:5432/test';
/** Every schema this file makes starts so, which is how the last check finds leftovers. */
const SCHEMA_PREFIX = 'berth_coordtest_';

const admin = new pg.Pool({ connectionString: URL, max: 3 });
admin.on('error', () => {});
try {
  await admin.query('SELECT 1');
} catch (err) {
  await admin.end();
  throw new Error(
    `PostgreSQL is not reachable at 127.0.0.1:5432: ${describeError(err)} — start it with ` +
      '`pg_ctlcluster 15 main start`; the tests need user postgres with trust auth and a database named test',
    { cause: err },
  );
}

const made = new Set<string>();

function newSchema(): string {
  const schema = `${SCHEMA_PREFIX}${randomBytes(6).toString('hex')}`;
  made.add(schema);
  return schema;
}

async function dropSchema(schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  made.delete(schema);
}

/** `count` bundles on one fresh schema, each with its own pool, as separate hosts have. */
async function bundles<S extends Stores>(count: number, open: (url: string) => Promise<S>) {
  const schema = newSchema();
  const stores: S[] = [];
  for (let i = 0; i < count; i++) stores.push(await open(`${URL}?schema=${schema}`));
  return {
    schema,
    stores,
    cleanup: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await dropSchema(schema);
    },
  };
}

afterAll(async () => {
  for (const schema of [...made]) await dropSchema(schema);
  const left = await admin.query<{ nspname: string }>(
    'SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)',
    [SCHEMA_PREFIX],
  );
  await admin.end();
  expect(left.rows.map((row) => row.nspname)).toEqual([]);
});

runCoordinationConformance(
  'PostgreSQL (openStores)',
  async () => {
    const { stores, cleanup } = await bundles(1, (url) => openStores(url));
    return { stores: stores[0]!, cleanup };
  },
  { sharedFactory: () => bundles(3, (url) => openStores(url)) },
);

runCoordinationConformance('PostgreSQL (bare adapters)', async () => {
  const { stores, cleanup } = await bundles(1, (url) => openPostgresStores(url));
  return { stores: stores[0]!, cleanup };
});

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new Promise((resolve) => setTimeout(() => resolve('pending'), ms));
  return (
    (await Promise.race([
      promise.then(
        () => 'settled',
        () => 'settled',
      ),
      timeout,
    ])) === 'pending'
  );
}

describe('PostgreSQL coordination', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function open() {
    const state = await bundles(1, (url) => openPostgresStores(url));
    cleanups.push(state.cleanup);
    const stores = state.stores[0]!;
    return { schema: state.schema, stores, coordination: stores.coordination };
  }
  /** A connection inside an open transaction, rolled back by the cleanup if the test leaves it open. */
  async function transaction(): Promise<pg.PoolClient> {
    const client = await admin.connect();
    await client.query('BEGIN');
    // ROLLBACK outside a transaction only warns, so the cleanup is safe after a COMMIT too.
    cleanups.push(async () => {
      await client.query('ROLLBACK');
      client.release();
    });
    return client;
  }

  it('a takeover waits for a fenced write in flight, which then lands before it', async () => {
    const { schema, stores, coordination } = await open();
    await coordination.acquire('acme/s1', 'a', 60_000);
    await coordination.release('acme/s1', 'a', 1);
    // An uncommitted row with the same seq holds the fenced append up after its lease check: it waits on
    // the unique index for this transaction, with the lease row's share lock taken.
    const blocker = await transaction();
    await blocker.query(
      `INSERT INTO "${schema}".events (session_id, seq, event) VALUES ('acme/s1', 1, '{}')`,
    );
    const write = stores.eventLog.append('acme/s1', [event(1)], { fence: { lease: 'acme/s1', token: 1 } });
    expect(await pendingAfter(write, 300)).toBe(true);
    const takeover = coordination.acquire('acme/s1', 'b', 60_000);
    expect(await pendingAfter(takeover, 300)).toBe(true);
    await blocker.query('ROLLBACK');
    await write;
    expect(await takeover).toMatchObject({ acquired: true, lease: { hostId: 'b', token: 2 } });
    expect(await stores.eventLog.list('acme/s1', { after: 0, limit: 10 })).toEqual([event(1)]);
    await expect(
      stores.eventLog.append('acme/s1', [event(2)], { fence: { lease: 'acme/s1', token: 1 } }),
    ).rejects.toSatisfy((err) => isBerthError(err, 'lease_lost'));
  });

  it('a fenced write waits for a takeover in flight and is refused once it commits', async () => {
    const { schema, stores, coordination } = await open();
    await coordination.acquire('acme/s1', 'a', 60_000);
    // What an acquire holds between its row update and its commit.
    const acquirer = await transaction();
    await acquirer.query(
      `UPDATE "${schema}".leases SET host_id = 'b', token = token + 1 WHERE key = 'acme/s1'`,
    );
    const fence = { lease: 'acme/s1', token: 1 };
    const writes = [
      stores.eventLog.append('acme/s1', [event(1)], { fence }),
      stores.registry.update({ tenant: 'acme', id: 's1' }, { turns: 1 }, { fence }),
      stores.transcriptStore.append({ projectKey: 'p', sessionId: 's1' }, [{ type: 'user', uuid: 'u1' }], {
        fence,
      }),
    ];
    for (const write of writes) expect(await pendingAfter(write, 300)).toBe(true);
    await acquirer.query('COMMIT');
    for (const write of writes) {
      await expect(write).rejects.toSatisfy((err) => isBerthError(err, 'lease_lost'));
    }
    expect(await stores.eventLog.lastSeq('acme/s1')).toBe(0);
  });

  it('migrates a version 1 schema, keeping its data', async () => {
    const { schema, stores } = await open();
    await stores.eventLog.append('acme/s1', [event(1)]);
    // Back to what a Berth before many hosts left (and before the catalog and the managed column, which
    // came after them).
    await admin.query(
      `DROP TABLE "${schema}".hosts, "${schema}".leases, "${schema}".superseded, "${schema}".catalog;
       ALTER TABLE "${schema}".sessions DROP COLUMN managed;
       DELETE FROM "${schema}".schema_migrations WHERE version > 1`,
    );
    const pool = new pg.Pool({ connectionString: URL, max: 2 });
    cleanups.push(() => pool.end());
    await migratePostgresSchema(pool, schema);
    const tables = await admin.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [schema],
    );
    expect(tables.rows.map((row) => row.table_name)).toEqual(
      expect.arrayContaining(['catalog', 'hosts', 'leases', 'superseded']),
    );
    const reopened = await openPostgresStores(`${URL}?schema=${schema}`);
    cleanups.push(() => reopened.close());
    expect(await reopened.eventLog.lastSeq('acme/s1')).toBe(1);
    expect(await reopened.coordination.acquire('acme/s1', 'a', 60_000)).toMatchObject({ acquired: true });
  });
});
