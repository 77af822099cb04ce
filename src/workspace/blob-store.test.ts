/**
 * One set of cases for every BlobStore: DirBlobStore on a temp directory, and S3BlobStore on a local
 * s3rver (`test/helpers/s3-server.ts`), each case on fresh state. Then what is specific to each, and
 * `openBlobStore`. A machine where s3rver cannot start fails this file; it never skips.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describeError, isBerthError } from '../errors.js';
import { startS3Server } from '../../test/helpers/s3-server.js';
import type { S3TestServer } from '../../test/helpers/s3-server.js';
import { closedPort, stubS3rverCredentials } from '../../test/helpers/s3-stubs.js';
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

async function readAll(stream: NodeJS.ReadableStream | Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

interface StoreUnderTest {
  store: BlobStore;
  cleanup: () => Promise<void>;
}

/**
 * The cases every BlobStore passes; `factory` returns a store over fresh, isolated state.
 * `nonAtomicReplace` says why a backend cannot run the case that reads while puts replace a blob.
 */
function blobStoreCases(
  name: string,
  factory: () => Promise<StoreUnderTest>,
  options: { nonAtomicReplace?: string } = {},
): void {
  describe(`${name}: BlobStore`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;
    let files: string;
    beforeEach(async () => {
      ({ store, cleanup } = await factory());
      files = await freshDir();
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it('puts and gets buffers, and a put replaces the blob', async () => {
      expect(await store.getBuffer('a/one')).toBeUndefined();
      await store.putBuffer('a/one', Buffer.from('first'));
      expect(await store.getBuffer('a/one')).toEqual(Buffer.from('first'));
      await store.putBuffer('a/one', Buffer.from('second, longer'));
      expect(await store.getBuffer('a/one')).toEqual(Buffer.from('second, longer'));
      await store.putBuffer('empty', Buffer.alloc(0));
      expect(await store.getBuffer('empty')).toEqual(Buffer.alloc(0));
    });

    it('puts a file and gets it into a file, byte for byte', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const source = path.join(files, 'source.bin');
      await writeFile(source, data);
      await store.putFile('snapshots/s1/workspace.tar.gz', source);
      const copy = path.join(files, 'copy.bin');
      await writeFile(copy, 'old contents');
      expect(await store.getToFile('snapshots/s1/workspace.tar.gz', copy)).toBe(true);
      expect((await readFile(copy)).equals(data)).toBe(true);
      // The temp file was renamed onto `copy`: nothing else is left beside it.
      expect((await readdir(files)).sort()).toEqual(['copy.bin', 'source.bin']);

      await writeFile(source, '');
      await store.putFile('empty-file', source);
      expect(await store.getToFile('empty-file', copy)).toBe(true);
      expect(await readFile(copy)).toEqual(Buffer.alloc(0));
    });

    it('reports a missing blob without creating anything', async () => {
      const copy = path.join(files, 'copy.bin');
      expect(await store.getToFile('no/such/blob', copy)).toBe(false);
      expect(await readdir(files)).toEqual([]);
      expect(await store.getBuffer('no/such/blob')).toBeUndefined();
      expect(await store.openRead('no/such/blob')).toBeUndefined();
    });

    it('opens a blob as a stream with its size', async () => {
      const data = randomBytes(200_000);
      await store.putBuffer('streamed', data);
      const opened = await store.openRead('streamed');
      expect(opened?.size).toBe(data.length);
      expect((await readAll(opened!.stream)).equals(data)).toBe(true);
      await store.putBuffer('zero', Buffer.alloc(0));
      const zero = await store.openRead('zero');
      expect(zero?.size).toBe(0);
      expect(await readAll(zero!.stream)).toEqual(Buffer.alloc(0));
    });

    it('keeps a key and keys under it apart', async () => {
      await store.putBuffer('a', Buffer.from('a'));
      await store.putBuffer('a/b', Buffer.from('a/b'));
      await store.putBuffer('a/b/c', Buffer.from('a/b/c'));
      await store.putBuffer('ab', Buffer.from('ab'));
      await store.putBuffer('a.b', Buffer.from('a.b'));
      for (const key of ['a', 'a/b', 'a/b/c', 'ab', 'a.b']) {
        expect((await store.getBuffer(key))?.toString(), key).toBe(key);
      }
    });

    it('deletes a blob, and a missing one without complaint', async () => {
      await store.putBuffer('x/y', Buffer.from('y'));
      await store.putBuffer('x/z', Buffer.from('z'));
      await store.delete('x/y');
      expect(await store.getBuffer('x/y')).toBeUndefined();
      expect(await store.getBuffer('x/z')).toEqual(Buffer.from('z'));
      await store.delete('x/y');
      await store.delete('never/was');
    });

    it('deletes every key under a prefix, and nothing else', async () => {
      for (const key of ['s/1', 's/1/a', 's/1/b/c', 's/10/a', 's/1x', 's/2/a']) {
        await store.putBuffer(key, Buffer.from(key));
      }
      await store.deletePrefix('s/1');
      for (const key of ['s/1/a', 's/1/b/c']) expect(await store.getBuffer(key), key).toBeUndefined();
      for (const key of ['s/1', 's/10/a', 's/1x', 's/2/a']) {
        expect((await store.getBuffer(key))?.toString(), key).toBe(key);
      }
      await store.deletePrefix('s/1');
      await store.deletePrefix('nothing/here');
    });

    // A skipped case says why in its name.
    it.skipIf(options.nonAtomicReplace !== undefined)(
      `gives a reader one whole version while puts replace the blob${options.nonAtomicReplace ? ` (skipped: ${options.nonAtomicReplace})` : ''}`,
      async () => {
        const versions = [randomBytes(300_000), randomBytes(300_000), randomBytes(300_000)];
        await store.putBuffer('racy', versions[0]!);
        const reads = Array.from({ length: 6 }, (_, i) =>
          i % 2 === 0
            ? store.getBuffer('racy')
            : store
                .getToFile('racy', path.join(files, `copy-${i}`))
                .then(() => readFile(path.join(files, `copy-${i}`))),
        );
        await Promise.all([store.putBuffer('racy', versions[1]!), store.putBuffer('racy', versions[2]!)]);
        for (const read of await Promise.all(reads)) {
          expect(versions.some((version) => version.equals(read!))).toBe(true);
        }
      },
    );

    it('refuses invalid keys with invalid_request, writing nothing', async () => {
      const source = path.join(files, 'source.bin');
      await writeFile(source, 'x');
      const bad = [
        '',
        '/a',
        'a/',
        'a//b',
        '..',
        '../a',
        'a/../b',
        'a/./b',
        '.hidden',
        'a/.b',
        '-a',
        'a b',
        'a\\b',
        'a\0b',
        'é',
        'a?b',
        'x'.repeat(513),
        `${'x'.repeat(201)}/a`,
      ];
      for (const key of bad) {
        const label = JSON.stringify(key);
        for (const call of [
          () => store.putBuffer(key, Buffer.from('x')),
          () => store.putFile(key, source),
          () => store.getBuffer(key),
          () => store.getToFile(key, path.join(files, 'out')),
          () => store.openRead(key),
          () => store.delete(key),
          () => store.deletePrefix(key),
        ]) {
          const err = await errorOf(call());
          expect(isBerthError(err, 'invalid_request'), `${label}: ${String(err)}`).toBe(true);
        }
      }
      expect(await readdir(files)).toEqual(['source.bin']);
      // The longest key allowed is fine.
      const longest = Array.from({ length: 4 }, () => 'k'.repeat(127)).join('/');
      expect(longest.length).toBe(511);
      await store.putBuffer(longest, Buffer.from('long'));
      expect(await store.getBuffer(longest)).toEqual(Buffer.from('long'));
    });

    it('closes idempotently, and then refuses calls with store_unavailable', async () => {
      await store.putBuffer('k', Buffer.from('v'));
      const first = store.close();
      expect(store.close()).toBe(first);
      await first;
      for (const call of [
        () => store.putBuffer('k', Buffer.from('v')),
        () => store.getBuffer('k'),
        () => store.openRead('k'),
        () => store.delete('k'),
        () => store.deletePrefix('k'),
      ]) {
        expect(isBerthError(await errorOf(call()), 'store_unavailable')).toBe(true);
      }
    });
  });
}

blobStoreCases('DirBlobStore', async () => {
  const root = path.join(await freshDir(), 'blobs');
  return { store: new DirBlobStore({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

blobStoreCases(
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
    nonAtomicReplace:
      's3rver rewrites an object in place, so a read during a put can mix versions (S3 replaces atomically)',
  },
);

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

  it('reports an unreachable server as store_unavailable naming the object', async () => {
    const client = server.newClient({ endpoint: `http://127.0.0.1:${await closedPort()}`, maxAttempts: 1 });
    try {
      const store = new S3BlobStore({ client, bucket, prefix: 'p' });
      const source = path.join(await freshDir(), 'f');
      await writeFile(source, 'y');
      for (const call of [
        () => store.putBuffer('k', Buffer.from('v')),
        () => store.putFile('k', source),
        () => store.getBuffer('k'),
        () => store.getToFile('k', `${source}.copy`),
        () => store.delete('k'),
        () => store.deletePrefix('k'),
      ]) {
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
