/**
 * The session registry on S3. Key layout under the store's root (parts encoded by `encodeSegment`):
 *
 *   sessions/<tenant>/<id>                     the record, JSON
 *   by-created/<tenant>/<15 digits>-<hex>~     an empty index object per record, named so that names sort
 *                                              newest first: 999999999999999 - createdAt, then the id's
 *                                              UTF-8 bytes complemented (255 - b) in hex, then `~`, which
 *                                              sorts after every hex digit so that a longer id with the
 *                                              same start sorts first (ids descending, as SQLite orders)
 *   claims/<tenant>/<id>/k<writer><n>          short-lived claims that serialize `create`
 *
 * `list` is one ListObjectsV2 from the cursor's index name (`StartAfter`) plus a GET per record. The index
 * is written before the record and removed after it, so a record always has one; a listed index whose
 * record is gone (or has another createdAt: a re-created id) is skipped.
 *
 * `create` without conditional writes: the creator PUTs a claim object, lists the claims, and goes on only
 * if its own is the only one younger than {@link CLAIM_TTL_MS} (by the server's LastModified, one clock);
 * then it checks that the record is still absent, writes it and removes its claim. Of two creators racing,
 * each lists after its own PUT, so at least one sees the other's claim: both may be refused
 * (`session_exists`; the client retries), never both accepted, and a record is never overwritten. A
 * creator that dies leaves a claim that blocks the id for at most CLAIM_TTL_MS.
 *
 * `update` is read-merge-write, serialized per session within one process. Berth sends a session's
 * updates from the one host that runs it; two processes updating one record at once would each write
 * their own merge, the later PUT winning.
 */
import { checkPageLimit, decodeCursor, encodeCursor, MAX_CREATED_AT } from '../list-cursor.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError } from '../../errors.js';
import { untilAborted } from '../abort.js';
import { normalizePrefix, S3Bucket } from './client.js';
import { CLAIM_TTL_MS } from './claims.js';
import {
  chunk,
  encodeSegment,
  indexName,
  KeyedQueue,
  mapLimit,
  newWriterId,
  pad,
  parseIndexName,
} from './common.js';
import type { ListPage, SessionRecord, SessionRef, SessionRegistry, StoreCallOptions } from '../types.js';

/** Options of {@link S3Registry}. */
export interface S3RegistryOptions {
  /** A configured client; the registry never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Key prefix of everything the registry writes.
   * @default ''
   */
  prefix?: string;
}

export { CLAIM_TTL_MS } from './claims.js';

/**
 * Session records in S3, one object per (tenant, id), listed newest first through index objects whose
 * names sort that way; see the header of `s3/registry.ts` for the layout and the `create` protocol.
 */
export class S3Registry implements SessionRegistry {
  private readonly bucket: S3Bucket;
  private readonly root: string;
  private readonly writer = newWriterId();
  private counter = 0;
  private readonly queue = new KeyedQueue();

  constructor(options: S3RegistryOptions) {
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = normalizePrefix(options.prefix);
  }

  /** Stores a new record; throws `session_exists` when the tenant has the id or is creating it. */
  async create(record: SessionRecord, options?: StoreCallOptions): Promise<void> {
    const signal = options?.signal;
    const indexKey = this.indexKey(record.tenant, checkCreatedAt(record.createdAt), record.id);
    const exists = () => new BerthError('session_exists', `session ${record.id} already exists`);
    if ((await this.bucket.getText(this.recordKey(record), signal)) !== undefined) throw exists();

    const claims = `${this.root}claims/${encodeSegment(record.tenant)}/${encodeSegment(record.id)}/`;
    const claim = `${claims}k${this.writer}${pad(this.counter++, 10)}`;
    await this.bucket.put(claim, '{}', signal);
    let won = false;
    try {
      const listed = await this.bucket.list(claims, { signal });
      const mine = listed.find((object) => object.key === claim);
      if (!mine) throw new BerthError('store_unavailable', `s3 claim ${claim} vanished after it was written`);
      const rivals = listed.filter(
        (object) => object.key !== claim && object.lastModified > mine.lastModified - CLAIM_TTL_MS,
      );
      if (rivals.length > 0) throw exists();
      // Another creator may have finished between the first check and the claim.
      if ((await this.bucket.getText(this.recordKey(record), signal)) !== undefined) throw exists();
      await this.bucket.put(indexKey, '{}', signal);
      await this.bucket.put(this.recordKey(record), JSON.stringify(record), signal);
      won = true;
      // Stale claims of creators that died go too; they no longer block anyone anyway.
      await this.bucket.deleteMany(
        listed.map((object) => object.key),
        signal,
      );
    } finally {
      // Without the signal: an aborted create still removes its claim, which would block the id.
      if (!won) await this.bucket.deleteMany([claim]).catch(() => undefined);
    }
  }

  async get(ref: SessionRef, options?: StoreCallOptions): Promise<SessionRecord | undefined> {
    const read = await this.bucket.getJson<SessionRecord>(this.recordKey(ref), options?.signal);
    if (read.state === 'partial') {
      throw new BerthError('store_unavailable', `s3 record of session ${ref.id} is not valid JSON`);
    }
    return read.state === 'ok' ? read.value : undefined;
  }

  /**
   * The tenant's records, newest first (ties broken by id, descending). Throws `invalid_request` for a
   * cursor this registry did not produce or a limit that is not a positive integer.
   */
  async list(
    tenant: string,
    options: { limit: number; cursor?: string | undefined } & StoreCallOptions,
  ): Promise<ListPage<SessionRecord>> {
    const { limit, cursor, signal } = options;
    checkPageLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const dir = `${this.root}by-created/${encodeSegment(tenant)}/`;
    // One extra name tells whether another page exists.
    const listed = await this.bucket.list(dir, {
      ...(after ? { startAfter: this.indexKey(tenant, after.createdAt, after.id) } : {}),
      limit: limit + 1,
      signal,
    });
    const page = listed.slice(0, limit).map((object) => ({
      key: object.key,
      position: parseIndexName(object.key.slice(dir.length).replaceAll('/', '')),
    }));
    const records = await mapLimit(page, 16, async ({ position }) => {
      if (!position) return undefined;
      const record = await this.get({ tenant, id: position.id }, { signal });
      return record?.createdAt === position.createdAt ? record : undefined;
    });
    const last = page.at(-1)?.position;
    return {
      data: records.filter((record): record is SessionRecord => record !== undefined),
      next: listed.length > limit && last ? encodeCursor(last) : null,
    };
  }

  /** Merges the patch (fields set to `undefined` are ignored) and sets `updatedAt` to now. */
  update(
    ref: SessionRef,
    patch: Partial<Omit<SessionRecord, 'id' | 'tenant' | 'createdAt'>>,
    options?: StoreCallOptions,
  ): Promise<void> {
    const signal = options?.signal;
    const update = () =>
      this.queue.run(JSON.stringify([ref.tenant, ref.id]), async () => {
        signal?.throwIfAborted();
        const current = await this.get(ref, { signal });
        if (!current) return;
        const merged: SessionRecord = { ...current };
        for (const [field, value] of Object.entries(patch)) {
          if (value !== undefined) (merged as unknown as Record<string, unknown>)[field] = value;
        }
        // The identity of a record never changes, whatever a caller slips into the patch at runtime.
        merged.id = current.id;
        merged.tenant = current.tenant;
        merged.createdAt = current.createdAt;
        merged.updatedAt = Date.now();
        await this.bucket.put(this.recordKey(ref), JSON.stringify(merged), signal);
      });
    // Queued behind this session's other updates: the signal also stops the wait for them.
    return untilAborted(signal, `s3 update session ${ref.id}`, update);
  }

  async delete(ref: SessionRef, options?: StoreCallOptions): Promise<void> {
    const signal = options?.signal;
    const current = await this.get(ref, { signal });
    if (!current) return;
    // The record before its index, so that a record never lacks one.
    await this.bucket.deleteMany([this.recordKey(ref)], signal);
    await this.bucket.deleteMany([this.indexKey(ref.tenant, current.createdAt, ref.id)], signal);
  }

  private recordKey(ref: SessionRef): string {
    return `${this.root}sessions/${encodeSegment(ref.tenant)}/${encodeSegment(ref.id)}`;
  }

  private indexKey(tenant: string, createdAt: number, id: string): string {
    return `${this.root}by-created/${encodeSegment(tenant)}/${chunk(indexName(createdAt, id))}`;
  }
}

function checkCreatedAt(createdAt: number): number {
  if (!Number.isSafeInteger(createdAt) || createdAt < 0 || createdAt > MAX_CREATED_AT) {
    throw new BerthError('invalid_request', `createdAt must be epoch milliseconds, got ${createdAt}`);
  }
  return createdAt;
}
