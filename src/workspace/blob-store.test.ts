/**
 * The BlobStore conformance suite (`testing/conformance/blob-store-cases.ts`) on DirBlobStore over a temp
 * directory and on S3BlobStore over a local s3rver (`test/helpers/s3-server.ts`), each case on fresh
 * state. Then what is specific to each (layout, deadlines, failures), and `openBlobStore`. A machine
 * where s3rver cannot start fails this file; it never skips.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describeError, isBerthError } from '../errors.js';
import { startS3Server } from '../../test/helpers/s3-server.js';
import type { S3TestServer } from '../../test/helpers/s3-server.js';
import { closedPort, stubS3rverCredentials } from '../../test/helpers/s3-stubs.js';
import { ATOMIC_REPLACE_CASE, runBlobStoreConformance } from '../testing/blob-store-conformance.js';
import type { BlobStore } from './blob-store.js';
import { DirBlobStore } from './dir-blob-store.js';
import { openBlobStore } from './open-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

let server: S3TestServer;
try {
  server = await startS3Server();
} catch (err) {
  throw new Error(
    `cannot start s3rver for the S3BlobStore cases (test/helpers/s3-server.ts): ${describeError(err)}`,
    { cause: err },
  );
}
afterAll(() => server.close());

const bucket = `blobs-${randomUUID()}`;
await server.createBucket(bucket);
afterAll(() => server.removeBucket(bucket));

/** A temp directory that the file's last hook removes. */
const scratch = await mkdtemp(path.join(tmpdir(), 'berth-blob-test-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

async function freshDir(): Promise<string> {
  return mkdtemp(path.join(scratch, 'd-'));
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

runBlobStoreConformance('DirBlobStore', async () => {
  const root = path.join(await freshDir(), 'blobs');
  return { store: new DirBlobStore({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

runBlobStoreConformance(
  'S3BlobStore',
  () => {
    const prefix = `p-${randomUUID()}`;
    const client = server.newClient();
    return Promise.resolve({
      store: new S3BlobStore({ client, bucket, prefix }),
      cleanup: async () => {
        client.destroy();
        await new S3BlobStore({ client: server.client, bucket }).deletePrefix(prefix);
      },
    });
  },
  {
    skip: {
      [ATOMIC_REPLACE_CASE]:
        's3rver rewrites an object in place, so a read during a put can mix versions (S3 replaces atomically)',
    },
  },
);

/** A TCP server that accepts connections and never answers: an S3 endpoint that hangs. */
async function silentServer(): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    },
  };
}

describe('DirBlobStore', () => {
  it('lays blobs out as the header says, and leaves no temp files', async () => {
    const root = path.join(await freshDir(), 'blobs');
    const store = new DirBlobStore({ root });
    expect(store.shared).toBe(false);
    expect(store.description).toBe(`directory ${root}`);
    await store.putBuffer('a', Buffer.from('1'));
    await store.putBuffer('a/b', Buffer.from('2'));
    expect((await readdir(root)).sort()).toEqual(['a', 'a~']);
    expect(await readdir(path.join(root, 'a~'))).toEqual(['b']);
    expect(await readFile(path.join(root, 'a~', 'b'), 'utf8')).toBe('2');
  });

  it('fails a call that hangs on the filesystem with store_unavailable at its deadline', async () => {
    const root = path.join(await freshDir(), 'blobs');
    const store = new DirBlobStore({ root, timeoutMs: 200 });
    await store.putBuffer('hung', Buffer.from('x'));
    // A FIFO without a writer: open() blocks in the thread pool, as on a stalled disk or network mount.
    const fifo = path.join(root, 'hung');
    await rm(fifo);
    execFileSync('mkfifo', [fifo]);
    try {
      const err = await errorOf(store.getBuffer('hung'));
      expect(isBerthError(err, 'store_unavailable'), String(err)).toBe(true);
      expect(String(err)).toMatch(/no answer within 200 ms/);
    } finally {
      // Lets the blocked open() return, so that no thread-pool thread stays stuck.
      await (await open(fifo, 'w')).close();
    }
  });

  it('reports a failing filesystem as store_unavailable', async () => {
    const root = path.join(await freshDir(), 'blobs');
    // A file where the root directory belongs.
    await writeFile(root, 'not a directory');
    const store = new DirBlobStore({ root });
    const err = await errorOf(store.putBuffer('k', Buffer.from('v')));
    expect(isBerthError(err, 'store_unavailable')).toBe(true);
    expect(String(err)).toContain(root);
  });
});

describe('S3BlobStore', () => {
  it('keeps every object under its prefix', async () => {
    const prefix = `p-${randomUUID()}`;
    const store = new S3BlobStore({ client: server.client, bucket, prefix: `/${prefix}/` });
    expect(store.shared).toBe(true);
    expect(store.description).toBe(`s3://${bucket}/${prefix}/`);
    await store.putBuffer('a/b', Buffer.from('x'));
    const source = path.join(await freshDir(), 'f');
    await writeFile(source, 'y');
    await store.putFile('c', source);
    const listing = await server.client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }),
    );
    expect((listing.Contents ?? []).map((object) => object.Key).sort()).toEqual([
      `${prefix}/a/b`,
      `${prefix}/c`,
    ]);
    await store.deletePrefix('a');
    await store.delete('c');
  });

  it('fails calls to a server that never answers with store_unavailable at their deadline', async () => {
    const silent = await silentServer();
    const client = server.newClient({ endpoint: silent.endpoint, maxAttempts: 1 });
    try {
      const store = new S3BlobStore({ client, bucket, prefix: 'p', timeoutMs: 200 });
      const source = path.join(await freshDir(), 'f');
      await writeFile(source, 'y');
      for (const [, call] of blobCalls(store, source)) {
        const err = await errorOf(call());
        expect(isBerthError(err, 'store_unavailable'), String(err)).toBe(true);
        expect(String(err)).toMatch(/no answer within 200 ms/);
      }
    } finally {
      client.destroy();
      await silent.close();
    }
  });

  it('reports an unreachable server as store_unavailable naming the object', async () => {
    const client = server.newClient({ endpoint: `http://127.0.0.1:${await closedPort()}`, maxAttempts: 1 });
    try {
      const store = new S3BlobStore({ client, bucket, prefix: 'p' });
      const source = path.join(await freshDir(), 'f');
      await writeFile(source, 'y');
      for (const [, call] of blobCalls(store, source)) {
        const err = await errorOf(call());
        expect(isBerthError(err, 'store_unavailable'), String(err)).toBe(true);
        expect(String(err)).toContain(`s3://${bucket}/p/k`);
      }
    } finally {
      client.destroy();
    }
  });
});

describe('openBlobStore', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('defaults to DATA_DIR/blobs, creating it', async () => {
    const dataDir = await freshDir();
    const store = await openBlobStore(null, dataDir);
    expect(store).toBeInstanceOf(DirBlobStore);
    expect(store.shared).toBe(false);
    expect((store as DirBlobStore).root).toBe(path.join(dataDir, 'blobs'));
    expect(await readdir(dataDir)).toEqual(['blobs']);
    await store.putBuffer('k', Buffer.from('v'));
    expect(await store.getBuffer('k')).toEqual(Buffer.from('v'));
    await store.close();
  });

  it('opens a directory named by a path or a file: URL', async () => {
    const base = await freshDir();
    const cases: Array<[string, string]> = [
      [path.join(base, 'plain'), path.join(base, 'plain')],
      [`file:${path.join(base, 'one-slash')}`, path.join(base, 'one-slash')],
      [`file://${path.join(base, 'three-slashes')}`, path.join(base, 'three-slashes')],
      [`file:${path.join(base, 'with%20space')}`, path.join(base, 'with space')],
    ];
    for (const [url, root] of cases) {
      const store = await openBlobStore(url, '/unused');
      expect((store as DirBlobStore).root, url).toBe(root);
      await store.close();
    }
    expect((await readdir(base)).sort()).toEqual(['one-slash', 'plain', 'three-slashes', 'with space']);
  });

  it('rejects a bad URL with invalid_config naming --blob-store and hiding passwords', async () => {
    const file = path.join(await freshDir(), 'a-file');
    await writeFile(file, 'x');
    const bad: Array<[string, RegExp]> = [
      ['', /unsupported/],
      ['relative/dir', /unsupported/],
      ['./relative', /unsupported/],
      ['file:relative', /file:\/ABSOLUTE/],
      ['file://host/x', /file:\/ABSOLUTE/],
      ['file:/a?x=1', /file:\/ABSOLUTE/],
      ['file:/a%2Fb', /file:\/ABSOLUTE/],
      ['/a/b\0c', /NUL/],
      [file, /cannot use the directory/],
      ['https://user:secret@example.com/x', /unsupported/],
      ['ftp://example.com/x', /unsupported/],
      ['s3://', /bucket name/],
      ['s3://bucket/a/../b', /prefix/],
      ['s3://bucket/p?endpoint=http://user:secret@host', /credentials/],
      ['s3://bucket/p?acl=public', /unknown parameter "acl"/],
    ];
    for (const [url, message] of bad) {
      const err = await errorOf(openBlobStore(url, '/unused'));
      expect(isBerthError(err, 'invalid_config'), `${url}: ${String(err)}`).toBe(true);
      expect(String(err), url).toMatch(message);
      expect(String(err), url).toContain('--blob-store');
      expect(String(err), url).not.toContain('--store');
      expect(String(err), url).not.toContain('secret');
    }
  });

  it('opens a reachable bucket, streams through it, and closes idempotently', async () => {
    stubS3rverCredentials();
    const prefix = `p-${randomUUID()}`;
    const store = await openBlobStore(
      `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
      '/unused',
    );
    expect(store.shared).toBe(true);
    expect(store.description).toBe(`s3://${bucket}/${prefix}/`);
    const dir = await freshDir();
    const data = randomBytes(1024 * 1024 + 3);
    await writeFile(path.join(dir, 'in'), data);
    // A streamed body through the client openBlobStore builds (its checksum settings, not the tests').
    await store.putFile('w/snapshot', path.join(dir, 'in'));
    expect(await store.getToFile('w/snapshot', path.join(dir, 'out'))).toBe(true);
    expect((await readFile(path.join(dir, 'out'))).equals(data)).toBe(true);
    expect((await store.getBuffer('w/snapshot'))?.equals(data)).toBe(true);
    await store.deletePrefix('w');
    expect(await store.getBuffer('w/snapshot')).toBeUndefined();
    const first = store.close();
    expect(store.close()).toBe(first);
    await first;
    expect(isBerthError(await errorOf(store.getBuffer('w/snapshot')), 'store_unavailable')).toBe(true);
  });

  it('rejects an unreachable endpoint and a missing bucket with invalid_config naming both', async () => {
    stubS3rverCredentials();
    const port = await closedPort();
    const err = await errorOf(
      openBlobStore(`s3://some-bucket/p?endpoint=http://127.0.0.1:${port}&forcePathStyle=true`, '/unused'),
    );
    expect(isBerthError(err, 'invalid_config'), String(err)).toBe(true);
    expect(String(err)).toContain('--blob-store');
    expect(String(err)).toContain(`http://127.0.0.1:${port}`);
    expect(String(err)).toContain('some-bucket');

    const missing = await errorOf(
      openBlobStore(`s3://no-such-bucket/p?endpoint=${server.endpoint}&forcePathStyle=true`, '/unused'),
    );
    expect(isBerthError(missing, 'invalid_config')).toBe(true);
    expect(String(missing)).toMatch(/no-such-bucket.*does not exist/);
  });
});

/** One call of each BlobStore method on key `k`, with the method's name. */
function blobCalls(store: BlobStore, source: string): [string, () => Promise<unknown>][] {
  return Object.entries({
    putBuffer: () => store.putBuffer('k', Buffer.from('v')),
    putFile: () => store.putFile('k', source),
    getBuffer: () => store.getBuffer('k'),
    getToFile: () => store.getToFile('k', `${source}.copy`),
    openRead: () => store.openRead('k'),
    delete: () => store.delete('k'),
    deletePrefix: () => store.deletePrefix('k'),
  });
}
