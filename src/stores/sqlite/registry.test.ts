import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../errors.js';
import { record, runRegistryConformance } from '../../testing/registry-conformance.js';
import type { ManagedSessionFields } from '../types.js';
import { openSqliteDatabase, openSqliteStores, SQLITE_SCHEMA_VERSION, SqliteRegistry } from './index.js';
import type { SqliteDatabase } from './index.js';

runRegistryConformance('SqliteRegistry', () => {
  const db = openSqliteDatabase(':memory:');
  return Promise.resolve({
    registry: new SqliteRegistry({ db }),
    cleanup: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('SqliteRegistry', () => {
  let db: SqliteDatabase;
  let registry: SqliteRegistry;
  beforeEach(() => {
    db = openSqliteDatabase(':memory:');
    registry = new SqliteRegistry({ db });
  });
  afterEach(() => db.close());

  it('reports a closed database as store_unavailable through the promise', async () => {
    db.close();
    const err = await rejection(registry.get({ tenant: 'acme', id: 's1' }));
    expect(isBerthError(err, 'store_unavailable')).toBe(true);
    db = openSqliteDatabase(':memory:'); // for afterEach
  });

  it('adds the managed column to a database written before it existed, keeping its records', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-registry-'));
    try {
      const file = path.join(dir, 'berth.db');
      // A version-2 database: the managed column's migration undone by hand.
      const old = openSqliteStores(file);
      await old.registry.create(record('s1', { title: 'old' }));
      old.db.exec('ALTER TABLE sessions DROP COLUMN managed');
      old.db.pragma('user_version = 2');
      await old.close();

      const stores = openSqliteStores(file);
      try {
        expect(stores.db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
        const ref = { tenant: 'acme', id: 's1' };
        const read = await stores.registry.get(ref);
        expect(read).toEqual(record('s1', { title: 'old' }));
        expect(read).not.toHaveProperty('managed');
        expect((await stores.registry.list('acme', { limit: 10 })).data).toEqual([read]);
        const managed: ManagedSessionFields = {
          agent: { id: 'agent_1', version: 1 },
          environment_id: 'env_1',
          archived_at: null,
          budget: null,
        };
        await stores.registry.update(ref, { managed });
        expect((await stores.registry.get(ref))?.managed).toEqual(managed);
      } finally {
        await stores.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
