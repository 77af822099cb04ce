/**
 * The catalog on S3. Key layout under the store's root (parts encoded by `encodeSegment`, so that no
 * tenant's, kind's or id's encoding is a prefix of another's):
 *
 *   catalog/entries/<tenant>/<kind>/<id>                  the entry, JSON (a `CatalogEntry`)
 *   catalog/by-created/<tenant>/<kind>/<15 digits>-<hex>~ an empty index object per entry, named so that
 *                                                         names sort newest first (`indexName`, as the
 *                                                         registry's)
 *   catalog/claims/<tenant>/<kind>/<id>/r<revision>/k...  short-lived claims (`s3/claims.ts`) on writing
 *                                                         revision <revision> (12 digits) of the entry
 *
 * `create` claims revision 1 and `replace` from revision r claims revision r + 1; the writer let through
 * reads the entry again and writes only if it is still absent, or still at r. So two creators of one id, or
 * two replaces of one revision, in different processes never both succeed; both may be refused
 * (`resource_exists`, `revision_conflict`), and the caller retries. Within one process the writes of an
 * entry run one at a time (a `KeyedQueue`), so there of several racing replaces exactly one succeeds.
 *
 * The index is written before the entry and removed after it, so an entry always has one; `list` skips an
 * index whose entry is gone or has another createdAt (a re-created id). A delete racing a replace from
 * another process is not serialized: the replace may bring the entry back.
 *
 * `list` is a ListObjectsV2 from the cursor's index name plus a GET per entry; with an `idPrefix` it lists
 * on, filtering the names (which hold the id), until it has a page: a page costs the names it skips.
 */
import {
  checkCatalogDoc,
  checkCatalogKind,
  checkExpectedRevision,
  checkNewCatalogEntry,
  resourceExists,
  revisionConflict,
} from '../catalog.js';
import type {
  Catalog,
  CatalogEntry,
  CatalogKind,
  CatalogListOptions,
  CatalogRef,
  NewCatalogEntry,
} from '../catalog.js';
import type { StoreCallOptions } from '../call-options.js';
import { checkPageLimit, decodeCursor, encodeCursor } from '../list-cursor.js';
import type { CursorPosition, ListPage } from '../list-cursor.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError } from '../../errors.js';
import { untilAborted } from '../abort.js';
import { withClaim } from './claims.js';
import { normalizePrefix, S3Bucket } from './client.js';
import {
  chunk,
  encodeSegment,
  indexName,
  KeyedQueue,
  mapLimit,
  pad,
  parseIndexName,
  WriterNames,
} from './common.js';

/** Options of {@link S3Catalog}. */
export interface S3CatalogOptions {
  /** A configured client; the catalog never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Key prefix of everything the catalog writes.
   * @default ''
   */
  prefix?: string;
}

/** Index names listed per request while an `idPrefix` filters them. */
const FILTERED_BATCH = 1000;

/**
 * Catalog entries in S3, one object per (tenant, kind, id), listed newest first through index objects whose
 * names sort that way; see the header of `s3/catalog.ts` for the layout and the write protocol.
 */
export class S3Catalog implements Catalog {
  private readonly bucket: S3Bucket;
  private readonly root: string;
  private readonly names = new WriterNames();
  private readonly queue = new KeyedQueue();

  constructor(options: S3CatalogOptions) {
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = `${normalizePrefix(options.prefix)}catalog/`;
  }

  async create(entry: NewCatalogEntry, options?: StoreCallOptions): Promise<CatalogEntry> {
    checkNewCatalogEntry(entry);
    const signal = options?.signal;
    return await this.serialized(entry, 'create', signal, async () => {
      const exists = () => resourceExists(entry);
      if ((await this.get(entry, { signal })) !== undefined) throw exists();
      return withClaim(
        this.bucket,
        this.claimDir(entry, 1),
        `k${this.names.next()}`,
        exists,
        async (writing) => {
          // Another process may have created it between the first check and the claim.
          if ((await this.get(entry, { signal })) !== undefined) throw exists();
          const created: CatalogEntry = {
            tenant: entry.tenant,
            kind: entry.kind,
            id: entry.id,
            revision: 1,
            createdAt: entry.createdAt,
            updatedAt: Date.now(),
            doc: entry.doc,
          };
          writing();
          await this.bucket.put(this.indexKey(entry, entry.createdAt), '{}', signal);
          return this.write(created, signal);
        },
        signal,
      );
    });
  }

  async get(ref: CatalogRef, options?: StoreCallOptions): Promise<CatalogEntry | undefined> {
    const read = await this.bucket.getJson<CatalogEntry>(this.entryKey(ref), options?.signal);
    if (read.state === 'partial') {
      throw new BerthError('store_unavailable', `s3 catalog entry ${ref.kind} ${ref.id} is not valid JSON`);
    }
    return read.state === 'ok' ? read.value : undefined;
  }

  async replace(
    ref: CatalogRef,
    doc: Record<string, unknown>,
    expectRevision: number,
    options?: StoreCallOptions,
  ): Promise<CatalogEntry | undefined> {
    checkCatalogDoc(doc);
    checkExpectedRevision(expectRevision);
    const signal = options?.signal;
    return await this.serialized(ref, 'replace', signal, async () => {
      // Checked before claiming, so that a stale caller neither writes a claim nor blocks anyone.
      const before = await this.get(ref, { signal });
      if (!before) return undefined;
      if (before.revision !== expectRevision) throw revisionConflict(ref, expectRevision, before.revision);
      return withClaim(
        this.bucket,
        this.claimDir(ref, expectRevision + 1),
        `k${this.names.next()}`,
        () => revisionConflict(ref, expectRevision),
        async (writing) => {
          // Read again: a writer that finished before the claim has removed its own.
          const current = await this.get(ref, { signal });
          if (!current) return undefined;
          if (current.revision !== expectRevision) {
            throw revisionConflict(ref, expectRevision, current.revision);
          }
          writing();
          return this.write({ ...current, revision: expectRevision + 1, updatedAt: Date.now(), doc }, signal);
        },
        signal,
      );
    });
  }

  async list(
    tenant: string,
    kind: CatalogKind,
    options: CatalogListOptions,
  ): Promise<ListPage<CatalogEntry>> {
    const { limit, cursor, signal } = options;
    checkCatalogKind(kind);
    checkPageLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const idPrefix = options.idPrefix ?? '';
    const dir = this.indexDir({ tenant, kind });
    // One extra match tells whether another page exists.
    const matches: CursorPosition[] = [];
    let startAfter = after ? this.indexKey({ tenant, kind, id: after.id }, after.createdAt) : undefined;
    for (;;) {
      const batch = idPrefix === '' ? limit + 1 - matches.length : FILTERED_BATCH;
      const listed = await this.bucket.list(dir, {
        ...(startAfter ? { startAfter } : {}),
        limit: batch,
        signal,
      });
      for (const object of listed) {
        const position = parseIndexName(object.key.slice(dir.length).replaceAll('/', ''));
        if (position?.id.startsWith(idPrefix) && matches.length <= limit) matches.push(position);
      }
      startAfter = listed.at(-1)?.key;
      if (listed.length < batch || matches.length > limit || !startAfter) break;
    }
    const page = matches.slice(0, limit);
    const entries = await mapLimit(page, 16, async (position) => {
      const entry = await this.get({ tenant, kind, id: position.id }, { signal });
      return entry?.createdAt === position.createdAt ? entry : undefined;
    });
    // The cursor names the page's last index, not its last entry: a page that skipped an index whose entry
    // is gone still goes on after it.
    const last = page.at(-1);
    return {
      data: entries.filter((entry): entry is CatalogEntry => entry !== undefined),
      next: matches.length > limit && last ? encodeCursor(last) : null,
    };
  }

  async delete(ref: CatalogRef, options?: StoreCallOptions): Promise<void> {
    const signal = options?.signal;
    await this.serialized(ref, 'delete', signal, async () => {
      const current = await this.get(ref, { signal });
      if (!current) return;
      // The entry before its index, so that an entry never lacks one.
      await this.bucket.deleteMany([this.entryKey(ref)], signal);
      await this.bucket.deleteMany([this.indexKey(ref, current.createdAt)], signal);
    });
  }

  /** Runs `work` after this process's other writes of the entry; the signal also stops the wait for them. */
  private serialized<T>(
    ref: CatalogRef,
    action: string,
    signal: AbortSignal | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    const key = JSON.stringify([ref.tenant, checkCatalogKind(ref.kind), ref.id]);
    return untilAborted(signal, `s3 ${action} ${ref.kind} ${ref.id}`, () =>
      this.queue.run(key, async () => {
        signal?.throwIfAborted();
        return work();
      }),
    );
  }

  /** PUTs the entry and returns it as a read will (the doc through JSON). */
  private async write(entry: CatalogEntry, signal: AbortSignal | undefined): Promise<CatalogEntry> {
    const text = JSON.stringify(entry);
    await this.bucket.put(this.entryKey(entry), text, signal);
    return JSON.parse(text) as CatalogEntry;
  }

  private scope(ref: Pick<CatalogRef, 'tenant' | 'kind'>): string {
    return `${encodeSegment(ref.tenant)}/${encodeSegment(checkCatalogKind(ref.kind))}`;
  }

  private entryKey(ref: CatalogRef): string {
    return `${this.root}entries/${this.scope(ref)}/${encodeSegment(ref.id)}`;
  }

  private indexDir(ref: Pick<CatalogRef, 'tenant' | 'kind'>): string {
    return `${this.root}by-created/${this.scope(ref)}/`;
  }

  private indexKey(ref: CatalogRef, createdAt: number): string {
    return `${this.indexDir(ref)}${chunk(indexName(createdAt, ref.id))}`;
  }

  private claimDir(ref: CatalogRef, revision: number): string {
    return `${this.root}claims/${this.scope(ref)}/${encodeSegment(ref.id)}/r${pad(revision, 12)}/`;
  }
}
