/**
 * The S3 catalog against a real S3-compatible server (s3rver on 127.0.0.1, see `test/helpers/s3-server.ts`):
 * the conformance suite, then what is specific to S3: the object layout, claims between instances that
 * race, listings longer than one page, odd tenants and ids, and `destroy()` at a bucket's root.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { isBerthError } from '../../src/errors.js';
import type { CatalogRef } from '../../src/stores/catalog.js';
import { S3Catalog } from '../../src/stores/s3/catalog.js';
import { S3Bucket } from '../../src/stores/s3/client.js';
import { chunk, indexName, mapLimit } from '../../src/stores/s3/common.js';
import { openS3Stores } from '../../src/stores/s3/index.js';
import { catalogEntry, runCatalogConformance } from '../../src/testing/catalog-conformance.js';
import { startS3Server } from '../helpers/s3-server.js';
import { stubS3rverCredentials } from '../helpers/s3-stubs.js';

const server = await startS3Server();
afterAll(() => server.close());

/** One bucket for the cases, each isolated by a prefix of its own. */
const bucketName = `t-${randomUUID()}`;
await server.createBucket(bucketName);
afterAll(() => server.removeBucket(bucketName));
const bucket = new S3Bucket(server.client, bucketName);
const freshPrefix = () => `p-${randomUUID()}`;

runCatalogConformance('S3Catalog', () => {
  const prefix = freshPrefix();
  return Promise.resolve({
    catalog: new S3Catalog({ client: server.client, bucket: bucketName, prefix }),
    cleanup: () => bucket.deletePrefix(`${prefix}/`),
  });
});

const agent = (id: string): CatalogRef => ({ tenant: 'acme', kind: 'agent', id });
const T = 1_700_000_000_000;

describe('S3Catalog on s3rver', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    vi.unstubAllEnvs();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  function catalogOnFreshPrefix(): { prefix: string; catalog: S3Catalog } {
    const prefix = freshPrefix();
    cleanups.push(() => bucket.deletePrefix(`${prefix}/`));
    return { prefix, catalog: new S3Catalog({ client: server.client, bucket: bucketName, prefix }) };
  }
  /** The names under `prefix/catalog/`. */
  async function names(prefix: string): Promise<string[]> {
    return (await bucket.list(`${prefix}/catalog/`)).map((object) => object.key.slice(prefix.length + 9));
  }

  it('keeps an entry and its index under readable names, and no claim once a write is done', async () => {
    const { prefix, catalog } = catalogOnFreshPrefix();
    await catalog.create(catalogEntry('agent_1', { doc: { v: 1 } }));
    await catalog.replace(agent('agent_1'), { v: 2 }, 1);
    await catalog.create(catalogEntry('agent_1@1', { kind: 'agent_version' }));
    expect(await names(prefix)).toEqual([
      `by-created/acme~/agent_version~/${indexName(T, 'agent_1@1')}`,
      `by-created/acme~/agent~/${indexName(T, 'agent_1')}`,
      'entries/acme~/agent_version~/agent_1%401~',
      'entries/acme~/agent~/agent_1~',
    ]);
    await catalog.delete(agent('agent_1'));
    await catalog.delete({ tenant: 'acme', kind: 'agent_version', id: 'agent_1@1' });
    expect(await names(prefix)).toEqual([]);
  });

  it('lets at most one of several instances create an id or replace a revision at once, never overwriting', async () => {
    const prefix = freshPrefix();
    cleanups.push(() => bucket.deletePrefix(`${prefix}/`));
    const clients = [server.newClient(), server.newClient(), server.newClient()];
    cleanups.push(() => clients.forEach((made) => made.destroy()));
    const catalogs = clients.map((made) => new S3Catalog({ client: made, bucket: bucketName, prefix }));
    for (let round = 0; round < 4; round++) {
      const id = `race_${round}`;
      const creates = await Promise.allSettled(
        catalogs.map((catalog, i) => catalog.create(catalogEntry(id, { doc: { creator: i } }))),
      );
      const created = creates.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
      expect(created.length).toBeLessThanOrEqual(1);
      for (const result of creates) {
        if (result.status === 'rejected') expect(isBerthError(result.reason, 'resource_exists')).toBe(true);
      }
      const stored = await catalogs[0]!.get(agent(id));
      if (created.length === 1) expect(stored?.doc).toEqual({ creator: created[0] });
      else expect(stored).toBeUndefined();
      // The claims are gone either way: the id can be created now, once.
      if (!stored) await catalogs[0]!.create(catalogEntry(id, { doc: { creator: 0 } }));

      const replaces = await Promise.allSettled(
        catalogs.map((catalog, i) => catalog.replace(agent(id), { replacer: i }, 1)),
      );
      const replaced = replaces.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
      expect(replaced.length).toBeLessThanOrEqual(1);
      for (const result of replaces) {
        if (result.status === 'rejected') expect(isBerthError(result.reason, 'revision_conflict')).toBe(true);
      }
      const after = await catalogs[1]!.get(agent(id));
      if (replaced.length === 1) expect(after).toMatchObject({ revision: 2, doc: { replacer: replaced[0] } });
      else expect(after).toMatchObject({ revision: 1 });
      // And the revision can be replaced now, from whichever it is.
      await catalogs[2]!.replace(agent(id), { last: true }, after!.revision);
    }
  });

  it('refuses a replace while another writer holds a claim on that revision, and only that one', async () => {
    const { prefix, catalog } = catalogOnFreshPrefix();
    await catalog.create(catalogEntry('agent_1'));
    // What a writer whose PUT failed half way leaves (s3/claims.ts): a live claim on revision 2.
    const claim = `${prefix}/catalog/claims/acme~/agent~/agent_1~/r000000000002/kotherwriter0000000000`;
    await bucket.put(claim, '{}');
    await expect(catalog.replace(agent('agent_1'), { v: 2 }, 1)).rejects.toSatisfy((err: unknown) =>
      isBerthError(err, 'revision_conflict'),
    );
    expect(await catalog.get(agent('agent_1'))).toMatchObject({ revision: 1 });
    // The refused writer removed its own claim, not the other's.
    expect((await bucket.list(`${prefix}/catalog/claims/`)).map((object) => object.key)).toEqual([claim]);
    await bucket.deleteMany([claim]);
    expect(await catalog.replace(agent('agent_1'), { v: 2 }, 1)).toMatchObject({ revision: 2 });
  });

  it('finds the ids an idPrefix selects past more than one listing page of other ids', async () => {
    const { prefix, catalog } = catalogOnFreshPrefix();
    // Older than everything below, so that the listing must go past the other agent's 1,005 names first.
    await catalog.create(catalogEntry('agent_1@1', { kind: 'agent_version', createdAt: T }));
    await catalog.create(catalogEntry('agent_1@2', { kind: 'agent_version', createdAt: T + 1 }));
    // Only index names, written directly: the listing filters names before it reads any entry.
    await mapLimit(
      Array.from({ length: 1005 }, (_, i) => i + 1),
      32,
      (v) =>
        bucket.put(
          `${prefix}/catalog/by-created/acme~/agent_version~/${chunk(indexName(T + 10 + v, `agent_2@${v}`))}`,
          '{}',
        ),
    );
    const page = await catalog.list('acme', 'agent_version', { limit: 1, idPrefix: 'agent_1@' });
    expect(page.data.map((entry) => entry.id)).toEqual(['agent_1@2']);
    const rest = await catalog.list('acme', 'agent_version', {
      limit: 1,
      idPrefix: 'agent_1@',
      cursor: page.next!,
    });
    expect(rest).toEqual({ data: [expect.objectContaining({ id: 'agent_1@1' })], next: null });
  });

  it('keeps odd tenants and long ids apart', async () => {
    const { catalog } = catalogOnFreshPrefix();
    const odd = ['a', 'a/b', 'a%2Fb', 'ünï 🚀', 'x'.repeat(250), '~', '.', '..'];
    const long = `a${'b'.repeat(127)}`;
    for (const [i, tenant] of odd.entries()) {
      await catalog.create(catalogEntry(long, { tenant, doc: { tenant } }));
      await catalog.create(catalogEntry(`${long.slice(0, 100)}@${i}`, { tenant, createdAt: T + 1 }));
    }
    for (const tenant of odd) {
      const page = await catalog.list(tenant, 'agent', { limit: 10 });
      expect(page.data.map((entry) => [entry.tenant, entry.id.length])).toEqual([
        [tenant, 102],
        [tenant, 128],
      ]);
      expect((await catalog.get({ tenant, kind: 'agent', id: long }))?.doc).toEqual({ tenant });
    }
  });

  it("removes the catalog with the rest of Berth's objects at a bucket's root, and nothing else", async () => {
    stubS3rverCredentials();
    const root = `t-${randomUUID()}`;
    await server.createBucket(root);
    cleanups.push(() => server.removeBucket(root));
    const stores = await openS3Stores(
      `s3://${root}?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
    );
    cleanups.push(() => stores.close());
    await stores.catalog.create(catalogEntry('agent_1'));
    expect(await stores.catalog.get(agent('agent_1'))).toMatchObject({ revision: 1 });
    const other = new S3Bucket(server.client, root);
    await other.put('team/other', '{}');
    await stores.destroy!();
    expect((await other.list('')).map((object) => object.key)).toEqual(['team/other']);
  });
});
