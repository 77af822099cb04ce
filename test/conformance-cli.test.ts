/**
 * `berth conformance STORE_URL` as a user runs it: the built CLI (`npm test` builds first) against a SQLite
 * file and the live PostgreSQL, Redis and a local S3 server. Checks the table, the summary line, the exit
 * status, that no namespace is left behind, and that broken URLs exit 2 with a message. Also checks that
 * `berth/testing` runs the suites where vitest cannot be loaded.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  catalogConformanceCases,
  coordinationConformanceCases,
  eventLogConformanceCases,
  registryConformanceCases,
  sessionStoreConformanceCases,
} from '../src/testing/conformance/index.js';
import type { ConformanceResult } from '../src/testing/conformance/index.js';
import { POSTGRES_URL, REDIS_URL } from './helpers/backends.js';
import { S3RVER_CREDENTIALS, startS3Server } from './helpers/s3-server.js';

const BIN = path.resolve('bin/berth.js');
const CASES = [
  ...sessionStoreConformanceCases,
  ...registryConformanceCases,
  ...eventLogConformanceCases,
  ...catalogConformanceCases,
];
const SHARED = CASES.filter((kase) => kase.shared).length;
type CaseTitle = { suite: string; name: string };
/** PostgreSQL and Redis also run the coordination suite (host registry, leases, fencing). */
const MANY_HOST_CASES = [...CASES, ...coordinationConformanceCases];

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with a clean environment plus `env`. */
function berth(args: string[], env: Record<string, string> = {}): Promise<Exit> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A table with a header, one passing row per case in suite order, and the summary line. */
function expectAllPassed(run: Exit, cases: readonly CaseTitle[] = CASES): void {
  const CASES = cases;
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const lines = run.stdout.split('\n');
  const header = lines.findIndex((line) => /^SUITE +CASE +RESULT +MS$/.test(line));
  expect(header).toBeGreaterThan(0);
  const rows = lines.slice(header + 1, header + 1 + CASES.length);
  CASES.forEach((kase, i) => {
    expect(rows[i]).toMatch(new RegExp(`^${kase.suite} +${escape(kase.name)} +pass +\\d+$`));
  });
  expect(lines.slice(header + 1 + CASES.length)).toEqual([
    '',
    expect.stringMatching(new RegExp(`^${CASES.length} passed, 0 failed, 0 skipped \\(\\d+\\.\\d s\\)$`)),
    '',
  ]);
}

/** A local port that nothing listens on (just released by the OS). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('berth conformance', () => {
  it('passes every case on a SQLite file and leaves nothing beside it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-conformance-'));
    try {
      expectAllPassed(await berth(['conformance', `sqlite:${path.join(dir, 'berth.db')}`]));
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('passes every case on PostgreSQL, each in a schema of its own that is dropped after it', async () => {
    const schema = `berth_cli_${randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      const run = await berth(['conformance', `${POSTGRES_URL}?schema=${schema}`]);
      expectAllPassed(run, MANY_HOST_CASES);
      const left = await admin.query<{ nspname: string }>(
        'SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)',
        [schema],
      );
      // Neither the URL's schema nor any case's (`<schema>_c_<tag>`).
      expect(left.rows).toEqual([]);
    } finally {
      // What a failed run left, so that a failure here leaves nothing either.
      const { rows } = await admin.query<{ nspname: string }>(
        'SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)',
        [schema],
      );
      for (const { nspname } of rows) await admin.query(`DROP SCHEMA "${nspname}" CASCADE`);
      await admin.end();
    }
  }, 120_000);

  it('passes every case on Redis and deletes every key it wrote', async () => {
    const prefix = `berth-cli-${randomBytes(5).toString('hex')}`;
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    await redis.connect();
    try {
      expectAllPassed(await berth(['conformance', `${REDIS_URL}?prefix=${prefix}`]), MANY_HOST_CASES);
      // Every key starts with the prefix; the second pattern would also find one inside a hash tag.
      expect(await redis.keys(`*${prefix}*`)).toEqual([]);
    } finally {
      const left = await redis.keys(`*${prefix}*`);
      if (left.length > 0) await redis.unlink(...left);
      redis.disconnect();
    }
  }, 120_000);

  it('passes every case on S3 and deletes every object it wrote', async () => {
    const server = await startS3Server();
    try {
      await server.createBucket('conformance');
      // Someone else's object beside the URL's prefix, which must survive.
      await server.client.send(new PutObjectCommand({ Bucket: 'conformance', Key: 'team/other', Body: 'x' }));
      const url = `s3://conformance/team/berth?endpoint=${server.endpoint}&region=us-east-1&forcePathStyle=true`;
      expectAllPassed(
        await berth(['conformance', url], {
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
          // Otherwise the AWS SDK warns on stderr that its next versions need Node 22.
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        }),
      );
      const left = await server.client.send(new ListObjectsV2Command({ Bucket: 'conformance' }));
      expect((left.Contents ?? []).map((object) => object.Key)).toEqual(['team/other']);
    } finally {
      await server.close();
    }
  }, 180_000);

  it('prints JSON, runs only the cases --only selects, and skips shared cases on memory:', async () => {
    const run = await berth(['conformance', 'memory:', '--json', '--only', 'concurrency|^EventLog > keeps']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as {
      store: string;
      results: ConformanceResult[];
      passed: number;
      failed: number;
      skipped: number;
    };
    expect(report.store).toBe('memory:');
    expect(report.results.map((r) => [r.suite, r.name, r.status])).toEqual([
      ['SessionStore', 'appends in flight together on one instance lose nothing', 'pass'],
      ...CASES.filter((kase) => kase.shared).map((kase) => ['SessionStore', kase.name, 'skip']),
      ['EventLog', 'keeps sessions apart', 'pass'],
    ]);
    expect(report.results.filter((r) => r.status === 'skip').map((r) => r.reason)).toEqual(
      Array.from(
        { length: SHARED },
        () => 'memory: opens a new database each time, so no two instances share one',
      ),
    );
    expect([report.passed, report.failed, report.skipped]).toEqual([2, 0, SHARED]);
  });

  it('exits 2 with a message for a bad URL, an unreachable backend or bad arguments', async () => {
    const port = await closedPort();
    const cases: Array<[string[], RegExp]> = [
      [
        ['conformance', `postgres://postgres:hunter2secret@127.0.0.1:${port}/test`],
        new RegExp(`^berth: cannot use PostgreSQL at 127\\.0\\.0\\.1:${port} .*ECONNREFUSED`),
      ],
      [
        ['conformance', `redis://127.0.0.1:${port}`],
        /cannot connect to Redis at 127\.0\.0\.1:\d+: .*ECONNREFUSED/,
      ],
      [
        ['conformance', 'nope://somewhere'],
        /unsupported store URL; this build supports sqlite:PATH, memory:/,
      ],
      [['conformance', 'sqlite:'], /sqlite: needs a file path/],
      [['conformance', 's3://No_Such_Bucket/x'], /"No_Such_Bucket" is not a valid bucket name/],
      [['conformance'], /berth conformance takes one STORE_URL/],
      [['conformance', 'memory:', '--only', '('], /--only: Invalid regular expression/],
      [['conformance', 'memory:', '--only', 'no such case'], /--only no such case: no case matches/],
      [['conformance', 'memory:', '--verbose'], /Unknown option '--verbose'/],
    ];
    for (const [args, message] of cases) {
      const run = await berth(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.stderr).not.toContain('hunter2secret');
      expect(run.stdout, args.join(' ')).toBe('');
    }
  });

  it('is listed in the usage text and has its own help', async () => {
    expect((await berth(['help'])).stdout).toMatch(/^ {2}conformance URL +run the store conformance suites/m);
    const help = await berth(['conformance', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: berth conformance STORE_URL \[--json\] \[--only PATTERN\]/);
  });
});

describe('berth/testing without vitest', () => {
  it('runs the suites with the plain runner when vitest cannot be loaded', async () => {
    // A resolve hook that refuses vitest, as in an install without devDependencies. Run from the repository,
    // where vitest is installed, the script first checks that the hook refuses it.
    const hook = `data:text/javascript,${encodeURIComponent(
      "export async function resolve(s, c, next) { if (s === 'vitest' || s.startsWith('vitest/')) throw new Error('vitest is not installed'); return next(s, c); }",
    )}`;
    const dist = path.resolve('dist');
    const script = `
      import { register } from 'node:module';
      register(${JSON.stringify(hook)});
      const refused = await import('vitest').then(() => false, () => true);
      const testing = await import(${JSON.stringify(`${dist}/testing/index.js`)});
      const { openStores } = await import(${JSON.stringify(`${dist}/stores/open-stores.js`)});
      const results = await testing.runConformance(testing.eventLogConformanceCases, async () => {
        const stores = await openStores('memory:');
        return { instance: stores.eventLog, cleanup: () => stores.close() };
      });
      const vitestAdapter = await import(${JSON.stringify(`${dist}/testing/vitest.js`)}).then(() => 'loaded', (err) => err.message);
      process.stdout.write(JSON.stringify({ refused, statuses: results.map((r) => r.status), vitestAdapter }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      refused: true,
      statuses: eventLogConformanceCases.map(() => 'pass'),
      // The vitest registrations are a separate entry point, which does need vitest.
      vitestAdapter: 'vitest is not installed',
    });
  });
});
