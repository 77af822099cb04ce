import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../../errors.js';
import { runCatalogConformance } from '../../testing/catalog-conformance.js';
import { catalogEntry } from '../../testing/conformance/catalog-cases.js';
import { record } from '../../testing/conformance/registry-cases.js';
import type { CatalogKind } from '../catalog.js';
import { openStores } from '../open-stores.js';
import { openSqliteDatabase, openSqliteStores, SQLITE_SCHEMA_VERSION, SqliteCatalog } from './index.js';

/** A fresh directory with a database path in it, and how to remove it. */
async function tempDbFile(): Promise<{ file: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-catalog-'));
  return { file: path.join(dir, 'berth.db'), remove: () => rm(dir, { recursive: true, force: true }) };
}

runCatalogConformance('SqliteCatalog', () => {
  const db = openSqliteDatabase(':memory:');
  return Promise.resolve({
    catalog: new SqliteCatalog({ db }),
    cleanup: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

// What `--store memory:` and `--store sqlite:PATH` give a host: the same catalog, behind the deadlines.
runCatalogConformance('openStores(memory:)', async () => {
  const stores = await openStores('memory:');
  return { catalog: stores.catalog, cleanup: () => stores.destroy!() };
});

runCatalogConformance('openStores(sqlite:PATH)', async () => {
  const { file, remove } = await tempDbFile();
  const stores = await openStores(`sqlite:${file}`);
  return {
    catalog: stores.catalog,
    cleanup: async () => {
      await stores.destroy!();
      await remove();
    },
  };
});

describe('SqliteCatalog', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('adds its table to a database written before the catalog existed, keeping what it holds', async () => {
    const { file, remove } = await tempDbFile();
    cleanups.push(remove);
    // A version-1 database: the catalog's migration and the later ones undone by hand.
    const old = openSqliteStores(file);
    await old.registry.create(record('s1'));
    old.db.exec('ALTER TABLE sessions DROP COLUMN managed; DROP TABLE catalog');
    old.db.pragma('user_version = 1');
    await old.close();

    const stores = openSqliteStores(file);
    cleanups.push(() => stores.close());
    expect(stores.db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(await stores.registry.get({ tenant: 'acme', id: 's1' })).toMatchObject({ id: 's1' });
    await stores.catalog.create(catalogEntry('agent_1'));
    expect(await stores.catalog.get({ tenant: 'acme', kind: 'agent', id: 'agent_1' })).toMatchObject({
      revision: 1,
    });
  });

  it('compares and sets across connections to one file', async () => {
    const { file, remove } = await tempDbFile();
    cleanups.push(remove);
    const [a, b] = [openSqliteStores(file), openSqliteStores(file)];
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const ref = { tenant: 'acme', kind: 'agent', id: 'agent_1' } as const;
    await a.catalog.create(catalogEntry('agent_1'));
    await expect(b.catalog.create(catalogEntry('agent_1'))).rejects.toSatisfy((err: unknown) =>
      isBerthError(err, 'resource_exists'),
    );
    expect(await b.catalog.replace(ref, { by: 'b' }, 1)).toMatchObject({ revision: 2 });
    await expect(a.catalog.replace(ref, { by: 'a' }, 1)).rejects.toSatisfy((err: unknown) =>
      isBerthError(err, 'revision_conflict'),
    );
    expect(await a.catalog.get(ref)).toMatchObject({ revision: 2, doc: { by: 'b' } });
  });

  it('refuses what no backend can store with invalid_request, through the promise', async () => {
    const db = openSqliteDatabase(':memory:');
    cleanups.push(() => {
      db.close();
    });
    const catalog = new SqliteCatalog({ db });
    await catalog.create(catalogEntry('agent_1'));
    const ref = { tenant: 'acme', kind: 'agent', id: 'agent_1' } as const;
    const invalid = (err: unknown) => isBerthError(err, 'invalid_request');
    const calls: Array<() => Promise<unknown>> = [
      () => catalog.create(catalogEntry('x', { kind: 'agents' as CatalogKind })),
      () => catalog.create(catalogEntry('x', { createdAt: -1 })),
      () => catalog.create(catalogEntry('x', { createdAt: 1.5 })),
      () => catalog.create(catalogEntry('x', { doc: [] as unknown as Record<string, unknown> })),
      () => catalog.create(catalogEntry('x', { doc: null as unknown as Record<string, unknown> })),
      () => catalog.replace(ref, { v: 2 }, 0),
      () => catalog.replace(ref, { v: 2 }, 1.5),
      () => catalog.list('acme', 'environments' as CatalogKind, { limit: 1 }),
    ];
    for (const call of calls) await expect(call()).rejects.toSatisfy(invalid);
    expect(await catalog.get(ref)).toMatchObject({ revision: 1 });
    expect(await catalog.get({ ...ref, id: 'x' })).toBeUndefined();
  });

  it('reports a closed database as store_unavailable through the promise', async () => {
    const db = new Database(':memory:');
    const catalog = new SqliteCatalog({ db });
    db.close();
    await expect(catalog.get({ tenant: 'acme', kind: 'agent', id: 'a' })).rejects.toSatisfy((err: unknown) =>
      isBerthError(err, 'store_unavailable'),
    );
  });
});
