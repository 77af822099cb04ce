/**
 * The catalog on Redis: one hash per entry and one list per tenant and kind, all under the tenant's hash
 * tag, so that create, replace, list and delete are single scripts even on Redis Cluster (see
 * `redis/keys.ts`). A script runs alone on the server, which makes create's existence check and replace's
 * compare-and-set atomic.
 */
import {
  catalogPage,
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
import { checkPageLimit, decodeCursor } from '../list-cursor.js';
import type { ListPage } from '../list-cursor.js';
import { BerthError } from '../../errors.js';
import { checkRedisClient, RedisScript, redisCall, replyArray, replyNumber, replyString } from './client.js';
import type { RedisClient } from './client.js';
import { catalogBase, checkRedisPrefix, DEFAULT_REDIS_PREFIX } from './keys.js';

/** Options of {@link RedisCatalog}. */
export interface RedisCatalogOptions {
  /** A ready-made ioredis client (standalone or Cluster); the catalog never connects or closes it. */
  redis: RedisClient;
  /**
   * Namespace of every key the catalog writes (see {@link checkRedisPrefix}).
   * @default 'berth'
   */
  prefix?: string;
}

/**
 * KEYS: 1 the entry, 2 its kind's list. ARGV: 1 the list member, then field/value pairs.
 * Returns 1 when created, 0 when the id is taken.
 */
const CREATE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- Fails (WRONGTYPE) before the first write if the list key is not a sorted set: scripts do not roll back.
redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'member', ARGV[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
`);

/**
 * KEYS: 1 the entry. ARGV: 1 the expected revision, 2 the doc, 3 updatedAt.
 * Returns {} when there is no entry, {'conflict', REVISION} when its revision is another, and
 * {'ok', REVISION, CREATEDAT} with the new revision when replaced.
 */
const REPLACE = new RedisScript(`
local current = redis.call('HMGET', KEYS[1], 'revision', 'createdAt')
if not current[1] then return {} end
if tonumber(current[1]) ~= tonumber(ARGV[1]) then return {'conflict', current[1]} end
local revision = tostring(tonumber(current[1]) + 1)
redis.call('HSET', KEYS[1], 'revision', revision, 'doc', ARGV[2], 'updatedAt', ARGV[3])
return {'ok', revision, current[2]}
`);

/** KEYS: 1 the entry, 2 its kind's list. */
const DELETE = new RedisScript(`
local member = redis.call('HGET', KEYS[1], 'member')
if not member then return 0 end
redis.call('ZREM', KEYS[2], member)
redis.call('UNLINK', KEYS[1])
return 1
`);

/**
 * A page of one kind's list, newest first, with each entry's fields, keeping only ids that start with
 * ARGV[4]. KEYS: 1 the list. ARGV: 1 the exclusive upper bound ('+' for the first page), 2 how many,
 * 3 the entry key prefix ('K:KIND:e:'), 4 the id prefix ('' for all). Returns { member, { field, value,
 * ... }, ... }. With an id prefix it reads the list in batches until it has enough: a page costs the
 * entries it skips, which is fine for the versions of agents (a few hundred per tenant), not for millions.
 */
const LIST = new RedisScript(`
local want = tonumber(ARGV[2])
local prefix = ARGV[4]
local batch = want
if prefix ~= '' and batch < 200 then batch = 200 end
local max = ARGV[1]
local out = {}
local found = 0
while found < want do
  local members = redis.call('ZRANGE', KEYS[1], max, '-', 'BYLEX', 'REV', 'LIMIT', 0, batch)
  for _, member in ipairs(members) do
    -- Members are 'CREATEDAT:ID' with a 16-digit CREATEDAT.
    local id = string.sub(member, 18)
    if string.sub(id, 1, #prefix) == prefix then
      out[#out + 1] = member
      out[#out + 1] = redis.call('HGETALL', ARGV[3] .. id)
      found = found + 1
      if found == want then break end
    end
  end
  if #members < batch then break end
  max = '(' .. members[#members]
end
return out
`);

/**
 * Catalog entries in Redis. `replace` is a compare-and-set in one script; `list` pages newest first with a
 * keyset cursor on (createdAt, id). Failures come back as rejected promises with code `store_unavailable`.
 */
export class RedisCatalog implements Catalog {
  private readonly redis: RedisClient;
  private readonly prefix: string;

  constructor(options: RedisCatalogOptions) {
    checkRedisClient(options.redis);
    this.redis = options.redis;
    this.prefix = checkRedisPrefix(options.prefix ?? DEFAULT_REDIS_PREFIX);
  }

  async create(entry: NewCatalogEntry, options?: StoreCallOptions): Promise<CatalogEntry> {
    checkNewCatalogEntry(entry);
    const keys = this.keys(entry);
    const doc = JSON.stringify(entry.doc);
    const updatedAt = Date.now();
    const args = [listMember(entry.createdAt, entry.id)];
    args.push('revision', '1', 'createdAt', String(entry.createdAt), 'updatedAt', String(updatedAt));
    args.push('doc', doc);
    const created = await redisCall(
      'create catalog entry',
      () => CREATE.run(this.redis, [keys.entry, keys.list], args),
      options?.signal,
    );
    if (created !== 1) throw resourceExists(entry);
    return { ...refOf(entry), revision: 1, createdAt: entry.createdAt, updatedAt, doc: parseDoc(doc) };
  }

  async get(ref: CatalogRef, options?: StoreCallOptions): Promise<CatalogEntry | undefined> {
    const key = this.keys(ref).entry;
    const hash = await redisCall('get catalog entry', () => this.redis.hgetall(key), options?.signal);
    return Object.keys(hash).length === 0 ? undefined : fromHash(ref, hash);
  }

  async replace(
    ref: CatalogRef,
    doc: Record<string, unknown>,
    expectRevision: number,
    options?: StoreCallOptions,
  ): Promise<CatalogEntry | undefined> {
    checkCatalogDoc(doc);
    checkExpectedRevision(expectRevision);
    const text = JSON.stringify(doc);
    const updatedAt = Date.now();
    const reply = await redisCall(
      'replace catalog entry',
      async () =>
        replyArray(
          await REPLACE.run(
            this.redis,
            [this.keys(ref).entry],
            [String(expectRevision), text, String(updatedAt)],
          ),
          'replace',
        ),
      options?.signal,
    );
    if (reply.length === 0) return undefined;
    const revision = replyNumber(reply[1], 'replace revision');
    if (replyString(reply[0], 'replace status') === 'conflict') {
      throw revisionConflict(ref, expectRevision, revision);
    }
    const createdAt = replyNumber(reply[2], 'replace createdAt');
    return { ...refOf(ref), revision, createdAt, updatedAt, doc: parseDoc(text) };
  }

  async list(
    tenant: string,
    kind: CatalogKind,
    options: CatalogListOptions,
  ): Promise<ListPage<CatalogEntry>> {
    const { limit, cursor, signal } = options;
    checkPageLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const keys = this.keys({ tenant, kind, id: '' });
    const max = after ? `(${listMember(after.createdAt, after.id)}` : '+';
    // One extra entry tells whether another page exists without a count.
    const args = [max, String(limit + 1), keys.entryPrefix, options.idPrefix ?? ''];
    const reply = await redisCall(
      'list catalog entries',
      async () => replyArray(await LIST.run(this.redis, [keys.list], args), 'list'),
      signal,
    );
    const entries: CatalogEntry[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const member = replyString(reply[i], 'list member');
      const flat = replyArray(reply[i + 1], 'list entry');
      const hash: Record<string, string> = {};
      for (let j = 0; j + 1 < flat.length; j += 2) {
        hash[replyString(flat[j], 'entry field')] = replyString(flat[j + 1], 'entry value');
      }
      // A list member always has its entry (both change in one script); a key removed by hand does not.
      if (flat.length > 0) entries.push(fromHash({ tenant, kind, id: member.slice(17) }, hash));
    }
    return catalogPage(entries, limit);
  }

  async delete(ref: CatalogRef, options?: StoreCallOptions): Promise<void> {
    const keys = this.keys(ref);
    await redisCall(
      'delete catalog entry',
      () => DELETE.run(this.redis, [keys.entry, keys.list], []),
      options?.signal,
    );
  }

  /** The entry's key and its kind's list; the kind is checked first, since it becomes part of the keys. */
  private keys(ref: CatalogRef): { entry: string; entryPrefix: string; list: string } {
    const base = `${catalogBase(this.prefix, ref.tenant)}:${checkCatalogKind(ref.kind)}`;
    return { entry: `${base}:e:${ref.id}`, entryPrefix: `${base}:e:`, list: `${base}:list` };
  }
}

/** Fixed-width createdAt first, so that byte order is (createdAt, id) order (MAX_SAFE_INTEGER has 16 digits). */
function listMember(createdAt: number, id: string): string {
  return `${String(createdAt).padStart(16, '0')}:${id}`;
}

function refOf(ref: CatalogRef): CatalogRef {
  return { tenant: ref.tenant, kind: ref.kind, id: ref.id };
}

function parseDoc(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

function fromHash(ref: CatalogRef, hash: Record<string, string>): CatalogEntry {
  const field = (name: string): string => {
    const value = hash[name];
    if (value === undefined) {
      throw new BerthError(
        'store_unavailable',
        `redis catalog entry ${ref.kind} ${ref.id} lacks the field ${name}`,
      );
    }
    return value;
  };
  return {
    ...refOf(ref),
    revision: Number(field('revision')),
    createdAt: Number(field('createdAt')),
    updatedAt: Number(field('updatedAt')),
    doc: parseDoc(field('doc')),
  };
}
