/**
 * The stores benchmark: what each transcript store costs, through `openStores(url)` (the code path Berth
 * runs), against the bare driver doing the least the same work needs, on the same backend, in the same
 * run. Backends: SQLite (a file under a temp dir), PostgreSQL (127.0.0.1:5432, a fresh schema), Redis
 * (127.0.0.1:6379, a fresh key prefix) and S3 (an s3rver this suite starts, a fresh bucket). A backend
 * whose URL scheme this build's `openStores` does not know is reported as not available.
 *
 * (1) Append throughput: entries shaped like real transcript lines (~700 bytes of JSON), appended one call
 *     after another in batches of 1, 5 and 50, one session key per measurement, the store and its floor
 *     taking turns batch by batch.
 * (2) Load latency of sessions of 100, 1,000, 2,000 and 10,000 entries; the 2,000-entry session is the one
 *     (1) wrote in batches of 5, the others are written in batches of 50 (S3: of 5, so that its
 *     compaction runs as it would under a real session).
 * (3) The durable mirror Berth puts in front of a networked store: `DurableMirror.append` (a spool write
 *     that returns before shipping) against the adapter's own `append`, and how fast a backlog drains.
 * (4) Hydrate: a Berth server builds a ~30-turn session, stops; a second server with a new data dir on the
 *     same store resumes it; its next turn (load + subprocess start + turn) against a fresh session's
 *     first turn on the same server (the same subprocess start, nothing to load).
 *
 * The floors (raw driver, no uuid dedup, no summary, no index): SQLite a prepared INSERT per entry in one
 * transaction per batch / one SELECT; PostgreSQL one multi-row INSERT per batch / one SELECT; Redis RPUSH /
 * LRANGE; S3 one PutObject per batch / ListObjectsV2 and parallel GETs (the layout of the SDK's example
 * S3 adapter). Each floor key is its own table, list or key prefix, so no floor pays for a scan or an
 * index. Both sides serialize on append and parse on load, since a store takes and returns objects.
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { parseServeConfig } from '../src/config.js';
import { BerthError, describeError } from '../src/errors.js';
import { startBerth, type BerthServer } from '../src/server.js';
import { DurableMirror } from '../src/stores/durable-mirror.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { startMockModel, type MockModel, type Scenario } from '../src/testing/index.js';
import { POSTGRES_URL, REDIS_URL, postgresBackend, redisBackend } from '../test/helpers/backends.js';
import { startS3Server, type S3TestServer } from '../test/helpers/s3-server.js';
import {
  alternate,
  api,
  SseReader,
  assertNoSubprocessesUnder,
  describeMachine,
  machineLine,
  markdownTable,
  median,
  ms,
  now,
  percentile,
  ratio,
  textTable,
  withTimeout,
  type Machine,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
  signedMs,
  sessionBody,
  userMessage,
} from './lib.js';

export const stores: Suite = { name: 'stores', run };

// ---- sizes, bounds and targets ------------------------------------------------------------------------

const BATCH_SIZES = [1, 5, 50] as const;
/** Entries appended per batch size (S3: fewer in batches of 1, where each entry is an object write). */
const APPEND_ENTRIES = 2000;
const S3_APPEND_ENTRIES_BATCH_1 = 400;
/** Session sizes loaded; the 2,000-entry one is (1)'s batches-of-5 session. */
const LOAD_SIZES = [100, 1000, 2000, 10_000] as const;
const LOAD_WRITE_BATCH = 50;
const S3_LOAD_WRITE_BATCH = 5;
/** Loads per session size (after one warm-up), unless `--iterations` says otherwise... */
const LOADS = 10;
/** ...or fewer, but at least {@link MIN_LOADS}, once a side has spent this long on one size. */
const LOAD_BUDGET_MS = 4000;
const MIN_LOADS = 3;
const MIRROR_BATCH = 5;
const MIRROR_PAIRS = 300;
const S3_MIRROR_PAIRS = 100;
/** The backlog (2,000 entries in batches of 5) a restarted mirror drains. */
const DRAIN_ENTRIES = 2000;
/** The hydrate session's turns; each runs three tool calls, so the transcript has a few hundred entries. */
const BUILD_TURNS = 30;
/** Resumed and fresh turns measured per backend, each pair on its own new server. */
const HYDRATE_ROUNDS = 4;
/** Concurrent object writes and reads of the S3 floor (the S3 adapter's default load concurrency). */
const S3_FLOOR_CONCURRENCY = 16;

/** Hang bounds per backend and phase; far above what each takes on 2 busy cores. */
const PHASE_TIMEOUT_MS = { append: 90_000, load: 120_000, mirror: 60_000, hydrate: 120_000 };
const TURN_TIMEOUT_MS = 60_000;
/** The subprocesses of one server must be gone before the next starts (the kill grace is 3 s). */
const EXIT_GRACE_MS = 10_000;

/**
 * Reference points from the issue: the SDK's example adapters measured elsewhere on this kind of machine,
 * not re-measured here.
 */
const REFERENCE = {
  postgres: { load10kMs: 55, appendPerS: 8700 },
  redis: { load10kMs: 55, appendPerS: 22_000 },
  s3: { load2kMs: 700 },
};
const S3_LOAD_10K_TARGET_MS = 350;
const MIRROR_TARGET_MS = 1;

// ---- backends -----------------------------------------------------------------------------------------

type BackendName = 'SQLite' | 'PostgreSQL' | 'Redis' | 'S3';

/** The bare driver doing the least a transcript store must do; see the header. */
interface Floor {
  append(key: string, entries: SessionStoreEntry[]): Promise<void>;
  load(key: string): Promise<SessionStoreEntry[]>;
  close(): Promise<void>;
}

/** Isolated state on one backend: a `--store` URL, its floor, and the cleanup that removes both. */
interface BackendSetup {
  url: string;
  floor: Floor;
  /** The server's version, for the setup line. */
  version: string;
  /** Counts the objects holding a transcript (S3 only: shows what compaction left). */
  countObjects?: (sessionId: string) => Promise<number>;
  cleanup(): Promise<void>;
}

interface BackendSpec {
  name: BackendName;
  /** Sets up isolated state; `root` is the suite's temp dir. */
  setUp(root: string): Promise<BackendSetup>;
  appendEntries(batch: number): number;
  loadWriteBatch: number;
  /** Pairs of appends for (3); 0 for a local store, which Berth never mirrors. */
  mirrorPairs: number;
}

const BACKENDS: readonly BackendSpec[] = [
  {
    name: 'SQLite',
    setUp: setUpSqlite,
    appendEntries: () => APPEND_ENTRIES,
    loadWriteBatch: LOAD_WRITE_BATCH,
    mirrorPairs: 0,
  },
  {
    name: 'PostgreSQL',
    setUp: setUpPostgres,
    appendEntries: () => APPEND_ENTRIES,
    loadWriteBatch: LOAD_WRITE_BATCH,
    mirrorPairs: MIRROR_PAIRS,
  },
  {
    name: 'Redis',
    setUp: setUpRedis,
    appendEntries: () => APPEND_ENTRIES,
    loadWriteBatch: LOAD_WRITE_BATCH,
    mirrorPairs: MIRROR_PAIRS,
  },
  {
    name: 'S3',
    setUp: setUpS3,
    appendEntries: (batch) => (batch === 1 ? S3_APPEND_ENTRIES_BATCH_1 : APPEND_ENTRIES),
    loadWriteBatch: S3_LOAD_WRITE_BATCH,
    mirrorPairs: S3_MIRROR_PAIRS,
  },
];

async function setUpSqlite(root: string): Promise<BackendSetup> {
  const dir = path.join(root, 'sqlite');
  await mkdir(dir, { recursive: true });
  const db = new Database(path.join(dir, 'floor.db'));
  // The adapter's own pragmas (sqlite-database.ts), so that both commit alike.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const tables = new Map<string, string>();
  const table = (key: string): string => {
    let name = tables.get(key);
    if (!name) {
      name = `scratch_${tables.size}`;
      db.exec(`CREATE TABLE ${name} (entry TEXT NOT NULL)`);
      tables.set(key, name);
    }
    return name;
  };
  const floor: Floor = {
    append(key, entries) {
      const insert = db.prepare<[string]>(`INSERT INTO ${table(key)} (entry) VALUES (?)`);
      db.transaction(() => {
        for (const entry of entries) insert.run(JSON.stringify(entry));
      })();
      return Promise.resolve();
    },
    load(key) {
      const rows = db
        .prepare<[], string>(`SELECT entry FROM ${table(key)}`)
        .pluck()
        .all();
      return Promise.resolve(rows.map((row) => JSON.parse(row) as SessionStoreEntry));
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
  const version = (db.prepare('SELECT sqlite_version()').pluck().get() as string) ?? '?';
  return {
    url: `sqlite:${path.join(dir, 'berth.db')}`,
    floor,
    version: `SQLite ${version} (better-sqlite3), WAL, synchronous=NORMAL, on ${os.tmpdir()}`,
    // The directory goes with the suite's temp dir.
    cleanup: () => Promise.resolve(),
  };
}

async function setUpPostgres(): Promise<BackendSetup> {
  const store = await postgresBackend().create();
  const schema = new URL(store.url).searchParams.get('schema')!;
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  let version: string;
  try {
    await client.connect();
    // The adapter creates the schema when it opens; the floor's tables go in it, so they go with it.
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    const shown = await client.query<{ server_version: string }>('SHOW server_version');
    version = shown.rows[0]?.server_version ?? '?';
  } catch (err) {
    await client.end().catch(() => undefined);
    await store.cleanup().catch(() => undefined);
    throw err;
  }
  const tables = new Map<string, string>();
  const table = async (key: string): Promise<string> => {
    let name = tables.get(key);
    if (!name) {
      name = `"${schema}".scratch_${tables.size}`;
      tables.set(key, name);
      await client.query(`CREATE TABLE ${name} (entry text NOT NULL)`);
    }
    return name;
  };
  const floor: Floor = {
    async append(key, entries) {
      const values = entries.map((_, i) => `($${i + 1})`).join(', ');
      const lines = entries.map((entry) => JSON.stringify(entry));
      await client.query(`INSERT INTO ${await table(key)} (entry) VALUES ${values}`, lines);
    },
    async load(key) {
      const result = await client.query<{ entry: string }>(`SELECT entry FROM ${await table(key)}`);
      return result.rows.map((row) => JSON.parse(row.entry) as SessionStoreEntry);
    },
    close: () => client.end(),
  };
  return {
    url: store.url,
    floor,
    version: `PostgreSQL ${version} on 127.0.0.1:5432`,
    async cleanup() {
      await client.end().catch(() => undefined);
      await store.cleanup();
    },
  };
}

async function setUpRedis(): Promise<BackendSetup> {
  const store = await redisBackend().create();
  const prefix = new URL(store.url).searchParams.get('prefix')!;
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let version: string;
  try {
    await redis.connect();
    version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?';
  } catch (err) {
    // Else it would go on reconnecting, and keep the process alive.
    redis.disconnect();
    throw err;
  }
  // Under the prefix, so the backend's cleanup removes the floor's lists too.
  const list = (key: string): string => `${prefix}:floor:${key}`;
  const floor: Floor = {
    async append(key, entries) {
      await redis.rpush(list(key), ...entries.map((entry) => JSON.stringify(entry)));
    },
    async load(key) {
      const lines = await redis.lrange(list(key), 0, -1);
      return lines.map((line) => JSON.parse(line) as SessionStoreEntry);
    },
    close() {
      redis.disconnect();
      return Promise.resolve();
    },
  };
  return {
    url: store.url,
    floor,
    version: `Redis ${version} on 127.0.0.1:6379`,
    async cleanup() {
      redis.disconnect();
      await store.cleanup();
    },
  };
}

async function setUpS3(): Promise<BackendSetup> {
  // openStores takes credentials from the AWS SDK's provider chain; s3rver accepts these.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const server = await startS3Server();
  const bucket = `berth-bench-${randomUUID().slice(0, 8)}`;
  try {
    await server.createBucket(bucket);
  } catch (err) {
    await server.close();
    throw err;
  }
  const s3rver = createRequire(import.meta.url)('s3rver/package.json') as { version: string };
  return {
    url: `s3://${bucket}/sessions?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
    floor: s3Floor(server, bucket),
    version: `s3rver ${s3rver.version} on 127.0.0.1 (a child process, files under ${os.tmpdir()})`,
    async countObjects(sessionId) {
      const keys = await listKeys(server, bucket, 'sessions/transcripts/');
      return keys.filter((key) => key.includes(`/${sessionId}~/`)).length;
    },
    async cleanup() {
      try {
        await server.removeBucket(bucket);
      } finally {
        await server.close();
      }
    },
  };
}

/** One object per batch under `floor/KEY/`, named by its place; a load lists them and GETs them all. */
function s3Floor(server: S3TestServer, bucket: string): Floor {
  const written = new Map<string, number>();
  return {
    async append(key, entries) {
      const seq = (written.get(key) ?? 0) + 1;
      written.set(key, seq);
      await server.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `floor/${key}/${String(seq).padStart(12, '0')}`,
          Body: JSON.stringify(entries),
          ContentType: 'application/json',
        }),
      );
    },
    async load(key) {
      const keys = await listKeys(server, bucket, `floor/${key}/`);
      const bodies = await mapLimit(keys, S3_FLOOR_CONCURRENCY, async (objectKey) => {
        const got = await server.client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey }));
        return JSON.parse(await got.Body!.transformToString()) as SessionStoreEntry[];
      });
      return bodies.flat();
    },
    // The server's client is the server's to destroy.
    close: () => Promise.resolve(),
  };
}

async function listKeys(server: S3TestServer, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await server.client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** `work` over `items`, at most `limit` at once, results in the items' order. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** True when `openStores` refused the URL because this build has no adapter for its scheme. */
function isUnsupportedScheme(err: unknown): boolean {
  return (
    err instanceof BerthError && err.code === 'invalid_config' && /unsupported store URL/.test(err.message)
  );
}

// ---- transcript-shaped entries ------------------------------------------------------------------------

/** ~700 bytes of JSON each, alternating user and assistant lines, chained by parentUuid like the CLI's. */
class EntryWriter {
  private parent: string | null = null;
  private count = 0;
  private readonly cwd = '/srv/berth/workspaces/default/sess_3Fb2zskN2F7ZjCzDQZEi';

  constructor(private readonly sessionId: string) {}

  next(n: number): SessionStoreEntry[] {
    return Array.from({ length: n }, () => this.entry());
  }

  private entry(): SessionStoreEntry {
    const i = this.count++;
    const uuid = randomUUID();
    const common = {
      parentUuid: this.parent,
      isSidechain: false,
      uuid,
      timestamp: new Date(Date.UTC(2026, 10, 22, 2, 0, 0, i * 250)).toISOString(),
      userType: 'external',
      entrypoint: 'sdk-ts',
      cwd: this.cwd,
      sessionId: this.sessionId,
      version: '2.1.330',
      gitBranch: 'HEAD',
    };
    this.parent = uuid;
    if (i % 2 === 0) {
      return {
        type: 'user',
        ...common,
        promptId: randomUUID(),
        message: { role: 'user', content: `Turn ${i / 2}: ${LOREM.slice(0, 180)}` },
        permissionMode: 'default',
      };
    }
    return {
      type: 'assistant',
      ...common,
      requestId: `req_${uuid.slice(0, 8)}`,
      message: {
        id: `msg_${uuid.slice(0, 12)}`,
        role: 'assistant',
        model: 'claude-opus-5-5',
        content: [{ type: 'text', text: LOREM.slice(0, 120) }],
        stop_reason: 'end_turn',
        usage: { input_tokens: 11_515, output_tokens: 34 },
      },
    };
  }
}

const LOREM =
  'The build failed because the lockfile pins a version that the registry no longer serves; updating the ' +
  'pin and regenerating the lockfile fixes it, and the tests pass again on both supported Node versions.';

const newKey = (): SessionKey => ({ projectKey: 'bench', sessionId: randomUUID() });

/** The mean size of the entries, as JSON, for the report. */
function meanEntryBytes(): number {
  const entries = new EntryWriter(randomUUID()).next(1000);
  return sum(entries.map((entry) => Buffer.byteLength(JSON.stringify(entry)))) / entries.length;
}

// ---- (1) appends --------------------------------------------------------------------------------------

interface AppendSide {
  entries: number;
  /** ms per append call. */
  latencies: number[];
}

interface AppendResult {
  batch: number;
  adapter: AppendSide;
  floor: AppendSide;
}

type Append = (entries: SessionStoreEntry[]) => Promise<void>;

/** Appends `entries` entries in batches of `batch`, one call after another, timing each call. */
async function appendAll(
  append: Append,
  writer: EntryWriter,
  entries: number,
  batch: number,
): Promise<AppendSide> {
  const latencies: number[] = [];
  for (let done = 0; done < entries; done += batch) {
    const next = writer.next(Math.min(batch, entries - done));
    const t = now();
    await append(next);
    latencies.push(now() - t);
  }
  return { entries, latencies };
}

/** The same, for two stores taking turns batch by batch, so that drift in the machine hits both alike. */
async function appendPaired(
  a: { append: Append; writer: EntryWriter },
  b: { append: Append; writer: EntryWriter },
  entries: number,
  batch: number,
): Promise<[AppendSide, AppendSide]> {
  const sides: [AppendSide, AppendSide] = [
    { entries, latencies: [] },
    { entries, latencies: [] },
  ];
  for (let done = 0; done < entries; done += batch) {
    for (const [i, side] of [a, b].entries()) {
      const next = side.writer.next(Math.min(batch, entries - done));
      const t = now();
      await side.append(next);
      sides[i]!.latencies.push(now() - t);
    }
  }
  return sides;
}

interface MeasureContext {
  spec: BackendSpec;
  store: SessionStore;
  setup: BackendSetup;
  log: (line: string) => void;
  /** Berth servers running now, so that a phase that timed out leaves no subprocess behind. */
  servers: Set<BerthServer>;
}

/** The keys (1) wrote in batches of 5, reused as the 2,000-entry load session. */
interface Written {
  key: SessionKey;
  floorKey: string;
  entries: number;
  batch: number;
}

async function measureAppends(ctx: MeasureContext): Promise<{ results: AppendResult[]; batch5: Written }> {
  const results: AppendResult[] = [];
  let batch5: Written | undefined;
  for (const batch of BATCH_SIZES) {
    const entries = ctx.spec.appendEntries(batch);
    const key = newKey();
    const floorKey = `append-${batch}`;
    const [adapter, floor] = await appendPaired(
      { append: (e) => ctx.store.append(key, e), writer: new EntryWriter(key.sessionId) },
      { append: (e) => ctx.setup.floor.append(floorKey, e), writer: new EntryWriter(key.sessionId) },
      entries,
      batch,
    );
    await expectEntries(ctx, key, floorKey, entries);
    results.push({ batch, adapter, floor });
    if (batch === 5) batch5 = { key, floorKey, entries, batch };
    ctx.log(
      `  ${ctx.spec.name} append x${batch}: ${perSecond(adapter)} entries/s, floor ${perSecond(floor)} entries/s`,
    );
  }
  return { results, batch5: batch5! };
}

/** A benchmark that does not check what it stored could time a store that loses entries. */
async function expectEntries(
  ctx: MeasureContext,
  key: SessionKey,
  floorKey: string,
  n: number,
): Promise<void> {
  const stored = (await ctx.store.load(key))?.length ?? 0;
  const floor = (await ctx.setup.floor.load(floorKey)).length;
  if (stored !== n || floor !== n) {
    throw new Error(
      `${ctx.spec.name}: ${n} entries appended, but the store holds ${stored}, the floor ${floor}`,
    );
  }
}

/** Entries per second of append time (the time between the calls, the other store's turns, excluded). */
const rate = (side: AppendSide): number => side.entries / (sum(side.latencies) / 1000);

// ---- (2) loads ----------------------------------------------------------------------------------------

interface LoadResult {
  entries: number;
  writeBatch: number;
  adapter: number[];
  floor: number[];
  /** S3: the objects holding the transcript when it was loaded. */
  objects?: number;
}

async function measureLoads(ctx: MeasureContext, batch5: Written, loads: number): Promise<LoadResult[]> {
  const writeBatch = ctx.spec.loadWriteBatch;
  const sessions = new Map<number, Written>([[batch5.entries, batch5]]);
  // Written at once, one key each (S3: 2,000 appends for the largest, so side by side saves most of it).
  const started = now();
  await Promise.all(
    LOAD_SIZES.filter((n) => !sessions.has(n)).map(async (entries) => {
      const key = newKey();
      const floorKey = `load-${entries}`;
      await appendAll((e) => ctx.store.append(key, e), new EntryWriter(key.sessionId), entries, writeBatch);
      await writeFloor(ctx, floorKey, new EntryWriter(key.sessionId), entries, writeBatch);
      sessions.set(entries, { key, floorKey, entries, batch: writeBatch });
    }),
  );
  ctx.log(`  ${ctx.spec.name} load sessions written in ${ms(now() - started)} ms`);

  const results: LoadResult[] = [];
  for (const entries of LOAD_SIZES) {
    const session = sessions.get(entries)!;
    const adapter: number[] = [];
    const floor: number[] = [];
    const time = async (load: () => Promise<unknown[] | null>, into: number[] | undefined): Promise<void> => {
      const t = now();
      const got = await load();
      const elapsed = now() - t;
      if (got?.length !== entries) throw new Error(`${ctx.spec.name}: loaded ${got?.length} of ${entries}`);
      into?.push(elapsed);
    };
    const loadAdapter = (): Promise<unknown[] | null> => ctx.store.load(session.key);
    const loadFloor = (): Promise<unknown[] | null> => ctx.setup.floor.load(session.floorKey);
    await time(loadAdapter, undefined); // warm-up
    await time(loadFloor, undefined);
    // Alternating, so that drift hits both. A side stops early once it has a few samples and has spent
    // its budget (the S3 floor's 2,000 GETs), and the other goes on alone.
    const wants = (samples: number[]): boolean =>
      samples.length < loads && (samples.length < MIN_LOADS || sum(samples) < LOAD_BUDGET_MS);
    while (wants(adapter) || wants(floor)) {
      if (wants(adapter)) await time(loadAdapter, adapter);
      if (wants(floor)) await time(loadFloor, floor);
    }
    const objects = await ctx.setup.countObjects?.(session.key.sessionId);
    results.push({
      entries,
      writeBatch: session.batch,
      adapter,
      floor,
      ...(objects !== undefined && { objects }),
    });
    ctx.log(
      `  ${ctx.spec.name} load ${entries}: ${ms(median(adapter))} ms, floor ${ms(median(floor))} ms` +
        (objects !== undefined ? ` (${objects} objects)` : ''),
    );
  }
  return results;
}

/** The floor's copy of a load session; S3 objects go up side by side, since the write is not measured. */
async function writeFloor(
  ctx: MeasureContext,
  floorKey: string,
  writer: EntryWriter,
  entries: number,
  batch: number,
): Promise<void> {
  const batches = Array.from({ length: Math.ceil(entries / batch) }, (_, i) =>
    writer.next(Math.min(batch, entries - i * batch)),
  );
  if (ctx.spec.name !== 'S3') {
    for (const next of batches) await ctx.setup.floor.append(floorKey, next);
    return;
  }
  // The floor names an object when its append is called, and mapLimit calls in order.
  await mapLimit(batches, S3_FLOOR_CONCURRENCY, (next) => ctx.setup.floor.append(floorKey, next));
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

// ---- (3) the durable mirror ---------------------------------------------------------------------------

interface MirrorResult {
  /** ms per `append` of the adapter itself. */
  direct: number[];
  /** ms per `DurableMirror.append` in front of the same adapter. */
  mirror: number[];
  drain: { entries: number; ms: number };
}

/**
 * Pairs of appends of {@link MIRROR_BATCH} entries: the adapter's, then the mirror's; the mirror then ships
 * (untimed) so that no shipping overlaps the next pair. The mirror's time includes what its shipper does
 * synchronously on waking, as it would under the SDK.
 */
async function measureMirror(ctx: MeasureContext, root: string): Promise<MirrorResult> {
  const dir = await mkdtemp(path.join(root, 'mirror-'));
  const direct: number[] = [];
  const mirrored: number[] = [];
  const mirror = new DurableMirror({ backend: ctx.store, spoolPath: path.join(dir, 'spool.db') });
  try {
    const directKey = newKey();
    const mirrorKey = newKey();
    const directWriter = new EntryWriter(directKey.sessionId);
    const mirrorWriter = new EntryWriter(mirrorKey.sessionId);
    for (let i = 0; i < ctx.spec.mirrorPairs; i++) {
      const a = directWriter.next(MIRROR_BATCH);
      let t = now();
      await ctx.store.append(directKey, a);
      direct.push(now() - t);
      const b = mirrorWriter.next(MIRROR_BATCH);
      t = now();
      await mirror.append(mirrorKey, b);
      mirrored.push(now() - t);
      await mirror.drain();
    }
    const shipped = (await ctx.store.load(mirrorKey))?.length ?? 0;
    if (shipped !== ctx.spec.mirrorPairs * MIRROR_BATCH) {
      throw new Error(`${ctx.spec.name}: the mirror shipped ${shipped} entries`);
    }
  } finally {
    await mirror.close();
  }
  const drain = await measureDrain(ctx, path.join(dir, 'backlog.db'));
  ctx.log(
    `  ${ctx.spec.name} mirror append ${ms(median(mirrored))} ms vs direct ${ms(median(direct))} ms; ` +
      `drain ${Math.round(drain.entries / (drain.ms / 1000))} entries/s`,
  );
  return { direct, mirror: mirrored, drain };
}

/**
 * A spool filled while the backend refused everything, then a mirror opened on it with the real backend
 * (a host restarted after an outage): the time until its backlog is shipped.
 */
async function measureDrain(
  ctx: MeasureContext,
  spoolPath: string,
): Promise<{ entries: number; ms: number }> {
  const key = newKey();
  const writer = new EntryWriter(key.sessionId);
  const refusing: SessionStore = {
    append: () => Promise.reject(new Error('the backend is down')),
    load: () => Promise.resolve(null),
  };
  const down = new DurableMirror({ backend: refusing, spoolPath });
  try {
    for (let done = 0; done < DRAIN_ENTRIES; done += MIRROR_BATCH)
      await down.append(key, writer.next(MIRROR_BATCH));
  } finally {
    await down.close();
  }
  const started = now();
  const up = new DurableMirror({ backend: ctx.store, spoolPath });
  try {
    await up.drain();
    const elapsed = now() - started;
    const shipped = (await ctx.store.load(key))?.length ?? 0;
    if (shipped !== DRAIN_ENTRIES) throw new Error(`${ctx.spec.name}: the drain shipped ${shipped} entries`);
    return { entries: DRAIN_ENTRIES, ms: elapsed };
  } finally {
    await up.close();
  }
}

// ---- (4) hydrate a resumed session --------------------------------------------------------------------

interface HydrateResult {
  /** Entries of the built session's transcript in the store when the second server resumed it. */
  entries: number;
  /** The adapter's `load` of that transcript, straight from the store (median of a few). */
  loadMs: number;
  buildMs: number;
  /** POST user.message -> `session.status_idle` of the resumed session, on a new server. */
  resumed: number[];
  /** The same for a fresh session's first turn on that server. */
  fresh: number[];
}

/** Every build turn runs three tool calls and a longer reply, so that 30 turns make a real transcript. */
const BUILD_SCENARIO: Scenario = {
  name: 'build',
  match: { userText: 'build step' },
  steps: [
    {
      text: 'Let me look at the repository first.',
      toolUse: [
        { name: 'Bash', input: { command: 'echo checking the lockfile' } },
        { name: 'Bash', input: { command: 'echo listing the tests' } },
        { name: 'Bash', input: { command: 'echo reading the config' } },
      ],
    },
    { text: `Done with {{userText}}. ${LOREM}` },
  ],
};

async function measureHydrate(
  ctx: MeasureContext,
  url: string,
  root: string,
  model: MockModel,
): Promise<HydrateResult> {
  const dir = await mkdtemp(path.join(root, 'hydrate-'));
  let server = 0;
  const start = async (): Promise<BerthServer> => {
    const config = parseServeConfig(
      [
        '--port',
        '0',
        '--data-dir',
        path.join(dir, `host-${server++}`),
        '--model-endpoint',
        model.url,
        '--store',
        url,
        // Unconfined like the bare SDK; the sandbox's own cost is the `sandbox` suite.
        '--sandbox',
        'none',
      ],
      { PATH: process.env.PATH },
    );
    const berth = await startBerth(config, { telemetry: makeTelemetry() });
    ctx.servers.add(berth);
    return berth;
  };
  const stop = async (berth: BerthServer): Promise<void> => {
    ctx.servers.delete(berth);
    await berth.close();
    await assertNoSubprocessesUnder(dir, EXIT_GRACE_MS);
  };

  // The first host builds the session.
  let berth = await start();
  let id: string;
  let sdkSessionId: string;
  const built = now();
  try {
    id = ((await api(berth.url, 'POST', '/v1/sessions', await sessionBody(berth.url))) as { id: string }).id;
    sdkSessionId = (await berth.host.get('default', id)).snapshot.sdkSessionId;
    const sse = await SseReader.open(`${berth.url}/v1/sessions/${id}/events/stream`);
    try {
      for (let i = 0; i < BUILD_TURNS; i++) await turn(berth, sse, id, `build step ${i}`);
    } finally {
      sse.close();
    }
  } finally {
    await stop(berth);
  }
  const buildMs = now() - built;
  const transcriptKey = { projectKey: 'default', sessionId: sdkSessionId };
  const stored = (await ctx.store.load(transcriptKey))?.length ?? 0;
  const loads: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = now();
    await ctx.store.load(transcriptKey);
    loads.push(now() - t);
  }
  ctx.log(`  ${ctx.spec.name} hydrate: built ${BUILD_TURNS} turns (${stored} entries) in ${ms(buildMs)} ms`);

  // Each round: a new host (new data dir) resumes the session and starts a fresh one, in turns.
  const resumed: number[] = [];
  const fresh: number[] = [];
  for (let round = 0; round < HYDRATE_ROUNDS; round++) {
    berth = await start();
    try {
      const question = `resume check ${round}`;
      const resume = async (): Promise<void> => {
        const sse = await SseReader.open(`${berth.url}/v1/sessions/${id}/events/stream`);
        try {
          resumed.push(await turn(berth, sse, id, question));
        } finally {
          sse.close();
        }
        // A resume that loaded nothing would be fast for the wrong reason.
        const request = model.requests.findLast((r) => r.isMain && r.userText === question);
        if (!JSON.stringify(request?.messages ?? []).includes('build step 0')) {
          throw new Error(`${ctx.spec.name}: the resumed turn did not carry the earlier turns`);
        }
      };
      const startFresh = async (): Promise<void> => {
        const created = (await api(berth.url, 'POST', '/v1/sessions', await sessionBody(berth.url))) as {
          id: string;
        };
        const sse = await SseReader.open(`${berth.url}/v1/sessions/${created.id}/events/stream`);
        try {
          fresh.push(await turn(berth, sse, created.id, `fresh check ${round}`));
        } finally {
          sse.close();
          await api(berth.url, 'DELETE', `/v1/sessions/${created.id}`);
        }
      };
      await alternate(round, resume, startFresh);
      if (round === HYDRATE_ROUNDS - 1) await api(berth.url, 'DELETE', `/v1/sessions/${id}`);
    } finally {
      await stop(berth);
    }
    ctx.log(
      `  ${ctx.spec.name} hydrate ${round + 1}/${HYDRATE_ROUNDS}: resumed ${ms(resumed.at(-1)!)} ms, fresh ${ms(fresh.at(-1)!)} ms`,
    );
  }
  await rm(dir, { recursive: true, force: true });
  return { entries: stored, loadMs: median(loads), buildMs, resumed, fresh };
}

/** One turn through the API: POST user.message -> `session.status_idle` on the SSE stream, in ms. */
async function turn(berth: BerthServer, sse: SseReader, id: string, text: string): Promise<number> {
  const started = now();
  const posted = api(berth.url, 'POST', `/v1/sessions/${id}/events`, {
    events: [userMessage(text)],
  });
  const idle = await sse.next((e) => e.type === 'session.status_idle', TURN_TIMEOUT_MS);
  await posted;
  const reason = idle.data.stop_reason as { type?: string } | undefined;
  if (reason?.type !== 'end_turn') throw new Error(`a turn ended with ${JSON.stringify(reason)}`);
  return idle.at - started;
}

// ---- one backend, then all ----------------------------------------------------------------------------

interface BackendResult {
  name: BackendName;
  state: 'measured' | 'not available' | 'failed';
  /** Why it failed, or what `openStores` said. */
  error?: string;
  version?: string;
  url?: string;
  appends?: AppendResult[];
  loads?: LoadResult[];
  mirror?: MirrorResult;
  hydrate?: HydrateResult;
}

async function measureBackend(
  spec: BackendSpec,
  root: string,
  model: MockModel,
  options: SuiteOptions,
): Promise<BackendResult> {
  const log = options.log;
  log(`  ${spec.name}: setting up`);
  let setup: BackendSetup | undefined;
  let opened: Stores | undefined;
  const servers = new Set<BerthServer>();
  const result: BackendResult = { name: spec.name, state: 'measured' };
  try {
    setup = await spec.setUp(root);
    result.version = setup.version;
    result.url = setup.url.replace(/\?.*$/, '');
    try {
      opened = await openStores(setup.url);
    } catch (err) {
      if (!isUnsupportedScheme(err)) throw err;
      log(`  ${spec.name}: not available in this build (${(err as Error).message})`);
      return { ...result, state: 'not available', error: (err as Error).message };
    }
    const ctx: MeasureContext = { spec, store: opened.transcriptStore, setup, log, servers };
    const { results, batch5 } = await withTimeout(
      measureAppends(ctx),
      PHASE_TIMEOUT_MS.append,
      `${spec.name} appends`,
    );
    result.appends = results;
    const loads = options.iterations ?? LOADS;
    result.loads = await withTimeout(
      measureLoads(ctx, batch5, loads),
      PHASE_TIMEOUT_MS.load,
      `${spec.name} loads`,
    );
    if (spec.mirrorPairs > 0) {
      result.mirror = await withTimeout(
        measureMirror(ctx, root),
        PHASE_TIMEOUT_MS.mirror,
        `${spec.name} mirror`,
      );
    }
    result.hydrate = await withTimeout(
      measureHydrate(ctx, setup.url, root, model),
      PHASE_TIMEOUT_MS.hydrate,
      `${spec.name} hydrate`,
    );
  } catch (err) {
    const message = describeError(err);
    log(`  ${spec.name}: FAILED: ${message}`);
    result.state = 'failed';
    result.error = message;
  } finally {
    for (const berth of servers) await berth.close().catch(() => undefined);
    await opened?.close().catch((err: unknown) => log(`  ${spec.name}: closing the stores: ${String(err)}`));
    await setup?.floor.close().catch(() => undefined);
    await setup?.cleanup().catch((err: unknown) => log(`  ${spec.name}: cleanup failed: ${String(err)}`));
  }
  return result;
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const machine = describeMachine();
  const loadBefore = os.loadavg()[0]!;
  const credentials = [process.env.AWS_ACCESS_KEY_ID, process.env.AWS_SECRET_ACCESS_KEY] as const;
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-stores-'));
  const model = await startMockModel({ scenarios: [BUILD_SCENARIO] });
  const results: BackendResult[] = [];
  let failure: unknown;
  try {
    for (const spec of BACKENDS) results.push(await measureBackend(spec, root, model, options));
  } catch (err) {
    failure = err;
  } finally {
    await model.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
    restoreEnv('AWS_ACCESS_KEY_ID', credentials[0]);
    restoreEnv('AWS_SECRET_ACCESS_KEY', credentials[1]);
  }
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(describeError(failure));
  return buildReport(
    { machine, load: [loadBefore, os.loadavg()[0]!], entryBytes: meanEntryBytes() },
    results,
  );
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

// ---- the report ---------------------------------------------------------------------------------------

const perSecond = (side: AppendSide): string => count(rate(side));
const count = (value: number): string =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-';

/** A backend without numbers: its name, blank cells, and why in the last one. */
function absentRow(r: BackendResult, columns: number): Row {
  const why = r.state === 'not available' ? 'not available in this build' : `failed: ${r.error ?? '?'}`;
  return [r.name, ...Array<string>(columns - 2).fill(''), why];
}

function appendRows(results: readonly BackendResult[]): Row[] {
  return results.flatMap((r): Row[] => {
    if (!r.appends) return [absentRow(r, 8)];
    return r.appends.map((a) => [
      r.name,
      String(a.batch),
      count(a.adapter.entries),
      perSecond(a.adapter),
      ms(median(a.adapter.latencies)),
      perSecond(a.floor),
      ms(median(a.floor.latencies)),
      ratio(sum(a.adapter.latencies) / sum(a.floor.latencies)),
    ]);
  });
}

function loadRows(results: readonly BackendResult[]): Row[] {
  return results.flatMap((r): Row[] => {
    if (!r.loads) return [absentRow(r, 8)];
    return r.loads.map((l) => [
      r.name,
      count(l.entries),
      String(l.writeBatch) + (l.objects !== undefined ? ` (${l.objects} objects)` : ''),
      l.adapter.length === l.floor.length
        ? String(l.adapter.length)
        : `${l.adapter.length} / ${l.floor.length}`,
      ms(median(l.adapter)),
      ms(percentile(l.adapter, 90)),
      ms(median(l.floor)),
      ratio(median(l.adapter) / median(l.floor)),
    ]);
  });
}

function mirrorRows(results: readonly BackendResult[]): Row[] {
  return results
    .filter((r) => (BACKENDS.find((b) => b.name === r.name)?.mirrorPairs ?? 0) > 0)
    .map((r): Row => {
      if (!r.mirror) return absentRow(r, 7);
      const m = r.mirror;
      return [
        r.name,
        String(m.mirror.length),
        `${ms(median(m.direct))} / ${ms(percentile(m.direct, 90))}`,
        `${ms(median(m.mirror))} / ${ms(percentile(m.mirror, 90))}`,
        ms(percentile(m.mirror, 99)),
        ratio(median(m.direct) / median(m.mirror)),
        count(m.drain.entries / (m.drain.ms / 1000)),
      ];
    });
}

function hydrateRows(results: readonly BackendResult[]): Row[] {
  return results.map((r): Row => {
    if (!r.hydrate) return absentRow(r, 7);
    const h = r.hydrate;
    return [
      r.name,
      String(h.entries),
      ms(h.loadMs),
      ms(median(h.resumed)),
      ms(median(h.fresh)),
      signedMs(median(h.resumed) - median(h.fresh)),
      h.resumed.map(ms).join(', '),
    ];
  });
}

interface Target {
  name: string;
  /** Undefined when the backend was not measured. */
  value: number | undefined;
  shown: (value: number) => string;
  pass: (value: number) => boolean;
}

function targets(results: readonly BackendResult[]): Target[] {
  const by = (name: BackendName): BackendResult | undefined => results.find((r) => r.name === name);
  const load10k = (name: BackendName): number | undefined => {
    const l = by(name)?.loads?.find((x) => x.entries === 10_000);
    return l && median(l.adapter);
  };
  const append5 = (name: BackendName): number | undefined => {
    const a = by(name)?.appends?.find((x) => x.batch === 5);
    return a && rate(a.adapter);
  };
  const mirror = (name: BackendName): number | undefined => {
    const m = by(name)?.mirror;
    return m && median(m.mirror);
  };
  const msShown = (v: number): string => `${ms(v)} ms`;
  const rateShown = (v: number): string => `${count(v)} entries/s`;
  const loadTarget = (name: BackendName, limit: number): Target => ({
    name: `${name} loads 10,000 entries in <= ${limit} ms (median)`,
    value: load10k(name),
    shown: msShown,
    pass: (v) => v <= limit,
  });
  const appendTarget = (name: BackendName, floor: number, source: string): Target => ({
    name: `${name} appends >= ${count(floor)} entries/s in batches of 5 (${source})`,
    value: append5(name),
    shown: rateShown,
    pass: (v) => v >= floor,
  });
  const mirrorTarget = (name: BackendName): Target => ({
    name: `${name}: the mirror's append takes < ${MIRROR_TARGET_MS} ms (median)`,
    value: mirror(name),
    shown: msShown,
    pass: (v) => v < MIRROR_TARGET_MS,
  });
  return [
    loadTarget('PostgreSQL', REFERENCE.postgres.load10kMs),
    appendTarget('PostgreSQL', REFERENCE.postgres.appendPerS, 'the Postgres reference'),
    loadTarget('Redis', REFERENCE.redis.load10kMs),
    appendTarget('Redis', REFERENCE.redis.appendPerS, 'the Redis reference'),
    loadTarget('SQLite', REFERENCE.postgres.load10kMs),
    appendTarget('SQLite', REFERENCE.postgres.appendPerS, 'the Postgres reference'),
    {
      ...loadTarget('S3', S3_LOAD_10K_TARGET_MS),
      name: `S3 loads 10,000 entries in < ${S3_LOAD_10K_TARGET_MS} ms (median, after its compaction)`,
      pass: (v) => v < S3_LOAD_10K_TARGET_MS,
    },
    mirrorTarget('PostgreSQL'),
    mirrorTarget('Redis'),
    mirrorTarget('S3'),
  ];
}

/** The reference points beside this run's store and floor doing the same. */
function referenceRows(results: readonly BackendResult[]): Row[] {
  const find = (name: BackendName): BackendResult | undefined => results.find((r) => r.name === name);
  const load = (name: BackendName, entries: number): [string, string] => {
    const l = find(name)?.loads?.find((x) => x.entries === entries);
    return l ? [`${ms(median(l.adapter))} ms`, `${ms(median(l.floor))} ms`] : ['not measured', ''];
  };
  const append = (name: BackendName): [string, string] => {
    const a = find(name)?.appends?.find((x) => x.batch === 5);
    return a
      ? [`${perSecond(a.adapter)} entries/s`, `${perSecond(a.floor)} entries/s`]
      : ['not measured', ''];
  };
  const { postgres, redis, s3 } = REFERENCE;
  return [
    ['Postgres example: load 10,000 entries', `~${postgres.load10kMs} ms`, ...load('PostgreSQL', 10_000)],
    [
      'Postgres example: append, batches of 5',
      `~${count(postgres.appendPerS)} entries/s`,
      ...append('PostgreSQL'),
    ],
    ['Redis example: load 10,000 entries', `~${redis.load10kMs} ms`, ...load('Redis', 10_000)],
    ['Redis example: append, batches of 5', `~${count(redis.appendPerS)} entries/s`, ...append('Redis')],
    [
      'S3 example: load 2,000 entries written in batches of 5 (400 parts)',
      `~${ms(s3.load2kMs)} ms, linear in parts`,
      ...load('S3', 2000),
    ],
  ];
}

const APPEND_HEADER: Row = [
  'backend',
  'batch',
  'entries',
  'entries/s',
  'ms/append',
  'floor entries/s',
  'floor ms/append',
  'time vs floor',
];
const LOAD_HEADER: Row = [
  'backend',
  'entries',
  'written in batches of',
  'loads (store / floor)',
  'median ms',
  'p90 ms',
  'floor median ms',
  'vs floor',
];
const MIRROR_HEADER: Row = [
  'backend',
  'pairs',
  'adapter append ms (median / p90)',
  'mirror append ms (median / p90)',
  'mirror p99 ms',
  'adapter / mirror',
  `drain entries/s (${count(DRAIN_ENTRIES)} backlog)`,
];
const HYDRATE_HEADER: Row = [
  'backend',
  'transcript entries',
  'store load ms',
  'resumed turn ms (median)',
  'fresh first turn ms (median)',
  'difference ms',
  'resumed turns ms',
];
const REFERENCE_HEADER: Row = [
  'reference (SDK example adapters, measured elsewhere)',
  'reference',
  'Berth, this run',
  'floor, this run',
];
const TARGET_HEADER: Row = ['target', 'measured', ''];

interface RunInfo {
  machine: Machine;
  /** The 1-minute load average when the suite started and ended. */
  load: [number, number];
  entryBytes: number;
}

function buildReport(info: RunInfo, results: readonly BackendResult[]): SuiteReport {
  const { machine, load } = info;
  const targetList = targets(results);
  const targetRows = targetList.map((t): Row => {
    if (t.value === undefined) return [t.name, 'not measured', 'MISS'];
    return [t.name, t.shown(t.value), t.pass(t.value) ? 'pass' : 'MISS'];
  });
  const missed = targetList
    .filter((t) => t.value === undefined || !t.pass(t.value))
    .map((t) => (t.value === undefined ? `${t.name} (not measured)` : t.name));

  const setupLines = results.map((r) => {
    const state =
      r.state === 'measured'
        ? ''
        : r.state === 'not available'
          ? ': not available in this build'
          : `: failed: ${r.error}`;
    return `- ${r.name}: ${r.version ?? 'not set up'}${state}`;
  });
  const loadLine = `load average (1 min) ${load[0].toFixed(1)} at the start, ${load[1].toFixed(1)} at the end`;

  /** Title, header, rows, and what the reader needs to know to read them (Markdown only). */
  const tables: Array<[string, Row, Row[], string[]]> = [
    [
      `Append throughput (${count(APPEND_ENTRIES)} entries per batch size; S3: ${S3_APPEND_ENTRIES_BATCH_1} in batches of 1)`,
      APPEND_HEADER,
      appendRows(results),
      [
        'One call after another, the store and its floor taking turns batch by batch so that drift in the',
        'machine hits both alike; entries/s counts the time spent in the calls. "time vs floor" is how many',
        'times longer the store took than its floor for the same entries.',
      ],
    ],
    [
      `Load latency (after one warm-up, up to ${LOADS} loads per size, alternating with the floor)`,
      LOAD_HEADER,
      loadRows(results),
      [
        'The 2,000-entry session is the one the append measurement wrote in batches of 5. "objects" is what',
        'S3 held for the transcript when it was loaded (loose parts and compacted segments). A side stops',
        `early, after at least ${MIN_LOADS} loads, once it has spent ${LOAD_BUDGET_MS / 1000} s on a size.`,
      ],
    ],
    [
      `Durable mirror (appends of ${MIRROR_BATCH} entries; a ${count(DRAIN_ENTRIES)}-entry backlog)`,
      MIRROR_HEADER,
      mirrorRows(results),
      [
        'Each pair is one append straight to the store, then one through `DurableMirror` (its SQLite spool',
        'on the same disk, WAL, synchronous=NORMAL) in front of the same store; the mirror then ships before',
        "the next pair, so that no shipping overlaps a timed append. The mirror's time includes what its",
        'shipper does synchronously when it wakes. The drain fills a spool while the store refuses every',
        'batch, then times a new mirror on that spool until all is shipped (a host restarted after an',
        'outage; the shipper sends up to 200 spooled batches of one session per store call). SQLite is not',
        'listed: Berth mirrors only networked stores.',
      ],
    ],
    [
      `Hydrate (a ${BUILD_TURNS}-turn session resumed on a new host, against a fresh session's first turn; ${HYDRATE_ROUNDS} rounds)`,
      HYDRATE_HEADER,
      hydrateRows(results),
      [
        `A Berth server (in this process, the real \`claude\` CLI, the scripted model) runs ${BUILD_TURNS} turns, each`,
        'with three Bash tool calls, then stops. Each round starts a new server with a new data dir on the',
        "same store and times the resumed session's next message until `session.status_idle` (registry",
        "read, transcript load, subprocess start, one turn) and a fresh session's first message on the",
        'same server (the same subprocess start, nothing to load); the order alternates by round. "store',
        'load" is the store\'s own `load` of that transcript. The sessions are deleted at the end.',
      ],
    ],
    [
      'Reference points (not re-measured)',
      REFERENCE_HEADER,
      referenceRows(results),
      [
        "The SDK's example adapters, measured elsewhere on this kind of machine; the floors show how this",
        "run's machine compares (the S3 floor has the example's layout: one object per append).",
      ],
    ],
    ['Targets', TARGET_HEADER, targetRows, []],
  ];

  const text = [
    machineLine(machine),
    loadLine,
    ...setupLines,
    ...tables.flatMap(([title, header, rows]) => ['', title, textTable(header, rows)]),
  ].join('\n');

  const markdown = [
    '## Stores: appends, loads, the durable mirror and hydrating a resumed session',
    '',
    `Measured on ${machineLine(machine)}; ${loadLine} (above 2, other work shared the CPUs).`,
    'Source: `bench/stores.ts`.',
    '',
    'Setup: every service runs on this one machine and is reached over 127.0.0.1, so the numbers hold no',
    'network latency; each backend gets isolated state (a temp dir, a fresh schema, a fresh key prefix, a',
    'fresh bucket) that the suite removes afterwards.',
    '',
    ...setupLines,
    '',
    'Every store is opened through `openStores(url)`, the code path Berth runs. Entries are shaped like',
    `transcript lines (user and assistant messages chained by \`parentUuid\`, ${Math.round(info.entryBytes)} bytes of JSON on`,
    'average). The floor is the bare driver doing the least the same work needs, on the same backend, in the',
    'same run: SQLite a prepared INSERT in one transaction per batch and one SELECT; PostgreSQL one multi-row',
    'INSERT per batch into an unindexed table and one SELECT; Redis RPUSH and LRANGE; S3 one PutObject per',
    `batch, then ListObjectsV2 and ${S3_FLOOR_CONCURRENCY} GETs at a time (the layout of the SDK's example S3 adapter). Each`,
    'floor key is its own table, list or prefix; both sides serialize entries on append and parse them on',
    'load, since a store takes and returns objects.',
    '',
    ...tables.flatMap(([title, header, rows, note]) => [
      `### ${title}`,
      '',
      markdownTable(header, rows),
      '',
      ...(note.length > 0 ? [...note, ''] : []),
    ]),
  ].join('\n');

  return {
    text,
    markdown,
    raw: {
      machine,
      loadAverage: load,
      entryBytes: info.entryBytes,
      reference: REFERENCE,
      targets: { s3Load10kMs: S3_LOAD_10K_TARGET_MS, mirrorAppendMs: MIRROR_TARGET_MS },
      backends: results,
    },
    missed,
  };
}
