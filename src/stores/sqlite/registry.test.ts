import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../errors.js';
import { runRegistryConformance } from '../../testing/registry-conformance.js';
import { openSqliteDatabase, SqliteRegistry } from './index.js';
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
});
