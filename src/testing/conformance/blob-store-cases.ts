/**
 * The contract every {@link BlobStore} keeps, as conformance cases: run them with `runConformance`, or
 * `runBlobStoreConformance` under vitest. Each case gets a store over fresh, isolated state (a new
 * directory, bucket prefix, ...) and makes its own temp directory for the files it puts and gets.
 *
 * A backend that cannot keep {@link ATOMIC_REPLACE_CASE} (s3rver rewrites an object in place) skips it
 * by name with the runner's `skip` option, saying why.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../../workspace/blob-store.js';
import { assertRejectsWithCode, assertSame, firedSignal } from './assertions.js';
import type { ConformanceCase, ConformanceContext } from './runner.js';

/** The name of the case that reads while puts replace a blob. */
export const ATOMIC_REPLACE_CASE = 'gives a reader one whole version while puts replace the blob';

interface BlobContext extends ConformanceContext<BlobStore> {
  /** A temp directory of the case's own, removed after it. */
  files: string;
}

function blobCase(
  name: string,
  run: (ctx: BlobContext) => Promise<void>,
  flags: { slow?: true } = {},
): ConformanceCase<BlobStore> {
  return {
    suite: 'BlobStore',
    name,
    ...flags,
    async run(ctx) {
      const files = await mkdtemp(path.join(tmpdir(), 'berth-blob-case-'));
      try {
        await run({ ...ctx, files });
      } finally {
        await rm(files, { recursive: true, force: true });
      }
    },
  };
}

async function readAll(stream: NodeJS.ReadableStream | Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

function assertBytes(actual: Buffer | undefined, expected: Buffer, what: string): void {
  assert.ok(actual, `${what}: no blob`);
  assert.ok(
    actual.equals(expected),
    `${what}: got ${actual.length} bytes that differ from the ${expected.length} put`,
  );
}

/** Every key shape a store must refuse, with `invalid_request`. */
const BAD_KEYS = [
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

/** The `BlobStore` suite, in order. */
export const blobStoreConformanceCases: readonly ConformanceCase<BlobStore>[] = [
  blobCase('puts and gets buffers, and a put replaces the blob', async ({ instance: store }) => {
    assert.equal(await store.getBuffer('a/one'), undefined, 'get before any put');
    await store.putBuffer('a/one', Buffer.from('first'));
    assertBytes(await store.getBuffer('a/one'), Buffer.from('first'), 'get after the put');
    await store.putBuffer('a/one', Buffer.from('second, longer'));
    assertBytes(await store.getBuffer('a/one'), Buffer.from('second, longer'), 'get after a second put');
    await store.putBuffer('empty', Buffer.alloc(0));
    assertBytes(await store.getBuffer('empty'), Buffer.alloc(0), 'get of an empty blob');
  }),

  blobCase(
    'puts a file and gets it into a file, byte for byte',
    async ({ instance: store, files }) => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const source = path.join(files, 'source.bin');
      await writeFile(source, data);
      await store.putFile('snapshots/s1/workspace.tar.gz', source);
      const copy = path.join(files, 'copy.bin');
      await writeFile(copy, 'old contents');
      assert.equal(await store.getToFile('snapshots/s1/workspace.tar.gz', copy), true, 'getToFile found it');
      assertBytes(await readFile(copy), data, 'the file got');
      // The temp file was renamed onto `copy`: nothing else is left beside it.
      assertSame((await readdir(files)).sort(), ['copy.bin', 'source.bin'], 'files beside the copy');

      await writeFile(source, '');
      await store.putFile('empty-file', source);
      assert.equal(await store.getToFile('empty-file', copy), true, 'getToFile of an empty blob');
      assertBytes(await readFile(copy), Buffer.alloc(0), 'the empty file got');
    },
    { slow: true },
  ),

  blobCase('reports a missing blob without creating anything', async ({ instance: store, files }) => {
    assert.equal(await store.getToFile('no/such/blob', path.join(files, 'copy.bin')), false, 'getToFile');
    assertSame(await readdir(files), [], 'files after getToFile of a missing blob');
    assert.equal(await store.getBuffer('no/such/blob'), undefined, 'getBuffer');
    assert.equal(await store.openRead('no/such/blob'), undefined, 'openRead');
  }),

  blobCase('opens a blob as a stream with its size', async ({ instance: store }) => {
    const data = randomBytes(200_000);
    await store.putBuffer('streamed', data);
    const opened = await store.openRead('streamed');
    assert.equal(opened?.size, data.length, 'the size openRead gives');
    assertBytes(await readAll(opened.stream), data, 'the stream read');
    await store.putBuffer('zero', Buffer.alloc(0));
    const zero = await store.openRead('zero');
    assert.equal(zero?.size, 0, 'the size of an empty blob');
    assertBytes(await readAll(zero.stream), Buffer.alloc(0), 'the stream of an empty blob');
  }),

  blobCase('keeps a key and keys under it apart', async ({ instance: store }) => {
    const keys = ['a', 'a/b', 'a/b/c', 'ab', 'a.b'];
    for (const key of keys) await store.putBuffer(key, Buffer.from(key));
    for (const key of keys) assert.equal((await store.getBuffer(key))?.toString(), key, `the blob at ${key}`);
  }),

  blobCase('deletes a blob, and a missing one without complaint', async ({ instance: store }) => {
    await store.putBuffer('x/y', Buffer.from('y'));
    await store.putBuffer('x/z', Buffer.from('z'));
    await store.delete('x/y');
    assert.equal(await store.getBuffer('x/y'), undefined, 'the deleted blob');
    assertBytes(await store.getBuffer('x/z'), Buffer.from('z'), 'its sibling');
    await store.delete('x/y');
    await store.delete('never/was');
  }),

  blobCase('deletes every key under a prefix, and nothing else', async ({ instance: store }) => {
    for (const key of ['s/1', 's/1/a', 's/1/b/c', 's/10/a', 's/1x', 's/2/a']) {
      await store.putBuffer(key, Buffer.from(key));
    }
    await store.deletePrefix('s/1');
    for (const key of ['s/1/a', 's/1/b/c']) assert.equal(await store.getBuffer(key), undefined, key);
    for (const key of ['s/1', 's/10/a', 's/1x', 's/2/a']) {
      assert.equal((await store.getBuffer(key))?.toString(), key, `${key}, outside the prefix`);
    }
    await store.deletePrefix('s/1');
    await store.deletePrefix('nothing/here');
  }),

  blobCase(
    ATOMIC_REPLACE_CASE,
    async ({ instance: store, files }) => {
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
      for (const [i, read] of (await Promise.all(reads)).entries()) {
        assert.ok(
          read && versions.some((version) => version.equals(read)),
          `read ${i + 1} is one whole version`,
        );
      }
    },
    { slow: true },
  ),

  blobCase(
    'refuses invalid keys with invalid_request, writing nothing',
    async ({ instance: store, files }) => {
      const source = path.join(files, 'source.bin');
      await writeFile(source, 'x');
      for (const key of BAD_KEYS) {
        const label = JSON.stringify(key.slice(0, 40));
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['putBuffer', () => store.putBuffer(key, Buffer.from('x'))],
          ['putFile', () => store.putFile(key, source)],
          ['getBuffer', () => store.getBuffer(key)],
          ['getToFile', () => store.getToFile(key, path.join(files, 'out'))],
          ['openRead', () => store.openRead(key)],
          ['delete', () => store.delete(key)],
          ['deletePrefix', () => store.deletePrefix(key)],
        ];
        for (const [method, call] of calls) {
          await assertRejectsWithCode(call(), 'invalid_request', `${method}(${label})`);
        }
      }
      assertSame(await readdir(files), ['source.bin'], 'files after the refused calls');
      // The longest key allowed is fine.
      const longest = Array.from({ length: 4 }, () => 'k'.repeat(127)).join('/');
      assert.equal(longest.length, 511);
      await store.putBuffer(longest, Buffer.from('long'));
      assertBytes(await store.getBuffer(longest), Buffer.from('long'), 'the blob at the longest key');
    },
  ),

  blobCase(
    'a call whose signal has fired rejects with aborted and changes nothing',
    async ({ instance: store, files }) => {
      const source = path.join(files, 'source.bin');
      await writeFile(source, 'new');
      await store.putBuffer('kept', Buffer.from('old'));
      const signal = firedSignal();
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['putBuffer', () => store.putBuffer('kept', Buffer.from('new'), { signal })],
        ['putFile', () => store.putFile('kept', source, { signal })],
        ['putBuffer of a new key', () => store.putBuffer('fresh', Buffer.from('new'), { signal })],
        ['getBuffer', () => store.getBuffer('kept', { signal })],
        ['getToFile', () => store.getToFile('kept', path.join(files, 'out'), { signal })],
        ['openRead', () => store.openRead('kept', { signal })],
        ['delete', () => store.delete('kept', { signal })],
        ['deletePrefix', () => store.deletePrefix('kept', { signal })],
      ];
      for (const [method, call] of calls) await assertRejectsWithCode(call(), 'aborted', method);
      assertBytes(await store.getBuffer('kept'), Buffer.from('old'), 'the blob after the aborted calls');
      assert.equal(await store.getBuffer('fresh'), undefined, 'the key an aborted put named');
      assertSame(await readdir(files), ['source.bin'], 'files after the aborted calls');
    },
  ),

  blobCase(
    'closes idempotently, and then refuses calls with store_unavailable',
    async ({ instance: store }) => {
      await store.putBuffer('k', Buffer.from('v'));
      const first = store.close();
      assert.equal(store.close(), first, 'a second close() returns the first one');
      await first;
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['putBuffer', () => store.putBuffer('k', Buffer.from('v'))],
        ['getBuffer', () => store.getBuffer('k')],
        ['openRead', () => store.openRead('k')],
        ['delete', () => store.delete('k')],
        ['deletePrefix', () => store.deletePrefix('k')],
      ];
      for (const [method, call] of calls) {
        await assertRejectsWithCode(call(), 'store_unavailable', `${method} after close()`);
      }
    },
  ),
];
