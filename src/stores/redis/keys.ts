/**
 * Key scheme of the Redis stores (`RedisSessionStore`, `RedisRegistry`, `RedisEventLog`, `RedisCatalog`,
 * `RedisCoordination`). `P` is the store's prefix (`berth` by default); `enc(x)` is the percent-encoding
 * of {@link encodeKeyPart}.
 *
 * Transcripts (`RedisSessionStore`), one hash tag per session, `T = P:t:{enc(projectKey):enc(sessionId)}`:
 * - `T:entries` LIST of the main transcript's entries, as JSON, in append order.
 * - `T:uuids` SET of the uuids stored in `T:entries` (the dedup index of idempotent appends).
 * - `T:entries:SUBPATH` and `T:uuids:SUBPATH`: the same for each subpath (e.g. `subagents/agent-1`).
 * - `T:subkeys` SET of the session's subpaths.
 * - `T:meta` HASH of the main transcript: `mtime` (Redis server epoch-ms of the last append that stored
 *   something, strictly increasing), `gen` (a random token set when the transcript is created, so that a
 *   delete and re-create is never mistaken for the same transcript), `summary` (the SDK's folded summary
 *   data, JSON), `sumlen` (how many entries of `T:entries` the summary covers) and `smtime` (the `mtime`
 *   of the append that brought `sumlen` to its value).
 * Per project, `P:p:{enc(projectKey)}` ZSET: sessionId -> last append (client epoch-ms).
 *
 * Registry (`RedisRegistry`), one hash tag per tenant, `R = P:r:{enc(tenant)}`:
 * - `R:s:ID` HASH: one field per `SessionRecord` field, each JSON, plus `indexMember`; an optional field
 *   (`managed`) is absent when the record has none.
 * - `R:list` ZSET, all scores 0, members `CREATEDAT:ID` with CREATEDAT zero-padded to 16 digits, so that
 *   lexicographic order is (createdAt, id) order and a keyset cursor is a single `ZRANGE ... BYLEX`.
 *
 * Event log (`RedisEventLog`): `P:e:{enc(sessionKey)}` ZSET, score `seq`, member the event as JSON.
 *
 * Catalog (`RedisCatalog`), one hash tag per tenant, `K = P:cat:{enc(tenant)}`, and per kind (`agent`,
 * `agent_version`, `environment`, checked before any key is built):
 * - `K:KIND:e:ID` HASH, one entry: `revision`, `createdAt`, `updatedAt` (decimal), `doc` (JSON), `member`.
 * - `K:KIND:list` ZSET, all scores 0, members `CREATEDAT:ID` as in the registry's list.
 *   Kinds never meet: after `K:agent` comes `:` or `_`.
 *
 * Coordination (`RedisCoordination`, see `stores/coordination.ts`), times in epoch-ms of the server clock:
 * - `P:l:{enc(leaseKey)}` HASH, one lease: `host`, `token`, `expires`. The lease key is the session key
 *   `tenant/id`, so a lease shares its tag, hence its slot, with the session's event log.
 * - `P:x:{enc(leaseKey)}` HASH of the superseded writes kept for the session, field `JSON([hostId, id])`
 *   (the idempotency key), value the write as JSON; `P:x:{enc(leaseKey)}:order` LIST of those fields in
 *   the order they were kept.
 * - `H = P:h:{hosts}`: `H:live` ZSET host id -> `expires`; `H:host:ID` HASH per host: `url`, `state`,
 *   `capacity`, `slotsFree`, `beat` (the last heartbeat), `expires`.
 *
 * Why hash tags: Redis Cluster runs a script or MULTI only on keys of one slot, and a key's slot is the
 * CRC16 of its hash tag, the text between its first `{` and the next `}`. Everything that must change
 * together shares a tag: a session's entries, uuids, subkeys, meta (append, fold, delete are one script
 * each); a tenant's records and their list (create and delete keep them in step); a tenant's catalog
 * entries and their lists. Encoding the parts inside a tag keeps `{`, `}` and the `:` separator out of
 * them, so a tag can neither end early nor be read two ways. After the tag any bytes are safe, which is
 * why subpaths, registry ids and catalog ids stay raw there: Lua builds those keys from the stored subpath
 * or id, and `:entries` / `:entries:X` / `:uuids:X` (or `:s:X` / `:list`, `:KIND:e:X` / `:KIND:list`) can
 * never be the same key.
 *
 * What is not atomic, and why it is safe: the project index cannot share a slot with all its sessions,
 * so it is a hint, written in a separate command. An append sends the index update together with (and,
 * on one connection, before) its script, a delete removes the index member after the session's keys,
 * and readers (`listSessions`, `listSessionSummaries`) keep only members whose `T:meta` exists and report
 * the `mtime` stored there. A crash or a delete racing an append can leave a stale member (filtered out
 * on read, trimmed by age when a TTL is set) or, rarely, miss one until the session's next append.
 */
import { BerthError } from '../../errors.js';

/** The default key prefix. */
export const DEFAULT_REDIS_PREFIX = 'berth';

const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/;

/**
 * Checks a key prefix: 1-200 characters of `A-Z a-z 0-9 _ . : / -`, starting with a letter or digit.
 * Braces would break the hash tags; glob characters would make `SCAN MATCH PREFIX:*` match other keys.
 */
export function checkRedisPrefix(prefix: string): string {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new BerthError(
      'invalid_config',
      `redis key prefix ${JSON.stringify(prefix)} must be 1-200 characters of A-Z a-z 0-9 _ . : / -, starting with a letter or digit`,
    );
  }
  return prefix;
}

const UNRESERVED = /^[A-Za-z0-9_.-]*$/;

/**
 * Percent-encodes `part` for use inside a hash tag: `A-Z a-z 0-9 _ . -` stay as they are, every other
 * character becomes `%XX` per UTF-8 byte, and a lone surrogate (which UTF-8 cannot carry) becomes `%uXXXX`.
 * The result never contains `{`, `}` or `:`, and distinct inputs give distinct outputs.
 */
export function encodeKeyPart(part: string): string {
  if (UNRESERVED.test(part)) return part;
  let out = '';
  for (const char of part) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x80 && UNRESERVED.test(char)) out += char;
    else if (code >= 0xd800 && code <= 0xdfff) out += `%u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    else
      for (const byte of Buffer.from(char, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The keys of one transcript (main or subpath) and of the session it belongs to. */
export interface TranscriptKeys {
  /** `T`, the session's key base, which Lua extends with `:entries:SUBPATH` and `:uuids:SUBPATH`. */
  base: string;
  /** The list and uuid set of the transcript the key names (main or subpath). */
  entries: string;
  uuids: string;
  meta: string;
  subkeys: string;
  mainEntries: string;
  mainUuids: string;
  /** The project index (another slot). */
  index: string;
}

/** Keys of `key`'s transcript; `subpath` `''` or absent names the main transcript. */
export function transcriptKeys(
  prefix: string,
  key: { projectKey: string; sessionId: string; subpath?: string | undefined },
): TranscriptKeys {
  const base = `${prefix}:t:{${encodeKeyPart(key.projectKey)}:${encodeKeyPart(key.sessionId)}}`;
  const mainEntries = `${base}:entries`;
  const mainUuids = `${base}:uuids`;
  return {
    base,
    entries: key.subpath ? `${mainEntries}:${key.subpath}` : mainEntries,
    uuids: key.subpath ? `${mainUuids}:${key.subpath}` : mainUuids,
    meta: `${base}:meta`,
    subkeys: `${base}:subkeys`,
    mainEntries,
    mainUuids,
    index: projectIndexKey(prefix, key.projectKey),
  };
}

/** The project's session index: sessionId -> time of its last append. */
export function projectIndexKey(prefix: string, projectKey: string): string {
  return `${prefix}:p:{${encodeKeyPart(projectKey)}}`;
}

/** `R`, the tenant's registry key base; records are `R:s:ID`, the list `R:list`. */
export function registryBase(prefix: string, tenant: string): string {
  return `${prefix}:r:{${encodeKeyPart(tenant)}}`;
}

/** `K`, the tenant's catalog key base; entries are `K:KIND:e:ID`, the lists `K:KIND:list`. */
export function catalogBase(prefix: string, tenant: string): string {
  return `${prefix}:cat:{${encodeKeyPart(tenant)}}`;
}

/** The event log of one session (`tenant/id`). */
export function eventLogKey(prefix: string, sessionId: string): string {
  return `${prefix}:e:{${encodeKeyPart(sessionId)}}`;
}

/** The lease of a session (`leaseKey` is its session key `tenant/id`). */
export function leaseKey(prefix: string, key: string): string {
  return `${prefix}:l:{${encodeKeyPart(key)}}`;
}

/** The superseded writes kept for a session: the hash of writes, and the order they were kept in. */
export function supersededKeys(prefix: string, key: string): { writes: string; order: string } {
  const writes = `${prefix}:x:{${encodeKeyPart(key)}}`;
  return { writes, order: `${writes}:order` };
}

/** `H`, the base of the host registry; Lua extends it with `:host:ID`. */
export function hostsBase(prefix: string): string {
  return `${prefix}:h:{hosts}`;
}
