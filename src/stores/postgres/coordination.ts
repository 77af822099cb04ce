/**
 * Host registry, session leases and superseded writes on PostgreSQL (tables `hosts`, `leases` and
 * `superseded`, see `postgres/schema.ts`), on the same pool and schema as the other stores, whose fenced
 * writes check `leases` (see `postgres/fence.ts`).
 *
 * Every call is one statement, so each is atomic on its own. Liveness is decided by the database's clock:
 * each statement reads `now()` (its transaction's start, the statement's own in autocommit) once, so the
 * checks and the new expiry of one statement agree; a statement that waited for a row lock decides as of
 * when it started, which only makes a lease look live a little longer and an expiry come a little sooner.
 * Times come back as epoch ms.
 */
import type { Pool } from 'pg';
import { BerthError } from '../../errors.js';
import type {
  AcquireResult,
  Coordination,
  HostEntry,
  HostState,
  Lease,
  SupersededWrite,
} from '../coordination.js';
import type { StoreCallOptions } from '../types.js';
import { DEFAULT_POSTGRES_SCHEMA, ensurePostgresSchema, pgTask, quoteSchema } from './schema.js';
import type { PostgresStoreOptions } from './schema.js';

/** Options of {@link PostgresCoordination}. */
export type PostgresCoordinationOptions = PostgresStoreOptions;

interface HostRow {
  id: string;
  url: string;
  state: string;
  capacity: number;
  slots_free: number;
  last_heartbeat_at: string;
  expires_at: string;
}

interface LeaseRow {
  key: string;
  host_id: string;
  token: string;
  expires_at: string;
  live: boolean;
}

interface SupersededRow {
  key: string;
  host_id: string;
  token: string;
  id: string;
  kind: string;
  subpath: string;
  payload: string;
  kept_at: string;
}

/**
 * {@link Coordination} on PostgreSQL. `acquire` is one upsert that, on a conflict, always locks and rewrites
 * the row, keeping its values when the lease is another host's and live: so it answers with the lease as
 * it stands after the decision, whichever way it went, in one round trip and without a retry loop.
 */
export class PostgresCoordination implements Coordination {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly sql: ReturnType<typeof sqlTexts>;

  constructor(options: PostgresCoordinationOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    this.sql = sqlTexts(quoteSchema(this.schema));
  }

  async heartbeat(
    host: Omit<HostEntry, 'lastHeartbeatAt' | 'expiresAt'>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkTtl(ttlMs);
    const values = [host.id, host.url, host.state, host.capacity, host.slotsFree, ttlMs];
    await this.run('heartbeat', options, (pool) => pool.query(this.sql.heartbeat, values));
  }

  async hosts(options?: StoreCallOptions): Promise<HostEntry[]> {
    const result = await this.run('list hosts', options, (pool) => pool.query<HostRow>(this.sql.hosts));
    return result.rows.map((row) => ({
      id: row.id,
      url: row.url,
      state: row.state as HostState,
      capacity: row.capacity,
      slotsFree: row.slots_free,
      lastHeartbeatAt: Number(row.last_heartbeat_at),
      expiresAt: Number(row.expires_at),
    }));
  }

  async removeHost(id: string, options?: StoreCallOptions): Promise<void> {
    await this.run('remove host', options, (pool) => pool.query(this.sql.removeHost, [id]));
  }

  async acquire(
    key: string,
    hostId: string,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<AcquireResult> {
    checkTtl(ttlMs);
    const result = await this.run('acquire lease', options, (pool) =>
      pool.query<LeaseRow>(this.sql.acquire, [key, hostId, ttlMs]),
    );
    const lease = fromLeaseRow(onlyRow(result.rows, 'acquire'));
    return lease.hostId === hostId ? { acquired: true, lease } : { acquired: false, lease };
  }

  async renew(
    hostId: string,
    leases: ReadonlyArray<{ key: string; token: number }>,
    ttlMs: number,
    options?: StoreCallOptions,
  ): Promise<string[]> {
    checkTtl(ttlMs);
    if (leases.length === 0) return [];
    const keys = leases.map((lease) => lease.key);
    const tokens = leases.map((lease) => lease.token);
    const result = await this.run('renew leases', options, (pool) =>
      pool.query<{ key: string }>(this.sql.renew, [hostId, keys, tokens, ttlMs]),
    );
    const renewed = new Set(result.rows.map((row) => row.key));
    return [...new Set(keys)].filter((key) => !renewed.has(key));
  }

  async release(key: string, hostId: string, token: number, options?: StoreCallOptions): Promise<boolean> {
    const result = await this.run('release lease', options, (pool) =>
      pool.query(this.sql.release, [key, hostId, token]),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async lease(key: string, options?: StoreCallOptions): Promise<Lease | undefined> {
    const result = await this.run('read lease', options, (pool) =>
      pool.query<LeaseRow>(this.sql.lease, [key]),
    );
    const row = result.rows[0];
    return row && fromLeaseRow(row);
  }

  async leases(keys: readonly string[], options?: StoreCallOptions): Promise<Map<string, Lease>> {
    if (keys.length === 0) return new Map();
    const result = await this.run('read leases', options, (pool) =>
      pool.query<LeaseRow>(this.sql.leases, [[...keys]]),
    );
    return new Map(result.rows.map((row) => [row.key, fromLeaseRow(row)]));
  }

  async deleteLease(key: string, options?: StoreCallOptions): Promise<void> {
    await this.run('delete lease', options, (pool) => pool.query(this.sql.deleteLease, [key]));
  }

  async keepSuperseded(write: SupersededWrite, options?: StoreCallOptions): Promise<void> {
    // Serialized before any I/O, so that a payload that cannot be (a cycle) fails without a round trip.
    const payload = JSON.stringify(write.payload);
    if (payload === undefined) {
      throw new BerthError('invalid_request', `superseded write ${write.id}: its payload is not JSON data`);
    }
    const values = [
      write.key,
      write.hostId,
      write.id,
      write.token,
      write.kind,
      write.subpath,
      payload,
      write.keptAt,
    ];
    await this.run('keep superseded write', options, (pool) => pool.query(this.sql.keepSuperseded, values));
  }

  async superseded(key: string, options?: StoreCallOptions): Promise<SupersededWrite[]> {
    const result = await this.run('list superseded writes', options, (pool) =>
      pool.query<SupersededRow>(this.sql.superseded, [key]),
    );
    return result.rows.map((row) => ({
      key: row.key,
      hostId: row.host_id,
      token: Number(row.token),
      id: Number(row.id),
      kind: row.kind as SupersededWrite['kind'],
      subpath: row.subpath,
      payload: JSON.parse(row.payload) as unknown,
      keptAt: Number(row.kept_at),
    }));
  }

  async deleteSuperseded(key: string, options?: StoreCallOptions): Promise<void> {
    await this.run('delete superseded writes', options, (pool) =>
      pool.query(this.sql.deleteSuperseded, [key]),
    );
  }

  /** `work` once the schema is ready, with the store's errors and the caller's signal. */
  private async run<T>(
    action: string,
    options: StoreCallOptions | undefined,
    work: (pool: Pool) => Promise<T>,
  ): Promise<T> {
    const signal = options?.signal;
    await pgTask('migrate', () => ensurePostgresSchema(this.pool, this.schema), signal);
    return pgTask(action, () => work(this.pool), signal);
  }
}

/** A ttl must be a positive number of ms: a zero or negative one would make a lease that is never live. */
function checkTtl(ttlMs: number): void {
  if (!(ttlMs > 0 && Number.isFinite(ttlMs))) {
    throw new BerthError('invalid_request', `ttlMs must be a positive number of ms, got ${ttlMs}`);
  }
}

function onlyRow<T>(rows: T[], what: string): T {
  const row = rows[0];
  if (!row) throw new BerthError('store_unavailable', `postgres ${what} returned no row`);
  return row;
}

function fromLeaseRow(row: LeaseRow): Lease {
  return {
    key: row.key,
    hostId: row.host_id,
    token: Number(row.token),
    expiresAt: Number(row.expires_at),
    live: row.live,
  };
}

/** A timestamptz as epoch ms (a bigint, which `pg` returns as a string). */
const epochMs = (column: string) => `floor(extract(epoch FROM ${column}) * 1000)::bigint`;

/** `now()` plus the ms in parameter `$param`. */
const nowPlus = (param: number) => `now() + $${param}::float8 * interval '1 millisecond'`;

function sqlTexts(schema: string) {
  const hosts = `${schema}.hosts`;
  const leases = `${schema}.leases`;
  const superseded = `${schema}.superseded`;
  const leaseColumns = `key, host_id, token, ${epochMs('expires_at')} AS expires_at, expires_at > now() AS live`;
  // Whether the caller may take the lease `l` that `excluded` asks for: it holds it already, or it expired.
  const takeable = `(l.host_id = excluded.host_id OR l.expires_at <= now())`;
  return {
    heartbeat: `
      INSERT INTO ${hosts} AS h (id, url, state, capacity, slots_free, last_heartbeat_at, expires_at)
      VALUES ($1, $2, $3, $4, $5, now(), ${nowPlus(6)})
      ON CONFLICT (id) DO UPDATE SET url = excluded.url, state = excluded.state, capacity = excluded.capacity,
        slots_free = excluded.slots_free, last_heartbeat_at = excluded.last_heartbeat_at,
        expires_at = excluded.expires_at`,
    hosts: `
      SELECT id, url, state, capacity, slots_free, ${epochMs('last_heartbeat_at')} AS last_heartbeat_at,
        ${epochMs('expires_at')} AS expires_at
      FROM ${hosts} WHERE expires_at > now() ORDER BY id`,
    removeHost: `DELETE FROM ${hosts} WHERE id = $1`,
    // A conflict always updates, so that RETURNING answers either way; a refused acquire sets the row to
    // what it was. The token grows only when the lease changes hands.
    acquire: `
      INSERT INTO ${leases} AS l (key, host_id, token, expires_at) VALUES ($1, $2, 1, ${nowPlus(3)})
      ON CONFLICT (key) DO UPDATE SET
        token = CASE WHEN l.host_id = excluded.host_id OR NOT ${takeable} THEN l.token ELSE l.token + 1 END,
        host_id = CASE WHEN ${takeable} THEN excluded.host_id ELSE l.host_id END,
        expires_at = CASE WHEN ${takeable} THEN excluded.expires_at ELSE l.expires_at END
      RETURNING ${leaseColumns}`,
    // Whatever its expiry: a lease that expired but was not taken over is still the host's to renew.
    renew: `
      UPDATE ${leases} AS l SET expires_at = ${nowPlus(4)}
      FROM unnest($2::text[], $3::bigint[]) AS r (key, token)
      WHERE l.key = r.key AND l.host_id = $1 AND l.token = r.token
      RETURNING l.key`,
    // `least`: a lease that had expired already keeps its earlier end.
    release: `
      UPDATE ${leases} SET expires_at = least(expires_at, now())
      WHERE key = $1 AND host_id = $2 AND token = $3`,
    lease: `SELECT ${leaseColumns} FROM ${leases} WHERE key = $1`,
    leases: `SELECT ${leaseColumns} FROM ${leases} WHERE key = ANY ($1::text[])`,
    deleteLease: `DELETE FROM ${leases} WHERE key = $1`,
    keepSuperseded: `
      INSERT INTO ${superseded} (key, host_id, id, token, kind, subpath, payload, kept_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8)
      ON CONFLICT (key, host_id, id) DO NOTHING`,
    superseded: `
      SELECT key, host_id, id, token, kind, subpath, payload::text AS payload, kept_at FROM ${superseded}
      WHERE key = $1 ORDER BY kept_at, host_id, id`,
    deleteSuperseded: `DELETE FROM ${superseded} WHERE key = $1`,
  };
}
