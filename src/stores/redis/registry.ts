/**
 * The session registry on Redis: one hash per record and one list per tenant, both under the tenant's
 * hash tag so that create, list and delete are single scripts even on Redis Cluster (see `redis/keys.ts`).
 */
import { checkPageLimit, decodeCursor, encodeCursor } from '../list-cursor.js';
import { BerthError } from '../../errors.js';
import type { Usage } from '../../session/events.js';
import { checkRedisClient, RedisScript, redisCall, replyArray, replyString } from './client.js';
import type { RedisClient } from './client.js';
import { checkFenceReply, fenceCheck, fenceParams } from './fence.js';
import { checkRedisPrefix, DEFAULT_REDIS_PREFIX, registryBase } from './keys.js';
import type {
  AgentConfig,
  ListPage,
  ManagedSessionFields,
  Pattern,
  SessionRecord,
  SessionRef,
  SessionRegistry,
  SessionStatus,
  StoreCallOptions,
} from '../types.js';

/** Options of {@link RedisRegistry}. */
export interface RedisRegistryOptions {
  /** A ready-made ioredis client (standalone or Cluster); the registry never connects or closes it. */
  redis: RedisClient;
  /**
   * Namespace of every key the registry writes (see {@link checkRedisPrefix}).
   * @default 'berth'
   */
  prefix?: string;
}

/** Every field a record always has, each stored as JSON in a hash field of the same name. */
const RECORD_FIELDS = [
  'id',
  'tenant',
  'title',
  'metadata',
  'pattern',
  'agent',
  'status',
  'sdkSessionId',
  'started',
  'createdAt',
  'updatedAt',
  'usage',
  'turns',
] as const satisfies ReadonlyArray<keyof SessionRecord>;
/** The optional fields, stored like the others when set and absent from the hash when undefined. */
const OPTIONAL_FIELDS = ['managed'] as const satisfies ReadonlyArray<keyof SessionRecord>;
type ListedField = (typeof RECORD_FIELDS)[number] | (typeof OPTIONAL_FIELDS)[number];
// Fails to compile when SessionRecord gains a field that neither list names.
const ALL_FIELDS_LISTED: Exclude<keyof SessionRecord, ListedField> extends never ? true : never = true;
void ALL_FIELDS_LISTED;

/** Fields an update may change; identity fields never change, whatever a patch holds at runtime. */
const PATCHABLE = new Set<string>(
  [...RECORD_FIELDS, ...OPTIONAL_FIELDS].filter((f) => f !== 'id' && f !== 'tenant' && f !== 'createdAt'),
);

/**
 * KEYS: 1 the record, 2 the tenant's list. ARGV: 1 the list member, then field/value pairs.
 * Returns 1 when created, 0 when the id is taken.
 */
const CREATE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- Fails (WRONGTYPE) before the first write if the list key is not a sorted set: scripts do not roll back.
redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'indexMember', ARGV[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
`);

/**
 * KEYS: 1 the record, 2 the lease when fenced (see `redis/fence.ts`). ARGV: 1 the fence token ('' for
 * none), then field/value pairs. Changes nothing for an unknown record. Returns 1, 0 or LEASE_LOST.
 */
const UPDATE = new RedisScript(`${fenceCheck(2, 1)}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
`);

/** KEYS: 1 the record, 2 the tenant's list. */
const DELETE = new RedisScript(`
local member = redis.call('HGET', KEYS[1], 'indexMember')
if not member then return 0 end
redis.call('ZREM', KEYS[2], member)
redis.call('UNLINK', KEYS[1])
return 1
`);

/**
 * A page of the tenant's list, newest first, with each record's fields.
 * KEYS: 1 the tenant's list. ARGV: 1 the exclusive upper bound ('+' for the first page), 2 how many,
 * 3 the record key prefix ('R:s:'). Returns { member, { field, value, ... }, ... }.
 */
const LIST = new RedisScript(`
local members = redis.call('ZRANGE', KEYS[1], ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, member in ipairs(members) do
  -- Members are 'CREATEDAT:ID' with a 16-digit CREATEDAT.
  out[#out + 1] = member
  out[#out + 1] = redis.call('HGETALL', ARGV[3] .. string.sub(member, 18))
end
return out
`);

/**
 * Session records in Redis. `list` pages newest first with a keyset cursor on (createdAt, id), so pages
 * neither skip nor repeat records when sessions are created or deleted between requests. Failures come
 * back as rejected promises with code `store_unavailable`.
 */
export class RedisRegistry implements SessionRegistry {
  private readonly redis: RedisClient;
  private readonly prefix: string;

  constructor(options: RedisRegistryOptions) {
    checkRedisClient(options.redis);
    this.redis = options.redis;
    this.prefix = checkRedisPrefix(options.prefix ?? DEFAULT_REDIS_PREFIX);
  }

  /** Stores a new record; throws `session_exists` when the tenant already has the id. */
  async create(record: SessionRecord, options?: StoreCallOptions): Promise<void> {
    if (!Number.isSafeInteger(record.createdAt) || record.createdAt < 0) {
      throw new BerthError(
        'invalid_request',
        `createdAt must be epoch milliseconds, got ${record.createdAt}`,
      );
    }
    const base = registryBase(this.prefix, record.tenant);
    const args = [listMember(record.createdAt, record.id)];
    // A field missing at runtime (JSON.stringify gives undefined) is stored as null, never as ''.
    for (const field of RECORD_FIELDS) args.push(field, JSON.stringify(record[field]) ?? 'null');
    for (const field of OPTIONAL_FIELDS) {
      if (record[field] !== undefined) args.push(field, JSON.stringify(record[field]));
    }
    const created = await redisCall(
      'create session',
      () => CREATE.run(this.redis, [recordKey(base, record.id), `${base}:list`], args),
      options?.signal,
    );
    if (created !== 1) throw new BerthError('session_exists', `session ${record.id} already exists`);
  }

  async get(ref: SessionRef, options?: StoreCallOptions): Promise<SessionRecord | undefined> {
    const key = recordKey(registryBase(this.prefix, ref.tenant), ref.id);
    const hash = await redisCall('get session', () => this.redis.hgetall(key), options?.signal);
    return Object.keys(hash).length === 0 ? undefined : fromHash(hash);
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
    const base = registryBase(this.prefix, tenant);
    const max = after ? `(${listMember(after.createdAt, after.id)}` : '+';
    // One extra record tells whether another page exists without a count.
    const reply = await redisCall(
      'list sessions',
      async () =>
        replyArray(
          await LIST.run(this.redis, [`${base}:list`], [max, String(limit + 1), `${base}:s:`]),
          'list',
        ),
      signal,
    );
    const records: SessionRecord[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const flat = replyArray(reply[i + 1], 'list record');
      const hash: Record<string, string> = {};
      for (let j = 0; j + 1 < flat.length; j += 2) {
        hash[replyString(flat[j], 'record field')] = replyString(flat[j + 1], 'record value');
      }
      // A list member always has its record (both change in one script); a key removed by hand does not.
      if (flat.length > 0) records.push(fromHash(hash));
    }
    const data = records.slice(0, limit);
    const last = data.at(-1);
    const next = records.length > limit && last ? encodeCursor(last) : null;
    return { data, next };
  }

  /**
   * Merges the patch (fields set to `undefined` are ignored) and sets `updatedAt` to now, atomically. A
   * fenced update (`options.fence`) whose lease has another token fails with `lease_lost` and changes
   * nothing; it needs a standalone Redis (see `redis/fence.ts` for what Cluster would need).
   */
  async update(
    ref: SessionRef,
    patch: Partial<Omit<SessionRecord, 'id' | 'tenant' | 'createdAt'>>,
    options?: StoreCallOptions,
  ): Promise<void> {
    const fence = fenceParams(this.redis, this.prefix, options?.fence, false);
    const args: string[] = [fence.token];
    for (const [field, value] of Object.entries(patch)) {
      if (value !== undefined && PATCHABLE.has(field) && field !== 'updatedAt') {
        args.push(field, JSON.stringify(value));
      }
    }
    args.push('updatedAt', JSON.stringify(Date.now()));
    const key = recordKey(registryBase(this.prefix, ref.tenant), ref.id);
    const reply = await redisCall(
      'update session',
      () => UPDATE.run(this.redis, [key, ...fence.keys], args),
      options?.signal,
    );
    checkFenceReply(reply, options?.fence, `updating session ${ref.tenant}/${ref.id}`);
  }

  async delete(ref: SessionRef, options?: StoreCallOptions): Promise<void> {
    const base = registryBase(this.prefix, ref.tenant);
    await redisCall(
      'delete session',
      () => DELETE.run(this.redis, [recordKey(base, ref.id), `${base}:list`], []),
      options?.signal,
    );
  }
}

function recordKey(base: string, id: string): string {
  return `${base}:s:${id}`;
}

/** Fixed-width createdAt first, so that byte order is (createdAt, id) order (MAX_SAFE_INTEGER has 16 digits). */
function listMember(createdAt: number, id: string): string {
  return `${String(createdAt).padStart(16, '0')}:${id}`;
}

function fromHash(hash: Record<string, string>): SessionRecord {
  const managed = hash.managed;
  const field = (name: (typeof RECORD_FIELDS)[number]): unknown => {
    const value = hash[name];
    if (value === undefined) {
      throw new BerthError('store_unavailable', `redis session record lacks the field ${name}`);
    }
    return JSON.parse(value);
  };
  return {
    id: field('id') as string,
    tenant: field('tenant') as string,
    title: field('title') as string | null,
    metadata: field('metadata') as Record<string, string>,
    pattern: field('pattern') as Pattern,
    agent: field('agent') as AgentConfig,
    status: field('status') as SessionStatus,
    sdkSessionId: field('sdkSessionId') as string,
    started: field('started') as boolean,
    createdAt: field('createdAt') as number,
    updatedAt: field('updatedAt') as number,
    usage: field('usage') as Usage,
    turns: field('turns') as number,
    ...(managed === undefined ? {} : { managed: JSON.parse(managed) as ManagedSessionFields }),
  };
}
